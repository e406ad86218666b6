//! Talking to jwt-factory (scenarios 1, 2, 5): servicea asks it for tokens,
//! serviceb/servicec ask it to verify them (scenarios 1-2).

use reqwest::StatusCode;
use s2s_auth::JwtError;
use s2s_web::{
    outbound::{self, Deadline, Repeat, Target, UpstreamError},
    request_tracing::RequestId,
};
use serde_json::{Value, json};

use crate::error::AppError;

/// jwt-factory as its callers see it: one pooled client and its base URL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Factory<'a> {
    pub(crate) http: &'a reqwest::Client,
    /// Its base URL, without a trailing `/`.
    pub(crate) base: &'a str,
}

impl Factory<'_> {
    /// `POST /issueToken/{me}[?expired=1]` with `{"aud": audience}`.
    pub(crate) async fn issue_token(
        self,
        me: &str,
        audience: &str,
        expired: bool,
        rid: &RequestId,
        deadline: Deadline,
    ) -> Result<String, AppError> {
        let query = if expired { "?expired=1" } else { "" };
        let target = self.target(&format!("issueToken/{me}{query}"));
        let request = self
            .http
            .post(&target.url)
            .json(&json!({ "aud": audience }));
        // Repeatable: a second token is as good as the first.
        let (status, _, body) =
            outbound::send(request, &target, rid, deadline, Repeat::Always).await?;
        match status {
            StatusCode::OK => Ok(body),
            StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(me.to_owned())),
            other => Err(UpstreamError::unexpected(&target, other, &body).into()),
        }
    }

    /// `POST /verify/{caller}` with `{"token", "aud": me, "sub": caller}`:
    /// the factory's `{"valid": true, "claims"}`, or why it refused, parsed
    /// back into the verification error it was made from.
    pub(crate) async fn verify(
        self,
        token: &str,
        me: &str,
        caller: &str,
        rid: &RequestId,
        deadline: Deadline,
    ) -> Result<Value, AppError> {
        let target = self.target(&format!("verify/{caller}"));
        let request = self
            .http
            .post(&target.url)
            .json(&json!({ "token": token, "aud": me, "sub": caller }));
        // Repeatable: /verify only checks the token.
        let answer = outbound::send_json(request, &target, rid, deadline, Repeat::Always).await?;
        match answer.status {
            // A 200 must also say so: anything else is not a verdict to trust.
            StatusCode::OK if answer.body.get("valid") == Some(&Value::Bool(true)) => {
                Ok(answer.body)
            }
            StatusCode::FORBIDDEN => {
                let refusal = answer.body.get("error").cloned().unwrap_or(Value::Null);
                let err: JwtError = serde_json::from_value(refusal).map_err(|e| {
                    UpstreamError::bad_answer(
                        &target,
                        format!("a refusal without a usable error: {e}"),
                    )
                })?;
                Err(err.into())
            }
            StatusCode::NOT_FOUND => Err(AppError::FactoryKeyMissing(caller.to_owned())),
            other => {
                Err(UpstreamError::unexpected(&target, other, &answer.body.to_string()).into())
            }
        }
    }

    /// jwt-factory's endpoint `path`.
    fn target(self, path: &str) -> Target<'static> {
        Target {
            who: "jwt-factory",
            url: format!("{}/{path}", self.base),
        }
    }
}
