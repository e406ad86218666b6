//! Scenarios 6 and 8 at the receiver: an RFC 9068 access token from the
//! factory's `POST /token`, checked as scenario 5 checks a factory token
//! (locally, with the factory's key named by `kid`, from the cached JWK
//! Set; `iss` the factory, `aud` this receiver, `sub` servicea, `exp`),
//! and also what makes it an access token: header `typ: at+jwt` (so a
//! scenario-5 `/issueToken` token, signed by the same key, is refused
//! here) and a `client_id` claim naming servicea.

use axum::{
    Json,
    extract::{MatchedPath, State as Shared},
};
use s2s_auth::JwtError;
use s2s_web::{identity::ClientCert, request_tracing::RequestId};
use serde_json::{Value, json};

use super::state::State;
use crate::{
    bearer::BearerToken,
    binding::{self, Binding},
    error::AppError,
};

/// `/scenario6-server` (`binding` [`Binding::IfPresent`]: a
/// certificate-bound token, scenario 8's, is refused there, as plain http
/// shows no certificate to check it against) and `/scenario8-server`
/// ([`Binding::Required`]: the token must be bound to the client
/// certificate of this mTLS connection, RFC 8705): an access token from
/// the factory's `/token`.
pub(super) async fn check(
    Shared(state): Shared<State>,
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
    binding::check(&claims, &cert, binding)?;
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
