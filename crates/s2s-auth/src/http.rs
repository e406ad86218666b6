//! HTTP plumbing both servers share: what a refused request looks like.
//!
//! axum's extractors answer bad input with plain-text bodies. A caller of a
//! JSON API deserves JSON, so handlers take `Result<Extractor, Rejection>`
//! and turn the rejection into [`BadInput`], which each crate's error type
//! renders with the status axum chose (400, 413, 415, 422, ...).

use axum::{
    extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    http::StatusCode,
};

/// A request refused before the handler ran, with axum's status and reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BadInput {
    pub status: StatusCode,
    pub message: String,
}

impl BadInput {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

macro_rules! from_rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for BadInput {
            fn from(r: $t) -> Self {
                Self::new(r.status(), r.body_text())
            }
        }
    )*};
}
from_rejection!(BytesRejection, JsonRejection, PathRejection, QueryRejection);

/// `?expired=...`: counts when present and not `0` or `false`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ExpiredQuery {
    pub expired: Option<String>,
}

impl ExpiredQuery {
    pub fn is_expired(&self) -> bool {
        self.expired
            .as_deref()
            .is_some_and(|v| !matches!(v.trim(), "0" | "false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_flag_rule() {
        let q = |v: Option<&str>| {
            ExpiredQuery {
                expired: v.map(String::from),
            }
            .is_expired()
        };
        assert!(!q(None));
        assert!(!q(Some("0")));
        assert!(!q(Some("false")));
        assert!(q(Some("1")));
        assert!(q(Some("123")));
        assert!(q(Some("")));
    }
}

/// The request-id header: set at the edge, logged in every line of the
/// request's span, and forwarded on outbound calls so one call chain reads
/// across the four terminals.
pub const REQUEST_ID: &str = "x-request-id";

/// Short random request ids (8 hex digits): easy to spot in a log.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShortRequestId;

impl tower_http::request_id::MakeRequestId for ShortRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        axum::http::HeaderValue::from_str(&id[..8])
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// An incoming request id is kept only if it is 1-64 characters of
/// `[A-Za-z0-9_-]`: it is repeated in every log line and forwarded on every
/// hop, so it must be short and unable to forge a log line.
fn acceptable_request_id(value: &axum::http::HeaderValue) -> bool {
    (1..=64).contains(&value.len())
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Drops an unacceptable incoming `x-request-id`, so a fresh one is made.
fn sanitize_request_id<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    if req
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !acceptable_request_id(v))
    {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// Wraps a router with request ids and one log span per request.
///
/// An incoming `x-request-id` (from the service that called us) is kept, so
/// serviceb logs under the id servicea chose, if it is short and plain;
/// otherwise a new one is made.
/// Each log line then carries `req{id=.. method=.. path=..}`.
pub fn with_request_tracing(router: axum::Router) -> axum::Router {
    use axum::{extract::MatchedPath, http::Request};
    use tower_http::{
        request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
        trace::{DefaultOnResponse, TraceLayer},
    };
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map_or(req.uri().path(), MatchedPath::as_str);
            tracing::info_span!("req", id = %id, method = %req.method(), path = %path)
        })
        .on_request(|req: &Request<_>, _: &tracing::Span| {
            tracing::info!("--> {} {}", req.method(), req.uri());
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, ShortRequestId))
        .layer(axum::middleware::map_request(
            |req: axum::extract::Request| async move { sanitize_request_id(req) },
        ))
}

/// Serves `router` on `listener` until `handle` is told to shut down.
///
/// Every listener of the workshop goes through here, so each gets the same
/// protections: `TCP_NODELAY` (no Nagle stalls on small answers), and a
/// limit on how long a client may take to send its request headers, after
/// which hyper closes the connection, so a client that trickles headers
/// ("slowloris") cannot hold connections forever. (`axum::serve` offers
/// neither setting.) `tls` turns it into an https listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use axum_server::{accept::NoDelayAcceptor, tls_rustls::RustlsAcceptor};
    let server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    let make_service = router.into_make_service();
    match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
            let mut server = server.acceptor(acceptor);
            limit_headers(server.http_builder(), header_timeout);
            server.serve(make_service).await
        }
        None => {
            let mut server = server.acceptor(NoDelayAcceptor::new());
            limit_headers(server.http_builder(), header_timeout);
            server.serve(make_service).await
        }
    }
}

fn limit_headers(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: std::time::Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
}
