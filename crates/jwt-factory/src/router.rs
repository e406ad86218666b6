//! The factory's routes, without a socket ([`app`]): which handler serves
//! which path, the key-management guard of PRODUCTION, the seed's shortcut,
//! and the JSON 404 and 405.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use s2s_web::{guard::require_json, request_tracing::with_request_tracing};
use serde_json::json;

use crate::{error::ERROR_KEY, oauth, routes, state::AppState};

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
        .layer(DefaultBodyLimit::max(crate::config::MAX_BODY_BYTES))
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
