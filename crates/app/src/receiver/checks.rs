//! The receivers' own checks of a bearer token or a client certificate:
//! ask the factory (scenarios 1-2), the factory's JWK Set (5), servicea's
//! public key (3-4), and the caller's workload identity (7).

use axum::{
    Json,
    extract::{MatchedPath, State as Shared},
};
use s2s_web::{
    identity::ClientCert,
    outbound::Deadline,
    request_tracing::RequestId,
    trace::{self, Verdict},
};
use serde_json::{Value, json};

use super::{authz, state::State};
use crate::{bearer::BearerToken, error::AppError, factory_client::Factory};

/// `/scenario1-server`, `/scenario2-server`: jwt-factory decides.
pub(super) async fn via_factory(
    Shared(state): Shared<State>,
    path: MatchedPath,
    rid: RequestId,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let caller = &state.settings.caller;
    tracing::info!(
        "{}: asking jwt-factory to verify the token (signed by {caller}? aud {me}? sub {caller}?)",
        path.as_str(),
        me = state.name(),
    );
    // A refusal is logged where it becomes a response (`AppError`).
    let factory = Factory {
        http: &state.http,
        base: &state.settings.common.factory,
    };
    let deadline = Deadline::start(state.settings.common.timeouts);
    let verdict = factory
        .verify(&token, state.name(), caller, &rid, deadline)
        .await?;
    trace::check(|| {
        Verdict::valid(format!(
            "asked jwt-factory: signed by {caller}, aud {}, sub {caller}",
            state.name()
        ))
    });
    tracing::info!(
        "jwt-factory says: token valid: signed by {caller}, aud {}",
        state.name()
    );
    Ok(Json(verdict))
}

/// `/scenario5-server`: verified here with the factory's key named by the
/// token's `kid`, from the cached JWK Set (see [`crate::jwks`]).
pub(super) async fn via_jwks(
    Shared(state): Shared<State>,
    path: MatchedPath,
    rid: RequestId,
    // A missing or malformed token is refused by the extractor itself.
    BearerToken(token): BearerToken,
) -> Result<Json<Value>, AppError> {
    let expect = &state.settings.factory_tokens;
    tracing::info!(
        "{}: verifying locally with the factory's JWK Set",
        path.as_str()
    );
    let (claims, kid) = state.jwks.verify(expect, &token, &state.http, &rid).await?;
    trace::check(|| {
        Verdict::valid("signature with the factory's key from the JWK Set, and the claims")
            .kid(kid.to_string())
            .expected(expect.required())
    });
    tracing::info!(
        "token valid: signed by the factory's key {kid}, iss {}, aud {}, sub {}",
        expect.issuer,
        expect.audience,
        expect.subject
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}

/// `/scenario7-server`: no token. The caller is who its mTLS client
/// certificate says (a SPIFFE ID from our CA), and the policy must allow
/// that principal on this path.
pub(super) async fn via_identity(
    Shared(state): Shared<State>,
    path: MatchedPath,
    cert: ClientCert,
) -> Result<Json<Value>, AppError> {
    tracing::info!(
        "{}: no token here; who is calling is what the mTLS handshake proved",
        path.as_str()
    );
    let id = authz::authorize(state.policy.as_ref(), path.as_str(), &cert)?;
    trace::check(|| {
        Verdict::allowed(format!(
            "mTLS client certificate {}: allowed on {} by the policy",
            id.spiffe_id,
            path.as_str()
        ))
    });
    Ok(Json(json!({
        "authorized": true,
        "principal": id.principal,
        "spiffe_id": id.spiffe_id,
        "x5t#S256": id.thumbprint,
    })))
}

/// `/scenario3-server`, `/scenario4-server`: verified here with servicea's public key.
pub(super) async fn via_caller_key(
    Shared(state): Shared<State>,
    path: MatchedPath,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let expect = &state.settings.self_signed;
    let current = state.caller_key.get()?;
    // The kid selects among servicea's key set (next, current, retiring);
    // no kid, or one naming none of them, means the current key. It never
    // brings a key.
    let kid = expect.kid(&token)?;
    let (key, file) = match kid.as_deref() {
        Some(kid) if kid != current.kid => state
            .caller_other_keys
            .iter()
            .find_map(|f| f.get().ok().filter(|k| k.kid == kid).map(|k| (k, f.path())))
            .unwrap_or((current, state.caller_key.path())),
        _ => (current, state.caller_key.path()),
    };
    let named = key;
    let key = &named.key;
    tracing::info!(
        "{}: verifying locally with {} ({}, iss {}, aud {}, sub {}, leeway {} s)",
        path.as_str(),
        file.display(),
        expect.algorithm,
        expect.issuer,
        expect.audience,
        expect.subject,
        expect.leeway_secs,
    );
    let claims = expect.verify(&token, key)?;
    trace::check(|| {
        // The file's name, not its folder: the trace goes to callers.
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        Verdict::valid(format!(
            "signature with servicea's public key ({name}), and the claims"
        ))
        .kid(named.kid.clone())
        .expected(expect.required())
    });
    tracing::info!(
        "token valid: signed by {}, aud {}",
        expect.subject,
        expect.audience
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}
