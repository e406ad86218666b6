//! Key management: create, replace or rotate a key pair, publish public keys
//! (one by one, and as a JWK Set), list ids, dump to disk.

use axum::{Json, extract::State, http::header, response::IntoResponse};
use jsonwebtoken::jwk::JwkSet;
use s2s_auth::{KeyPair, time_fmt::iso_millis};
use serde_json::{Value, json};

use super::KeyIdPath;
use crate::{
    AppState,
    error::{FactoryError, Internal},
};

/// `GET|POST /keys/{keyId}`: a new key pair (RSA-2048 for RS256) *replaces*
/// the key id's keys: tokens signed before stop verifying at once.
pub async fn create(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    let pair = generate(&state).await?;
    let entry = state.keys.replace(id.clone(), pair)?;
    tracing::info!(
        key_id = %id,
        "created a new {} key pair for {id}, kid {} (replaces any previous one)",
        entry.pair.kind(),
        entry.kid()
    );
    Ok(Json(
        json!({ "publicKey": entry.pair.public().pem_base64(), "kid": entry.kid() }),
    ))
}

/// `POST /keys/{keyId}/rotate`: a new signing key; the previous one stays in
/// the JWK Set and keeps verifying the tokens it signed until they expire.
pub async fn rotate(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    if state.keys.get(&id).is_none() {
        return Err(FactoryError::KeyNotFound(id));
    }
    let pair = generate(&state).await?;
    let rotation = state
        .keys
        .rotate(&id, pair)?
        .ok_or_else(|| FactoryError::KeyNotFound(id.clone()))?;
    let until = iso_millis(rotation.previous_valid_until);
    tracing::info!(
        key_id = %id,
        "rotated {id}'s key: new kid {} signs from now on; previous kid {} verifies until {until}",
        rotation.current.kid(),
        rotation.previous_kid
    );
    Ok(Json(json!({
        "kid": rotation.current.kid(),
        "publicKey": rotation.current.pair.public().pem_base64(),
        "previousKid": rotation.previous_kid,
        "previousValidUntil": until,
    })))
}

/// A key pair for `ALGORITHM`. RSA key generation is tens of milliseconds of
/// CPU: it runs off the async workers so other requests are not stalled, and
/// at most [`crate::KEYGEN_AT_ONCE`] at a time, so a flood of `/keys` calls
/// queues instead of taking every core.
async fn generate(state: &AppState) -> Result<KeyPair, FactoryError> {
    let alg = state.config.algorithm;
    let _permit = state.keygen.acquire().await.map_err(Internal::from)?;
    let pair = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
        .await
        .map_err(Internal::from)?
        .map_err(Internal::from)?;
    Ok(pair)
}

/// `GET /.well-known/jwks.json`: every public key that verifies (current and
/// still-overlapping previous ones), as a JWK Set (RFC 7517), cacheable.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let set = JwkSet {
        keys: state.keys.jwks(),
    };
    tracing::info!("serving the JWK Set: {} keys", set.keys.len());
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.config.jwks_max_age_secs),
        )],
        Json(set),
    )
}

/// `GET /utils/publicKey/{keyId}`: the current public key PEM, base64-encoded.
pub async fn public_key(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    let entry = state.keys.get(&id).ok_or(FactoryError::KeyNotFound(id))?;
    Ok(Json(
        json!({ "publicKey": entry.pair.public().pem_base64(), "kid": entry.kid() }),
    ))
}

/// `GET /utils/keys`: every key id this instance holds.
pub async fn list(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(state.keys.ids())
}

/// `POST /utils/dump` (and `/dump`): write every key pair to `KEYS_DIR`.
pub async fn dump(State(state): State<AppState>) -> Result<Json<Value>, FactoryError> {
    let keys = state.keys.clone();
    let written = tokio::task::spawn_blocking(move || keys.dump())
        .await
        .map_err(Internal::from)?
        .map_err(|source| Internal::Dump {
            dir: state.keys.dir().to_path_buf(),
            source,
        })?;
    let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    tracing::info!(dir = %state.keys.dir().display(), count = files.len(), "dumped key pairs (private keys mode 0600)");
    Ok(Json(
        json!({ "dir": state.keys.dir().display().to_string(), "files": files }),
    ))
}
