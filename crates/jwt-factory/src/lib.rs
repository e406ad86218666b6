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
//! - `state`: what every handler shares ([`AppState`]).
//! - `router`: which handler serves which path ([`app`]).
//! - [`keystore`]: the key pairs, in memory and in `KEYS_DIR`.
//! - [`custody`]: who holds the private keys (`KEY_BACKEND`): this
//!   process, or OpenBao's Transit engine, which signs for the factory.
//! - [`new_key_ids`]: how fast new key ids may be created.
//! - [`routes`]: one module per endpoint group.
//! - [`oauth`]: `POST /token`, `/introspect`, the metadata, the client
//!   registry, client assertions (scenario 6).
//! - [`error`]: every failure, and the one place it becomes a JSON response.

pub mod config;
pub mod custody;
pub mod error;
pub mod keystore;
pub mod new_key_ids;
pub mod oauth;
mod router;
pub mod routes;
mod state;

use std::future::Future;

use axum_server::tls_rustls::RustlsConfig;
use s2s_web::shutdown;
use tokio::net::TcpListener;

pub use config::Config;
pub use config::MAX_BODY_BYTES;
pub use keystore::KeyStore;
pub use router::app;
pub use state::{AppState, KEYGEN_AT_ONCE};

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
            match &*state.custody {
                custody::Custody::Files => state.keys.dir().display().to_string(),
                custody::Custody::OpenBao(v) => format!("OpenBao at {}", v.bao.addr()),
            },
            state.config.algorithm,
            state.config.issuer,
        ),
    };
    s2s_web::serve::serve_pair("jwt-factory", plain, https, handle, &options).await?;
    tracing::info!("jwt-factory stopped");
    Ok(())
}
