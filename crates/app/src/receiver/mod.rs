//! serviceb and servicec, the receivers: each checks the caller's bearer
//! token, in the way its scenario teaches.
//!
//! | check | scenarios | how |
//! | --- | --- | --- |
//! | [`Check::Factory`] | 1, 2 | ask jwt-factory (`/verify/servicea`, `aud` = own name, `sub` = servicea): the receiver holds no key |
//! | [`Check::CallerKey`] | 3, 4 | verify locally, over https only, with servicea's public key file |
//! | [`Check::Jwks`] | 5 | verify locally with the factory's key named by the token's `kid`, from a cached JWK Set (`crate::jwks`) |
//! | [`Check::Sts`] | 6 | as 5, and `typ: at+jwt` and `client_id` (`access_token`) |
//! | [`Check::Identity`] | 7 | no token: the mTLS client certificate's SPIFFE ID, allowed by the policy (`authz`) |
//! | [`Check::BoundSts`] | 8 | as 6, over mTLS, and the token's `cnf` must match the client certificate (`crate::binding`) |
//! | [`Check::Gateway`] | 9 | none here: the gateway verified the token; the identity headers are believed from the gateway's certificate alone (`gateway_identity`) |
//! | [`Check::Mesh`] | 10 | none here: the sidecar verified mTLS, the token and the policy; the receiver reads `x-forwarded-client-cert` and `x-mesh-jwt-payload` (`sidecar_identity`) |
//!
//! The routes come from the scenario table: each scenario's receiver path
//! is served on the listener its check needs (https for `CallerKey`).

mod access_token;
mod args;
mod authz;
mod checks;
mod gateway_identity;
mod sidecar_identity;
mod state;

use axum::{
    Router,
    routing::{MethodRouter, get},
};
use axum_server::tls_rustls::RustlsConfig;
use s2s_web::{
    serve::{Listener, serve_pair},
    tls::MtlsMode,
};
use tokio::net::TcpListener;

pub use args::{Args, Settings};
pub use state::State;

use crate::{
    binding::Binding,
    scenarios::{Check, SCENARIOS},
    settings::bind,
};

/// The handler for a way of checking tokens.
fn handler(check: Check) -> MethodRouter<State> {
    match check {
        Check::Factory => get(checks::via_factory),
        Check::CallerKey => get(checks::via_caller_key),
        Check::Jwks => get(checks::via_jwks),
        Check::Sts => get(|s, p, r, c, t| access_token::check(s, p, r, c, t, Binding::IfPresent)),
        Check::Identity => get(checks::via_identity),
        Check::BoundSts => {
            get(|s, p, r, c, t| access_token::check(s, p, r, c, t, Binding::Required))
        }
        Check::Gateway => get(gateway_identity::via_gateway),
        Check::Mesh => get(sidecar_identity::via_sidecar),
    }
}

/// The receiver paths of every scenario whose check runs over plain http
/// (`tls: false`) or https (`tls: true`).
fn routes(state: State, tls: bool) -> Router {
    let name = state.name().to_owned();
    let router = SCENARIOS
        .iter()
        .filter(|s| s.check.over_tls() == tls)
        .fold(Router::new(), |router, s| {
            router.route(&s.receiver_path(), handler(s.check))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gateway_identity::guard,
        ));
    let shortcuts = state.settings.common.shortcuts;
    crate::common_routes::finish(router.with_state(state), &name, shortcuts)
}

/// The plain-http routes: scenarios checked via the factory or the JWK Set.
pub fn http_router(state: State) -> Router {
    routes(state, false)
}

/// The https routes: scenarios 3-4 are only served over TLS, so a
/// self-signed token never crosses the wire in clear text.
pub fn https_router(state: State) -> Router {
    routes(state, true)
}

/// Serves `http` (and `https`, with its TLS config, if given) until
/// `shutdown` resolves; then both listeners stop accepting and in-flight
/// requests get [`s2s_web::shutdown::DRAIN`] to finish.
pub async fn run(
    state: State,
    http: TcpListener,
    https: Option<(TcpListener, RustlsConfig)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One handle for both listeners: one signal stops both.
    let handle = s2s_web::shutdown::handle_on(shutdown);
    let name = state.name().to_owned();
    let options = state.settings.common.serve.clone();
    // Scenario 5: keep the cached JWK Set fresh in the background. The
    // task is aborted when `run` returns (or is dropped), so it stops with
    // the server.
    let _refresher = s2s_web::shutdown::AbortOnDrop(tokio::spawn({
        let state = state.clone();
        async move { state.jwks.refresh_in_background(&state.http).await }
    }));

    let mode = state
        .settings
        .https
        .as_ref()
        .map_or(MtlsMode::Off, |h| h.tls.mode);
    let https = https.map(|(listener, config)| Listener {
        listener,
        router: https_router(state.clone()),
        tls: Some(config),
        note: format!(" (certificate from gen-certs; client certificates: {mode})"),
    });
    let plain = Listener {
        listener: http,
        router: http_router(state),
        tls: None,
        note: String::new(),
    };
    serve_pair(&name, plain, https, handle, &options).await?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// A receiver as `app serviceb` runs it: listens where `settings` say
/// (and on https, if set) and serves until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let https = match &settings.https {
        Some(h) => {
            let config = s2s_web::tls::server_config(&h.tls).await?;
            let listener = bind(settings.common.host, h.port, "https port ").await?;
            Some((listener, config))
        }
        None => None,
    };
    let http = settings.common.bind().await?;
    let state = State::new(settings)?;
    run(state, http, https, s2s_web::shutdown::signal()).await?;
    Ok(())
}
