//! One connection to OpenBao: its address, an HTTP client with bounded
//! timeouts, and the token calls are made with.
//!
//! A service logs in with AppRole ([`OpenBao::login`]): its role id and
//! secret id come from files, its token lives in memory only, and when
//! OpenBao answers 403 (the token expired or was revoked) the client logs
//! in once more and retries the call once. A second 403 is final: the
//! credentials themselves were revoked, and the caller hears so.
//! [`OpenBao::with_token`] is the administrator's (the setup, the tests).

use std::{
    sync::{
        RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::OpenBaoError;

/// AppRole credentials: who the service is to OpenBao.
#[derive(Clone)]
pub struct AppRole {
    /// Where the AppRole auth method is mounted (`approle`).
    pub mount: String,
    pub role_id: String,
    pub secret_id: String,
}

impl std::fmt::Debug for AppRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret id is a credential: never in a log line.
        f.debug_struct("AppRole")
            .field("mount", &self.mount)
            .field("role_id", &self.role_id)
            .finish_non_exhaustive()
    }
}

/// How a client gets (again) its token.
#[derive(Debug)]
enum Login {
    /// A token given once (the administrator's).
    Fixed,
    /// AppRole credentials: log in again when the token stops working.
    AppRole(AppRole),
    /// A file an agent keeps fresh (OpenBao Agent, in a cluster): read it
    /// again when the token stops working.
    TokenFile(std::path::PathBuf),
}

/// A client of one OpenBao server, or of the nodes of a cluster: calls go
/// to one node, and move to the next when it cannot be reached (a node
/// that stopped; a standby forwards to the active node itself).
pub struct OpenBao {
    addrs: Vec<String>,
    /// The node calls go to now (an index into `addrs`).
    current: AtomicUsize,
    http: reqwest::Client,
    token: RwLock<String>,
    login: Login,
    /// One new login at a time: the calls refused together wait for it.
    relogging: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBao")
            .field("addrs", &self.addrs)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The bounds of every call: to connect, and for the whole call.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl OpenBao {
    /// A client that calls with `token` (the administrator's). `addr` is
    /// one address, or several separated by commas (a cluster's nodes).
    pub fn with_token(
        addr: &str,
        token: &str,
        timeouts: Timeouts,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, OpenBaoError> {
        Self::new(addr, token, Login::Fixed, timeouts, ca_pem)
    }

    /// A client whose token is in `file`, kept fresh by an agent (OpenBao
    /// Agent's `agent-inject-token`); the file is read again when a call is
    /// refused with 403.
    pub async fn with_token_file(
        addr: &str,
        file: &std::path::Path,
        timeouts: Timeouts,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, OpenBaoError> {
        let login = Login::TokenFile(file.to_path_buf());
        let client = Self::new(addr, "", login, timeouts, ca_pem)?;
        client.relogin().await?;
        Ok(client)
    }

    /// Logs in with `approle` and keeps the token; logs in again when a
    /// call is refused with 403.
    pub async fn login(
        addr: &str,
        approle: AppRole,
        timeouts: Timeouts,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, OpenBaoError> {
        let client = Self::new(addr, "", Login::AppRole(approle), timeouts, ca_pem)?;
        client.relogin().await?;
        Ok(client)
    }

    fn new(
        addr: &str,
        token: &str,
        login: Login,
        timeouts: Timeouts,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, OpenBaoError> {
        Ok(Self {
            addrs: checked_addrs(addr)?,
            current: AtomicUsize::new(0),
            http: http_client(addr, timeouts, ca_pem)?,
            token: RwLock::new(token.to_owned()),
            login,
            relogging: tokio::sync::Mutex::new(()),
        })
    }

    /// The address calls go to now.
    pub fn addr(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed);
        &self.addrs[i % self.addrs.len()]
    }

    /// Every address, as configured (for messages).
    pub fn addrs(&self) -> String {
        self.addrs.join(",")
    }

    /// The current token (for the administrator's tools and tests: a
    /// service never shows it).
    pub fn token(&self) -> String {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn relogin(&self) -> Result<(), OpenBaoError> {
        let approle = match &self.login {
            Login::Fixed => return Ok(()),
            Login::AppRole(approle) => approle,
            Login::TokenFile(file) => {
                let token = std::fs::read_to_string(file).map_err(|e| {
                    OpenBaoError::Settings(format!(
                        "cannot read the token file {}: {e}",
                        file.display()
                    ))
                })?;
                *self.token.write().unwrap_or_else(|p| p.into_inner()) = token.trim().to_owned();
                return Ok(());
            }
        };
        let path = format!("auth/{}/login", approle.mount);
        let body = json!({ "role_id": approle.role_id, "secret_id": approle.secret_id });
        let answer = match self.send(Method::POST, &path, Some(&body), None).await {
            // A refused login: the role or its secret id is gone (revoked).
            Err(OpenBaoError::Refused { addr, detail, .. }) => {
                return Err(OpenBaoError::Denied {
                    addr,
                    path,
                    detail: format!(
                        "the AppRole login was refused ({detail}): these credentials were revoked \
                         or never valid"
                    ),
                });
            }
            other => other?.ok_or_else(|| self.bad(&path, "no body"))?,
        };
        let token = answer
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad(&path, "no auth.client_token"))?;
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token.to_owned();
        tracing::info!(
            "logged in to OpenBao at {} with AppRole (role id {})",
            self.addr(),
            approle.role_id
        );
        Ok(())
    }

    /// Calls `method path` (under `/v1/`) with the token; the JSON answer,
    /// or `None` for 204. A 403 with AppRole credentials logs in again and
    /// retries once.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, OpenBaoError> {
        let token = self.token();
        match self.send(method.clone(), path, body, Some(&token)).await {
            Err(OpenBaoError::Denied { .. }) if !matches!(self.login, Login::Fixed) => {
                {
                    let _one = self.relogging.lock().await;
                    // Another call may have logged in meanwhile: then its
                    // token is used, not a second login.
                    if self.token() == token {
                        tracing::warn!(
                            "OpenBao at {} refused {path}: logging in again (token expired or revoked?)",
                            self.addr()
                        );
                        self.relogin().await?;
                    }
                }
                let token = self.token();
                self.send(method, path, body, Some(&token)).await
            }
            other => other,
        }
    }

    /// One call, to the current node. A node that could not be reached
    /// (no connection: the request never left), or that says it cannot
    /// serve now (sealed, a standby without a leader, overloaded), makes
    /// the next node current and the call is made there, each node once.
    /// A call that timed out after it was sent is not repeated elsewhere:
    /// a rotation or a write may have happened.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Option<Value>, OpenBaoError> {
        let mut tries = self.addrs.len();
        loop {
            let i = self.current.load(Ordering::Relaxed) % self.addrs.len();
            let addr = &self.addrs[i];
            let outcome = self.send_to(addr, method.clone(), path, body, token).await;
            let why = match &outcome {
                Err(OpenBaoError::Unreachable {
                    reason,
                    unsent: true,
                    ..
                }) => reason.clone(),
                Err(OpenBaoError::Refused { status, detail, .. })
                    if node_cannot_serve(*status, detail) =>
                {
                    format!("{status}: {detail}")
                }
                _ => return outcome,
            };
            if tries <= 1 {
                return match outcome {
                    Err(OpenBaoError::Unreachable { path, reason, .. }) if self.addrs.len() > 1 => {
                        Err(OpenBaoError::Unreachable {
                            addr: self.addrs(),
                            path,
                            reason: format!("no node answered; the last: {reason}"),
                            unsent: true,
                        })
                    }
                    other => other,
                };
            }
            tries -= 1;
            let next = (i + 1) % self.addrs.len();
            let _ = self
                .current
                .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
            tracing::warn!(
                "OpenBao at {addr} cannot serve ({why}): trying {}",
                self.addr()
            );
        }
    }

    async fn send_to(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Option<Value>, OpenBaoError> {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method.clone(), format!("{addr}/v1/{path}"));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(addr, path, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(addr, path, &e))?;
        tracing::debug!(
            "OpenBao {method} {path}: {status} in {} µs",
            started.elapsed().as_micros()
        );
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad_at(addr, path, &e.to_string()))?
        };
        if status.is_success() {
            return Ok(Some(value));
        }
        let detail = errors_of(&value);
        Err(match status {
            StatusCode::FORBIDDEN => OpenBaoError::Denied {
                addr: addr.to_owned(),
                path: path.to_owned(),
                detail,
            },
            StatusCode::BAD_REQUEST if detail.contains("check-and-set") => OpenBaoError::Conflict {
                addr: addr.to_owned(),
                path: path.to_owned(),
            },
            _ => OpenBaoError::Refused {
                addr: addr.to_owned(),
                path: path.to_owned(),
                status: status.as_u16(),
                detail,
            },
        })
    }

    pub(crate) fn bad(&self, path: &str, reason: &str) -> OpenBaoError {
        bad_at(self.addr(), path, reason)
    }
}

fn unreachable(addr: &str, path: &str, e: &reqwest::Error) -> OpenBaoError {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    if e.is_timeout() {
        reason = format!("no answer in time ({reason})");
    }
    OpenBaoError::Unreachable {
        addr: addr.to_owned(),
        path: path.to_owned(),
        reason,
        unsent: e.is_connect(),
    }
}

/// A node's answer that says another node may serve the call: sealed or
/// standby (503), a standby that would redirect to the active node (307:
/// redirects are not followed, the next configured node is tried),
/// rate-limited (429), a standby that cannot reach the
/// active node (472, 473), or a standby without a leader (500 "... not
/// active ...").
fn node_cannot_serve(status: u16, detail: &str) -> bool {
    matches!(status, 307 | 503 | 429 | 472 | 473)
        || (status == 500 && detail.contains("not active"))
}

fn bad_at(addr: &str, path: &str, reason: &str) -> OpenBaoError {
    OpenBaoError::BadAnswer {
        addr: addr.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The addresses of `addrs` (comma-separated), each checked.
fn checked_addrs(addrs: &str) -> Result<Vec<String>, OpenBaoError> {
    let list: Vec<String> = addrs
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(checked_addr)
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err(OpenBaoError::Settings("OPENBAO_ADDR is empty".into()));
    }
    Ok(list)
}

/// OpenBao's `{"errors": [...]}`, joined.
fn errors_of(value: &Value) -> String {
    match value.get("errors").and_then(Value::as_array) {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no reason given".to_owned(),
    }
}

/// `addr` without a trailing slash, refused unless it is https, or http on
/// loopback: the token travels with every call.
fn checked_addr(addr: &str) -> Result<String, OpenBaoError> {
    let url = reqwest::Url::parse(addr)
        .map_err(|e| OpenBaoError::Settings(format!("OPENBAO_ADDR {addr:?} is not a URL: {e}")))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(OpenBaoError::Settings(format!(
                "OPENBAO_ADDR {addr:?} is plain http to another machine: the token would travel \
                 in clear; use https (and OPENBAO_CA_CERT)"
            )));
        }
        other => {
            return Err(OpenBaoError::Settings(format!(
                "OPENBAO_ADDR {addr:?}: scheme {other:?} is neither http nor https"
            )));
        }
    }
    Ok(addr.trim_end_matches('/').to_owned())
}

fn http_client(
    addr: &str,
    timeouts: Timeouts,
    ca_pem: Option<&[u8]>,
) -> Result<reqwest::Client, OpenBaoError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_nodelay(true)
        .no_proxy()
        // A redirect would take the token wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("s2s-jwt-openbao/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem).map_err(|e| {
            OpenBaoError::Settings(format!("OPENBAO_CA_CERT is not a PEM certificate: {e}"))
        })?;
        builder = builder.tls_certs_only([ca]);
    }
    builder
        .build()
        .map_err(|e| OpenBaoError::Settings(format!("cannot build the client for {addr}: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The token travels with every call: plain http only on loopback.
    #[test]
    fn plain_http_only_on_loopback() {
        assert!(checked_addrs("http://127.0.0.1:8200").is_ok());
        assert_eq!(
            checked_addrs("http://localhost:8200/, http://[::1]:8201").unwrap(),
            vec!["http://localhost:8200", "http://[::1]:8201"]
        );
        assert!(checked_addrs("https://openbao.example:8200").is_ok());
        let err = checked_addrs("http://openbao.example:8200").unwrap_err();
        assert!(err.to_string().contains("in clear"), "{err}");
        let err = checked_addrs("http://127.0.0.1:8200,http://10.0.0.2:8200").unwrap_err();
        assert!(err.to_string().contains("10.0.0.2"), "{err}");
        assert!(checked_addrs("ftp://127.0.0.1").is_err());
        assert!(checked_addrs(" , ").is_err());
        assert!(checked_addrs("not a url").is_err());
    }

    /// Another node is tried only when this one could not serve the call.
    #[test]
    fn which_answers_move_to_the_next_node() {
        for status in [307, 503, 429, 472, 473] {
            assert!(node_cannot_serve(status, ""), "{status}");
        }
        assert!(node_cannot_serve(
            500,
            "local node not active but active cluster node not found"
        ));
        for status in [400, 403, 404, 500] {
            assert!(!node_cannot_serve(status, "internal error"), "{status}");
        }
    }

    /// OpenBao's `errors`, joined; none given is said so.
    #[test]
    fn errors_are_joined() {
        let v = serde_json::json!({ "errors": ["one", "two"] });
        assert_eq!(errors_of(&v), "one; two");
        assert_eq!(errors_of(&serde_json::json!({})), "no reason given");
    }
}
