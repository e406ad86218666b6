//! Talking to jwt-factory (scenarios 1-2): servicea asks it for tokens,
//! serviceb/servicec ask it to verify them. Neither service holds a key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    error::AppError,
    outbound::{self, RequestId, Target},
    state::ServiceState,
};

/// `POST /issueToken/{self}[?expired=1]` with `{"aud": audience}`.
pub async fn issue_token(
    state: &ServiceState,
    rid: &RequestId,
    audience: &str,
    expired: bool,
) -> Result<String, AppError> {
    let mut url = format!(
        "{}/issueToken/{}",
        state.args.jwt_factory_endpoint.trim_end_matches('/'),
        state.name
    );
    if expired {
        url.push_str("?expired=1");
    }
    let target = Target {
        who: "jwt-factory",
        url,
    };
    let request = state
        .http
        .post(&target.url)
        .json(&json!({ "aud": audience }));
    let (status, body) = outbound::send(request, &target, rid, state.args.timeouts()).await?;
    match status {
        StatusCode::OK => Ok(body),
        StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(state.name.clone())),
        other => Err(unexpected(&target, other, &body)),
    }
}

/// `POST /verify/{caller}` with `{"token", "aud": self, "sub": caller}`:
/// the factory's `{"valid": true, "claims"}`, or why it refused.
pub async fn verify(state: &ServiceState, rid: &RequestId, token: &str) -> Result<Value, AppError> {
    let caller = &state.args.caller;
    let url = format!(
        "{}/verify/{caller}",
        state.args.jwt_factory_endpoint.trim_end_matches('/')
    );
    let target = Target {
        who: "jwt-factory",
        url,
    };
    let request = state
        .http
        .post(&target.url)
        .json(&json!({ "token": token, "aud": state.name, "sub": caller }));
    let answer = outbound::send_json(request, &target, rid, state.args.timeouts()).await?;
    match answer.status {
        // A 200 must also say so: anything else is not a verdict to trust.
        StatusCode::OK if answer.body.get("valid") == Some(&Value::Bool(true)) => Ok(answer.body),
        StatusCode::FORBIDDEN => Err(AppError::InvalidToken(
            answer.body.get("error").cloned().unwrap_or(Value::Null),
        )),
        StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(caller.clone())),
        other => Err(unexpected(&target, other, &answer.body.to_string())),
    }
}

fn unexpected(target: &Target<'_>, status: StatusCode, body: &str) -> AppError {
    let body: String = body.chars().take(200).collect();
    AppError::Upstream {
        who: target.who.to_owned(),
        url: target.url.clone(),
        reason: format!("unexpected answer {status}: {body}"),
    }
}
