//! What the factory's OAuth test binaries share (each includes this
//! folder as `mod support`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use reqwest::Client;
use test_support::Reply;

/// The factory's issuer, the `aud` of a client assertion.
pub const ISSUER: &str = "https://jwt-factory/";
/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `oauth2` crate's async HTTP client: a closure on our reqwest (the
/// crate is built without an HTTP client of its own, so no second reqwest).
pub fn oauth2_http(
    http: Client,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
> {
    move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            Ok(answer.body(body).expect("a response"))
        })
    }
}

/// Asserts an RFC 6749 §5.2 refusal: status, `error` code, no token,
/// `Cache-Control: no-store`; returns the description.
pub fn refused(r: &Reply, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{}: {}", r.what, r.text);
    let body = r
        .json
        .as_ref()
        .unwrap_or_else(|| panic!("not JSON: {}", r.text));
    assert_eq!(body["error"], code, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{body}");
    if status == 401 {
        assert!(
            r.header("www-authenticate").is_some(),
            "401 without WWW-Authenticate"
        );
    }
    body["error_description"].as_str().unwrap().to_owned()
}
