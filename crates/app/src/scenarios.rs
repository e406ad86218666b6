//! servicea's side of the four scenarios.
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

pub async fn scenario1(
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let expired = expired(query)?;
    tracing::info!(
        "scenario 1: get a token from jwt-factory, call serviceb over http; serviceb asks jwt-factory to verify it"
    );
    Ok(relay(
        leg(
            &state,
            &rid,
            Flow::Factory,
            Peer::B,
            "scenario1-server",
            expired,
        )
        .await,
    ))
}

pub async fn scenario5(
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let expired = expired(query)?;
    tracing::info!(
        "scenario 5: get a token from jwt-factory, call serviceb over http; serviceb verifies it locally with the factory's published keys (JWK Set)"
    );
    Ok(relay(
        leg(
            &state,
            &rid,
            Flow::Factory,
            Peer::B,
            "scenario5-server",
            expired,
        )
        .await,
    ))
}

pub async fn scenario2(
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let expired = expired(query)?;
    tracing::info!(
        "scenario 2: one jwt-factory token per audience, call serviceb and servicec concurrently{}",
        if expired {
            " (servicec's token EXPIRED on purpose)"
        } else {
            ""
        }
    );
    let (b, c) = tokio::join!(
        leg(
            &state,
            &rid,
            Flow::Factory,
            Peer::B,
            "scenario2-server",
            false
        ),
        leg(
            &state,
            &rid,
            Flow::Factory,
            Peer::C,
            "scenario2-server",
            expired
        ),
    );
    Ok(combine(b, c))
}

pub async fn scenario3(
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let expired = expired(query)?;
    tracing::info!(
        "scenario 3: sign my own short-lived token, call serviceb over https; serviceb verifies it locally with my public key"
    );
    Ok(relay(
        leg(
            &state,
            &rid,
            Flow::SelfSigned,
            Peer::B,
            "scenario3-server",
            expired,
        )
        .await,
    ))
}

pub async fn scenario4(
    State(state): State<ServiceState>,
    rid: RequestId,
    query: Result<Query<ExpiredQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let expired = expired(query)?;
    tracing::info!(
        "scenario 4: sign one token per audience, call serviceb and servicec over https concurrently{}",
        if expired {
            " (both tokens EXPIRED on purpose)"
        } else {
            ""
        }
    );
    let (b, c) = tokio::join!(
        leg(
            &state,
            &rid,
            Flow::SelfSigned,
            Peer::B,
            "scenario4-server",
            expired
        ),
        leg(
            &state,
            &rid,
            Flow::SelfSigned,
            Peer::C,
            "scenario4-server",
            expired
        ),
    );
    Ok(combine(b, c))
}

fn expired(query: Result<Query<ExpiredQuery>, QueryRejection>) -> Result<bool, AppError> {
    let Query(q) = query.map_err(BadInput::from)?;
    Ok(q.is_expired())
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
    match try_leg(state, rid, flow, peer, path, expired).await {
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
            ((token), (*client).clone())
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

/// Scenarios 1 and 3: the receiver's status and body, as they are.
fn relay(answer: Answer) -> Response {
    (answer.status, Json(answer.body)).into_response()
}

/// Scenarios 2 and 4: 200 when both accept, otherwise the first failing
/// status; the body always carries both results.
fn combine(b: Answer, c: Answer) -> Response {
    let status = [b.status, c.status]
        .into_iter()
        .find(|s| !s.is_success())
        .unwrap_or(StatusCode::OK);
    (
        status,
        Json(json!({ "serviceb": b.body, "servicec": c.body })),
    )
        .into_response()
}
