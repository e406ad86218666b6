//! Client authentication with `private_key_jwt` (RFC 7523 §2.2 and §3,
//! OpenID Connect Core §9): the client sends
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion=<JWT>`, a JWT it signed with its own private key.
//!
//! The assertion must:
//! - name the pinned algorithm (`ALGORITHM`) in its header: `none`, HS256
//!   keyed with the public key, or any other algorithm is refused before a
//!   key is looked at; no `crit`;
//! - have `iss` = `sub` = a registered `client_id` (and equal the
//!   `client_id` parameter, if one is sent);
//! - be signed by the key registered for that client;
//! - have `aud` = the factory's issuer or the endpoint's URL;
//! - have an `exp` in the future, at most [`MAX_ASSERTION_LIFETIME_SECS`]
//!   ahead (plus the leeway); an `nbf` honoured, an `iat` not in the future;
//! - have a `jti` never seen before; it is remembered until `exp`.
//!
//! Every failure is `invalid_client` (401) with a description of the rule
//! broken; the registry's and key file's own problems go to the log.

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Validation, errors::ErrorKind};
use s2s_auth::{KeyId, jws::Claims, now_unix, verify::MAX_TOKEN_LEN};
use serde_json::Value;

use super::{
    Form, JWT_BEARER, OAuthError,
    clients::{Client, KeySource},
};
use crate::AppState;

/// The longest an assertion may live: it is a one-request credential.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// A client that proved who it is.
#[derive(Debug)]
pub struct Authenticated {
    pub client: Arc<Client>,
}

/// Checks the form's client assertion; `audiences` are the `aud` values
/// accepted (the issuer, the endpoint's URL).
pub async fn authenticate(
    state: &AppState,
    form: &Form,
    audiences: &[String],
) -> Result<Authenticated, OAuthError> {
    match form.get("client_assertion_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(bad(format!(
                "client_assertion_type {other:?} is not supported: use {JWT_BEARER} (private_key_jwt)"
            )));
        }
        None => {
            return Err(bad(format!(
                "no client authentication: send client_assertion_type={JWT_BEARER} and a \
                 client_assertion signed with your private key (private_key_jwt)"
            )));
        }
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| bad("client_assertion missing"))?;
    if assertion.len() > MAX_TOKEN_LEN {
        return Err(bad(format!(
            "client assertion too large: over {MAX_TOKEN_LEN} bytes"
        )));
    }
    let alg = state.config.algorithm;
    let (header, payload) = unverified_parts(assertion).ok_or_else(|| {
        bad("client assertion malformed: not a compact JWS with JSON header and payload")
    })?;
    if header.get("alg").and_then(Value::as_str) != Some(alg.name()) {
        return Err(bad(format!(
            "client assertion must be signed with {alg} (alg {} refused)",
            header.get("alg").unwrap_or(&Value::Null)
        )));
    }
    if header.contains_key("crit") {
        return Err(bad("client assertion has a crit header: not supported"));
    }
    // Who it claims to be: only used to find the key to check that claim.
    let claimed = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("client assertion has no iss (it must be your client_id)"))?;
    let id =
        KeyId::parse(claimed).map_err(|_| bad("client assertion iss is not a valid client_id"))?;
    if let Some(param) = form.get("client_id")
        && param != id.as_str()
    {
        return Err(bad("client_id parameter and the assertion's iss differ"));
    }
    let registry = state.oauth.clients.get().map_err(|e| {
        tracing::warn!("client registry unusable: {e}");
        OAuthError::unavailable("the client registry is not usable (see the factory's log)")
    })?;
    let client = registry
        .get(&id)
        .ok_or_else(|| bad(format!("unknown client {id}")))?;
    let source = client.key.as_ref().ok_or_else(|| {
        bad(format!(
            "{id} has no registered key: it cannot authenticate"
        ))
    })?;
    let key: Arc<DecodingKey> = match source {
        KeySource::File(file) => {
            let key = file.get().map_err(|e| {
                tracing::warn!(client = %id, "client key unusable: {e}");
                bad(format!(
                    "{id}'s registered key is not usable (see the factory's log)"
                ))
            })?;
            Arc::new(key.decoding_key().clone())
        }
        KeySource::Jwks(jwks) => {
            let kid = header.get("kid").and_then(Value::as_str).ok_or_else(|| {
                bad(format!(
                    "{id}'s keys are a JWK Set: the assertion must name its key (kid)"
                ))
            })?;
            let http = state.oauth.http.as_ref().ok_or_else(|| {
                OAuthError::unavailable("jwt-factory cannot fetch JWK Sets (see its log)")
            })?;
            jwks.key_for(
                kid,
                http,
                state.config.client_jwks.limits(state.oauth.timeouts),
            )
            .await
            .map_err(|e| bad(format!("{id}: {e}")))?
        }
    };

    let mut v = Validation::new(alg.jwt());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.set_issuer(&[id.as_str()]);
    v.sub = Some(id.to_string());
    v.set_audience(audiences);
    v.validate_nbf = true;
    v.leeway = state.config.leeway_secs;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &v)
        .map_err(|e| bad(explain(e.kind(), &id, audiences)))?
        .claims;

    let now = now_unix();
    let leeway = i64::try_from(state.config.leeway_secs).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp > now + MAX_ASSERTION_LIFETIME_SECS + leeway {
        return Err(bad(format!(
            "client assertion lives too long: exp more than {MAX_ASSERTION_LIFETIME_SECS} s ahead"
        )));
    }
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now + leeway)
    {
        return Err(bad("client assertion issued in the future (iat)"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| (1..=MAX_JTI_LEN).contains(&j.len()))
        .ok_or_else(|| {
            bad(format!(
                "client assertion needs a jti (1-{MAX_JTI_LEN} characters), used once"
            ))
        })?;
    state
        .oauth
        .jtis
        .first_use(id.as_str(), jti, exp)
        .map_err(bad)?;
    tracing::info!(
        client = %id,
        "client {id} authenticated: assertion signed with its registered key ({alg}), aud ok, jti fresh, expires in {} s",
        exp - now
    );
    Ok(Authenticated { client })
}

fn bad(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(description)
}

/// The header and payload of a compact JWS, not verified.
fn unverified_parts(jwt: &str) -> Option<(Claims, Claims)> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let object = |s: &str| -> Option<Claims> {
        match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    Some((object(h)?, object(p)?))
}

fn explain(kind: &ErrorKind, id: &KeyId, audiences: &[String]) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "client assertion expired".into(),
        ErrorKind::ImmatureSignature => "client assertion not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => {
            format!("client assertion signature does not verify with {id}'s registered key")
        }
        ErrorKind::InvalidAudience => format!(
            "client assertion aud must be one of: {}",
            audiences.join(", ")
        ),
        ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
            "client assertion iss and sub must both be your client_id".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("client assertion has no {c} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "client assertion algorithm refused".into()
        }
        _ => "client assertion malformed".into(),
    }
}
