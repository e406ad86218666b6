//! servicea's `GET /scenario6/token?audience=NAME`: asks the factory for
//! a token for any audience through scenario 6's cache, to show the
//! refusal of one servicea may not have (`invalid_target`).

use axum::{
    Json,
    extract::{Query, State as Shared, rejection::QueryRejection},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use s2s_auth::KeyId;
use s2s_web::{BadInput, outbound::Deadline, request_tracing::RequestId};
use serde_json::{Value, json};

use super::state::State;
use crate::error::AppError;

#[derive(Debug, serde::Deserialize)]
pub(super) struct AskQuery {
    audience: Option<String>,
}

/// `GET /scenario6/token?audience=NAME` on servicea: asks the factory for
/// a token for NAME (default serviceb), through the same cache as
/// scenario 6. 200 with the token's lifetime and claims (the token itself
/// stays inside servicea), or the factory's refusal: 403 with
/// `"error": "invalid_target"` for an audience servicea may not have.
pub(super) async fn ask(
    Shared(state): Shared<State>,
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
