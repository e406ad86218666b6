//! One module per group of endpoints; [`key_id`] is the extractor they share.

pub mod keys;
pub mod tokens;
pub mod verify;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use s2s_auth::KeyId;
use s2s_web::BadInput;

use crate::error::FactoryError;

/// The `{keyId}` path segment, validated before a handler sees it.
#[derive(Debug)]
pub struct KeyIdPath(pub KeyId);

impl<S: Send + Sync> FromRequestParts<S> for KeyIdPath {
    type Rejection = FactoryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(BadInput::from)?;
        Ok(Self(KeyId::parse(&raw)?))
    }
}
