//! Request ids and one log span per request, so one call chain reads across
//! the four terminals of a workshop.
//!
//! An id is set at the edge (or kept, if the caller sent a plain one), shown
//! in every log line of the request's span, returned to the caller, and
//! forwarded on outbound calls ([`crate::outbound`]).

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

/// The id of the request being served, forwarded on outbound calls.
#[derive(Clone, Debug, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}
