//! One way to send a request and read its answer whole, for every test:
//! over a socket ([`reply`], [`json_reply`], [`get_json`]) or straight into
//! a router, without a socket ([`oneshot`]).

use std::time::Duration;

use axum::{Router, body::Body, http::Request};
use reqwest::{Client, RequestBuilder, header::HeaderMap};
use serde_json::Value;

/// No single request may take longer than this: "never hang".
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// An answer, read whole: status, headers, the body as text, and the body
/// as JSON when the content type says JSON and it parses.
#[derive(Debug)]
pub struct Reply {
    /// `METHOD url` of the request, for messages.
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Option<Value>,
}

impl Reply {
    fn new(what: String, status: u16, headers: HeaderMap, text: String) -> Self {
        let json = if headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        {
            serde_json::from_str(&text).ok()
        } else {
            None
        };
        Self {
            what,
            status,
            headers,
            text,
            json,
        }
    }

    /// A header's value, if it is there (and text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The status and the body, which must be JSON: content type exactly
    /// `application/json`, and a body that parses.
    pub fn into_json(self) -> (u16, Value) {
        let ct = self.header("content-type").map(str::to_owned);
        let Self {
            what,
            status,
            text,
            json,
            ..
        } = self;
        let Some(body) = json else {
            panic!("{what}: not JSON ({status}): {text}")
        };
        assert_eq!(
            ct.as_deref(),
            Some("application/json"),
            "{what}: content-type ({status}): {body}"
        );
        (status, body)
    }

    /// What the body says about why: `message`, `error` (a string, or
    /// Node's `{name, message}`), all of it, lowercased.
    pub fn reason(&self) -> String {
        let Some(body) = &self.json else {
            return String::new();
        };
        let parts: Vec<String> = [
            &body["message"],
            &body["error"],
            &body["error"]["message"],
            &body["error"]["name"],
        ]
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_lowercase))
        .collect();
        parts.join(" | ")
    }
}

/// Sends `rb` and reads the whole answer, each within [`ANSWER_WITHIN`];
/// a request that fails or hangs panics, naming it.
pub async fn reply(rb: RequestBuilder) -> Reply {
    let (client, req) = rb.build_split();
    let req = req.expect("a well-formed request");
    let what = format!("{} {}", req.method(), req.url());
    let r = tokio::time::timeout(ANSWER_WITHIN, client.execute(req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in time: the server hangs"))
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = tokio::time::timeout(ANSWER_WITHIN, r.text())
        .await
        .unwrap_or_else(|_| panic!("{what}: body not sent in time"))
        .unwrap_or_default();
    Reply::new(what, status, headers, text)
}

/// Sends `rb`; the status and the body, which must be JSON.
pub async fn json_reply(rb: RequestBuilder) -> (u16, Value) {
    reply(rb).await.into_json()
}

/// `GET url`; the status and the body, which must be JSON.
pub async fn get_json(client: &Client, url: &str) -> (u16, Value) {
    json_reply(client.get(url)).await
}

/// Sends `req` straight into `router` with `tower::ServiceExt::oneshot`
/// (no socket, as axum's `examples/testing` does) and reads the answer.
pub async fn oneshot(router: &Router, req: Request<Body>) -> Reply {
    use tower::ServiceExt as _;
    let what = format!("{} {}", req.method(), req.uri());
    let res = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{what}: body: {e}"));
    Reply::new(
        what,
        status,
        headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}
