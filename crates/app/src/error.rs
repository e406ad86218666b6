//! Every way a service request can fail, and the one place each becomes a
//! response: JSON with a `message` that says what was wrong and, where there
//! is one, what to do about it. The status is in each variant's doc.
//! Causes are kept as `#[source]` and logged; internal ones are never sent.

use std::{io, path::PathBuf};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use s2s_auth::{
    JwtError,
    keys::{KeyError, SignError},
    watched::Unavailable,
};
use s2s_web::{
    BadInput,
    outbound::{UpstreamError, error_chain},
    request_tracing::loggable_message,
};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 (or axum's status): the request could not be read.
    #[error(transparent)]
    BadInput(#[from] BadInput),

    /// 401: no usable `Authorization: Bearer` header.
    #[error("{0}")]
    NoToken(&'static str),

    /// 403: the token was checked and refused; the Node-shaped error (from
    /// local verification, or relayed by jwt-factory) says why.
    #[error("invalid token: {}", .0.message())]
    InvalidToken(#[from] JwtError),

    /// 401: the path needs a workload identity (mTLS) and the connection
    /// has none, or one that names no workload; why.
    #[error("{0}")]
    NoIdentity(String),

    /// 403: the caller's verified identity is not allowed on this path by
    /// the receiver's authorization policy.
    #[error("{principal} may not call {path} (allowed: {})", allowed_list(.allowed))]
    NotAllowed {
        principal: String,
        path: String,
        allowed: Vec<String>,
    },

    /// 403: a workshop shortcut that `PRODUCTION` turned off; what to do
    /// instead.
    #[error("{0}")]
    ShortcutOff(&'static str),

    /// 401 `invalid_token`: a certificate-bound token (RFC 8705) that does
    /// not match the connection's client certificate; why.
    #[error("invalid token: {0}")]
    Binding(String),

    /// 503: a key or certificate file this scenario needs is missing or
    /// broken; the message names the file and how to make it.
    #[error(transparent)]
    FileUnavailable(#[from] Unavailable),

    /// 503: the holder of servicea's own key (OpenBao) is unreachable or
    /// refused (servicea's credentials revoked): the message names it.
    #[error("{0}")]
    KeyHolder(String),

    /// 503: jwt-factory has no key pair for this key id.
    #[error("jwt-factory has no key for {0}: create it with `curl {factory}/keys/{0}`", factory = crate::defaults::factory_url())]
    FactoryKeyMissing(String),

    /// 409: the request conflicts with work under way (a key rotation);
    /// the message says until when.
    #[error("{0}")]
    Conflict(String),

    /// 403 (the factory refused servicea's token request with a 4xx:
    /// `invalid_client`, `invalid_target`, ...) or 503 (the factory could
    /// not issue one now): its RFC 6749 error is relayed (scenario 6).
    #[error("jwt-factory refused the token request: {error}: {description}")]
    TokenRefused {
        upstream: StatusCode,
        error: String,
        description: String,
    },

    /// 502 or 504: a dependency could not be reached, answered nonsense,
    /// or ran out of time.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),

    /// 409: the one-at-a-time operation is already running (`gen-keys`).
    #[error("{0}")]
    Busy(&'static str),

    /// 500: signing or key generation failed; logged in full.
    #[error("internal error")]
    Internal(#[from] Internal),
}

/// What went wrong inside the service: kept for the log, never sent.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error("signing failed")]
    Sign(#[from] SignError),
    #[error("key generation failed")]
    Keygen(#[from] KeygenError),
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot start a thread")]
    Spawn(#[source] std::io::Error),
    #[error("cannot set the unusable key pair aside")]
    SetAside(#[source] std::io::Error),
    #[error("the key generation thread ended without an answer")]
    ThreadLost,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadInput(b) => b.status,
            Self::NoToken(_) | Self::NoIdentity(_) | Self::Binding(_) => StatusCode::UNAUTHORIZED,
            Self::NotAllowed { .. } | Self::ShortcutOff(_) => StatusCode::FORBIDDEN,
            Self::InvalidToken(_) => StatusCode::FORBIDDEN,
            Self::FileUnavailable(_) | Self::FactoryKeyMissing(_) | Self::KeyHolder(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Upstream(e) => e.status(),
            Self::Busy(_) => StatusCode::CONFLICT,
            Self::TokenRefused { upstream, .. } if upstream.is_client_error() => {
                StatusCode::FORBIDDEN
            }
            Self::TokenRefused { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body, in the shape the SPEC gives for each case.
    pub fn body(&self) -> Value {
        match self {
            Self::InvalidToken(err) => {
                json!({ "message": "invalid token", "valid": false, "error": err, "claims": {} })
            }
            Self::TokenRefused {
                upstream,
                error,
                description,
            } => json!({
                "message": self.to_string(),
                "factory_status": upstream.as_u16(),
                "error": error,
                "error_description": description,
            }),
            Self::NotAllowed {
                principal,
                path,
                allowed,
            } => json!({
                "message": self.to_string(),
                "error": "forbidden",
                "principal": principal,
                "path": path,
                "allowed_principals": allowed,
            }),
            Self::NoIdentity(why) => json!({ "message": why, "error": "unauthenticated" }),
            Self::Binding(why) => json!({
                "message": "invalid token",
                "valid": false,
                "error": "invalid_token",
                "error_description": why,
            }),
            other => json!({ "message": other.to_string() }),
        }
    }

    fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %error_chain(cause), "request failed");
            }
            Self::InvalidToken(_)
            | Self::Busy(_)
            | Self::Binding(_)
            | Self::NoIdentity(_)
            | Self::ShortcutOff(_)
            | Self::NotAllowed { .. } => tracing::info!("{}", loggable_message(&self.to_string())),
            other => tracing::warn!(
                status = %other.status(),
                "{}",
                loggable_message(&other.to_string())
            ),
        }
    }
}

fn allowed_list(allowed: &[String]) -> String {
    if allowed.is_empty() {
        "nobody: no rule of the policy names this path".to_owned()
    } else {
        allowed.join(", ")
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        // RFC 6750 section 3: tell the client how to authenticate.
        let challenge = match self {
            Self::NoToken(_) => Some("Bearer"),
            Self::InvalidToken(_) | Self::Binding(_) => Some(r#"Bearer error="invalid_token""#),
            _ => None,
        };
        if let Some(c) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        response
    }
}

/// Why a key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error(transparent)]
    Generate(#[from] KeyError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
