//! # jwt-factory
//!
//! The token service of the workshop: it creates a key pair per key id (RSA-2048
//! by default, EC or Ed25519 with `ALGORITHM=ES256|ES384|EdDSA`),
//! issues JWTs signed with it, and verifies tokens for services that would
//! rather not hold keys (scenarios 1 and 2).
//!
//! ```text
//! cargo run --release --bin jwt-factory            # :5555, loads keys/ if present
//! curl localhost:5555/keys/servicea                # new key pair for servicea
//! curl -X POST localhost:5555/issueToken/servicea -H 'content-type: application/json' \
//!      -d '{"aud":"serviceb"}'
//! curl -X POST localhost:5555/verify/servicea -H 'content-type: application/json' \
//!      -d '{"token":"<token>","aud":"serviceb","sub":"servicea"}'
//! curl -X POST localhost:5555/utils/dump           # keep keys across restarts
//! ```
//!
//! | request | answer |
//! | --- | --- |
//! | `GET`/`POST /keys/{keyId}` | new key pair: `{"publicKey": base64 PEM}` |
//! | `POST /issueToken/{keyId}[?expired=1]` | the token, `text/plain` |
//! | `POST /verify/{keyId}` | `{"valid", "claims"}`, 403 with the reason |
//! | `POST /keys/{keyId}/rotate[?emergency=1]` | publishes a next key now, signing after `ROTATION_PUBLISH_AHEAD_SECS`; the old one verifies until its tokens expire (see [`keystore`] and `docs/rotation.md`) |
//! | `GET /.well-known/jwks.json` | every public key that verifies (next, current, retiring), as a JWK Set (RFC 7517) |
//! | `GET /utils/publicKey/{keyId}` | `{"publicKey": base64 PEM}` |
//! | `GET /utils/keys` | `["servicea", ...]` |
//! | `GET /utils/keys/{keyId}/status` | each key of keyId with its phase (next, current, retiring) and times |
//! | `POST /utils/dump`, `POST /dump` | writes `KEYS_DIR/{keyId}-{public,private}.pem` |
//! | `POST /token` | OAuth 2.0 client credentials with `private_key_jwt`: an RFC 9068 access token (see [`oauth`]) |
//! | `POST /introspect` | RFC 7662: `{"active": true, ...claims}` or `{"active": false}` |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//!
//! # Layout
//!
//! - [`config`]: flags and env variables (`jwt-factory --help`).
//! - [`keystore`]: the key pairs, in memory and in `KEYS_DIR`.
//! - [`new_key_ids`]: how fast new key ids may be created.
//! - [`routes`]: one module per endpoint group.
//! - [`oauth`]: `POST /token`, `/introspect`, the metadata, the client
//!   registry, client assertions (scenario 6).
//! - [`error`]: every failure, and the one place it becomes a JSON response.

pub mod config;
pub mod error;
pub mod keystore;
pub mod new_key_ids;
pub mod oauth;
pub mod routes;

use std::{future::Future, sync::Arc};

use s2s_web::{request_tracing::with_request_tracing, shutdown};

use axum::middleware::from_fn_with_state;
use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use axum_server::tls_rustls::RustlsConfig;
use s2s_web::guard::require_json;
use serde_json::json;
use tokio::net::TcpListener;

/// The key of the factory's JSON errors: `{"error": "..."}`.
const ERROR_KEY: &str = "error";

pub use config::Config;
pub use keystore::KeyStore;

/// Largest request body accepted: claims and tokens are well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The key pairs; shared because `/keys` writes while others read.
    pub keys: Arc<KeyStore>,
    /// Issuer, algorithm, lifetimes: read-only after start-up.
    pub config: Arc<Config>,
    /// Key generations running at once (RSA-2048 takes tens of ms of CPU).
    pub keygen: Arc<tokio::sync::Semaphore>,
    /// `POST /token` and `/introspect`: the client registry, used `jti`s.
    pub oauth: Arc<oauth::Oauth>,
    /// How fast `/keys/{keyId}` may create new key ids.
    pub new_key_ids: Arc<new_key_ids::NewKeyIdRate>,
}

/// At most this many key pairs are generated at once.
pub const KEYGEN_AT_ONCE: usize = 2;

impl AppState {
    /// State for `config`, with the key pairs found in its `keys_dir`.
    pub fn load(config: Config) -> Self {
        Self {
            keys: Arc::new(KeyStore::load(
                &config.keys_dir,
                config.algorithm,
                keystore::Windows {
                    overlap_secs: config.rotation_overlap_secs(),
                    publish_ahead_secs: config.publish_ahead_secs(),
                },
            )),
            oauth: Arc::new(oauth::Oauth::new(&config)),
            new_key_ids: Arc::new(new_key_ids::NewKeyIdRate::new(
                config.new_key_ids_per_minute,
            )),
            config: Arc::new(config),
            keygen: Arc::new(tokio::sync::Semaphore::new(KEYGEN_AT_ONCE)),
        }
    }
}

/// The factory's routes, without a socket: tests call it directly too.
pub fn app(state: AppState) -> Router {
    let production = state.config.production.production;
    let router = Router::new()
        .merge(key_management(
            production.then(|| Arc::new(state.config.admin_principal())),
        ))
        .route("/.well-known/jwks.json", get(routes::keys::jwks))
        .route("/token", post(oauth::token::token))
        .route("/introspect", post(oauth::introspect::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata::metadata),
        )
        .route("/utils/publicKey/{keyId}", get(routes::keys::public_key))
        .route("/utils/keys", get(routes::keys::list))
        .route("/utils/keys/{keyId}/status", get(routes::keys::status))
        .merge(shortcut(state.config.issue_token_shortcut()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    // The console's trace is a workshop shortcut: off in production.
    let router = if production {
        router
    } else {
        router.layer(s2s_web::trace::layer("jwt-factory"))
    };
    with_request_tracing(router)
}

/// The routes that create, rotate and dump keys. With PRODUCTION
/// (`admin` = ADMIN_PRINCIPAL), only that workload identity may call them,
/// over mTLS: a local process or a web page without its certificate gets
/// a 403 that says so.
fn key_management(admin: Option<Arc<String>>) -> Router<AppState> {
    let router = Router::new()
        .route(
            "/keys/{keyId}",
            get(routes::keys::create).post(routes::keys::create),
        )
        .route("/keys/{keyId}/rotate", post(routes::keys::rotate))
        .route("/utils/dump", post(routes::keys::dump))
        .route("/dump", post(routes::keys::dump));
    match admin {
        Some(admin) => router.route_layer(from_fn_with_state(admin, admin_only)),
        None => router,
    }
}

/// Lets a request through only from the client certificate of `admin`.
async fn admin_only(
    axum::extract::State(admin): axum::extract::State<Arc<String>>,
    cert: s2s_web::identity::ClientCert,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match cert.identity() {
        Some(id) if id.principal == *admin => {
            tracing::info!(
                "key management by {} (client certificate, PRODUCTION)",
                id.principal
            );
            next.run(request).await
        }
        other => {
            let who = other.map_or("no client certificate".to_owned(), |id| {
                id.principal.clone()
            });
            tracing::warn!("key management refused: {who} is not {admin} (PRODUCTION)");
            (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": format!(
                        "key management needs the admin identity ({admin}) over mTLS on the https \
                         listener (PRODUCTION: anonymous key management is off); this request came \
                         from {who}"
                    )
                })),
            )
                .into_response()
        }
    }
}

/// The seed's shortcut, `/issueToken` and `/verify`: served as they were,
/// or, with `ISSUE_TOKEN_SHORTCUT=false`, a 403 that points to `/token`.
fn shortcut(on: bool) -> Router<AppState> {
    if on {
        Router::new()
            // They read a JSON body: any other content type is a 415, so a
            // web page cannot post a form or text/plain to them.
            .route(
                "/issueToken/{keyId}",
                post(routes::tokens::issue).layer(from_fn_with_state(ERROR_KEY, require_json)),
            )
            .route(
                "/verify/{keyId}",
                post(routes::verify::verify).layer(from_fn_with_state(ERROR_KEY, require_json)),
            )
    } else {
        Router::new()
            .route("/issueToken/{keyId}", post(oauth::shortcut_off))
            .route("/verify/{keyId}", post(oauth::shortcut_off))
    }
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "no such endpoint" })),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed on this endpoint" })),
    )
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_https(listener, None, state, shutdown).await
}

/// As [`run`], also serving `https` (its listener and TLS configuration,
/// with client certificates: scenario 8's bound tokens).
pub async fn run_with_https(
    listener: TcpListener,
    https: Option<(TcpListener, RustlsConfig)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if state.config.production.production {
        tracing::info!(
            "PRODUCTION: every workshop shortcut is off (/issueToken and /verify, anonymous key \
             management: only {} over mTLS, the trace header, permissive mTLS)",
            state.config.admin_principal()
        );
    } else if state.config.issue_token_shortcut() {
        tracing::warn!(
            "the seed's shortcut is on: /issueToken gives a token to anyone who asks \
             (ISSUE_TOKEN_SHORTCUT=false turns it off; POST /token authenticates its callers)"
        );
    }
    match state.oauth.clients.get() {
        Ok(r) => tracing::info!(
            "POST /token: {} registered clients in {}",
            r.clients.len(),
            state.oauth.clients.path().display()
        ),
        Err(e) => tracing::warn!("POST /token will refuse every client until this is fixed: {e}"),
    }
    let handle = shutdown::handle_on(shutdown);
    let options = state.config.serve_options();
    let https = https.map(|(listener, tls)| s2s_web::serve::Listener {
        listener,
        router: app(state.clone()),
        tls: Some(tls),
        note: format!(
            " (client certificates: {}; POST /token over mTLS binds tokens to the certificate)",
            state.config.effective_mtls_mode()
        ),
    });
    let plain = s2s_web::serve::Listener {
        listener,
        router: app(state.clone()),
        tls: None,
        note: format!(
            " ({} keys loaded from {}, algorithm {}, issuer {})",
            state.keys.ids().len(),
            state.keys.dir().display(),
            state.config.algorithm,
            state.config.issuer,
        ),
    };
    s2s_web::serve::serve_pair("jwt-factory", plain, https, handle, &options).await?;
    tracing::info!("jwt-factory stopped");
    Ok(())
}
