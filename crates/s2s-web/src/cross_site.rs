//! Refusing state-changing requests that a browser sends on behalf of
//! another site (Fetch Metadata and `Origin`), on every listener.
//!
//! Why: the workshop's key management has no authentication (the demo's
//! simplification), and a web page needs no CORS preflight for an `<img>`
//! (`GET /keys/servicea` replaces servicea's key ring) or an auto-submitted
//! form (`POST /keys/servicea/rotate?emergency=1` withdraws its key). The
//! `Host` check does not help: the browser sends those to `localhost`.
//! What does: the browser says where a request comes from, and a page
//! cannot change it.
//!
//! The rule (the one of Go's `net/http.CrossOriginProtection`):
//! - `Sec-Fetch-Site`, when present, decides: `same-origin` (this service's
//!   own page) and `none` (typed by the user, a bookmark) pass; `cross-site`,
//!   `same-site` and anything else are refused. Every current browser sends
//!   it.
//! - Without it (an older browser), `Origin`, when present, must be this
//!   service's own: the same name and port as the `Host` the request was
//!   sent to (which the `Host` check has already limited to the listener's
//!   names). `Origin: null` (a sandboxed page, a redirect) is foreign. The
//!   port is compared with the `Host`'s, not the listener's, so a proxy in
//!   front keeps working; the scheme is not compared, as a port serves one.
//! - A request with neither header (curl, the services' own clients) passes
//!   unchanged: only browsers need protecting from pages they visit.
//!
//! Which requests: [`site_refusal`], which [`crate::listener_checks`] applies to
//! every router, refuses every request whose method is not GET, HEAD or
//! OPTIONS. A GET that changes state (the factory's `GET /keys/{id}`) takes
//! the [`SameSiteOnly`] extractor, which applies the same verdict; the
//! handler cannot run without it.

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
    response::Response,
};
use s2s_auth::untrusted::untrusted;

use crate::guard::{refuse, request_host};

/// What [`site_refusal`] needs: the scheme of the listener (for a
/// `Host` without a port) and the service's JSON error key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SiteCheck {
    pub(crate) tls: bool,
    pub(crate) error_key: &'static str,
}

/// The verdict on one request, left in its extensions for [`SameSiteOnly`].
#[derive(Clone, Debug)]
struct SiteVerdict {
    /// Why a browser's request from another site is refused; `None`: it
    /// is not one.
    refusal: Option<String>,
    error_key: &'static str,
}

/// GET, HEAD and OPTIONS read; every other method may change state.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The refusal (403, JSON) of a request with an unsafe method that a
/// browser sent on behalf of another site (see the module's rule), made
/// before its body is read; `None` otherwise, with the verdict left in the
/// request for [`SameSiteOnly`]. A request with neither `Sec-Fetch-Site`
/// nor `Origin` (curl, the services' own clients) passes without a verdict
/// and without a copy of anything: [`SameSiteOnly`] would find it is not a
/// browser's either.
pub(crate) fn site_refusal(check: SiteCheck, req: &mut Request) -> Option<Response> {
    let headers = req.headers();
    if !headers.contains_key("sec-fetch-site") && !headers.contains_key(header::ORIGIN) {
        return None;
    }
    let what = format!("{} {}", req.method(), untrusted(req.uri().path()));
    let host = request_host(req.uri(), req.headers());
    let refusal = cross_site(req.headers(), host.as_deref(), check.tls, &what);
    if let Some(message) = refusal.as_ref().filter(|_| !is_safe(req.method())) {
        tracing::info!("refused a cross-site request: {message}");
        return Some(refuse(
            StatusCode::FORBIDDEN,
            check.error_key,
            message.clone(),
        ));
    }
    req.extensions_mut().insert(SiteVerdict {
        refusal,
        error_key: check.error_key,
    });
    None
}

/// An extractor for a GET (or any route) that changes state: it refuses
/// (403, JSON) a request a browser sent on behalf of another site, as
/// [`site_refusal`] does for POST. Put it first among the handler's
/// arguments.
///
/// Outside [`crate::serve`] (a router called directly, in a test) the
/// verdict is made here, for a plain-http listener answering `{"error"}`.
#[derive(Debug, Clone, Copy)]
pub struct SameSiteOnly;

impl<S: Send + Sync> FromRequestParts<S> for SameSiteOnly {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let verdict = match parts.extensions.get::<SiteVerdict>() {
            Some(verdict) => verdict.clone(),
            None => {
                let what = format!("{} {}", parts.method, untrusted(parts.uri.path()));
                let host = request_host(&parts.uri, &parts.headers);
                SiteVerdict {
                    refusal: cross_site(&parts.headers, host.as_deref(), false, &what),
                    error_key: "error",
                }
            }
        };
        match verdict.refusal {
            None => Ok(Self),
            Some(message) => {
                tracing::info!("refused a cross-site request: {message}");
                Err(refuse(StatusCode::FORBIDDEN, verdict.error_key, message))
            }
        }
    }
}

/// Why the request, `what` (method and path, for the message), is a
/// browser's request from another site; `None` if it is not one. `host`:
/// the `Host` it was sent to; `tls`: the listener's scheme.
fn cross_site(headers: &HeaderMap, host: Option<&str>, tls: bool, what: &str) -> Option<String> {
    const NOT_CURL: &str = "curl and other clients that are not browsers send no such header \
                            and are not affected";
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = String::from_utf8_lossy(site.as_bytes());
        if matches!(&*site, "same-origin" | "none") {
            return None;
        }
        return Some(format!(
            "refused: {what} changes state, and the browser says another site sent it \
             (Sec-Fetch-Site: {}). Only this service's own pages (same-origin) or a request the \
             user typed (none) may; {NOT_CURL}",
            untrusted(&site)
        ));
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
    let scheme = if tls { "https" } else { "http" };
    let host = host.unwrap_or_default().to_ascii_lowercase();
    if same_origin(&origin, &host, tls) {
        return None;
    }
    Some(format!(
        "refused: {what} changes state, and a page of another origin sent it (Origin: {}; \
         this service is {scheme}://{}). Only this service's own pages may; {NOT_CURL}",
        untrusted(&origin),
        untrusted(&host)
    ))
}

/// `origin` (`scheme://name[:port]`, lowercase) is the origin of `host`
/// (`name[:port]`, lowercase, as sent): the same name and port. A port
/// left out is the scheme's default (the listener's for `host`).
fn same_origin(origin: &str, host: &str, tls: bool) -> bool {
    let default_port = |scheme: &str| match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // `null`, or not an origin
    };
    let Some((origin_name, origin_port)) = name_port(authority, default_port(scheme)) else {
        return false;
    };
    let Some((host_name, host_port)) = name_port(host, Some(if tls { 443 } else { 80 })) else {
        return false;
    };
    !origin_name.is_empty() && origin_name == host_name && origin_port == host_port
}

/// `name[:port]` as its name and port (`default` when left out); `None`
/// when it is not one (a path, a bad port).
fn name_port(authority: &str, default: Option<u16>) -> Option<(&str, u16)> {
    if authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (name, port) = crate::guard::name_and_port(authority);
    match port {
        None => Some((name, default?)),
        Some(port) => Some((name, port?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        for site in ["same-origin", "none"] {
            let h = headers(&[("sec-fetch-site", site)]);
            assert_eq!(
                cross_site(&h, Some("localhost:5555"), false, "POST /x"),
                None
            );
        }
        for site in ["cross-site", "same-site", "bogus"] {
            let h = headers(&[("sec-fetch-site", site)]);
            let why = cross_site(&h, Some("localhost:5555"), false, "POST /x").unwrap();
            assert!(why.contains("Sec-Fetch-Site"), "{why}");
        }
    }

    #[test]
    fn origin_must_be_the_hosts_own() {
        let own = [
            ("http://localhost:5555", "localhost:5555", false),
            ("http://LOCALHOST:5555", "localhost:5555", false),
            ("http://localhost", "localhost", false),
            ("http://localhost:80", "localhost", false),
            ("https://localhost", "localhost:443", true),
            ("https://localhost:18080", "localhost:18080", false),
            ("http://[::1]:3001", "[::1]:3001", false),
        ];
        for (origin, host, tls) in own {
            assert!(
                same_origin(&origin.to_ascii_lowercase(), host, tls),
                "{origin} {host}"
            );
        }
        let foreign = [
            ("null", "localhost:5555"),
            ("https://evil.example", "localhost:5555"),
            ("http://localhost:5556", "localhost:5555"),
            ("http://localhost", "localhost:5555"),
            ("http://localhost:5555/path", "localhost:5555"),
            ("http://user@localhost:5555", "localhost:5555"),
            ("http://localhost:99999", "localhost:5555"),
            ("ftp://localhost:5555", "localhost"),
            ("http://:5555", ":5555"),
            ("localhost:5555", "localhost:5555"),
        ];
        for (origin, host) in foreign {
            assert!(!same_origin(origin, host, false), "{origin} {host}");
        }
    }

    #[test]
    fn no_header_passes_and_the_message_says_why() {
        assert_eq!(cross_site(&HeaderMap::new(), None, false, "POST /x"), None);
        let h = headers(&[("origin", "https://evil.example")]);
        let why = cross_site(&h, Some("localhost:5555"), false, "POST /dump").unwrap();
        assert!(why.contains("Origin: https://evil.example"), "{why}");
        assert!(why.contains("http://localhost:5555"), "{why}");
        assert!(why.contains("POST /dump"), "{why}");
    }
}
