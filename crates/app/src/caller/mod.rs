//! servicea, the caller: gets or signs tokens and calls serviceb/servicec.
//!
//! Its arguments ([`Args`]) are only what servicea reads; they are turned
//! into [`Settings`] once at start, and every handler shares one [`State`]:
//! one plain http client, https clients trusting only our CA, and its
//! scenario-3 signing key, parsed once and reloaded when the file changes.
//!
//! Every TLS client is pinned to the peer it calls (`TlsPeers`): one
//! client per peer, which completes a handshake only with a server whose
//! workload certificate names that peer's SPIFFE ID
//! (`spiffe://TRUST_DOMAIN/ns/default/sa/<name>`, [`s2s_web::peer_pin`]).
//! The CA and the name `localhost` alone would let any workload stand in
//! for any other: every workload certificate is valid for `localhost`.

mod args;
mod console;
mod fetch_token;
mod keygen;
mod legs;
mod plan;
mod scenario6_token;
mod self_key;
mod self_signed;
mod state;
mod sts_client;
mod tls_peers;

use axum::{
    Router,
    routing::{get, post},
};
use tokio::net::TcpListener;

pub use args::{Args, Settings};
pub use fetch_token::Grant;
pub use keygen::generate as generate_keys;
pub use self_key::SelfKeyBackend;
pub use state::State;
pub use sts_client::Cached;

use crate::scenarios;

/// servicea's routes: one per scenario of the table, `/gen-keys`, `/hello`.
pub fn router(state: State) -> Router {
    let router = scenarios::SCENARIOS
        .iter()
        .fold(Router::new(), |router, s| {
            router.route(
                &s.path(),
                get(move |state, rid, query| legs::run(s, state, rid, query)),
            )
        })
        .route("/scenario6/token", get(scenario6_token::ask));
    // Workshop shortcuts, off with PRODUCTION: anonymous key management
    // and the console (whose pictures are the trace).
    let shortcuts = state.settings.common.shortcuts;
    let router = if shortcuts {
        router
            .route("/gen-keys", post(keygen::route))
            .merge(console::routes())
    } else {
        router.route("/gen-keys", post(keygen::off_in_production))
    };
    let name = state.name().to_owned();
    crate::common_routes::finish(router.with_state(state), &name, shortcuts)
}

/// Serves servicea on `http` until `shutdown` resolves.
pub async fn run(
    state: State,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = s2s_web::shutdown::handle_on(shutdown);
    let name = state.name().to_owned();
    let options = state.settings.common.serve.clone();
    tracing::info!("{name} listening on http://{}", http.local_addr()?);
    // A rotation of the scenario-3 key cut short by a stop completes now.
    keygen::resume_rotation(&state);
    s2s_web::serve::serve(http, router(state), None, handle, &options).await?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// servicea as `app servicea` runs it: listens where `settings` say and
/// serves until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let http = settings.common.bind().await?;
    let state = State::open(settings).await?;
    run(state, http, s2s_web::shutdown::signal()).await?;
    Ok(())
}
