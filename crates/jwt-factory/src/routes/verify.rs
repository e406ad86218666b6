//! `POST /verify/{keyId}`: the factory checks a token for a caller (scenarios
//! 1-2). The caller says who it is (`aud`) and whom it expects (`sub`); the
//! factory brings the key, the pinned algorithm and its own issuer.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use s2s_auth::{Expectations, JwtError};
use s2s_web::{BadInput, trace::Verdict};
use serde_json::{Value, json};

use super::KeyIdPath;
use crate::{
    error::{FactoryError, VerifyFailure},
    keystore::Lookup,
    state::AppState,
};

pub async fn verify(
    State(state): State<AppState>,
    path: Result<KeyIdPath, FactoryError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, VerifyFailure> {
    let KeyIdPath(id) = path?;
    let body = body.map_err(BadInput::from)?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| BadInput::bad_request(format!("body is not valid JSON: {e}")))?;
    let field = |name: &str, missing: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| BadInput::bad_request(missing))
    };
    let token = field("token", "no token specified")?;
    let audience = field("aud", "no audience specified")?;
    let subject = field("sub", "no subject specified")?;
    if state.keys.get(&id).is_none() {
        return Err(FactoryError::KeyNotFound(id).into());
    }

    let expectations = Expectations {
        algorithm: state.config.algorithm,
        typ: s2s_auth::verify::TYP_JWT,
        issuer: state.config.issuer.clone(),
        audience,
        subject,
        leeway_secs: state.config.leeway_secs,
        max_lifetime_secs: state.config.token_lifetime_secs,
    };
    // The header's `kid` picks one of the key id's own keys (current, or
    // rotated out but still in its overlap); it can never bring a key.
    let verdict =
        expectations
            .kid(&token)
            .and_then(|kid| match state.keys.verifying(&id, kid.as_deref()) {
                Lookup::Found(entry) => expectations
                    .verify(&token, entry.public())
                    .map(|claims| (claims, entry.kid().to_owned())),
                Lookup::NoKid | Lookup::NoKeyId => Err(JwtError::invalid(format!(
                    "no key with kid {}: unknown, or rotated out and past its overlap",
                    s2s_auth::untrusted(kid.as_deref().unwrap_or_default())
                ))),
            });
    Ok(match verdict {
        Ok((claims, kid)) => {
            tracing::info!(
                key_id = %id,
                "token valid: signed by {id}'s key (kid {kid}), sub {:?}, aud {:?}",
                s2s_auth::untrusted(&expectations.subject),
                s2s_auth::untrusted(&expectations.audience)
            );
            s2s_web::trace::check(|| {
                Verdict::valid(format!("signature with {id}'s key, and the claims"))
                    .kid(kid)
                    .expected(expectations.required())
            });
            Json(json!({ "valid": true, "claims": claims })).into_response()
        }
        Err(err) => {
            tracing::info!(key_id = %id, reason = ?err.message(), "token refused");
            (
                StatusCode::FORBIDDEN,
                Json(json!({ "valid": false, "error": err, "claims": {} })),
            )
                .into_response()
        }
    })
}
