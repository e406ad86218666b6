//! What the factory's OAuth test binaries share (each includes this
//! folder as `mod support`).
#![allow(clippy::expect_used, dead_code)]

use reqwest::Client;

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
