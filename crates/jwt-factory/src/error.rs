//! Every way a factory request can fail, and the one place each becomes a
//! response: `{"error": "<what was wrong>"}` with the status in the variant's
//! doc. Internal details are logged, never sent.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::{io, path::PathBuf};

use s2s_auth::{
    KeyId,
    jwk::JwkError,
    key_id::InvalidKeyId,
    keys::{KeyError, SignError},
};
use s2s_web::{BadInput, outbound::error_chain};
use serde_json::json;

/// The key of the factory's JSON errors: `{"error": "..."}`.
pub(crate) const ERROR_KEY: &str = "error";

#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// 400/404/413/415...: the request could not be read (axum's status).
    #[error(transparent)]
    BadInput(#[from] BadInput),
    /// 400: the key id is not 1-64 characters of `[A-Za-z0-9_-]`.
    #[error(transparent)]
    InvalidKeyId(#[from] InvalidKeyId),
    /// 404: no key pair for this id.
    #[error("key not found")]
    KeyNotFound(KeyId),
    /// 409: a bound on keys was reached (see `keystore::MAX_KEY_IDS`,
    /// `MAX_RETIRING`), or a next key is already pending.
    #[error("{0}")]
    Conflict(String),
    /// 503: the keys' holder (OpenBao) is unreachable or refused: the
    /// message names it and its address.
    #[error("{0}")]
    Unavailable(String),
    /// 500: key generation, signing or a file write failed; logged in
    /// full, with its cause, never sent.
    #[error("internal error")]
    Internal(#[from] Internal),
}

/// What went wrong inside the factory: the cause is kept (`#[source]`) for
/// the log; the caller only hears "internal error".
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error("key generation failed")]
    KeyGen(#[from] KeyError),
    #[error("signing failed")]
    Sign(#[from] SignError),
    #[error("cannot describe the key as a JWK")]
    Jwk(#[from] JwkError),
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the key generation queue is closed")]
    Closed(#[from] tokio::sync::AcquireError),
    #[error("dump to {dir} failed")]
    Dump {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<crate::keystore::StoreError> for FactoryError {
    fn from(e: crate::keystore::StoreError) -> Self {
        match e {
            crate::keystore::StoreError::Limit(m) | crate::keystore::StoreError::Pending(m) => {
                Self::Conflict(m)
            }
            crate::keystore::StoreError::NotFound(id) => Self::KeyNotFound(id),
            crate::keystore::StoreError::Jwk(e) => Self::Internal(e.into()),
        }
    }
}

impl FactoryError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadInput(b) => b.status,
            Self::InvalidKeyId(_) => StatusCode::BAD_REQUEST,
            Self::KeyNotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the caller.
    pub fn message(&self) -> String {
        match self {
            Self::KeyNotFound(id) => {
                format!("key not found: {id} (create it with GET or POST /keys/{id})")
            }
            other => other.to_string(),
        }
    }

    fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %error_chain(cause), "request failed");
            }
            Self::Unavailable(why) => tracing::warn!("answered 503: {why}"),
            other => tracing::info!(
                status = %other.status(),
                "refused: {}",
                s2s_web::request_tracing::loggable_message(&other.message())
            ),
        }
    }
}

impl IntoResponse for FactoryError {
    fn into_response(self) -> Response {
        self.log();
        (self.status(), Json(json!({ "error": self.message() }))).into_response()
    }
}

/// The same errors on `/verify`, in its shape: `{"valid": false, "error": ..}`.
#[derive(Debug)]
pub struct VerifyFailure(pub FactoryError);

impl<E: Into<FactoryError>> From<E> for VerifyFailure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for VerifyFailure {
    fn into_response(self) -> Response {
        self.0.log();
        let message = match &self.0 {
            // The SPEC's exact wording for this case.
            FactoryError::KeyNotFound(_) => "key not found".to_owned(),
            other => other.message(),
        };
        (
            self.0.status(),
            Json(json!({ "valid": false, "error": message })),
        )
            .into_response()
    }
}
