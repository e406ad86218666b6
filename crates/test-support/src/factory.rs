//! One jwt-factory on its own temporary KEYS_DIR, restartable on the same
//! keys ([`Factory`]), and helpers for the factory's endpoints, used on any
//! running factory (a [`Factory`], or a [`Stack`](crate::Stack)'s).

use std::{
    ops::Deref,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    reply::{Reply, json_reply, reply},
    stack::{Running, start_factory},
};

/// The issuer the factory uses by default (passed explicitly, see
/// [`crate::factory_config`]).
pub const ISSUER: &str = "https://jwt-factory/";

/// A running factory whose KEYS_DIR is `<tmp>/keys`. Dropping it signals
/// shutdown; [`Factory::stop`] also waits for the server, so the same
/// KEYS_DIR can be served again.
pub struct Factory {
    server: Running,
    /// Holds KEYS_DIR; kept alive across restarts.
    dir: Arc<TempDir>,
}

impl Deref for Factory {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.server
    }
}

impl Factory {
    /// A factory on a fresh, empty temporary KEYS_DIR (not created yet).
    pub async fn start() -> Self {
        Self::start_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
    }

    /// A factory whose KEYS_DIR is `<dir>/keys`; keys found there are loaded.
    pub async fn start_in(dir: Arc<TempDir>) -> Self {
        let server = start_factory(&dir.path().join("keys"), &[]).await;
        Self { server, dir }
    }

    /// A fresh factory, and a client for it.
    pub async fn with_client() -> (Self, Client) {
        (Self::start().await, Client::new())
    }

    /// A fresh factory with a key for `id`, and a client for it.
    pub async fn with_key(id: &str) -> (Self, Client) {
        let (f, http) = Self::with_client().await;
        create_key(&http, &f, id).await;
        (f, http)
    }

    /// `path` on this factory.
    pub fn url(&self, path: &str) -> String {
        at(self, path)
    }

    /// Its KEYS_DIR, `<tmp>/keys`.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Signals shutdown, waits (at most 10 s) for the server to finish, and
    /// hands back the directory so a new factory can be started on the
    /// same KEYS_DIR.
    pub async fn stop(mut self) -> Arc<TempDir> {
        self.server.stop_within(Duration::from_secs(10)).await;
        self.dir
    }
}

/// `path` on the running factory `f`.
fn at(f: &Running, path: &str) -> String {
    format!("{}{path}", f.url())
}

/// Asserts an error answer: the status, a JSON body with a non-empty
/// `"error"` string; returns that message.
pub async fn error_message(rb: RequestBuilder, expected: StatusCode) -> String {
    let (status, body) = json_reply(rb).await;
    assert_eq!(status, expected, "body: {body}");
    let msg = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no \"error\" string in {body}"))
        .to_owned();
    assert!(!msg.trim().is_empty(), "empty error message in {body}");
    msg
}

/// `POST /utils/dump`, which must answer 200: every key pair to KEYS_DIR.
pub async fn dump(http: &Client, f: &Running) {
    let (status, body) = json_reply(http.post(at(f, "/utils/dump"))).await;
    assert_eq!(status, StatusCode::OK, "dump: {body}");
}

/// `POST /keys/{id}/rotate`, which must answer 200; the JSON body.
pub async fn rotate(http: &Client, f: &Running, id: &str) -> Value {
    let (status, body) = json_reply(http.post(at(f, &format!("/keys/{id}/rotate")))).await;
    assert_eq!(status, StatusCode::OK, "rotate {id}: {body}");
    body
}

/// `GET /keys/{id}`: creates (or replaces) the key pair; the base64 public key.
pub async fn create_key(http: &Client, f: &Running, id: &str) -> String {
    public_key_at(http, f, &format!("/keys/{id}")).await
}

/// `GET /utils/publicKey/{id}`, base64-decoded: the public key PEM.
pub async fn public_pem(http: &Client, f: &Running, id: &str) -> String {
    decode_pem(&public_key_at(http, f, &format!("/utils/publicKey/{id}")).await)
}

/// `GET path`, which must answer 200 with a `publicKey` string; that string.
async fn public_key_at(http: &Client, f: &Running, path: &str) -> String {
    let (status, body) = json_reply(http.get(at(f, path))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["publicKey"]
        .as_str()
        .expect("publicKey string")
        .to_owned()
}

/// Base64 (standard) of a PEM, decoded and checked to be a PEM.
pub fn decode_pem(b64: &str) -> String {
    let bytes = STANDARD.decode(b64).expect("publicKey is standard base64");
    let pem = String::from_utf8(bytes).expect("PEM is UTF-8");
    assert!(
        pem.starts_with("-----BEGIN ") && pem.trim_end().ends_with("-----"),
        "not a PEM: {pem}"
    );
    pem
}

/// The request `POST /issueToken/{id}{query}` with `body` as JSON (or no
/// body), not sent yet.
pub fn issue_request(
    http: &Client,
    f: &Running,
    id: &str,
    query: &str,
    body: Option<&Value>,
) -> RequestBuilder {
    let req = http.post(at(f, &format!("/issueToken/{id}{query}")));
    match body {
        Some(body) => req.json(body),
        None => req,
    }
}

/// Issues a token and asserts success: 200, text/plain, a compact JWS.
pub async fn issue(http: &Client, f: &Running, id: &str, query: &str, body: &Value) -> String {
    let r = reply(issue_request(http, f, id, query, Some(body))).await;
    assert_token(r)
}

/// Asserts `r` is a token: 200, text/plain, a compact JWS; the token.
pub fn assert_token(r: Reply) -> String {
    let ctype = r.header("content-type").unwrap_or("").to_owned();
    let token = r.text;
    assert_eq!(r.status, StatusCode::OK, "body: {token}");
    assert!(ctype.starts_with("text/plain"), "content type {ctype:?}");
    assert_eq!(token.split('.').count(), 3, "not a compact JWS: {token}");
    token
}

/// `POST /verify/{id}` with `{"token","aud","sub"}`: status and JSON body.
pub async fn verify(
    http: &Client,
    f: &Running,
    id: &str,
    token: &str,
    aud: &str,
    sub: &str,
) -> (u16, Value) {
    let body = serde_json::json!({ "token": token, "aud": aud, "sub": sub });
    json_reply(http.post(at(f, &format!("/verify/{id}"))).json(&body)).await
}

/// Asserts a 403 refusal in the SPEC's shape and returns the `error` object.
pub fn refused(status: u16, body: &Value) -> &serde_json::Map<String, Value> {
    assert_eq!(status, StatusCode::FORBIDDEN, "body: {body}");
    assert_eq!(body["valid"], Value::Bool(false), "body: {body}");
    assert_eq!(body["claims"], serde_json::json!({}), "body: {body}");
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {body}"));
    assert!(
        err.get("name").and_then(Value::as_str).is_some(),
        "no error.name: {body}"
    );
    assert!(
        err.get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty()),
        "no error.message: {body}"
    );
    err
}

/// The payload of a compact JWS, decoded WITHOUT verification (for tests).
pub fn payload(token: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = token.split('.').nth(1).expect("payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// The time now, in Unix seconds (from the clock, not the code under test).
pub fn now_unix() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

/// Unix seconds as Node's `Date.toISOString()` prints them (civil-from-days,
/// H. Hinnant), computed independently of the factory's own formatter.
pub fn iso_millis(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// File names in `dir`, sorted (empty if `dir` does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    names.sort();
    names
}
