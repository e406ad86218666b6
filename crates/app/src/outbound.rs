//! Outbound calls: to jwt-factory, and from servicea to serviceb/servicec.
//!
//! Every call carries the request id of the request that caused it (so one
//! chain reads across terminals) and is bounded by the client's connect and
//! request timeouts (a dead or silent dependency costs at most that long).
//! Failures become [`AppError::Upstream`] (502) or [`AppError::UpstreamTimeout`] (504).

use std::time::Duration;

use axum::{extract::FromRequestParts, http::request::Parts};
use reqwest::{Client, RequestBuilder, StatusCode, header::HeaderMap};
use s2s_auth::http::REQUEST_ID;
use serde_json::Value;

use crate::error::AppError;

/// The id of the request being served, forwarded on outbound calls.
#[derive(Clone, Debug, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

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
    /// For the whole call: connect, send, answer.
    pub request: Duration,
}

/// Who is being called, for messages and logs.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub who: &'a str,
    pub url: String,
}

/// Builds clients with the service's timeouts. `ca_pem` restricts trust to
/// that CA alone (built-in and system roots are not used).
pub fn client(timeouts: Timeouts, ca_pem: Option<&[u8]>) -> Result<Client, String> {
    let mut builder = Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_nodelay(true)
        // A redirect from a dependency is not followed: the bearer token
        // would go wherever the answer points.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("s2s-jwt-app/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem).map_err(|e| e.to_string())?;
        builder = builder.tls_certs_only([ca]).https_only(true);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Sends `request` and reads a JSON answer. Non-JSON answers are a 502.
pub async fn send_json(
    request: RequestBuilder,
    target: &Target<'_>,
    request_id: &RequestId,
    timeouts: Timeouts,
) -> Result<Answer, AppError> {
    let (status, text) = send(request, target, request_id, timeouts).await?;
    let body = serde_json::from_str(&text).map_err(|_| AppError::Upstream {
        who: target.who.to_owned(),
        url: target.url.clone(),
        reason: format!("answered {status} with a body that is not JSON"),
    })?;
    Ok(Answer { status, body })
}

/// Sends `request`; the status and body text.
pub async fn send(
    request: RequestBuilder,
    target: &Target<'_>,
    request_id: &RequestId,
    timeouts: Timeouts,
) -> Result<(StatusCode, String), AppError> {
    let (status, _, text) = send_raw(request, target, request_id, timeouts).await?;
    Ok((status, text))
}

/// Largest answer read from a dependency: ours are well under 16 KiB; the
/// bound keeps a broken or hostile peer from filling memory.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Sends `request`; the status, headers and body text (at most
/// [`MAX_RESPONSE_BYTES`]).
pub async fn send_raw(
    request: RequestBuilder,
    target: &Target<'_>,
    request_id: &RequestId,
    timeouts: Timeouts,
) -> Result<(StatusCode, HeaderMap, String), AppError> {
    let request = match &request_id.0 {
        Some(id) => request.header(REQUEST_ID, id),
        None => request,
    };
    let map = |e: reqwest::Error| classify(e, target, timeouts);
    let mut response = request.send().await.map_err(map)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(AppError::Upstream {
                who: target.who.to_owned(),
                url: target.url.clone(),
                reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// Names the failure: which timeout fired, refused connection, TLS, ...
fn classify(err: reqwest::Error, target: &Target<'_>, timeouts: Timeouts) -> AppError {
    if err.is_timeout() {
        let (phase, after) = if err.is_connect() {
            ("could not connect", timeouts.connect)
        } else {
            ("did not answer", timeouts.request)
        };
        return AppError::UpstreamTimeout {
            who: target.who.to_owned(),
            url: target.url.clone(),
            phase,
            after,
        };
    }
    let mut reason = error_chain(&err);
    if reason.to_ascii_lowercase().contains("certificate") {
        reason.push_str(
            " (servicea trusts only the CA in CA_CERT_PATH: are the receivers' certificates \
             from the same `app gen-certs` run? If not, run it again and restart them)",
        );
    }
    AppError::Upstream {
        who: target.who.to_owned(),
        url: target.url.clone(),
        reason,
    }
}

/// The whole cause chain of an error on one line: reqwest's own message
/// alone ("error sending request") hides the reason, e.g. an unknown CA.
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
