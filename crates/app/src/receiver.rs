//! serviceb's and servicec's side: check the caller's bearer token.
//!
//! Scenarios 1-2 ask jwt-factory (`/verify/servicea`, with `aud` = own name
//! and `sub` = servicea): the receiver holds no key. Scenarios 3-4 verify
//! locally, over https, with servicea's public key: no network hop, but the
//! key must be distributed (and rotated) to every receiver.

use axum::{
    Json,
    extract::{MatchedPath, State},
};
use s2s_auth::{Expectations, JwtError};
use serde_json::{Value, json};

use crate::{
    bearer::BearerToken, error::AppError, factory_client, outbound::RequestId, state::ServiceState,
};

/// `/scenario1-server`, `/scenario2-server`: jwt-factory decides.
pub async fn via_factory(
    State(state): State<ServiceState>,
    path: MatchedPath,
    rid: RequestId,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    tracing::info!(
        "{}: asking jwt-factory to verify the token (signed by {caller}? aud {me}? sub {caller}?)",
        path.as_str(),
        caller = state.args.caller,
        me = state.name,
    );
    // A refusal is logged where it becomes a response (`AppError`).
    let verdict = factory_client::verify(&state, &rid, &token).await?;
    tracing::info!(
        "jwt-factory says: token valid: signed by {}, aud {}",
        state.args.caller,
        state.name
    );
    Ok(Json(verdict))
}

/// `/scenario5-server`: verified here with the factory's key named by the
/// token's `kid`, from the cached JWK Set (see [`crate::jwks`]).
pub async fn via_jwks(
    State(state): State<ServiceState>,
    rid: RequestId,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let expect = Expectations {
        algorithm: state.args.algorithm,
        issuer: state.args.factory_issuer.clone(),
        audience: state.name.clone(),
        subject: state.args.caller.clone(),
        leeway_secs: state.args.leeway_secs,
        max_lifetime_secs: state.args.factory_token_lifetime_secs,
    };
    let kid = expect.kid(&token)?.ok_or_else(|| {
        AppError::from(JwtError::invalid(
            "jwt has no kid: it cannot be matched to a key of the issuer's JWK Set",
        ))
    })?;
    tracing::info!(
        "/scenario5-server: token names kid {kid}; looking it up in the factory's JWK Set"
    );
    let key = state
        .jwks
        .key_for(&kid, &state.http, &rid, state.args.timeouts())
        .await?;
    let claims = expect.verify_with(&token, &key)?;
    tracing::info!(
        "token valid: signed by the factory's key {kid}, iss {}, aud {}, sub {}",
        expect.issuer,
        expect.audience,
        expect.subject
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}

/// `/scenario3-server`, `/scenario4-server`: verified here with servicea's public key.
pub async fn local(
    State(state): State<ServiceState>,
    path: MatchedPath,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let key = state
        .caller_key
        .get()
        .map_err(|source| AppError::FileUnavailable {
            what: "servicea's public key",
            source,
            hint: "Create it on servicea with `curl -X POST localhost:3000/gen-keys`",
        })?;
    let expect = Expectations {
        algorithm: state.args.algorithm,
        issuer: state.args.issuer.clone(),
        audience: state.name.clone(),
        subject: state.args.caller.clone(),
        leeway_secs: state.args.leeway_secs,
        max_lifetime_secs: state.args.token_lifetime_secs,
    };
    tracing::info!(
        "{}: verifying locally with {} ({}, iss {}, aud {}, sub {}, leeway {} s)",
        path.as_str(),
        state.caller_key.path().display(),
        expect.algorithm,
        expect.issuer,
        expect.audience,
        expect.subject,
        expect.leeway_secs,
    );
    let claims = expect.verify(&token, &key)?;
    tracing::info!(
        "token valid: signed by {}, aud {}",
        expect.subject,
        expect.audience
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}
