//! The receiver's side of the gateway (scenario 9): identity headers
//! (`X-Jwt-*`) are believed only from the gateway.
//!
//! Anyone can send `X-Jwt-Sub: admin`. So a receiver takes those headers
//! only on an mTLS connection whose client certificate is the gateway's
//! workload identity (`GATEWAY_PRINCIPAL`, default
//! `cluster.local/ns/default/sa/gateway`). [`guard`] runs on every path
//! of both listeners: a request carrying any `X-Jwt-*` header from anyone
//! else is refused (401) and logged as an attempt, whatever the path.
//! [`via_gateway`] is `/scenario9-server`: it answers the identity it was
//! handed.

use axum::{
    Json,
    extract::{MatchedPath, Request, State as Shared},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use s2s_web::identity::ClientCert;
use serde_json::{Value, json};

use super::state::State;
use crate::{error::AppError, identity_headers::IDENTITY_HEADERS};

/// Whether `cert` is the gateway's.
fn is_gateway(gateway_principal: &str, cert: &ClientCert) -> bool {
    cert.identity()
        .is_some_and(|id| id.principal == gateway_principal)
}

/// Refuses `X-Jwt-*` headers from anyone but the gateway.
pub(super) async fn guard(
    Shared(state): Shared<State>,
    cert: ClientCert,
    request: Request,
    next: Next,
) -> Response {
    let forged = request
        .headers()
        .keys()
        .any(|name| name.as_str().starts_with("x-jwt-"));
    if forged && !is_gateway(&state.settings.gateway_principal, &cert) {
        let who = cert
            .identity()
            .map_or("no client certificate".to_owned(), |id| {
                id.principal.clone()
            });
        tracing::warn!(
            path = %s2s_auth::untrusted(request.uri().path()),
            "ATTEMPT: X-Jwt-* identity headers from {who}, not the gateway: refused"
        );
        return AppError::NoIdentity(format!(
            "X-Jwt-* identity headers are accepted only from the gateway ({}) over mTLS; \
             this request came from {who}",
            state.settings.gateway_principal
        ))
        .into_response();
    }
    next.run(request).await
}

/// `/scenario9-server`: the identity the gateway verified and forwarded.
pub(super) async fn via_gateway(
    Shared(state): Shared<State>,
    path: MatchedPath,
    cert: ClientCert,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    if !is_gateway(&state.settings.gateway_principal, &cert) {
        return Err(AppError::NoIdentity(format!(
            "{} is served through the gateway only: the connection must be the gateway's ({})",
            path.as_str(),
            state.settings.gateway_principal
        )));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut identity = serde_json::Map::new();
    for (name, claim) in IDENTITY_HEADERS {
        if let Some(v) = header(name) {
            identity.insert(claim.to_owned(), v.into());
        }
    }
    let (Some(sub), Some(aud)) = (header("x-jwt-sub"), header("x-jwt-aud")) else {
        return Err(AppError::NoIdentity(
            "the gateway forwarded no identity (X-Jwt-Sub, X-Jwt-Aud)".to_owned(),
        ));
    };
    // Defense in depth: the gateway's route and this receiver must agree.
    if aud != state.name() {
        return Err(AppError::NoIdentity(format!(
            "the gateway forwarded an identity for {}, not {}",
            s2s_auth::untrusted(aud),
            state.name()
        )));
    }
    identity.insert("via".to_owned(), "gateway".into());
    let (sub, aud) = (s2s_auth::untrusted(sub), s2s_auth::untrusted(aud));
    tracing::info!(
        "{}: identity from the gateway (verified there, over mTLS from {}): sub {sub}, aud {aud}",
        path.as_str(),
        state.settings.gateway_principal
    );
    s2s_web::trace::check(|| {
        s2s_web::trace::Verdict::allowed(format!(
            "identity headers believed from the gateway's certificate ({}): sub {sub}, aud {aud}",
            state.settings.gateway_principal
        ))
    });
    Ok(Json(json!({ "valid": true, "identity": identity })))
}
