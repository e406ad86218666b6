//! `POST /issueToken/{keyId}[?expired=1]`: sign a token with keyId's key.
//!
//! Claims, in order: `iss` (the configured issuer) and `sub` (the key id) as
//! defaults; then the body's claims, which may override `iss`, `sub` and set
//! `aud`; then `iat` and `exp`, which only the factory sets. The body may not
//! set `exp` or `iat` (use `?expired=1` for an expired token) nor header
//! parameters such as `alg` or `kid`, and registered claims must have their
//! registered types: such a body is a 400 that says which claim was wrong.
//!
//! This is the demo's stated simplification: anyone who can reach the
//! factory can get a token for any key id. A real issuer authenticates the
//! caller first.

use axum::{
    body::Bytes,
    extract::{
        Query, State,
        rejection::{BytesRejection, QueryRejection},
    },
    http::header,
    response::IntoResponse,
};
use s2s_auth::{
    jws::{self, Claims},
    untrusted,
    verify::MAX_TOKEN_LEN,
};
use s2s_web::{BadInput, expired::ExpiredQuery};
use serde_json::Value;

use super::KeyIdPath;
use crate::{error::FactoryError, state::AppState};

/// Header parameters: claims bodies that try to set these are refused, so
/// nobody mistakes a claim named `alg` for control over the header.
const HEADER_NAMES: [&str; 9] = [
    "alg", "typ", "cty", "kid", "jku", "jwk", "x5u", "x5c", "crit",
];

pub async fn issue(
    State(state): State<AppState>,
    KeyIdPath(id): KeyIdPath,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, FactoryError> {
    let Query(query) = query.map_err(BadInput::from)?;
    let body = body.map_err(BadInput::from)?;
    let extra = parse_claims(&body)?;
    let pair = state
        .keys
        .get(&id)
        .ok_or_else(|| FactoryError::KeyNotFound(id.clone()))?;

    let mut claims = Claims::new();
    claims.insert("iss".into(), state.config.issuer.clone().into());
    claims.insert("sub".into(), id.to_string().into());
    claims.extend(extra);
    let exp = jws::set_times(
        &mut claims,
        state.config.token_lifetime_secs,
        query.is_expired(),
    );

    let token = state
        .custody
        .sign(&pair, state.config.algorithm, &claims, "JWT")
        .await?;
    // Every verifier refuses tokens over MAX_TOKEN_LEN: do not issue one.
    if token.len() > MAX_TOKEN_LEN {
        return Err(BadInput::bad_request(format!(
            "claims too large: the token would be {} bytes, over the {MAX_TOKEN_LEN} every verifier accepts",
            token.len()
        ))
        .into());
    }
    tracing::info!(
        key_id = %id,
        sub = %shown(claims.get("sub")),
        aud = %shown(claims.get("aud")),
        exp,
        "issued {} token signed with {id}'s key (kid {}, {})",
        if query.is_expired() { "an EXPIRED" } else { "a" },
        pair.kid(),
        state.config.algorithm,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token))
}

/// The body's claims: empty, or a JSON object with well-typed claims.
fn parse_claims(body: &[u8]) -> Result<Claims, FactoryError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Claims::new());
    }
    let bad = |m: String| FactoryError::BadInput(BadInput::bad_request(m));
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(claims) = value else {
        return Err(bad("body must be a JSON object of claims".into()));
    };
    for (name, value) in &claims {
        let ok = match name.as_str() {
            "exp" | "iat" => {
                return Err(bad(format!(
                    "claim {:?} is set by the factory (use ?expired=1 for an expired token)",
                    untrusted(name)
                )));
            }
            n if HEADER_NAMES.contains(&n) => {
                return Err(bad(format!(
                    "{:?} is a header parameter, not a claim",
                    untrusted(name)
                )));
            }
            "iss" | "sub" | "jti" => value.is_string(),
            "aud" => {
                value.is_string()
                    || value
                        .as_array()
                        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
            }
            // A NumericDate, read as every verifier here reads it.
            "nbf" => s2s_auth::numeric_date::NumericDate::from_value(name, value).is_ok(),
            _ => true,
        };
        if !ok {
            return Err(bad(format!(
                "claim {:?} has the wrong type",
                untrusted(name)
            )));
        }
    }
    Ok(claims)
}

/// A claim from the request body as a log line shows it: bounded, escaped.
fn shown(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => untrusted(s).to_string(),
        Some(other) => untrusted(&other.to_string()).to_string(),
        None => "null".to_owned(),
    }
}
