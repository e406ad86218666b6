//! The scenarios, as one table ([`SCENARIOS`]), and servicea's one handler
//! for all of them ([`run`]). servicea's routes and the receivers' routes
//! are both registered from the table, so a new scenario is one row.
//!
//! | scenario | token from | transport | verified by |
//! | --- | --- | --- | --- |
//! | 1 | jwt-factory | http to serviceb | jwt-factory, asked by serviceb |
//! | 2 | jwt-factory (one per audience) | http to serviceb and servicec, concurrently | jwt-factory |
//! | 3 | servicea signs it | https to serviceb (one-way TLS) | serviceb, locally, with servicea's public key |
//! | 4 | servicea signs one per audience | https to serviceb and servicec, concurrently | each receiver, locally |
//! | 5 | jwt-factory (with a `kid`) | http to serviceb | serviceb, locally, with the factory's JWK Set |
//! | 6 | jwt-factory's `POST /token`: servicea authenticates with its own key (`private_key_jwt`), caches the token | http to serviceb | serviceb, locally, with the JWK Set; `typ: at+jwt`, `client_id` |
//! | 7 | none | mTLS to serviceb, with servicea's workload certificate | serviceb: the certificate's SPIFFE ID, allowed by its policy |
//! | 8 | as 6, over mTLS to the factory: bound to servicea's certificate (`cnf.x5t#S256`, RFC 8705) | mTLS to serviceb | as 6, and the binding: same certificate on both hops |
//! | 9 | jwt-factory's `POST /token`, cached, as 6 | http to the gateway (nginx), which calls serviceb over mTLS | the gateway's verifier (JWK Set, `typ: at+jwt`); serviceb reads the forwarded identity |
//! | 10 | jwt-factory's `POST /token`, cached, as 6 | plain http to servicea's sidecar (Envoy), mTLS between sidecars, plain http to serviceb | serviceb's sidecar (jwt_authn, RBAC, from Istio YAML); serviceb reads what it verified |
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
    extract::{Query, State, rejection::QueryRejection},
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

use crate::{
    bearer::preview, cli::Role, error::AppError, factory_client, self_signed, servicea,
    servicea::TlsPeers,
};

/// How the receivers check a scenario's token (and so where the token
/// comes from, and over which transport it travels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Token from jwt-factory; the receiver asks jwt-factory (plain http).
    Factory,
    /// servicea signs its own token; the receiver verifies it with
    /// servicea's public key, over https only.
    CallerKey,
    /// Token from jwt-factory; the receiver verifies it with the factory's
    /// published keys (JWK Set), plain http.
    Jwks,
    /// Token from jwt-factory's OAuth token endpoint (client credentials,
    /// `private_key_jwt`), cached by servicea; the receiver verifies it as
    /// [`Check::Jwks`] does, and requires `typ: at+jwt` and `client_id`.
    Sts,
    /// No token: the receiver knows the caller by its mTLS client
    /// certificate and allows it by policy.
    Identity,
    /// As [`Check::Sts`], over mTLS on both hops: the token is bound to
    /// servicea's certificate, and the receiver checks the binding.
    BoundSts,
    /// Token from jwt-factory's `POST /token` (as [`Check::Sts`]), sent
    /// through the gateway (nginx), which has it verified once and forwards
    /// the identity as `X-Jwt-*` headers over mTLS; the receiver believes
    /// those headers from the gateway alone.
    Gateway,
    /// Token from jwt-factory, sent through servicea's Envoy sidecar to
    /// serviceb's: the sidecars do mTLS, serviceb's checks the token and
    /// the AuthorizationPolicy, and serviceb reads what it verified. The
    /// services do none of it (scenario 10, `mesh` crate).
    Mesh,
}

impl Check {
    /// Whether the call travels over TLS (servicea's https clients, the
    /// receivers' https listener).
    pub fn over_tls(self) -> bool {
        matches!(
            self,
            Self::CallerKey | Self::Identity | Self::BoundSts | Self::Gateway
        )
    }

    /// Whether servicea presents its workload certificate (mTLS).
    pub fn mutual_tls(self) -> bool {
        matches!(self, Self::Identity | Self::BoundSts)
    }

    /// Whether servicea gets the token from jwt-factory.
    fn token_from_factory(self) -> bool {
        matches!(
            self,
            Self::Factory | Self::Jwks | Self::Gateway | Self::Mesh
        )
    }
}

/// One scenario, as data.
#[derive(Debug)]
pub struct Scenario {
    /// Its number: servicea serves `/scenario{n}`, receivers `/scenario{n}-server`.
    pub n: u8,
    /// What it teaches, in one line.
    pub teaches: &'static str,
    pub check: Check,
    /// Call servicec too, concurrently.
    pub fan_out: bool,
    /// With `?expired=1`, expire servicec's token only (scenario 2 shows one
    /// leg failing), or every token.
    pub expire_only_c: bool,
    /// The first log line: what is about to happen.
    pub story: &'static str,
}

impl Scenario {
    /// servicea's path.
    pub fn path(&self) -> String {
        format!("/scenario{}", self.n)
    }

    /// The receivers' path.
    pub fn receiver_path(&self) -> String {
        format!("/scenario{}-server", self.n)
    }
}

/// Every scenario. Adding one here adds its routes on servicea and on the
/// receivers.
pub static SCENARIOS: [Scenario; 10] = [
    Scenario {
        n: 1,
        teaches: "central issue and verify: the receiver holds no key and asks the issuer",
        check: Check::Factory,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb asks jwt-factory to verify it",
    },
    Scenario {
        n: 2,
        teaches: "one token per audience: a token for serviceb cannot be replayed at servicec",
        check: Check::Factory,
        fan_out: true,
        expire_only_c: true,
        story: "one jwt-factory token per audience, call serviceb and servicec concurrently",
    },
    Scenario {
        n: 3,
        teaches: "self-signed tokens over one-way TLS: the receiver verifies locally with the caller's public key",
        check: Check::CallerKey,
        fan_out: false,
        expire_only_c: false,
        story: "sign my own short-lived token, call serviceb over https; serviceb verifies it locally with my public key",
    },
    Scenario {
        n: 4,
        teaches: "self-signed tokens, one per audience, to two receivers over TLS",
        check: Check::CallerKey,
        fan_out: true,
        expire_only_c: false,
        story: "sign one token per audience, call serviceb and servicec over https concurrently",
    },
    Scenario {
        n: 5,
        teaches: "the issuer publishes its keys (JWKS); receivers verify locally from a cache, and keys rotate without restarts",
        check: Check::Jwks,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb verifies it locally with the factory's published keys (JWK Set)",
    },
    Scenario {
        n: 6,
        teaches: "a token service that authenticates its callers: client credentials with private_key_jwt, a short-lived cached token, verified locally",
        check: Check::Sts,
        fan_out: false,
        expire_only_c: false,
        story: "a token for serviceb from jwt-factory's POST /token (I prove who I am with an assertion signed by my own key), cached; serviceb verifies it locally with the JWK Set",
    },
    Scenario {
        n: 7,
        teaches: "mutual TLS and workload identity, no token: the receiver authorizes the caller's SPIFFE ID by policy",
        check: Check::Identity,
        fan_out: false,
        expire_only_c: false,
        story: "call serviceb over mTLS with my workload certificate (spiffe://.../sa/servicea), no token; serviceb allows callers by identity",
    },
    Scenario {
        n: 8,
        teaches: "certificate-bound tokens (RFC 8705): a stolen token is useless without the certificate's private key",
        check: Check::BoundSts,
        fan_out: false,
        expire_only_c: false,
        story: "a token from jwt-factory's POST /token over mTLS, bound to my certificate (cnf x5t#S256); call serviceb over mTLS with the same certificate",
    },
    Scenario {
        n: 9,
        teaches: "the gateway pattern: nginx verifies once at the edge and forwards the caller's identity; services trust those headers from the gateway alone",
        check: Check::Gateway,
        fan_out: false,
        expire_only_c: false,
        story: "get an access token from jwt-factory's POST /token, call serviceb through the gateway (nginx); the gateway has it verified, then forwards my identity to serviceb over mTLS",
    },
    Scenario {
        n: 10,
        teaches: "the mesh: sidecars (Envoy, configured from Istio YAML) do mTLS, check the token and authorize by identity; the services do none of it",
        check: Check::Mesh,
        fan_out: false,
        expire_only_c: false,
        story: "a token for serviceb from jwt-factory's POST /token (cached, as in scenario 6), call http://serviceb through my sidecar (Envoy); the sidecars talk mTLS, serviceb's checks the token and its AuthorizationPolicy, and serviceb reads what its sidecar verified",
    },
];

/// A receiver, by name.
#[derive(Clone, Copy, Debug)]
enum Peer {
    B,
    C,
}

impl Peer {
    /// Its workload name: the `aud` of its tokens, and the last segment of
    /// the SPIFFE ID its certificate must name.
    fn name(self) -> &'static str {
        match self {
            Self::B => Role::B.name(),
            Self::C => Role::C.name(),
        }
    }

    /// servicea's TLS client for this peer, pinned to its SPIFFE ID.
    fn tls_client(self, peers: &TlsPeers) -> reqwest::Client {
        match self {
            Self::B => peers.serviceb.clone(),
            Self::C => peers.servicec.clone(),
        }
    }

    fn base_url(self, state: &servicea::State, tls: bool) -> &str {
        let p = &state.settings.peers;
        match (self, tls) {
            (Self::B, false) => &p.b_http,
            (Self::B, true) => &p.b_https,
            (Self::C, false) => &p.c_http,
            (Self::C, true) => &p.c_https,
        }
    }

    /// As the mesh names it (scenario 10).
    fn mesh_url(self, state: &servicea::State) -> &str {
        let p = &state.settings.peers;
        match self {
            Self::B => &p.b_mesh,
            Self::C => &p.c_mesh,
        }
    }
}

/// The query of `/scenarioN`: `?expired=` and `?trace=`, each on or off
/// by the same rule ([`expired::is_on`]).
#[derive(Debug, Default, serde::Deserialize)]
pub struct RunQuery {
    pub expired: Option<String>,
    pub trace: Option<String>,
}

/// Runs scenario `s`: one leg to serviceb (status and body relayed as they
/// are), or legs to serviceb and servicec concurrently (200 when both
/// accept, otherwise the first failing status; both results in the body).
///
/// With `?trace=1` (the console's), the answer is 200 and carries the
/// scenario's own answer and status beside every hop and check the
/// services recorded ([`traced`]).
pub async fn run(
    s: &'static Scenario,
    State(state): State<servicea::State>,
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
pub async fn traced(
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
async fn answer(s: &Scenario, state: &servicea::State, rid: &RequestId, expired: bool) -> Answer {
    let note = match (expired, s.expire_only_c) {
        (false, _) => "",
        (true, true) => " (servicec's token EXPIRED on purpose)",
        (true, false) if matches!(s.check, Check::Sts | Check::BoundSts) => {
            " (an EXPIRED client assertion on purpose)"
        }
        (true, false) if s.check == Check::Identity => {
            " (no token in scenario 7: ?expired has nothing to expire)"
        }
        (true, false) => " (EXPIRED token on purpose)",
    };
    tracing::info!("scenario {}: {}{note}", s.n, s.story);
    trace::note(|| format!("scenario {}: {}{note}", s.n, s.story));
    let b = leg(state, rid, s, Peer::B, expired && !s.expire_only_c);
    if !s.fan_out {
        return b.await;
    }
    let c = leg(state, rid, s, Peer::C, expired);
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
async fn leg(
    state: &servicea::State,
    rid: &RequestId,
    s: &Scenario,
    peer: Peer,
    expired: bool,
) -> Answer {
    // The whole leg (a token from jwt-factory, then the call) within one
    // REQUEST_TIMEOUT_MS: every call of the leg gets what is left of it.
    let deadline = Deadline::start(state.settings.common.timeouts);
    let result = try_leg(state, rid, s, peer, expired, deadline).await;
    if let Err(err) = &result {
        tracing::warn!(peer = peer.name(), status = %err.status(), "leg failed: {err}");
    }
    answer_of(result)
}

/// Who must be listening for `check`'s first hop besides the services of
/// the quick start, and the command that starts it: scenario 9's gateway
/// (nginx) and scenario 10's sidecar of servicea (Envoy). A connection
/// refused there names the missing process, not serviceb.
fn missing_process(check: Check, state: &servicea::State) -> Option<String> {
    match check {
        Check::Gateway => Some(format!(
            "the gateway (nginx, GATEWAY_ENDPOINT {}) is not running: `scripts/demo.sh` \
             starts it with the whole stack (see the README's gateway section)",
            state.settings.gateway
        )),
        Check::Mesh => state.settings.mesh_proxy.as_ref().map(|proxy| {
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

async fn try_leg(
    state: &servicea::State,
    rid: &RequestId,
    s: &Scenario,
    peer: Peer,
    expired: bool,
    deadline: Deadline,
) -> Result<Answer, AppError> {
    let aud = peer.name();
    let tls = s.check.over_tls();
    let (token, client) = if matches!(s.check, Check::Mesh | Check::Gateway) && !expired {
        // The token a production caller would have: from the factory's
        // token endpoint, which authenticates servicea (scenario 6),
        // cached. (`?expired=1` asks /issueToken for an expired one, so the
        // sidecar's or the gateway's refusal shows.)
        let cached = state.sts.token(aud, rid, deadline).await?;
        let client = if s.check == Check::Mesh {
            &state.mesh
        } else {
            &state.http
        };
        (Some(cached.token.clone()), client.clone())
    } else if matches!(s.check, Check::Sts | Check::BoundSts) {
        let (sts, client) = if s.check == Check::BoundSts {
            (&state.sts_bound, peer.tls_client(&*state.mtls.get()?))
        } else {
            (&state.sts, state.http.clone())
        };
        let cached = if expired {
            sts.with_expired_assertion(aud, rid, deadline).await?
        } else {
            sts.token(aud, rid, deadline).await?
        };
        (Some(cached.token.clone()), client)
    } else if s.check == Check::Identity {
        tracing::info!("no token: my workload certificate is my credential");
        (None, peer.tls_client(&*state.mtls.get()?))
    } else if s.check.token_from_factory() {
        tracing::info!(
            "asking jwt-factory for a token (sub {}, aud {aud}{})",
            state.name(),
            if expired { ", expired" } else { "" }
        );
        let token = factory_client::issue_token(state, rid, aud, expired, deadline).await?;
        tracing::info!("got token from jwt-factory for {aud}: {}", preview(&token));
        let client = if s.check == Check::Mesh {
            &state.mesh
        } else {
            &state.http
        };
        (Some(token), client.clone())
    } else {
        let token = self_signed::mint(state, aud, expired)?;
        (Some(token), peer.tls_client(&*state.https.get()?))
    };
    let url = if s.check == Check::Gateway {
        // Through the gateway: `/serviceb/...` leads to serviceb.
        format!("{}/{aud}{}", state.settings.gateway, s.receiver_path())
    } else if s.check == Check::Mesh {
        // The mesh's name for serviceb; the sidecar (MESH_PROXY) finds it.
        format!("{}{}", peer.mesh_url(state), s.receiver_path())
    } else {
        format!("{}{}", peer.base_url(state, tls), s.receiver_path())
    };
    // Through the gateway, the gateway is whom servicea calls (and whom an
    // error names when it cannot be reached).
    let who = if s.check == Check::Gateway {
        "gateway"
    } else {
        aud
    };
    let target = Target { who, url };
    let over = if s.check.mutual_tls() {
        " over mTLS (my certificate: servicea's SPIFFE ID)".to_owned()
    } else if s.check == Check::Mesh {
        match &state.settings.mesh_proxy {
            Some(proxy) => {
                format!(" through my sidecar {proxy} (plain http: the sidecars do mTLS)")
            }
            None => " (no MESH_PROXY: the platform routes it through my sidecar)".to_owned(),
        }
    } else {
        String::new()
    };
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
        .map_err(|e| match missing_process(s.check, state) {
            Some(hint) => e.with_hint(&hint),
            None => e,
        })?;
    tracing::info!(
        "{aud} answered {}: {}",
        answer.status,
        s2s_web::request_tracing::loggable_message(&answer.body.to_string())
    );
    Ok(answer)
}
