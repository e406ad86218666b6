//! servicea's one handler for every scenario ([`run`]): it turns the
//! scenario into a plan for each receiver ([`super::plan`]) and carries
//! the plans out.
//!
//! `?expired=1` asks for an expired token: absent, `0`, `false`, `no` or
//! `off` (any case) mean not expired, anything else means expired
//! ([`s2s_web::expired`]). `?trace=1`, by the same rule, asks for the
//! console's trace: a 200 whose body carries the scenario's status, its
//! answer, a refusal's reason and every hop and check ([`traced`],
//! [`s2s_web::trace`]).
//!
//! Each call to a receiver is one "leg": get or make a token, call, relay the
//! answer, all within one `REQUEST_TIMEOUT_MS`. A leg that fails (factory
//! down, peer down, key missing) becomes an answer with the failing status
//! and a JSON message, so in scenarios 2 and 4 the other leg's result is
//! still reported.

use axum::{
    Json,
    extract::{Query, State as Shared, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use s2s_web::{
    BadInput, expired,
    outbound::{self, Answer, Deadline, Repeat, Target},
    request_tracing::RequestId,
    trace,
};
use serde_json::json;

use super::{
    args::Settings,
    plan::{Destination, Plan, TokenSource, Transport, plan},
    self_signed,
    state::State,
};
use crate::{
    bearer::preview, error::AppError, factory_client::Factory, role::Role, scenarios::Scenario,
};

/// The query of `/scenarioN`: `?expired=` and `?trace=`, each on or off
/// by the same rule ([`expired::is_on`]).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RunQuery {
    expired: Option<String>,
    trace: Option<String>,
}

/// Runs scenario `s`: one leg to serviceb (status and body relayed as they
/// are), or legs to serviceb and servicec concurrently (200 when both
/// accept, otherwise the first failing status; both results in the body).
///
/// With `?trace=1` (the console's), the answer is 200 and carries the
/// scenario's own answer and status beside every hop and check the
/// services recorded ([`traced`]).
pub(super) async fn run(
    s: &'static Scenario,
    Shared(state): Shared<State>,
    rid: RequestId,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(BadInput::from)?;
    let expired = expired::is_on(query.expired.as_deref());
    // The trace is a workshop shortcut: with PRODUCTION, `?trace=1` is
    // ignored and the answer is the plain one.
    if state.settings.common.shortcuts && expired::is_on(query.trace.as_deref()) {
        let answer = traced(state.name(), &rid, answer(s, &state, &rid, expired)).await;
        return Ok(Json(answer).into_response());
    }
    let Answer { status, body } = answer(s, &state, &rid, expired).await;
    Ok((status, Json(body)).into_response())
}

/// `work`'s answer with its trace: `{"status", "answer", "request_id",
/// "trace": [events]}`, and for a refusal `"reason"`, in the refuser's
/// words. The console reads it; the HTTP status is 200 as the trace itself
/// was made (so the browser logs no failed request).
pub(super) async fn traced(
    me: &str,
    rid: &RequestId,
    work: impl Future<Output = Answer>,
) -> serde_json::Value {
    let (answer, events) = trace::collect(me, work).await;
    let mut traced = json!({
        "status": answer.status.as_u16(),
        "answer": answer.body,
        "request_id": rid.0,
        "trace": events,
    });
    if !answer.status.is_success() {
        traced["reason"] = trace::reason_of(&answer.body).into();
    }
    traced
}

/// Scenario `s`'s answer: its status and body.
async fn answer(s: &Scenario, state: &State, rid: &RequestId, expired: bool) -> Answer {
    let b = plan(s.check, Role::B, expired && !s.expire_only_c);
    let note = match (expired, s.expire_only_c, b.token) {
        (false, _, _) => String::new(),
        (true, true, _) => " (servicec's token EXPIRED on purpose)".to_owned(),
        (true, false, TokenSource::Sts { .. }) => {
            " (an EXPIRED client assertion on purpose)".to_owned()
        }
        (true, false, TokenSource::Nothing) => format!(
            " (no token in scenario {}: ?expired has nothing to expire)",
            s.n
        ),
        (true, false, _) => " (EXPIRED token on purpose)".to_owned(),
    };
    tracing::info!("scenario {}: {}{note}", s.n, s.story);
    trace::note(|| format!("scenario {}: {}{note}", s.n, s.story));
    let b = leg(state, rid, s, b);
    if !s.fan_out {
        return b.await;
    }
    let c = leg(state, rid, s, plan(s.check, Role::C, expired));
    let (b, c) = tokio::join!(b, c);
    let status = [b.status, c.status]
        .into_iter()
        .find(|s| !s.is_success())
        .unwrap_or(StatusCode::OK);
    Answer {
        status,
        body: json!({ "serviceb": b.body, "servicec": c.body }),
    }
}

/// One leg, never an error: a failure is an answer with its status and message.
async fn leg(state: &State, rid: &RequestId, s: &Scenario, plan: Plan) -> Answer {
    // The whole leg (a token from jwt-factory, then the call) within one
    // REQUEST_TIMEOUT_MS: every call of the leg gets what is left of it.
    let deadline = Deadline::start(state.settings.common.timeouts);
    let result = carry_out(state, rid, s, plan, deadline).await;
    if let Err(err) = &result {
        tracing::warn!(peer = plan.peer.name(), status = %err.status(), "leg failed: {err}");
    }
    answer_of(result)
}

/// Who must be listening for the plan's first hop besides the services
/// of the quick start, and the command that starts it: scenario 9's
/// gateway (nginx) and servicea's sidecar (Envoy). A connection refused
/// there names the missing process, not serviceb.
fn missing_process(plan: Plan, settings: &Settings) -> Option<String> {
    match (plan.to, plan.transport) {
        (Destination::Gateway, _) => Some(format!(
            "the gateway (nginx, GATEWAY_ENDPOINT {}) is not running: `scripts/demo.sh` \
             starts it with the whole stack (see the README's gateway section)",
            settings.gateway
        )),
        (_, Transport::Sidecar) => settings.mesh_proxy.as_ref().map(|proxy| {
            format!(
                "my sidecar (Envoy, MESH_PROXY {proxy}) is not running: `scripts/mesh.sh` or \
                 `scripts/demo.sh` starts the sidecars (see the README's mesh section)"
            )
        }),
        _ => None,
    }
}

/// A failure as an answer: its status and JSON message.
pub(crate) fn answer_of(result: Result<Answer, AppError>) -> Answer {
    result.unwrap_or_else(|err| Answer {
        status: err.status(),
        body: err.body(),
    })
}

/// Carries out one leg's plan: the client, the token, the call.
async fn carry_out(
    state: &State,
    rid: &RequestId,
    s: &Scenario,
    plan: Plan,
    deadline: Deadline,
) -> Result<Answer, AppError> {
    // A token servicea signs itself is made first, so a missing key is
    // what a caller hears before a missing CA (as it always was).
    let (client, token) = if matches!(plan.token, TokenSource::SelfSigned { .. }) {
        let token = token(state, rid, plan, deadline).await?;
        (client(state, plan)?, token)
    } else {
        let client = client(state, plan)?;
        (client, token(state, rid, plan, deadline).await?)
    };
    let target = Target {
        who: plan.callee(),
        url: url(&state.settings, s, plan),
    };
    let over = over(state.settings.mesh_proxy.as_deref(), plan);
    if !over.is_empty() {
        trace::note(|| format!("calling {}{over}", target.url));
    }
    let request = match &token {
        Some(token) => {
            tracing::info!(
                "calling {} with Authorization: Bearer {}{over}",
                target.url,
                preview(token)
            );
            client.get(&target.url).bearer_auth(token)
        }
        None => {
            tracing::info!("calling {} with no token{over}", target.url);
            client.get(&target.url)
        }
    };
    let answer = outbound::send_json(request, &target, rid, deadline, Repeat::IfSafe)
        .await
        .map_err(|e| match missing_process(plan, &state.settings) {
            Some(hint) => e.with_hint(&hint),
            None => e,
        })?;
    tracing::info!(
        "{} answered {}: {}",
        plan.peer.name(),
        answer.status,
        s2s_web::request_tracing::loggable_message(&answer.body.to_string())
    );
    Ok(answer)
}

/// The client the plan's transport names.
fn client(state: &State, plan: Plan) -> Result<reqwest::Client, AppError> {
    Ok(match plan.transport {
        Transport::Http => state.http.clone(),
        Transport::Sidecar => state.mesh.clone(),
        Transport::Tls => state.https.get()?.for_peer(plan.peer),
        Transport::Mtls => state.mtls.get()?.for_peer(plan.peer),
    })
}

/// The token the plan's source gives, if any.
async fn token(
    state: &State,
    rid: &RequestId,
    plan: Plan,
    deadline: Deadline,
) -> Result<Option<String>, AppError> {
    let aud = plan.peer.name();
    let token = match plan.token {
        TokenSource::Nothing => {
            tracing::info!("no token: my workload certificate is my credential");
            return Ok(None);
        }
        TokenSource::SelfSigned { expired } => {
            self_signed::mint(&state.self_key, &state.settings, aud, expired).await?
        }
        TokenSource::IssueToken { expired } => {
            tracing::info!(
                "asking jwt-factory for a token (sub {}, aud {aud}{})",
                state.name(),
                if expired { ", expired" } else { "" }
            );
            let factory = Factory {
                http: &state.http,
                base: &state.settings.common.factory,
            };
            let token = factory
                .issue_token(state.name(), aud, expired, rid, deadline)
                .await?;
            tracing::info!("got token from jwt-factory for {aud}: {}", preview(&token));
            token
        }
        TokenSource::Sts {
            bound,
            expired_assertion,
        } => {
            let sts = if bound { &state.sts_bound } else { &state.sts };
            let cached = if expired_assertion {
                sts.with_expired_assertion(aud, rid, deadline).await?
            } else {
                sts.token(aud, rid, deadline).await?
            };
            cached.token.clone()
        }
    };
    Ok(Some(token))
}

/// The URL the plan calls.
fn url(settings: &Settings, s: &Scenario, plan: Plan) -> String {
    let peers = &settings.peers;
    let path = s.receiver_path();
    match plan.to {
        // Through the gateway: `/serviceb/...` leads to serviceb.
        Destination::Gateway => format!("{}/{}{path}", settings.gateway, plan.peer.name()),
        // The mesh's name for the peer; the sidecar (MESH_PROXY) finds it.
        Destination::Mesh => format!("{}{path}", peers.mesh(plan.peer)),
        Destination::Peer => {
            let tls = matches!(plan.transport, Transport::Tls | Transport::Mtls);
            format!("{}{path}", peers.base(plan.peer, tls))
        }
    }
}

/// How the call travels, for the log and the trace, when it is not plain.
fn over(mesh_proxy: Option<&str>, plan: Plan) -> String {
    match plan.transport {
        Transport::Mtls => " over mTLS (my certificate: servicea's SPIFFE ID)".to_owned(),
        Transport::Sidecar => match mesh_proxy {
            Some(proxy) => {
                format!(" through my sidecar {proxy} (plain http: the sidecars do mTLS)")
            }
            None => " (no MESH_PROXY: the platform routes it through my sidecar)".to_owned(),
        },
        Transport::Http | Transport::Tls => String::new(),
    }
}
