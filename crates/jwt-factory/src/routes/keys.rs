//! Key management: create, replace or rotate a key pair, publish public keys
//! (one by one, and as a JWK Set), list ids, dump to disk.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::header,
    response::{IntoResponse, Response},
};
use jsonwebtoken::jwk::JwkSet;
use s2s_auth::time_fmt::iso_millis;
use s2s_web::{BadInput, cross_site::SameSiteOnly};
use serde::Deserialize;
use serde_json::{Value, json};

use super::KeyIdPath;
use crate::{
    custody::Custody,
    error::{FactoryError, Internal},
    keystore::{RotationMode, SigningKey},
    state::AppState,
};

/// `GET|POST /keys/{keyId}`: a new key pair (RSA-2048 for RS256) *replaces*
/// the key id's keys: tokens signed before stop verifying at once.
///
/// It changes state, even as a GET, so a browser's request from another
/// site is refused ([`SameSiteOnly`]: an `<img>` on any page could replace
/// servicea's key otherwise). A new key id counts against
/// `NEW_KEY_IDS_PER_MINUTE` ([`crate::new_key_ids`]).
pub async fn create(
    _: SameSiteOnly,
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, Response> {
    // Refuse before the work: a key is tens of ms of CPU.
    let refuse = |e: FactoryError| e.into_response();
    state
        .keys
        .check_replace(&id)
        .map_err(|e| refuse(e.into()))?;
    if state.keys.get(&id).is_none() {
        state.new_key_ids.take().map_err(|refused| {
            tracing::warn!(key_id = %id, "refused to create key id {id}: {refused}");
            refused.into_response()
        })?;
    }
    let _one_change = state.custody.change().await;
    let key = new_key(&state, &id).await.map_err(refuse)?;
    let before = state.keys.snapshot(&id);
    let entry = state
        .keys
        .replace(id.clone(), key)
        .map_err(|e| refuse(e.into()))?;
    if let Err(e) = state.custody.save(&state.keys, &id).await {
        undo(&state, &id, before, &e);
        return Err(refuse(e));
    }
    tracing::info!(
        key_id = %id,
        "created a new {} key for {id}, kid {}{} (replaces any previous one)",
        state.config.algorithm.key_kind(),
        entry.kid(),
        held_by(&state),
    );
    Ok(Json(
        json!({ "publicKey": entry.public().pem_base64(), "kid": entry.kid() }),
    ))
}

/// The query of `/rotate`: `?emergency=1` (any value but 0/false/no/off).
#[derive(Debug, Default, Deserialize)]
pub struct RotateQuery {
    emergency: Option<String>,
}

impl RotateQuery {
    fn mode(&self) -> RotationMode {
        // The same rule as `?expired=`: "no" never means yes.
        if s2s_web::expired::is_on(self.emergency.as_deref()) {
            RotationMode::Emergency
        } else {
            RotationMode::Phased
        }
    }
}

/// What an emergency rotation's answer says, plainly.
const EMERGENCY_WARNING: &str = "emergency rotation: the new key signs now and the old key is \
     withdrawn from the JWK Set and from /verify at once. This breaks cached verifiers on purpose: \
     tokens signed with the old key are refused from now on, and a verifier that cached the \
     JWK Set refuses tokens signed with the new key until it refetches the set (Envoy and istiod \
     only when their cache expires). Use it when the old key is compromised.";

/// `POST /keys/{keyId}/rotate[?emergency=1]`: a new key for keyId.
///
/// Phased (the default): the new key is published in the JWK Set at once
/// and signs only after `ROTATION_PUBLISH_AHEAD_SECS`; the current key signs
/// until then, then verifies the tokens it signed until they expire. The
/// answer says when each step happens. Emergency: see [`EMERGENCY_WARNING`].
pub async fn rotate(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
    query: Result<Query<RotateQuery>, QueryRejection>,
) -> Result<Json<Value>, FactoryError> {
    let Query(query) = query.map_err(BadInput::from)?;
    let mode = query.mode();
    // 404 and 409 before the work: a key is tens of ms of CPU.
    state.keys.check_rotate(&id, mode)?;
    let _one_change = state.custody.change().await;
    // Again, now that no other change runs: a key is a version in OpenBao.
    state.keys.check_rotate(&id, mode)?;
    let key = new_key(&state, &id).await?;
    let before = state.keys.snapshot(&id);
    let rotation = state.keys.rotate(&id, key, mode)?;
    if let Err(e) = state.custody.save(&state.keys, &id).await {
        undo(&state, &id, before, &e);
        return Err(e);
    }
    let activates = iso_millis(rotation.activates_at);
    let until = iso_millis(rotation.retiring_valid_until);
    let mut answer = json!({
        "kid": rotation.key.kid(),
        "publicKey": rotation.key.public().pem_base64(),
        "activatesAt": activates,
        // The wire names predate the word "retiring": kept for clients.
        "previousKid": rotation.retiring_kid,
        "previousValidUntil": until,
    });
    match mode {
        RotationMode::Phased => tracing::info!(
            key_id = %id,
            "rotating {id}'s key: next kid {} is published now and signs from {activates}; \
             kid {} signs until then and verifies until {until}",
            rotation.key.kid(),
            rotation.retiring_kid
        ),
        RotationMode::Emergency => {
            tracing::warn!(
                key_id = %id,
                "EMERGENCY rotation of {id}'s key: kid {} signs now; kid {} is withdrawn at once",
                rotation.key.kid(),
                rotation.retiring_kid
            );
            answer["emergency"] = true.into();
            answer["warning"] = EMERGENCY_WARNING.into();
        }
    }
    Ok(Json(answer))
}

/// `GET /utils/keys/{keyId}/status`: each key of keyId and its phase.
pub async fn status(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<Value>, FactoryError> {
    let keys = state
        .keys
        .status(&id)
        .ok_or_else(|| FactoryError::KeyNotFound(id.clone()))?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut v = json!({ "kid": k.kid, "phase": k.phase });
            let times = [
                ("activatesAt", k.activates_at),
                ("retiredAt", k.retired_at),
                ("validUntil", k.valid_until),
            ];
            for (name, at) in times {
                if let Some(at) = at {
                    v[name] = iso_millis(at).into();
                }
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "keyId": id.to_string(),
        "publishAheadSecs": state.config.publish_ahead_secs(),
        "keys": keys,
    })))
}

/// A new key for `id` and `ALGORITHM`, from whoever holds the keys
/// ([`crate::custody::Custody::new_key`]): a key pair made here (at most
/// [`crate::state::KEYGEN_AT_ONCE`] at a time, off the async workers), or
/// a new version of `id`'s Transit key in OpenBao.
async fn new_key(state: &AppState, id: &s2s_auth::KeyId) -> Result<SigningKey, FactoryError> {
    state
        .custody
        .new_key(&state.keygen, state.config.algorithm, id)
        .await
}

/// A change OpenBao did not record is undone in memory, so memory never
/// holds a phase OpenBao does not: the ring goes back to `before`. After a
/// lost check-and-set, `save` has already read the winner's ring back from
/// OpenBao: that one stays.
fn undo(
    state: &AppState,
    id: &s2s_auth::KeyId,
    before: crate::keystore::Snapshot,
    e: &FactoryError,
) {
    if !matches!(e, FactoryError::Conflict(_)) {
        state.keys.restore(id, before);
    }
}

/// " (held by OpenBao, Transit key ...)" for log lines, or nothing.
fn held_by(state: &AppState) -> String {
    match &*state.custody {
        Custody::Files => String::new(),
        Custody::OpenBao(v) => format!(", held by OpenBao at {}", v.bao.addr()),
    }
}

/// `GET /.well-known/jwks.json`: every public key that verifies (next,
/// current and retiring ones), as a JWK Set (RFC 7517),
/// cacheable.
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
        json!({ "publicKey": entry.public().pem_base64(), "kid": entry.kid() }),
    ))
}

/// `GET /utils/keys`: every key id this instance holds.
pub async fn list(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(state.keys.ids())
}

/// `POST /utils/dump` (and `/dump`): write every key pair to `KEYS_DIR`.
pub async fn dump(State(state): State<AppState>) -> Result<Json<Value>, FactoryError> {
    if let Custody::OpenBao(vault) = &*state.custody {
        // Nothing to write: the keys never leave OpenBao.
        return Ok(Json(json!({
            "backend": "openbao",
            "files": [],
            "note": format!(
                "the keys are Transit keys in OpenBao at {}, and their phases are recorded there \
                 after every change: there is nothing to dump",
                vault.bao.addr()
            ),
        })));
    }
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
