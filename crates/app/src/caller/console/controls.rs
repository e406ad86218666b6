//! The console's controls, one per lesson the scenarios teach. Each calls
//! real endpoints, the ones the README's curl commands call, from
//! servicea, and answers with the traced steps: what was sent, to whom,
//! what came back, and who decided.
//!
//! Every answer is `{"steps": [{"title", "expect", "status", "answer",
//! "request_id", "trace"}]}` (and `"reason"` in a step that was refused),
//! 200 as long as the steps ran: each step's own status is in the step (a
//! refusal is the lesson, not a failure).

use axum::{Json, extract::State as Shared};
use reqwest::RequestBuilder;
use s2s_web::{
    outbound::{self, Answer, Deadline, Repeat, Target},
    request_tracing::RequestId,
};
use serde_json::{Value, json};

use crate::{
    caller::{
        legs::{answer_of, traced},
        state::State,
    },
    error::AppError,
    factory_client::Factory,
};

/// One step: `work` traced, with its title and the outcome the lesson expects.
pub(super) async fn step(
    state: &State,
    rid: &RequestId,
    title: &str,
    expect: &str,
    work: impl Future<Output = Result<Answer, AppError>>,
) -> Value {
    tracing::info!("console: {title}");
    let work = async {
        let result = work.await;
        if let Err(err) = &result {
            tracing::info!(status = %err.status(), "console: {title}: {err}");
        }
        answer_of(result)
    };
    let mut step = traced(state.name(), rid, work).await;
    step["title"] = title.into();
    step["expect"] = expect.into();
    step
}

/// Sends `request` to `target` with what is left of `deadline`: as a
/// scenario's leg, each step (a token, then the call) has one
/// `REQUEST_TIMEOUT_MS` for all its calls.
async fn call(
    rid: &RequestId,
    request: RequestBuilder,
    target: Target<'_>,
    deadline: Deadline,
) -> Result<Answer, AppError> {
    Ok(outbound::send_json(request, &target, rid, deadline, Repeat::IfSafe).await?)
}

/// The start of one step's `REQUEST_TIMEOUT_MS`.
fn deadline(state: &State) -> Deadline {
    Deadline::start(state.settings.common.timeouts)
}

/// jwt-factory's endpoint `path`.
fn factory(base: &str, path: &str) -> Target<'static> {
    Target {
        who: "jwt-factory",
        url: format!("{base}{path}"),
    }
}

/// `GET /console/factory-keys`: servicea's keys at the factory with their
/// phases (`GET /utils/keys/servicea/status`), and the kids its JWK Set
/// publishes (`GET /.well-known/jwks.json`).
pub(super) async fn factory_keys(Shared(state): Shared<State>, rid: RequestId) -> Json<Value> {
    let work = async {
        let deadline = deadline(&state);
        let status = factory(
            &state.settings.common.factory,
            &format!("/utils/keys/{}/status", state.name()),
        );
        let keys = call(&rid, state.http.get(&status.url), status, deadline).await?;
        let jwks = factory(&state.settings.common.factory, "/.well-known/jwks.json");
        let set = call(&rid, state.http.get(&jwks.url), jwks, deadline).await?;
        let published: Vec<Value> = set.body["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k.get("kid").cloned()).collect())
            .unwrap_or_default();
        Ok(Answer {
            status: keys.status,
            body: json!({ "status": keys.body, "published": published }),
        })
    };
    let title = "servicea's keys at jwt-factory, and the JWK Set";
    Json(json!({ "steps": [step(&state, &rid, title, "accepted", work).await] }))
}

/// `POST /console/factory-keys/rotate`: `POST /keys/servicea/rotate`, a
/// phased rotation (the new key is published first, signs later).
pub(super) async fn rotate(Shared(state): Shared<State>, rid: RequestId) -> Json<Value> {
    let target = factory(
        &state.settings.common.factory,
        &format!("/keys/{}/rotate", state.name()),
    );
    let work = call(
        &rid,
        state.http.post(&target.url),
        target.clone(),
        deadline(&state),
    );
    let title = "rotate servicea's key at jwt-factory (phased)";
    Json(json!({ "steps": [step(&state, &rid, title, "accepted", work).await] }))
}

/// `POST /console/replay`: the lesson of scenarios 6 and 8. servicea's
/// cached scenario-6 bearer token, replayed at serviceb as a thief would
/// (accepted: whoever holds it is servicea), then its scenario-8 token,
/// bound to its certificate, replayed over TLS without that certificate
/// (refused).
pub(super) async fn replay(Shared(state): Shared<State>, rid: RequestId) -> Json<Value> {
    let peers = &state.settings.peers;
    let bearer = async {
        let deadline = deadline(&state);
        let token = state.sts.token("serviceb", &rid, deadline).await?;
        let target = Target {
            who: "serviceb",
            url: format!("{}/scenario6-server", peers.b_http),
        };
        let request = state.http.get(&target.url).bearer_auth(&token.token);
        call(&rid, request, target, deadline).await
    };
    let bound = async {
        let deadline = deadline(&state);
        let token = state.sts_bound.token("serviceb", &rid, deadline).await?;
        let target = Target {
            who: "serviceb",
            url: format!("{}/scenario8-server", peers.b_https),
        };
        // One-way TLS: the thief has the token, not the certificate's key.
        let client = &state.https.get()?.serviceb;
        let request = client.get(&target.url).bearer_auth(&token.token);
        call(&rid, request, target, deadline).await
    };
    Json(json!({ "steps": [
        step(&state, &rid, "a stolen scenario-6 bearer token, replayed", "accepted", bearer).await,
        step(&state, &rid, "a stolen scenario-8 bound token, replayed without servicea's certificate", "refused", bound).await,
    ]}))
}

/// `POST /console/forge`: the lesson of scenario 9. A valid token with a
/// forged `X-Jwt-Sub: admin`, through the gateway (nginx drops the header
/// and forwards the identity it verified), then the forged headers
/// straight to serviceb, without the gateway's certificate (refused).
pub(super) async fn forge(Shared(state): Shared<State>, rid: RequestId) -> Json<Value> {
    let through = async {
        let deadline = deadline(&state);
        let token = Factory {
            http: &state.http,
            base: &state.settings.common.factory,
        }
        .issue_token(state.name(), "serviceb", false, &rid, deadline)
        .await?;
        let target = Target {
            who: "gateway",
            url: format!("{}/serviceb/scenario9-server", state.settings.gateway),
        };
        let request = state
            .http
            .get(&target.url)
            .bearer_auth(token)
            .header("x-jwt-sub", "admin");
        call(&rid, request, target, deadline).await
    };
    let around = async {
        let target = Target {
            who: "serviceb",
            url: format!("{}/scenario9-server", state.settings.peers.b_https),
        };
        let client = &state.https.get()?.serviceb;
        let request = client
            .get(&target.url)
            .header("x-jwt-sub", "admin")
            .header("x-jwt-aud", "serviceb");
        call(&rid, request, target, deadline(&state)).await
    };
    Json(json!({ "steps": [
        step(&state, &rid, "a valid token with a forged X-Jwt-Sub: admin, through the gateway", "accepted", through).await,
        step(&state, &rid, "the forged X-Jwt-* headers straight to serviceb, around the gateway", "refused", around).await,
    ]}))
}
