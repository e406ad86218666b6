//! What a refused request looks like before a handler runs.
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
