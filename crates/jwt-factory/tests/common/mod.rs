//! Test harness: the REAL factory (`jwt_factory::run`) on 127.0.0.1, port 0,
//! with a temporary KEYS_DIR, plus small request helpers.
//!
//! The listener is bound before the server task is spawned, so the factory
//! accepts connections as soon as [`Factory::start`] returns: no sleeps.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use clap::Parser as _;
use jwt_factory::{AppState, Config};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The issuer the factory uses by default (passed explicitly, see [`config`]).
pub const ISSUER: &str = "https://jwt-factory/";

/// A running factory. Dropping it signals shutdown; [`Factory::stop`] also
/// waits for the server task, so the same KEYS_DIR can be served again.
pub struct Factory {
    pub addr: SocketAddr,
    /// Holds KEYS_DIR (`<tmp>/keys`); kept alive across restarts.
    dir: Arc<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A Config with every setting passed as a flag, so env variables set on
/// the machine (PORT, ISSUER, KEYS_DIR, ...) cannot change a test.
pub fn config(keys_dir: &Path) -> Config {
    let keys_dir = keys_dir.to_str().expect("temp path is UTF-8");
    Config::parse_from([
        "jwt-factory",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--issuer",
        ISSUER,
        "--algorithm",
        "RS256",
        "--keys-dir",
        keys_dir,
        "--token-lifetime-secs",
        "3600",
        "--leeway-secs",
        "30",
        "--jwks-max-age-secs",
        "300",
    ])
}

impl Factory {
    /// A factory on a fresh, empty temporary KEYS_DIR (not created yet).
    pub async fn start() -> Self {
        Self::start_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
    }

    /// A factory whose KEYS_DIR is `<dir>/keys`; keys found there are loaded.
    pub async fn start_in(dir: Arc<TempDir>) -> Self {
        let config = config(&dir.path().join("keys"));
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = AppState::load(config);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(jwt_factory::run(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The temporary directory that holds KEYS_DIR.
    pub fn dir(&self) -> Arc<TempDir> {
        Arc::clone(&self.dir)
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Signals shutdown, waits for the server to finish, and hands back the
    /// directory so a new factory can be started on the same KEYS_DIR.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("factory did not stop within 10 s")
                .expect("factory task panicked")
                .expect("factory returned an error");
        }
        Arc::clone(&self.dir)
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the response is JSON (content type and body) and returns both.
pub async fn json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("response body");
    assert!(
        ctype.starts_with("application/json"),
        "status {status}: expected a JSON content type, got {ctype:?}; body {text:?}"
    );
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, value)
}

/// Asserts an error response: the status, a JSON body with a non-empty
/// `"error"` string; returns that message.
pub async fn error_message(resp: reqwest::Response, expected: StatusCode) -> String {
    let (status, body) = json(resp).await;
    assert_eq!(status, expected, "body: {body}");
    let msg = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no \"error\" string in {body}"))
        .to_owned();
    assert!(!msg.trim().is_empty(), "empty error message in {body}");
    msg
}

/// `GET /keys/{id}`: creates (or replaces) the key pair; the base64 public key.
pub async fn create_key(http: &Client, f: &Factory, id: &str) -> String {
    let resp = http
        .get(f.url(&format!("/keys/{id}")))
        .send()
        .await
        .expect("send");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["publicKey"]
        .as_str()
        .expect("publicKey string")
        .to_owned()
}

/// `GET /utils/publicKey/{id}`, base64-decoded: the public key PEM.
pub async fn public_pem(http: &Client, f: &Factory, id: &str) -> String {
    let resp = http
        .get(f.url(&format!("/utils/publicKey/{id}")))
        .send()
        .await
        .expect("send");
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    decode_pem(body["publicKey"].as_str().expect("publicKey string"))
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

/// `POST /issueToken/{id}{query}` with `body` as JSON (or no body).
pub async fn issue_raw(
    http: &Client,
    f: &Factory,
    id: &str,
    query: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = http.post(f.url(&format!("/issueToken/{id}{query}")));
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.expect("send")
}

/// Issues a token and asserts success: 200, text/plain, a compact JWS.
pub async fn issue(http: &Client, f: &Factory, id: &str, query: &str, body: &Value) -> String {
    let resp = issue_raw(http, f, id, query, Some(body)).await;
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let token = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "body: {token}");
    assert!(ctype.starts_with("text/plain"), "content type {ctype:?}");
    assert_eq!(token.split('.').count(), 3, "not a compact JWS: {token}");
    token
}

/// `POST /verify/{id}` with `{"token","aud","sub"}`: status and JSON body.
pub async fn verify(
    http: &Client,
    f: &Factory,
    id: &str,
    token: &str,
    aud: &str,
    sub: &str,
) -> (StatusCode, Value) {
    let resp = http
        .post(f.url(&format!("/verify/{id}")))
        .json(&serde_json::json!({ "token": token, "aud": aud, "sub": sub }))
        .send()
        .await
        .expect("send");
    json(resp).await
}

/// Asserts a 403 refusal in the SPEC's shape and returns the `error` object.
pub fn refused(status: StatusCode, body: &Value) -> &serde_json::Map<String, Value> {
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
