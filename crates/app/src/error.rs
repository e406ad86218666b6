//! Every way a service request can fail, and the one place each becomes a
//! response: JSON with a `message` that says what was wrong and, where there
//! is one, what to do about it. The status is in each variant's doc.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use s2s_auth::{JwtError, http::BadInput, watched::WatchedError};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 (or axum's status): the request could not be read.
    #[error(transparent)]
    BadInput(#[from] BadInput),

    /// 401: no usable `Authorization: Bearer` header.
    #[error("{0}")]
    NoToken(&'static str),

    /// 403: the token was checked and refused; the Node-shaped `error`
    /// (from local verification, or relayed from jwt-factory) says why.
    #[error("invalid token: {}", .0.get("message").and_then(Value::as_str).unwrap_or("refused"))]
    InvalidToken(Value),

    /// 503: a key or certificate file this scenario needs is missing or broken.
    #[error("{what} unavailable: {source}. {hint}")]
    FileUnavailable {
        what: &'static str,
        source: WatchedError,
        hint: &'static str,
    },

    /// 503: jwt-factory has no key pair for the caller.
    #[error("jwt-factory has no key for {0}: create it with `curl localhost:5555/keys/{0}`")]
    FactoryKeyMissing(String),

    /// 502: a dependency could not be reached or answered nonsense.
    #[error("{who} unavailable at {url}: {reason}")]
    Upstream {
        who: String,
        url: String,
        reason: String,
    },

    /// 504: a dependency did not accept the connection, or did not answer,
    /// in time; `phase` says which, `after` is the timeout that fired.
    #[error("{who} {phase} within {}ms ({url})", .after.as_millis())]
    UpstreamTimeout {
        who: String,
        url: String,
        phase: &'static str,
        after: Duration,
    },

    /// 500: signing or key generation failed; logged in full.
    #[error("internal error")]
    Internal(String),
}

impl From<JwtError> for AppError {
    fn from(err: JwtError) -> Self {
        Self::InvalidToken(
            serde_json::to_value(&err).unwrap_or_else(|_| json!({ "message": err.message() })),
        )
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadInput(b) => b.status,
            Self::NoToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidToken(_) => StatusCode::FORBIDDEN,
            Self::FileUnavailable { .. } | Self::FactoryKeyMissing(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body, in the shape the SPEC gives for each case.
    pub fn body(&self) -> Value {
        match self {
            Self::InvalidToken(err) => {
                json!({ "message": "invalid token", "valid": false, "error": err, "claims": {} })
            }
            other => json!({ "message": other.to_string() }),
        }
    }

    fn log(&self) {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "request failed"),
            Self::InvalidToken(_) => tracing::info!("{self}"),
            other => tracing::warn!(status = %other.status(), "{other}"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        // RFC 6750 section 3: tell the client how to authenticate.
        let challenge = match self {
            Self::NoToken(_) => Some("Bearer"),
            Self::InvalidToken(_) => Some(r#"Bearer error="invalid_token""#),
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
