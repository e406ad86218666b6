//! What every listener checks before a request reaches a route: the `Host`
//! it was sent to, and that its body arrives in time.
//! [`crate::listener_checks`] applies both to every router (with
//! [`crate::cross_site`]'s refusal of cross-site requests), so no service
//! can forget them; the JSON content type is required per route
//! ([`require_json`]), where a body is read.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    body::{Body, Bytes, HttpBody as _},
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;

/// A JSON error answer: `{"<key>": message}`, where the key is the one the
/// service uses for its own errors (`error` on jwt-factory, `message` on
/// the services), so every refusal of a service has one shape.
pub(crate) fn refuse(status: StatusCode, key: &str, message: String) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), message.into());
    (status, Json(serde_json::Value::Object(body))).into_response()
}

/// The names a listener answers to (without port), lowercase.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// `localhost`, `127.0.0.1` and `[::1]`, the configured listen address
    /// and `extra` (`ALLOWED_HOSTS`). An IPv6 address is written in
    /// brackets, as in a `Host` header.
    pub fn new(configured: std::net::IpAddr, extra: &[String]) -> Self {
        let configured = match configured {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(str::to_owned)
            .chain([configured])
            .chain(extra.iter().map(|h| h.trim().to_ascii_lowercase()))
            .filter(|h| !h.is_empty())
            .collect();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        Self { names }
    }

    /// The names, for messages.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `host` (as sent: `name` or `name:port`) is one of the names. The
    /// port is not compared, only checked to be a port: a proxy whose
    /// listener port differs from ours (Envoy on :18080 in front of
    /// serviceb on :3001, an ingress) keeps the client's `Host`, port
    /// included, and DNS rebinding is stopped by the name alone (the
    /// attacker's page sends its own name).
    pub fn allows(&self, host: &str) -> bool {
        let (name, port) = split_host(host);
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
        // The names are lowercase: compared without a lowercase copy.
        port_ok && self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `name[:port]`, `[v6][:port]`.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let (name, rest) = host.split_at(end + 1);
                (name, rest.strip_prefix(':'))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

/// What the `Host` check needs: the names and the service's JSON error key.
#[derive(Clone, Debug)]
pub(crate) struct HostCheck {
    pub(crate) hosts: AllowedHosts,
    pub(crate) error_key: &'static str,
}

/// A shortened, escaped copy of a value from a request, for messages and
/// logs: the one rule, [`s2s_auth::untrusted::Untrusted`], as a `String`.
pub fn bounded(value: &str, max: usize) -> String {
    s2s_auth::untrusted::Untrusted::at_most(value, max).to_string()
}

/// The refusal of a request whose `Host` (or HTTP/2 `:authority`) is not
/// one of the listener's names, 421 Misdirected Request; `None` if it is
/// one. A web page that got its own domain to resolve to 127.0.0.1 (DNS
/// rebinding) sends its own name, so it cannot read our answers. The port
/// is not compared (see [`AllowedHosts::allows`]).
pub(crate) fn host_refusal(check: &HostCheck, req: &Request) -> Option<Response> {
    let sent = match request_host(req.uri(), req.headers()) {
        Some(host) if check.hosts.allows(&host) => return None,
        sent => sent,
    };
    let what = match sent {
        Some(host) => format!("host \"{}\"", bounded(&host, 64)),
        None => "a request without a Host header".to_owned(),
    };
    Some(refuse(
        StatusCode::MISDIRECTED_REQUEST,
        check.error_key,
        format!(
            "{what} is not served here: this listener answers to {} \
             (ALLOWED_HOSTS adds names)",
            check.hosts.names().join(", ")
        ),
    ))
}

/// The name a request was sent to: HTTP/2's `:authority`, or `Host`.
/// A request's parts: `request.uri()`, `request.headers()` (or `parts.uri`,
/// `parts.headers` in an extractor).
/// Borrowed from the request unless `Host` is not UTF-8.
pub(crate) fn request_host<'a>(
    uri: &'a axum::http::Uri,
    headers: &'a axum::http::HeaderMap,
) -> Option<Cow<'a, str>> {
    uri.authority()
        .map(|a| Cow::Borrowed(a.as_str()))
        .or_else(|| {
            headers
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()))
        })
}

/// `host` (`name[:port]`, lowercase) split into its name and its port, if
/// the port is a port.
pub(crate) fn name_and_port(host: &str) -> (&str, Option<Option<u16>>) {
    let (name, port) = split_host(host);
    (name, port.map(|p| p.parse::<u16>().ok()))
}

/// The bounds on a request body.
#[derive(Clone, Debug)]
pub(crate) struct BodyDeadline {
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) error_key: &'static str,
}

/// Reads the whole request body within the body timeout (`BODY_TIMEOUT_MS`),
/// and gives the request back with the body in memory: 408 if it does not
/// arrive in time. (A request without a body is not given to it.)
///
/// Past `max_bytes` it stops reading and hands on the first `max_bytes + 1`
/// bytes, so memory stays bounded and the route's own body limit (axum's
/// `DefaultBodyLimit`, which must not be larger than `max_bytes`) refuses
/// the request in the route's own error shape: a §5.2 `invalid_request` at
/// `/token`, `{"error"}` elsewhere on the factory, `{"message"}` on the
/// services. A route that reads no body never looks at it.
///
/// Written by hand because tower-http's `RequestBodyTimeoutLayer` times each
/// frame, not the whole body: a client sending one byte per interval would
/// never be cut off. Bodies here are small (16 KiB at most), so reading
/// them first costs nothing.
pub(crate) async fn read_body(limits: &BodyDeadline, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let max = limits.max_bytes;
    // While it reads, the connection may be closed for a new one if its
    // body comes the slowest of all ([`crate::connections`]).
    let reading = parts
        .extensions
        .get::<crate::connections::BodyWatch>()
        .map(crate::connections::BodyWatch::reading);
    let read = async move {
        let _reading = reading;
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            })?;
            if bytes.len() + chunk.len() > max {
                let keep = max + 1 - bytes.len();
                bytes.extend_from_slice(&chunk[..keep]);
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err((status, message))) => Err(refuse(status, limits.error_key, message)),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            limits.error_key,
            format!(
                "request body not received within {}ms (BODY_TIMEOUT_MS)",
                limits.timeout.as_millis()
            ),
        )),
    }
}

/// Route middleware for endpoints that read a JSON body (token issuing,
/// verification): a request with a body, or with any `Content-Type`, must
/// say `application/json`; otherwise 415. A plain form or `text/plain`
/// post, which any web page can send without asking (no CORS preflight),
/// is refused before it reaches the handler. A request with neither a body
/// nor a content type passes (`/issueToken`'s claims are optional).
/// The state is the service's JSON error key (`error` on jwt-factory):
/// `axum::middleware::from_fn_with_state("error", require_json)`.
pub async fn require_json(
    State(error_key): State<&'static str>,
    req: Request,
    next: Next,
) -> Response {
    let content_type = req.headers().get(header::CONTENT_TYPE);
    let has_body = req.body().size_hint().exact() != Some(0);
    if content_type.is_none() && !has_body {
        return next.run(req).await;
    }
    let is_json = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        return next.run(req).await;
    }
    let sent = content_type.map_or_else(
        || "no Content-Type".to_owned(),
        |v| {
            format!(
                "Content-Type \"{}\"",
                bounded(&String::from_utf8_lossy(v.as_bytes()), 64)
            )
        },
    );
    refuse(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        error_key,
        format!("expected Content-Type: application/json, got {sent}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_and_without_port() {
        let h = AllowedHosts::new("127.0.0.1".parse().unwrap(), &["Example.test".into()]);
        for ok in [
            "localhost",
            "localhost:3001",
            "LOCALHOST:3001",
            "127.0.0.1:3001",
            "[::1]:3001",
            "[::1]",
            "example.test:3001",
            // Another port: a proxy in front keeps the client's Host.
            "localhost:18080",
            "example.test:443",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:3001",
            "localhost:",
            "localhost:x",
            "localhost.evil:3001",
            "[::2]:3001",
            "",
            "127.0.0.1:99999",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn bounded_escapes_and_shortens() {
        assert_eq!(bounded("a\nb", 10), "a\\nb");
        assert_eq!(bounded(&"x".repeat(100), 3), "xxx...");
    }
}
