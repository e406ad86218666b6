//! OAuth 2.0 at the factory: a token endpoint that authenticates its
//! callers (scenario 6).
//!
//! | request | standard | module |
//! | --- | --- | --- |
//! | `POST /token` | client credentials grant (RFC 6749 §4.4), client authentication `private_key_jwt` (RFC 7523 §2.2), JWT access tokens (RFC 9068) | [`token`] |
//! | `POST /introspect` | token introspection (RFC 7662), same client authentication | [`introspect`] |
//! | `GET /.well-known/oauth-authorization-server` | authorization server metadata (RFC 8414) | [`metadata`] |
//!
//! A client proves who it is with a short-lived JWT it signs with its own
//! private key ([`assertion`]); the factory checks it with the public key
//! registered for that client ([`clients`]). No secret crosses the wire,
//! and the private key never leaves the client. Refusals are RFC 6749 §5.2
//! JSON ([`OAuthError`]), never a 500 and never a token.

pub mod assertion;
pub mod clients;
pub mod introspect;
pub mod jti;
pub mod metadata;
pub mod token;

use std::collections::BTreeMap;

use axum::{
    Json,
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use s2s_auth::{SigningAlgorithm, untrusted, watched::WatchedFile};
use s2s_web::outbound::{self, Timeouts};
use serde_json::json;
use std::time::Duration;

use crate::config::Config;
pub use clients::Registry;
pub use jti::{JtiCache, JtiLimits};

/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `typ` of the access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = s2s_auth::verify::TYP_ACCESS_TOKEN;

/// What the OAuth endpoints share.
#[derive(Debug)]
pub struct Oauth {
    /// `CLIENTS_FILE`, parsed once and reloaded when it changes.
    pub clients: WatchedFile<Registry>,
    /// Assertion `jti`s already used, so an assertion works once (until
    /// its `exp` + LEEWAY_SECS), bounded per client.
    pub jtis: JtiCache,
    /// Fetches clients' JWK Sets (`jwks_uri`): bounded, no redirects.
    /// `None` if it could not be built (logged at start): such clients
    /// then cannot authenticate.
    pub http: Option<reqwest::Client>,
    pub timeouts: Timeouts,
}

impl Oauth {
    pub fn new(config: &Config) -> Self {
        let alg = config.algorithm;
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(3),
            // Below the clients' servers' idle cut (IDLE_TIMEOUT_MS, 60 s
            // by default), as the services' own clients do.
            pool_idle: config.listener.pool_idle(),
        };
        let http = outbound::client(timeouts, None)
            .inspect_err(|e| tracing::error!("no http client for clients' JWK Sets: {e}"))
            .ok();
        Self {
            clients: WatchedFile::new(
                &config.clients_file,
                "client registry",
                "set CLIENTS_FILE to the client registry (committed: env/clients.json)",
                move |text| Registry::parse(text, alg),
            ),
            jtis: JtiCache::new(jti_limits(config), config.leeway_secs),
            http,
            timeouts,
        }
    }
}

/// `JTI_CACHE_PER_CLIENT` and `JTI_CACHE_TOTAL` (default: three times the
/// first, so the three clients of `env/clients.json` each get a full share).
fn jti_limits(config: &Config) -> JtiLimits {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let per_client = size(config.jti_cache_per_client);
    JtiLimits {
        per_client,
        total: config
            .jti_cache_total
            .map_or(per_client.saturating_mul(3), size),
    }
}

/// An RFC 6749 §5.2 error answer: `{"error", "error_description"}`, with
/// `Cache-Control: no-store`; a 401 also says `WWW-Authenticate`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    /// 400: a parameter is missing, repeated or malformed.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// 401: client authentication failed (unknown client, no or a bad assertion).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }

    /// 400: an audience the client may not ask for (RFC 8707 §2).
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }

    /// 400: a grant type other than `client_credentials`.
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    /// 503: the factory cannot serve this now (no signing key, no registry).
    pub fn unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        tracing::info!(status = %self.status, "refused: {}: {}", self.code, self.description);
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="jwt-factory", error="invalid_client""#),
            );
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A form body's parameters, each given once.
#[derive(Debug)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// The body as `application/x-www-form-urlencoded` (RFC 6749 §4.4.2,
    /// Appendix B). A parameter given twice is refused (§3.2: parameters
    /// "MUST NOT be included more than once"), so two `audience`s cannot
    /// be read as either one.
    pub fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Self, OAuthError> {
        let body = body.map_err(|r| {
            let mut e = OAuthError::invalid_request(format!(
                "cannot read the body: {}",
                untrusted(&r.body_text())
            ));
            // 413 for a body over the limit: the status axum chose.
            e.status = r.status();
            e
        })?;
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be a form: Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|e| {
            OAuthError::invalid_request(format!(
                "the form cannot be read: {}",
                untrusted(&e.to_string())
            ))
        })?;
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {:?} given more than once",
                    untrusted(&name)
                )));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The algorithms the factory accepts on assertions: the pinned one.
pub fn assertion_algorithms(alg: SigningAlgorithm) -> Vec<&'static str> {
    vec![alg.name()]
}

/// `/issueToken` and `/verify` when `ISSUE_TOKEN_SHORTCUT=false`.
pub async fn shortcut_off() -> impl IntoResponse {
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": "the /issueToken and /verify shortcut is off (ISSUE_TOKEN_SHORTCUT=false): \
                      get a token from POST /token (client credentials, private_key_jwt; \
                      see /.well-known/oauth-authorization-server)"
        })),
    )
}
