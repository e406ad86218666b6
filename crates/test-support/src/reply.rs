//! One way to send a request and read its answer whole, for every test:
//! over a socket ([`reply`], [`json_reply`], [`get_json`]) or straight into
//! a router, without a socket ([`oneshot`]), or as raw HTTP/1.1 bytes on
//! a plain TCP socket ([`raw_http`]).

use std::{net::SocketAddr, time::Duration};

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

/// Sends `rb` (as [`reply`] does); the status and the body as JSON when it
/// parses, whatever the content type, else the text as a JSON string.
pub async fn status_and_value(rb: RequestBuilder) -> (u16, Value) {
    let r = reply(rb).await;
    let body = serde_json::from_str(&r.text).unwrap_or(Value::String(r.text));
    (r.status, body)
}

/// An answer to [`raw_http`], split at the first blank line.
#[derive(Debug)]
pub struct RawAnswer {
    /// The first line, e.g. `HTTP/1.1 200 OK` (empty if none came).
    pub status_line: String,
    /// Everything after the headers (empty if there is no blank line).
    pub body: String,
}

impl RawAnswer {
    /// The status code of the status line; 0 if it has none.
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Writes `request` as it is to a new TCP connection to `addr` and reads
/// until the server closes it (so send `Connection: close`); panics if
/// that takes more than 5 s.
pub async fn raw_http(addr: SocketAddr, request: &str) -> RawAnswer {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    RawAnswer {
        status_line: answer.lines().next().unwrap_or_default().to_owned(),
        body: answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    }
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

/// `POST {factory}/issueToken/{id}` with `{"aud": aud}`, which must be a
/// 200 with a three-part token: the token.
pub async fn issue_at(client: &Client, factory: &str, id: &str, aud: &str) -> String {
    let r = client
        .post(format!("{factory}/issueToken/{id}"))
        .json(&serde_json::json!({ "aud": aud }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "issuing a token for {id}");
    let token = r.text().await.unwrap();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}
