//! What every listener of every role has, added in one place: `/hello`,
//! JSON 404 and 405, a body limit, request ids and one log span per
//! request, and the console's trace when a caller asks for it.

use axum::{
    Json, Router, extract::DefaultBodyLimit, http::StatusCode, response::IntoResponse, routing::get,
};
use serde_json::json;

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
