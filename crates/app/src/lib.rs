//! # app: servicea, serviceb, servicec and the gateway's verifier
//!
//! One binary, four roles, chosen by the subcommand (and its env file in
//! `env/`). Run each in its own terminal from the workspace root:
//!
//! ```text
//! cargo run --release --bin app -- gen-certs    # once: local CA + localhost certificate
//! cargo run --release --bin app -- servicea     # :3000
//! cargo run --release --bin app -- serviceb     # :3001, https :8443
//! cargo run --release --bin app -- servicec     # :3002, https :9443
//! cargo run --release --bin app -- verifier     # :3003, asked by nginx (scenario 9)
//! cargo run --release --bin app -- gateway-config   # nginx's configuration (scenario 9)
//! cargo run --release --bin app -- mesh-config      # the Envoy sidecars' configuration (scenario 10)
//! curl -X POST localhost:3000/gen-keys          # servicea's own key pair (scenarios 3-4)
//! curl localhost:3000/scenario1                 # 2, 3, 4, 5; each also with ?expired=1
//! ```
//!
//! | request | on | what happens |
//! | --- | --- | --- |
//! | `GET /scenario1..10[?expired=1]` | servicea | see [`scenarios`] |
//! | `GET /scenario6/token?audience=NAME` | servicea | see [`scenario6`] |
//! | `POST /gen-keys` | servicea | see [`keygen`] |
//! | `GET /scenario{1,2,5,6,10}-server` | serviceb, servicec (http) | see [`receiver`] |
//! | `GET /scenario{3,4,7,8,9}-server` | serviceb, servicec (https) | see [`receiver`] |
//! | `GET /auth/{service}` | verifier | see [`verifier`] |
//! | `GET /`, `/console/...` | servicea | the workshop console, see [`console`] |
//! | `GET /hello` | all | `hello` |
//!
//! # Layout
//!
//! - [`cli`]: subcommands; each role's arguments live with the role.
//! - [`settings`]: what every role reads, turned into typed values once.
//! - [`servicea`]: the caller: its arguments, state and routes.
//! - [`receiver`]: serviceb and servicec: arguments, state, routes, checks.
//! - [`scenarios`]: the scenario table and servicea's one handler for it.
//! - [`bearer`]: the `Authorization: Bearer` extractor and its policy.
//! - [`factory_client`]: calls to jwt-factory.
//! - [`jwks`]: scenario 5's cached copy of the factory's JWK Set.
//! - [`sts_client`]: scenario 6's client of the factory's `POST /token`, with its token cache.
//! - [`scenario6`]: scenario 6's receiver check (`typ: at+jwt`, `client_id`) and `/scenario6/token`.
//! - [`self_signed`]: servicea's own short-lived tokens.
//! - [`keygen`]: servicea's scenario-3 key pair: create, or rotate with an overlap.
//! - [`key_set`]: the files of that key's phases (next, current, previous).
//! - [`authz`]: scenario 7's authorization by workload identity.
//! - [`binding`]: scenario 8's certificate-bound tokens (RFC 8705).
//! - [`token_check`]: the token-checking settings receivers and the verifier share.
//! - [`verifier`]: scenario 9's verifier, asked by nginx.
//! - [`gateway_config`]: scenario 9's nginx configuration, from its template.
//! - [`gateway_identity`]: the receivers' side: `X-Jwt-*` believed from the gateway alone.
//! - [`mesh_config`]: scenario 10's Envoy sidecars, configured from Istio YAML (the `mesh` crate).
//! - [`sidecar_identity`]: the receivers' side: what their sidecar verified, read strictly.
//! - [`console`]: the workshop console at `/`: runs scenarios, draws their traced hops.
//! - [`error`]: every failure, and the one place it becomes a JSON response.

/// A role's shared state: `$inner` (the fields), and `$state`, an
/// `Arc<$inner>` that is cheap to clone and reads as `$inner` (`Deref`).
macro_rules! shared_state {
    ($(#[$doc:meta])* $state:ident => $inner:ident { $($fields:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $state(std::sync::Arc<$inner>);

        #[derive(Debug)]
        pub struct $inner { $($fields)* }

        impl std::ops::Deref for $state {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}

pub mod authz;
pub mod bearer;
pub mod binding;
pub mod cli;
pub mod console;
pub mod error;
pub mod factory_client;
pub mod gateway_config;
pub mod gateway_identity;
pub mod jwks;
pub mod key_set;
pub mod keygen;
pub mod mesh_config;
pub mod receiver;
pub mod scenario6;
pub mod scenarios;
pub mod self_signed;
pub mod servicea;
pub mod settings;
pub mod sidecar_identity;
pub mod sts_client;
pub mod token_check;
pub mod verifier;

use axum::{
    Json, Router, extract::DefaultBodyLimit, http::StatusCode, response::IntoResponse, routing::get,
};
use serde_json::json;

pub use cli::Role;

/// Largest request body accepted: no endpoint of the services reads one.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every listener of every role has: `/hello`, JSON 404 and 405,
/// a body limit, request ids and one log span per request, and the
/// console's trace when a caller asks for it ([`s2s_web::trace`]).
pub(crate) fn finish(router: Router, name: &str, shortcuts: bool) -> Router {
    let not_found = format!("no such endpoint on {name} (see docs/reference.md)");
    let router = router
        .route("/hello", get(hello))
        .fallback(
            move || async move { (StatusCode::NOT_FOUND, Json(json!({ "message": not_found }))) },
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // The console's trace header is a workshop shortcut: off with PRODUCTION.
    let router = if shortcuts {
        router.layer(s2s_web::trace::layer(name))
    } else {
        router
    };
    s2s_web::request_tracing::with_request_tracing(router)
}

async fn hello() -> &'static str {
    "hello"
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "message": "method not allowed on this endpoint" })),
    )
}
