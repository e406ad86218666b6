//! servicea's side of the five scenarios.
//!
//! | scenario | token from | transport | verified by |
//! | --- | --- | --- | --- |
//! | 1 | jwt-factory | http to serviceb | jwt-factory, asked by serviceb |
//! | 2 | jwt-factory (one per audience) | http to serviceb and servicec, concurrently | jwt-factory |
//! | 3 | servicea signs it | https to serviceb (one-way TLS) | serviceb, locally, with servicea's public key |
//! | 4 | servicea signs one per audience | https to serviceb and servicec, concurrently | each receiver, locally |
//! | 5 | jwt-factory (with a `kid`) | http to serviceb | serviceb, locally, with the factory's JWK Set |
//!
//! Each call to a receiver is one "leg": get or make a token, call, relay the
//! answer. A leg that fails (factory down, peer down, key missing) becomes an
//! answer with the failing status and a JSON message, so in scenarios 2 and
//! 4 the other leg's result is still reported.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use s2s_auth::http::{BadInput, ExpiredQuery};
use serde_json::json;

use crate::{
    bearer::preview,
    error::AppError,
    factory_client,
    outbound::{self, Answer, RequestId, Target},
    self_signed,
    state::ServiceState,
};

/// A receiver, by name and base URLs.
#[derive(Clone, Copy, Debug)]
enum Peer {
    B,
    C,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::B => "serviceb",
            Self::C => "servicec",
        }
    }

    fn base_url(self, state: &ServiceState, https: bool) -> &str {
        let a = &state.args;
        match (self, https) {
            (Self::B, false) => &a.service_b_endpoint,
            (Self::B, true) => &a.service_b_endpoint_https,
            (Self::C, false) => &a.service_c_endpoint,
            (Self::C, true) => &a.service_c_endpoint_https,
        }
    }
}

/// How a leg gets its token and reaches its receiver.
#[derive(Clone, Copy, Debug)]
enum Flow {
    /// Scenarios 1-2: token from jwt-factory, plain http.
    Factory,
    /// Scenarios 3-4: self-signed token, https trusting our CA only.
    SelfSigned,
}

/// What a scenario does, as data: the five handlers below differ only here.
struct Scenario {
    /// Its number: the receivers' path is `/scenario{n}-server`.
    n: u8,
    flow: Flow,
    /// Call servicec too, concurrently.
    fan_out: bool,
    /// With `?expired=1`, expire servicec's token only (scenario 2 shows one
    /// leg failing), or every token.
    expire_only_c: bool,
    /// The first log line: what is about to happen.
    story: &'static str,
}

pub async fn scenario1(
    state: State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    const S: Scenario = Scenario {
        n: 1,
        flow: Flow::Factory,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb asks jwt-factory to verify it",
    };
    run(&S, state, rid, query).await
}

pub async fn scenario2(
    state: State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    const S: Scenario = Scenario {
        n: 2,
        flow: Flow::Factory,
        fan_out: true,
        expire_only_c: true,
        story: "one jwt-factory token per audience, call serviceb and servicec concurrently",
    };
    run(&S, state, rid, query).await
}

pub async fn scenario3(
    state: State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    const S: Scenario = Scenario {
        n: 3,
        flow: Flow::SelfSigned,
        fan_out: false,
        expire_only_c: false,
        story: "sign my own short-lived token, call serviceb over https; serviceb verifies it locally with my public key",
    };
    run(&S, state, rid, query).await
}

pub async fn scenario4(
    state: State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    const S: Scenario = Scenario {
        n: 4,
        flow: Flow::SelfSigned,
        fan_out: true,
        expire_only_c: false,
        story: "sign one token per audience, call serviceb and servicec over https concurrently",
    };
    run(&S, state, rid, query).await
}

pub async fn scenario5(
    state: State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    const S: Scenario = Scenario {
        n: 5,
        flow: Flow::Factory,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb verifies it locally with the factory's published keys (JWK Set)",
    };
    run(&S, state, rid, query).await
}

/// Runs scenario `s`: one leg to serviceb (status and body relayed as they
/// are), or legs to serviceb and servicec concurrently (200 when both
/// accept, otherwise the first failing status; both results in the body).
async fn run(
    s: &Scenario,
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(BadInput::from)?;
    let expired = query.is_expired();
    let note = match (expired, s.expire_only_c) {
        (false, _) => "",
        (true, true) => " (servicec's token EXPIRED on purpose)",
        (true, false) => " (EXPIRED token on purpose)",
    };
    tracing::info!("scenario {}: {}{note}", s.n, s.story);
    let path = format!("scenario{}-server", s.n);
    let b = leg(
        &state,
        &rid,
        s.flow,
        Peer::B,
        &path,
        expired && !s.expire_only_c,
    );
    if !s.fan_out {
        let b = b.await;
        return Ok((b.status, Json(b.body)).into_response());
    }
    let c = leg(&state, &rid, s.flow, Peer::C, &path, expired);
    let (b, c) = tokio::join!(b, c);
    let status = [b.status, c.status]
        .into_iter()
        .find(|s| !s.is_success())
        .unwrap_or(StatusCode::OK);
    Ok((
        status,
        Json(json!({ "serviceb": b.body, "servicec": c.body })),
    )
        .into_response())
}

/// One leg, never an error: a failure is an answer with its status and message.
async fn leg(
    state: &ServiceState,
    rid: &RequestId,
    flow: Flow,
    peer: Peer,
    path: &str,
    expired: bool,
) -> Answer {
    // The whole leg (a token from jwt-factory, then the call) within one
    // REQUEST_TIMEOUT_MS, not one per step.
    let limit = state.args.timeouts().request;
    let outcome = tokio::time::timeout(limit, try_leg(state, rid, flow, peer, path, expired))
        .await
        .unwrap_or_else(|_| {
            Err(AppError::UpstreamTimeout {
                who: peer.name().to_owned(),
                url: format!("/{path}"),
                phase: "leg (token and call) did not finish",
                after: limit,
            })
        });
    match outcome {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(peer = peer.name(), status = %err.status(), "leg failed: {err}");
            Answer {
                status: err.status(),
                body: err.body(),
            }
        }
    }
}

async fn try_leg(
    state: &ServiceState,
    rid: &RequestId,
    flow: Flow,
    peer: Peer,
    path: &str,
    expired: bool,
) -> Result<Answer, AppError> {
    let aud = peer.name();
    let (token, client) = match flow {
        Flow::Factory => {
            tracing::info!(
                "asking jwt-factory for a token (sub {}, aud {aud}{})",
                state.name,
                if expired { ", expired" } else { "" }
            );
            let token = factory_client::issue_token(state, rid, aud, expired).await?;
            tracing::info!("got token from jwt-factory for {aud}: {}", preview(&token));
            (token, state.http.clone())
        }
        Flow::SelfSigned => {
            let token = self_signed::mint(state, aud, expired)?;
            let client = state
                .https
                .get()
                .map_err(|source| AppError::FileUnavailable {
                    what: "CA certificate",
                    source,
                    hint: "Create it with `cargo run --release --bin app -- gen-certs`",
                })?;
            (token, (*client).clone())
        }
    };
    let url = format!(
        "{}/{path}",
        peer.base_url(state, matches!(flow, Flow::SelfSigned))
            .trim_end_matches('/')
    );
    tracing::info!(
        "calling {url} with Authorization: Bearer {}",
        preview(&token)
    );
    let target = Target { who: aud, url };
    let request = client.get(&target.url).bearer_auth(&token);
    let answer = outbound::send_json(request, &target, rid, state.args.timeouts()).await?;
    tracing::info!("{aud} answered {}: {}", answer.status, answer.body);
    Ok(answer)
}
