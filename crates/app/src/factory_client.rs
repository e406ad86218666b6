//! Talking to jwt-factory (scenarios 1, 2, 5): servicea asks it for tokens,
//! serviceb/servicec ask it to verify them (scenarios 1-2).

use reqwest::StatusCode;
use s2s_auth::JwtError;
use s2s_web::{
    outbound::{self, Deadline, Repeat, Target, UpstreamError},
    request_tracing::RequestId,
};
use serde_json::{Value, json};

use crate::{error::AppError, receiver, servicea};

/// `POST /issueToken/{self}[?expired=1]` with `{"aud": audience}`.
pub async fn issue_token(
    state: &servicea::State,
    rid: &RequestId,
    audience: &str,
    expired: bool,
    deadline: Deadline,
) -> Result<String, AppError> {
    let query = if expired { "?expired=1" } else { "" };
    let target = factory(
        &state.settings.common.factory,
        &format!("issueToken/{}{query}", state.name()),
    );
    let request = state
        .http
        .post(&target.url)
        .json(&json!({ "aud": audience }));
    // Repeatable: a second token is as good as the first.
    let (status, _, body) = outbound::send(request, &target, rid, deadline, Repeat::Always).await?;
    match status {
        StatusCode::OK => Ok(body),
        StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(state.name().to_owned())),
        other => Err(UpstreamError::unexpected(&target, other, &body).into()),
    }
}

/// `POST /verify/{caller}` with `{"token", "aud": self, "sub": caller}`:
/// the factory's `{"valid": true, "claims"}`, or why it refused, parsed
/// back into the verification error it was made from.
pub async fn verify(
    state: &receiver::State,
    rid: &RequestId,
    token: &str,
) -> Result<Value, AppError> {
    let caller = &state.settings.caller;
    let target = factory(&state.settings.common.factory, &format!("verify/{caller}"));
    let request = state
        .http
        .post(&target.url)
        .json(&json!({ "token": token, "aud": state.name(), "sub": caller }));
    let deadline = Deadline::start(state.settings.common.timeouts);
    // Repeatable: /verify only checks the token.
    let answer = outbound::send_json(request, &target, rid, deadline, Repeat::Always).await?;
    match answer.status {
        // A 200 must also say so: anything else is not a verdict to trust.
        StatusCode::OK if answer.body.get("valid") == Some(&Value::Bool(true)) => Ok(answer.body),
        StatusCode::FORBIDDEN => {
            let refusal = answer.body.get("error").cloned().unwrap_or(Value::Null);
            let err: JwtError = serde_json::from_value(refusal).map_err(|e| {
                UpstreamError::bad_answer(&target, format!("a refusal without a usable error: {e}"))
            })?;
            Err(err.into())
        }
        StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(caller.clone())),
        other => Err(UpstreamError::unexpected(&target, other, &answer.body.to_string()).into()),
    }
}

/// jwt-factory's endpoint `path` under its base URL `base`.
fn factory(base: &str, path: &str) -> Target<'static> {
    Target {
        who: "jwt-factory",
        url: format!("{base}/{path}"),
    }
}
