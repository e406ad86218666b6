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
/// Each log line then carries `req{id=.. method=.. path=..}`, where `path` is the matched
/// route (`/scenario1-server`, `/keys/{keyId}`), never the raw path, so the
/// span stays short whatever a client sends. The path itself is logged once
/// per request, on the `-->` line, shortened to [`MAX_LOGGED_URI`]
/// characters, escaped, and with token-like query values redacted
/// ([`loggable_uri`]). (It used to be logged in full three times, in the
/// span, the `-->` line and the response line: 300 requests with 65 KB
/// paths wrote 58.6 MB of log.)
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
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("(no route)", MatchedPath::as_str);
            tracing::info_span!("req", id = %id, method = %req.method(), path = %route)
        })
        .on_request(|req: &Request<_>, _: &tracing::Span| {
            tracing::info!("--> {} {}", req.method(), loggable_uri(req.uri()));
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, ShortRequestId))
        // A plain function on the request: no boxed future per request.
        .layer(tower::util::MapRequestLayer::new(
            sanitize_request_id::<axum::body::Body>,
        ))
}

/// Longest error message written to the log, in characters.
pub const MAX_LOGGED_MESSAGE: usize = 1024;

/// A refusal's message as its log line shows it: at most
/// [`MAX_LOGGED_MESSAGE`] characters, escaped by the one rule
/// ([`s2s_auth::untrusted::Untrusted`]). The net
/// under the rule that each value a request chose is shown through
/// [`s2s_auth::untrusted`] where the message is built: if one is missed,
/// it still cannot flood the log or start a line of its own.
pub fn loggable_message(text: &str) -> String {
    s2s_auth::untrusted::Untrusted::at_most(text, MAX_LOGGED_MESSAGE).to_string()
}

/// Longest request path (with its query) written to the log, in characters.
pub const MAX_LOGGED_URI: usize = 128;

/// Query parameters whose values are credentials, whatever they look like.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "id_token",
    "refresh_token",
    "client_assertion",
    "assertion",
    "code",
    "password",
    "secret",
];

/// A request's path and query as they may be logged: values of credential
/// parameters (`access_token=`, `token=`, ...) and anything shaped like a
/// JWT (`xxx.yyy.zzz` of base64url) replaced by `<redacted>`, control and
/// non-ASCII characters escaped, at most [`MAX_LOGGED_URI`] characters
/// (longer ones end with `...(N bytes)`).
pub fn loggable_uri(uri: &axum::http::Uri) -> String {
    let mut out = redact_jwts(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if SECRET_PARAMS.contains(&key.to_ascii_lowercase().as_str()) => {
                    format!("{key}=<redacted>")
                }
                _ => redact_jwts(pair),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    let mut shown = String::new();
    for c in out.chars() {
        let escaped: String = c.escape_default().collect();
        if shown.len() + escaped.len() > MAX_LOGGED_URI {
            shown.push_str(&format!("...({} bytes)", out.len()));
            break;
        }
        shown.push_str(&escaped);
    }
    shown
}

/// Replaces every run of base64url characters and dots that has the shape
/// of a JWS (three non-empty base64url parts, 16 characters or more).
fn redact_jwts(text: &str) -> String {
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let parts: Vec<&str> = run.split('.').collect();
        if parts.len() == 3 && parts.iter().all(|p| !p.is_empty()) && run.len() >= 16 {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_part(c) || c == '.' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(uri: &str) -> String {
        loggable_uri(&uri.parse().unwrap())
    }

    #[test]
    fn token_like_query_values_are_redacted() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZXJ2aWNlYSJ9.c2lnbmF0dXJl";
        assert_eq!(
            log(&format!("/scenario1-server?access_token={jwt}&x=1")),
            "/scenario1-server?access_token=<redacted>&x=1"
        );
        assert_eq!(log("/a?TOKEN=abc"), "/a?TOKEN=<redacted>");
        assert_eq!(log(&format!("/a?t={jwt}")), "/a?t=<redacted>");
        assert_eq!(log(&format!("/verify/{jwt}")), "/verify/<redacted>");
        assert!(!log(&format!("/a?q=x{jwt}")).contains(&jwt[30..]));
        assert_eq!(log("/scenario1?expired=1"), "/scenario1?expired=1");
        assert_eq!(log("/keys/servicea.v2"), "/keys/servicea.v2");
    }

    #[test]
    fn long_paths_are_bounded_and_escaped() {
        let long = format!("/{}", "a".repeat(65_000));
        let shown = log(&long);
        assert!(shown.len() < MAX_LOGGED_URI + 32, "{}", shown.len());
        assert!(shown.ends_with("...(65001 bytes)"), "{shown}");
        assert_eq!(log("/a%0Ab"), "/a%0Ab");
        assert_eq!(log("/x"), "/x");
    }
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
