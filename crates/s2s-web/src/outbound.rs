//! Outbound calls: to jwt-factory, and from servicea to serviceb/servicec.
//!
//! Every call carries the request id of the request that caused it (so one
//! chain reads across terminals) and is bounded. A chain of calls made for
//! one purpose (servicea's "leg": a token, then the call) shares one
//! [`Deadline`]: each call gets what is left of it, so there is exactly one
//! timer per call and the error names the step that ran out of time. (Two
//! timers of the same length, one per call and one per leg, used to race,
//! and the answer then depended on which fired first.)
//!
//! Failures are an [`UpstreamError`]: 502 (unreachable, not the workload
//! meant, or an answer that makes no sense) or 504 (out of time), with a
//! message that says which.
//!
//! A TLS client for one peer ([`pinned_client`]) accepts that peer's
//! workload certificate alone ([`crate::peer_pin`]); every other setting
//! is [`client`]'s.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::{Client, RequestBuilder, header::HeaderMap};
use serde_json::Value;

use crate::{
    peer_pin::{self, PeerMismatch, PinError},
    request_tracing::{REQUEST_ID, RequestId},
};

/// An answer from a dependency: its status and its JSON body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// The bounds of every outbound call (`CONNECT_TIMEOUT_MS`, `REQUEST_TIMEOUT_MS`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To open the connection, TLS handshake included.
    pub connect: Duration,
    /// For a whole call, or a whole chain of calls made for one purpose.
    pub request: Duration,
    /// How long a pooled connection may stay idle before the client drops
    /// it: below the servers' idle timeout (`IDLE_TIMEOUT_MS`; the services
    /// use half of their own), so a client rarely reuses a connection the
    /// server is closing. When it does anyway, [`send`] retries a `GET` once.
    pub pool_idle: Duration,
}

/// The moment a call, or a chain of calls, must be done by.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    /// The whole budget, for messages ("within 300ms").
    budget: Duration,
    connect: Duration,
}

impl Deadline {
    /// `REQUEST_TIMEOUT_MS` from now.
    pub fn start(timeouts: Timeouts) -> Self {
        Self {
            at: Instant::now() + timeouts.request,
            budget: timeouts.request,
            connect: timeouts.connect,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Who is being called, for messages and logs.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub who: &'a str,
    pub url: String,
}

/// Why a dependency gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// 502: refused, reset, TLS failure (an untrusted certificate, ...).
    /// `hint`: what the caller knows about who should be listening there
    /// (empty, or `" (...)"`), see [`UpstreamError::with_hint`].
    #[error("{who} unavailable at {url}: {}{hint}", describe(.source))]
    Unreachable {
        who: String,
        url: String,
        #[source]
        source: reqwest::Error,
        hint: String,
    },
    /// 502: the TLS handshake showed another workload than the one meant
    /// (its certificate names another SPIFFE ID): nothing was sent.
    #[error(
        "{who} at {url} is not the workload it should be: {mismatch} \
         (the handshake was refused and nothing was sent: another workload on this port, \
         or a server certificate that is not its own workload certificate from gen-certs?)"
    )]
    WrongPeer {
        who: String,
        url: String,
        mismatch: PeerMismatch,
    },
    /// 502: it answered, but not with what the protocol promises.
    #[error("{who} unavailable at {url}: {reason}")]
    BadAnswer {
        who: String,
        url: String,
        reason: String,
    },
    /// 504: it did not accept the connection, or did not answer, in time;
    /// `phase` says which, `after` is the budget that ran out.
    #[error("{who} {phase} within {}ms ({url})", .after.as_millis())]
    Timeout {
        who: String,
        url: String,
        phase: &'static str,
        after: Duration,
    },
}

impl UpstreamError {
    /// A connection that could not be opened, with `hint` (which process
    /// should be listening there, and the command that starts it) added to
    /// its message; any other error as it is.
    pub fn with_hint(mut self, hint: &str) -> Self {
        if let Self::Unreachable {
            hint: h, source, ..
        } = &mut self
            && source.is_connect()
        {
            *h = format!(" ({hint})");
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unreachable { .. } | Self::WrongPeer { .. } | Self::BadAnswer { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// An answer that breaks the protocol: `reason` says how.
    pub fn bad_answer(target: &Target<'_>, reason: impl Into<String>) -> Self {
        Self::BadAnswer {
            who: target.who.to_owned(),
            url: target.url.clone(),
            reason: reason.into(),
        }
    }

    /// An answer with a status the caller has no use for.
    pub fn unexpected(target: &Target<'_>, status: StatusCode, body: &str) -> Self {
        let body: String = body.chars().take(200).collect();
        Self::bad_answer(target, format!("unexpected answer {status}: {body}"))
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not a usable CA certificate: {0}")]
    BadCa(#[source] reqwest::Error),
    #[error("cannot build the http client: {0}")]
    Build(#[source] reqwest::Error),
    #[error(transparent)]
    Tls(#[from] PinError),
}

/// A client with the service's timeouts, pooled keep-alive connections and
/// no redirects. `ca_pem` restricts trust to that CA alone (built-in and
/// system roots are not used).
pub fn client(timeouts: Timeouts, ca_pem: Option<&[u8]>) -> Result<Client, ClientError> {
    let mut builder = builder(timeouts);
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem).map_err(ClientError::BadCa)?;
        builder = builder.tls_certs_only([ca]).https_only(true);
    }
    builder.build().map_err(ClientError::Build)
}

/// A plain-http client whose every request goes through the HTTP proxy
/// `proxy` (a mesh sidecar: the URL names the service, the sidecar finds
/// it and adds mTLS), or straight out with `None`. The machine's proxy
/// variables (`HTTP_PROXY`...) are not read: a call into the mesh goes
/// where the settings say.
pub fn proxied_client(timeouts: Timeouts, proxy: Option<&str>) -> Result<Client, ClientError> {
    let mut builder = builder(timeouts).no_proxy();
    if let Some(proxy) = proxy {
        builder = builder.proxy(reqwest::Proxy::http(proxy).map_err(ClientError::Build)?);
    }
    builder.build().map_err(ClientError::Build)
}

/// A client for one peer over TLS, with `tls` as its whole TLS
/// configuration: [`peer_pin::PeerTls::config_for`] makes one that trusts
/// our CA alone and accepts only that peer's workload certificate (and,
/// for mTLS, presents ours). https only; every other setting as [`client`].
pub fn pinned_client(timeouts: Timeouts, tls: rustls::ClientConfig) -> Result<Client, ClientError> {
    builder(timeouts)
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .build()
        .map_err(ClientError::Build)
}

fn builder(timeouts: Timeouts) -> reqwest::ClientBuilder {
    Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_nodelay(true)
        // A redirect from a dependency is not followed: the bearer token
        // would go wherever the answer points.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(timeouts.pool_idle)
        // `localhost` (every endpoint of the workshop) is resolved here, not
        // by getaddrinfo on tokio's blocking pool: when that pool was busy
        // (a flood of `gen-keys`), new connections waited for it and healthy
        // calls failed with "could not connect". Other names still go
        // through the system resolver. (Port 0: the URL's port is used.)
        .resolve_to_addrs(
            "localhost",
            &[
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            ],
        )
        .user_agent(concat!("s2s-jwt/", env!("CARGO_PKG_VERSION")))
}

/// Largest answer read from a dependency: ours are well under 16 KiB; the
/// bound keeps a broken or hostile peer from filling memory.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Sends `request` and reads a JSON answer (see [`send`]). Non-JSON
/// answers are a 502.
pub async fn send_json(
    request: RequestBuilder,
    target: &Target<'_>,
    request_id: &RequestId,
    deadline: Deadline,
    repeat: Repeat,
) -> Result<Answer, UpstreamError> {
    let (status, _, text) = send(request, target, request_id, deadline, repeat).await?;
    let body = serde_json::from_str(&text).map_err(|_| {
        UpstreamError::bad_answer(
            target,
            format!("answered {status} with a body that is not JSON"),
        )
    })?;
    Ok(Answer { status, body })
}

/// When a request may be sent again, once, after the pooled connection it
/// went out on was closed under it (the server's idle cut raced our reuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Only a safe method (GET): nothing happens on the server.
    IfSafe,
    /// Always: a POST that is idempotent by what it does, though not by its
    /// method: jwt-factory's `/verify` (it only checks a token) and
    /// `/issueToken` (a second token is as good as the first). Never for
    /// `/token`: its assertion's `jti` is single-use, so a second copy
    /// would be refused as a replay.
    Always,
}

/// Sends `request` with what is left of `deadline`; the status, headers
/// and body text (at most [`MAX_RESPONSE_BYTES`]). `repeat` says whether
/// it may be sent again once on a connection closed under it.
pub async fn send(
    request: RequestBuilder,
    target: &Target<'_>,
    request_id: &RequestId,
    deadline: Deadline,
    repeat: Repeat,
) -> Result<(StatusCode, HeaderMap, String), UpstreamError> {
    let remaining = deadline.remaining();
    let request = match &request_id.0 {
        Some(id) => request.header(REQUEST_ID, id),
        None => request,
    };
    let map = |e: reqwest::Error| classify(e, target, deadline);
    // (With no time left the call is not made: `execute` says so.)
    let (client, request) = request
        .timeout(remaining.max(Duration::from_millis(1)))
        .build_split();
    let mut request = request.map_err(map)?;
    // The console's trace, when this request is traced (nothing otherwise).
    let Some(hop) = crate::trace::hop_started(target.who, &mut request) else {
        return execute(&client, request, target, deadline, repeat).await;
    };
    let answer = execute(&client, request, target, deadline, repeat).await;
    match &answer {
        Ok((status, headers, _)) => hop.finish(Ok((status.as_u16(), headers))),
        Err(err) => hop.finish(Err(err.to_string())),
    }
    answer
}

/// [`send`]'s call itself.
async fn execute(
    client: &Client,
    request: reqwest::Request,
    target: &Target<'_>,
    deadline: Deadline,
    repeat: Repeat,
) -> Result<(StatusCode, HeaderMap, String), UpstreamError> {
    if deadline.remaining().is_zero() {
        return Err(timeout(
            target,
            "was not called: no time left",
            deadline.budget,
        ));
    }
    let map = |e: reqwest::Error| classify(e, target, deadline);
    // A safe request (GET), or one the caller says is repeatable, may be
    // sent again once when the pooled connection it went out on was closed
    // under it (the server's idle timeout raced our reuse).
    let again = if repeat == Repeat::Always || request.method().is_safe() {
        request.try_clone()
    } else {
        None
    };
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(err) => match again {
            Some(mut again) if closed_under_us(&err) => {
                tracing::info!(
                    "{} closed a reused connection before answering ({}); sending the request again once",
                    target.who,
                    error_chain(&err)
                );
                let remaining = deadline.remaining();
                if remaining.is_zero() {
                    return Err(timeout(target, "did not answer", deadline.budget));
                }
                *again.timeout_mut() = Some(remaining);
                client.execute(again).await.map_err(map)?
            }
            _ => return Err(map(err)),
        },
    };
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::bad_answer(
                target,
                format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

fn timeout(target: &Target<'_>, phase: &'static str, after: Duration) -> UpstreamError {
    UpstreamError::Timeout {
        who: target.who.to_owned(),
        url: target.url.clone(),
        phase,
        after,
    }
}

/// The connection was closed before any answer came ("connection closed
/// before message completed"): what a client sees when it reuses a pooled
/// connection the server has just closed. Never a timeout or a failed
/// connect, which a retry would only prolong.
fn closed_under_us(err: &reqwest::Error) -> bool {
    if err.is_timeout() || err.is_connect() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message();
        }
        source = cause.source();
    }
    false
}

/// Names the failure: which timeout fired, refused connection, TLS, ...
fn classify(err: reqwest::Error, target: &Target<'_>, deadline: Deadline) -> UpstreamError {
    if err.is_timeout() {
        return if err.is_connect() {
            timeout(target, "could not connect", deadline.connect)
        } else {
            timeout(target, "did not answer", deadline.budget)
        };
    }
    if let Some(mismatch) = peer_pin::mismatch_in(&err) {
        return UpstreamError::WrongPeer {
            who: target.who.to_owned(),
            url: target.url.clone(),
            mismatch,
        };
    }
    UpstreamError::Unreachable {
        who: target.who.to_owned(),
        url: target.url.clone(),
        source: err,
        hint: String::new(),
    }
}

/// The whole cause chain on one line, with a hint for certificate errors:
/// reqwest's own message alone ("error sending request") hides the reason.
fn describe(err: &reqwest::Error) -> String {
    let mut reason = error_chain(err);
    if reason.contains("CertificateRequired") {
        reason.push_str(
            " (the server asks for a client certificate, MTLS_MODE=strict, and this call \
             presents none: only scenarios 7-8 present servicea's workload certificate)",
        );
    } else if reason.to_ascii_lowercase().contains("certificate") {
        reason.push_str(
            " (servicea trusts only the CA in CA_CERT_PATH: are the receivers' certificates \
             from the same `app gen-certs` run? If not, run it again and restart them)",
        );
    }
    reason
}

/// The whole cause chain of an error on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}
