//! `POST /introspect` (RFC 7662): is this access token active, and what
//! does it say? The caller authenticates as at `/token` (an RFC 7662
//! protected resource must). The answer is `{"active": true, ...claims}`
//! for a token this factory issued that is still valid, and
//! `{"active": false}` for anything else, never an error: a bad token is
//! not a bad request.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use jsonwebtoken::Validation;
use s2s_auth::{KeyId, jwk::key_id_of, jws::Claims, verify::MAX_TOKEN_LEN};
use serde_json::{Value, json};

use super::{ACCESS_TOKEN_TYP, Form, OAuthError, assertion::authenticate, no_store, token};
use crate::{keystore::Lookup, state::AppState};

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = Form::parse(&headers, body)?;
    let mut audiences = token::assertion_audiences(&state, "/introspect");
    audiences.extend(
        token::assertion_audiences(&state, "/token")
            .into_iter()
            .skip(1),
    );
    let auth = authenticate(&state, &form, &audiences).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token missing"))?;
    // The request is well formed: now the assertion's jti is used.
    auth.spend_jti(&state).await?;
    let caller = &auth.client;
    let answer = match active_claims(&state, token) {
        Some(claims) => {
            let (sub, aud) = (claim(&claims, "sub"), claim(&claims, "aud"));
            tracing::info!(caller = %caller.id, "introspection: token active (sub {sub}, aud {aud})");
            let mut body = json!({ "active": true, "token_type": "Bearer" });
            if let Some(map) = body.as_object_mut() {
                map.extend(claims);
            }
            body
        }
        None => {
            tracing::info!(caller = %caller.id, "introspection: token not active");
            json!({ "active": false })
        }
    };
    let mut response = Json(answer).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// The claims of `token` if it is an access token this factory issued
/// that is valid now; `None` for anything else.
fn active_claims(state: &AppState, token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != state.config.algorithm.jwt() || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP)
    {
        return None;
    }
    let kid = header.kid?;
    let id = KeyId::parse(key_id_of(&kid)?).ok()?;
    let Lookup::Found(entry) = state.keys.verifying(&id, Some(&kid)) else {
        return None;
    };
    let mut v = Validation::new(state.config.algorithm.jwt());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.set_issuer(&[&state.config.issuer]);
    v.validate_aud = false;
    v.validate_nbf = true;
    v.leeway = state.config.leeway_secs;
    let claims = jsonwebtoken::decode::<Claims>(token, entry.public().decoding_key(), &v)
        .ok()?
        .claims;
    // Only access tokens from /token carry client_id; scenario 1's do not.
    claims.get("client_id").and_then(Value::as_str)?;
    Some(claims)
}

fn claim(claims: &Claims, name: &str) -> String {
    claims.get(name).map_or_else(String::new, Value::to_string)
}
