//! Key management: create or replace a key pair, publish public keys, list
//! ids, dump to disk.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::KeyIdPath;
use crate::{AppState, error::FactoryError};
use s2s_auth::KeyPair;

/// `GET|POST /keys/{keyId}`: a new key pair (RSA-2048 for RS256) replaces the current one.
pub async fn create(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    // RSA key generation is tens of milliseconds of CPU: keep it off the
    // async workers so other requests are not stalled behind it.
    let alg = state.config.algorithm;
    let pair = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
        .await
        .map_err(|e| FactoryError::Internal(e.to_string()))?
        .map_err(|e| FactoryError::Internal(e.to_string()))?;
    let pair = state.keys.insert(id.clone(), pair);
    tracing::info!(key_id = %id, "created a new {} key pair for {id} ({alg}; replaces any previous one)", pair.kind());
    Ok(Json(json!({ "publicKey": pair.public().pem_base64() })))
}

/// `GET /utils/publicKey/{keyId}`: the public key PEM, base64-encoded.
pub async fn public_key(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    let pair = state.keys.get(&id).ok_or(FactoryError::KeyNotFound(id))?;
    Ok(Json(json!({ "publicKey": pair.public().pem_base64() })))
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
        .map_err(|e| FactoryError::Internal(e.to_string()))?
        .map_err(|e| {
            FactoryError::Internal(format!(
                "dump to {} failed: {e}",
                state.keys.dir().display()
            ))
        })?;
    let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    tracing::info!(dir = %state.keys.dir().display(), count = files.len(), "dumped key pairs (private keys mode 0600)");
    Ok(Json(
        json!({ "dir": state.keys.dir().display().to_string(), "files": files }),
    ))
}
