//! Scenario 6's two ends that are not in the scenario table's shared code:
//! serviceb's check of an access token ([`via_sts`]), and servicea's
//! `GET /scenario6/token?audience=NAME` ([`ask`]), which asks the factory
//! for a token for any audience, to show the refusal of one servicea may
//! not have (`invalid_target`).
//!
//! serviceb checks a scenario-6 token as scenario 5 checks a factory token
//! (locally, with the factory's key named by `kid`, from the cached JWK
//! Set; `iss` the factory, `aud` serviceb, `sub` servicea, `exp`), and
//! also requires what makes it an RFC 9068 access token from `/token`:
//! header `typ: at+jwt` (so a scenario-5 `/issueToken` token, signed by the
//! same key, is refused here) and a `client_id` claim naming servicea.

use axum::{
    Json,
    extract::{MatchedPath, Query, State as Shared, rejection::QueryRejection},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use s2s_auth::{JwtError, KeyId};
use s2s_web::{BadInput, identity::ClientCert, outbound::Deadline, request_tracing::RequestId};
use serde_json::{Value, json};

use crate::{bearer::BearerToken, binding::Binding, error::AppError, receiver, servicea};

/// `/scenario6-server` (`binding` [`Binding::IfPresent`]: a
/// certificate-bound token, scenario 8's, is refused there, as plain http
/// shows no certificate to check it against) and `/scenario8-server`
/// ([`Binding::Required`]: the token must be bound to the client
/// certificate of this mTLS connection, RFC 8705): an access token from
/// the factory's `/token`.
pub async fn access_token(
    Shared(state): Shared<receiver::State>,
    path: MatchedPath,
    rid: RequestId,
    cert: ClientCert,
    token: Result<BearerToken, AppError>,
    binding: Binding,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    // The pinned algorithm, no `crit`, and `typ: at+jwt` (RFC 9068: so a
    // scenario-5 `/issueToken` token, signed by the same key, is refused
    // here), before any key is looked up; then the kid.
    let expect = &state.settings.access_tokens;
    tracing::info!(
        "{}: access token (typ at+jwt); verifying locally with the factory's JWK Set",
        path.as_str()
    );
    let (claims, kid) = state.jwks.verify(expect, &token, &state.http, &rid).await?;
    let caller = &state.settings.caller;
    if claims.get("client_id").and_then(Value::as_str) != Some(caller.as_str()) {
        return Err(JwtError::invalid(format!("jwt client_id invalid. expected: {caller}")).into());
    }
    crate::binding::check(&claims, &cert, binding)?;
    s2s_web::trace::check(|| {
        let bound = if claims.contains_key("cnf") {
            ", bound to this connection's client certificate (cnf x5t#S256)"
        } else {
            ""
        };
        s2s_web::trace::Verdict::valid(format!("access token: signature with the factory's key from the JWK Set, typ at+jwt, client_id {caller}{bound}"))
        .kid(kid.to_string())
        .expected(expect.required())
    });
    if let Some(id) = cert.identity().filter(|_| claims.contains_key("cnf")) {
        tracing::info!(
            "token bound to the client certificate of this connection ({}, x5t#S256 {})",
            id.principal,
            id.thumbprint
        );
    }
    tracing::info!(
        "access token valid: issued by {} to client {caller} for {}, signed with kid {kid}",
        expect.issuer,
        expect.audience
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}

#[derive(Debug, serde::Deserialize)]
pub struct AskQuery {
    audience: Option<String>,
}

/// `GET /scenario6/token?audience=NAME` on servicea: asks the factory for
/// a token for NAME (default serviceb), through the same cache as
/// scenario 6. 200 with the token's lifetime and claims (the token itself
/// stays inside servicea), or the factory's refusal: 403 with
/// `"error": "invalid_target"` for an audience servicea may not have.
pub async fn ask(
    Shared(state): Shared<servicea::State>,
    rid: RequestId,
    query: Result<Query<AskQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(query) = query.map_err(BadInput::from)?;
    let audience = query.audience.unwrap_or_else(|| "serviceb".to_owned());
    KeyId::parse(&audience).map_err(|e| BadInput::bad_request(format!("audience: {e}")))?;
    tracing::info!("scenario 6: asking for a token for audience {audience}");
    let deadline = Deadline::start(state.settings.common.timeouts);
    let cached = state.sts.token(&audience, &rid, deadline).await?;
    let claims = cached
        .token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "audience": audience,
        "expires_in": cached.remaining().as_secs(),
        "claims": claims,
    })))
}
