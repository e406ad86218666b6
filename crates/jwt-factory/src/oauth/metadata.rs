//! `GET /.well-known/oauth-authorization-server`: the authorization server
//! metadata (RFC 8414), so a standard client finds the token endpoint, the
//! JWK Set and what the factory accepts without being told.
//!
//! `/.well-known/openid-configuration` is not served: this is not an
//! OpenID provider (no ID tokens, no authorization endpoint), and a
//! half-complete OpenID document would mislead OIDC clients.
//!
//! No `authorization_endpoint`: RFC 8414 makes it optional when no grant
//! uses it, and client credentials does not. `response_types_supported` is
//! required by RFC 8414; it is empty for the same reason.
//!
//! With the https listener on (`START_HTTPS`), the document says that
//! tokens fetched over mTLS are bound to the client certificate, and where
//! (RFC 8705 §3.3 and §5: `tls_client_certificate_bound_access_tokens`,
//! `mtls_endpoint_aliases`). The aliases are built from `MTLS_PUBLIC_URL`
//! (default `https://localhost:<HTTPS_PORT>`), the name clients reach the
//! https listener by, and client assertions may name them as `aud`.

use axum::{Json, extract::State, http::header, response::IntoResponse};
use serde_json::json;

use super::{JWT_BEARER, assertion_algorithms};
use crate::state::AppState;

pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let base = state.config.public_base();
    let algs = assertion_algorithms(state.config.algorithm);
    let mut doc = json!({
            "issuer": state.config.issuer,
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{base}/introspect"),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "client_assertion_types_supported": [JWT_BEARER],
    });
    if let Some(mtls) = state.config.mtls_base() {
        doc["tls_client_certificate_bound_access_tokens"] = true.into();
        doc["mtls_endpoint_aliases"] = json!({
            "token_endpoint": format!("{mtls}/token"),
            "introspection_endpoint": format!("{mtls}/introspect"),
        });
    }
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc))
}
