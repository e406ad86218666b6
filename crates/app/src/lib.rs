//! # app: servicea, serviceb and servicec
//!
//! One binary, three roles, chosen by the subcommand (and its env file in
//! `env/`). Run each in its own terminal from the workspace root:
//!
//! ```text
//! cargo run --release --bin app -- gen-certs    # once: local CA + localhost certificate
//! cargo run --release --bin app -- servicea     # :3000
//! cargo run --release --bin app -- serviceb     # :3001, https :8443
//! cargo run --release --bin app -- servicec     # :3002, https :9443
//! curl -X POST localhost:3000/gen-keys          # servicea's own key pair (scenarios 3-4)
//! curl localhost:3000/scenario1                 # 2, 3, 4; each also with ?expired=1
//! ```
//!
//! | request | on | what happens |
//! | --- | --- | --- |
//! | `GET /scenario1..5[?expired=1]` | servicea | see [`scenarios`] |
//! | `POST /gen-keys` | servicea | see [`keygen`] |
//! | `GET /scenario1-server`, `/scenario2-server` | serviceb, servicec (http) | verified by jwt-factory, see [`receiver`] |
//! | `GET /scenario3-server`, `/scenario4-server` | serviceb, servicec (https) | verified locally, see [`receiver`] |
//! | `GET /scenario5-server` | serviceb, servicec (http) | verified locally with the factory's JWK Set, see [`jwks`] |
//! | `GET /hello` | all | `hello` |
//!
//! # Layout
//!
//! - [`config`]: subcommands, flags and env variables (`app --help`).
//! - [`state`]: what handlers share: one http client, keys parsed once.
//! - [`scenarios`]: servicea's side of scenarios 1-4.
//! - [`receiver`]: serviceb's and servicec's side.
//! - [`bearer`]: the `Authorization: Bearer` extractor and its policy.
//! - [`factory_client`]: calls to jwt-factory.
//! - [`jwks`]: scenario 5's cached copy of the factory's JWK Set.
//! - [`self_signed`]: servicea's own short-lived tokens.
//! - [`outbound`]: bounded outbound calls, request-id propagation.
//! - [`keygen`]: servicea's scenario-3 key pair.
//! - [`tls`]: the https listener's certificate.
//! - [`error`]: every failure, and the one place it becomes a JSON response.

pub mod bearer;
pub mod config;
pub mod error;
pub mod factory_client;
pub mod jwks;
pub mod keygen;
pub mod outbound;
pub mod receiver;
pub mod scenarios;
pub mod self_signed;
pub mod state;
pub mod tls;

use std::{future::Future, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use axum_server::{Handle, tls_rustls::RustlsConfig};
use s2s_auth::http::serve;
use serde_json::json;
use tokio::net::TcpListener;

pub use config::Role;
pub use state::ServiceState;

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// The plain-http routes of this service's role.
pub fn http_app(state: ServiceState) -> Router {
    let router = Router::new().route("/hello", get(hello));
    let router = match state.role {
        Role::A => router
            .route("/scenario1", get(scenarios::scenario1))
            .route("/scenario2", get(scenarios::scenario2))
            .route("/scenario3", get(scenarios::scenario3))
            .route("/scenario4", get(scenarios::scenario4))
            .route("/scenario5", get(scenarios::scenario5))
            .route("/gen-keys", post(keygen::route)),
        Role::B | Role::C => router
            .route("/scenario1-server", get(receiver::via_factory))
            .route("/scenario2-server", get(receiver::via_factory))
            .route("/scenario5-server", get(receiver::via_jwks)),
    };
    finish(router, state)
}

/// The https routes (serviceb, servicec): scenarios 3-4 are only served
/// over TLS, so a self-signed token never crosses the wire in clear text.
pub fn https_app(state: ServiceState) -> Router {
    let router = Router::new()
        .route("/hello", get(hello))
        .route("/scenario3-server", get(receiver::local))
        .route("/scenario4-server", get(receiver::local));
    finish(router, state)
}

fn finish(router: Router<ServiceState>, state: ServiceState) -> Router {
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(state);
    s2s_auth::http::with_request_tracing(router)
}

async fn hello() -> &'static str {
    "hello"
}

async fn not_found(State(state): State<ServiceState>) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({ "message": format!("no such endpoint on {} (see the README's endpoint table)", state.name) }),
        ),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "message": "method not allowed on this endpoint" })),
    )
}

/// Serves `http` (and `https`, with its TLS config, if given) until
/// `shutdown` resolves; then both listeners stop accepting and in-flight
/// requests get [`DRAIN`] to finish.
pub async fn run(
    state: ServiceState,
    http: TcpListener,
    https: Option<(TcpListener, RustlsConfig)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One handle for both listeners: one signal stops both.
    let handle: Handle<std::net::SocketAddr> = Handle::new();
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(DRAIN));
        });
    }
    let header_timeout = state.args.header_timeout();

    tracing::info!("{} listening on http://{}", state.name, http.local_addr()?);
    let plain = serve(
        http,
        http_app(state.clone()),
        None,
        handle.clone(),
        header_timeout,
    );

    let secure = async {
        let Some((listener, config)) = https else {
            return Ok(());
        };
        tracing::info!(
            "{} listening on https://{} (certificate from gen-certs)",
            state.name,
            listener.local_addr()?
        );
        serve(
            listener,
            https_app(state.clone()),
            Some(config),
            handle,
            header_timeout,
        )
        .await
    };
    let (a, b) = tokio::join!(plain, secure);
    a?;
    b?;
    tracing::info!("{} stopped", state.name);
    Ok(())
}
