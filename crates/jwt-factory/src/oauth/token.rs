//! `POST /token`: the client credentials grant (RFC 6749 §4.4) with
//! `private_key_jwt` client authentication, answering with an RFC 9068 JWT
//! access token.
//!
//! ```text
//! grant_type=client_credentials
//! &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
//! &client_assertion=<JWT signed by the client>
//! &audience=serviceb            (or resource=serviceb, RFC 8707)
//! ```
//!
//! The token: header `typ: at+jwt` and `kid`; claims `iss` (the issuer),
//! `sub` and `client_id` (the authenticated client: never taken from the
//! request), `aud` (the one requested audience), `iat`, `exp`
//! (`ACCESS_TOKEN_LIFETIME_SECS`, default 300) and a fresh `jti`. It is
//! signed with the factory's current key for the client's key id, so it is
//! verified with the JWK Set like scenario 5's tokens. The factory never
//! creates that key on demand: without it the answer is a 503 that says
//! how to create it.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use s2s_auth::{
    KeyId,
    jws::{self, Claims},
    untrusted,
};
use s2s_web::identity::ClientCert;
use serde_json::json;

use super::{
    ACCESS_TOKEN_TYP, Form, OAuthError, assertion::authenticate, clients::Client, no_store,
};
use crate::{error::FactoryError, keystore::Entry, state::AppState};

/// RFC 8705 §3: over mTLS, the token is bound to the client's certificate.
/// The certificate must name the same workload as the authenticated client
/// (exactly `<trust domain>/ns/default/sa/<client_id>`): one client cannot
/// get a token bound to another's certificate. Without a certificate
/// (plain http, or permissive https without one), the token is a plain
/// bearer token.
fn bound_certificate(
    cert: &ClientCert,
    trust_domain: &str,
    client_id: &str,
) -> Result<Option<String>, OAuthError> {
    match cert {
        ClientCert::None => Ok(None),
        ClientCert::Unusable(why) => Err(OAuthError::invalid_client(format!(
            "client certificate cannot bind a token: {why}"
        ))),
        ClientCert::Verified(id) => {
            if id.principal == format!("{trust_domain}/ns/default/sa/{client_id}") {
                Ok(Some(id.thumbprint.clone()))
            } else {
                Err(OAuthError::invalid_client(format!(
                    "client certificate names {}, not client {client_id}",
                    id.principal
                )))
            }
        }
    }
}

/// The `aud` values an assertion sent to `endpoint` may carry: the
/// issuer, the endpoint's URL, and (with the https listener) its RFC 8705
/// mTLS alias, as the metadata advertises them.
pub fn assertion_audiences(state: &AppState, endpoint: &str) -> Vec<String> {
    let mut audiences = vec![
        state.config.issuer.clone(),
        format!("{}{endpoint}", state.config.public_base()),
    ];
    if let Some(mtls) = state.config.mtls_base() {
        audiences.push(format!("{mtls}{endpoint}"));
    }
    audiences
}

pub async fn token(
    State(state): State<AppState>,
    cert: ClientCert,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = Form::parse(&headers, body)?;
    check_grant_type(&form)?;
    let auth = authenticate(&state, &form, &assertion_audiences(&state, "/token")).await?;
    let client = &auth.client;
    let id = &client.id;
    let audience = audience_of(&form, client)?;
    let bound_to = bound_certificate(&cert, &state.config.listener.trust_domain, id.as_str())?;
    let entry = state.keys.get(id).ok_or_else(|| {
        OAuthError::unavailable(format!(
            "jwt-factory holds no signing key for {id}: create it with GET /keys/{id}"
        ))
    })?;
    // Every check passed: only now does the assertion's jti count as used,
    // so a refused request can be sent again, fixed.
    auth.spend_jti(&state).await?;
    let lifetime = state.config.access_token_lifetime_secs;
    let (token, exp, jti) = sign(&state, &entry, id, audience, bound_to.as_deref()).await?;
    tracing::info!(
        client = %id,
        "issued an access token: sub {id}, aud {audience}, typ at+jwt, kid {}, expires in {lifetime} s (exp {exp}), jti {jti}{}",
        entry.kid(),
        bound_to
            .as_deref()
            .map(|t| format!(", bound to the client certificate (cnf x5t#S256 {t})"))
            .unwrap_or_default()
    );
    let mut response = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }))
    .into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// `grant_type` must be `client_credentials`, the one grant served here.
fn check_grant_type(form: &Form) -> Result<(), OAuthError> {
    match form.get("grant_type") {
        Some("client_credentials") => Ok(()),
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {:?} is not supported: use client_credentials",
            untrusted(other)
        ))),
        None => Err(OAuthError::invalid_request("grant_type missing")),
    }
}

/// The one audience asked for (`audience`, or `resource` of RFC 8707; both
/// only if they agree), which must be one `client` may have.
fn audience_of<'a>(form: &'a Form, client: &Client) -> Result<&'a str, OAuthError> {
    let audience = match (form.get("resource"), form.get("audience")) {
        (Some(r), Some(a)) if r != a => {
            return Err(OAuthError::invalid_target(
                "resource and audience name different audiences: ask for one",
            ));
        }
        (Some(one), _) | (None, Some(one)) => one,
        (None, None) => {
            return Err(OAuthError::invalid_request(
                "name the one audience the token is for: audience=<service> (or resource=<service>)",
            ));
        }
    };
    if KeyId::parse(audience).is_err() || !client.audiences.iter().any(|a| a == audience) {
        let allowed = if client.audiences.is_empty() {
            "none".to_owned()
        } else {
            client.audiences.join(", ")
        };
        return Err(OAuthError::invalid_target(format!(
            "{} may not ask for a token for {:?} (allowed: {allowed})",
            client.id,
            untrusted(audience)
        )));
    }
    Ok(audience)
}

/// The access token for `id` and `audience`, signed with `entry`, bound to
/// a certificate thumbprint if there is one: the token, its `exp`, its `jti`.
async fn sign(
    state: &AppState,
    entry: &Entry,
    id: &KeyId,
    audience: &str,
    bound_to: Option<&str>,
) -> Result<(String, i64, String), OAuthError> {
    let mut claims = Claims::new();
    claims.insert("iss".into(), state.config.issuer.clone().into());
    claims.insert("sub".into(), id.to_string().into());
    claims.insert("aud".into(), audience.into());
    claims.insert("client_id".into(), id.to_string().into());
    let exp = jws::set_times(&mut claims, state.config.access_token_lifetime_secs, false);
    let jti = uuid::Uuid::new_v4().to_string();
    claims.insert("jti".into(), jti.clone().into());
    if let Some(thumbprint) = bound_to {
        claims.insert("cnf".into(), json!({ "x5t#S256": thumbprint }));
    }
    let token = state
        .custody
        .sign(entry, state.config.algorithm, &claims, ACCESS_TOKEN_TYP)
        .await
        .map_err(|e| match e {
            // OpenBao down or refusing: say so (it names OpenBao and where).
            FactoryError::Unavailable(why) => OAuthError::unavailable(why),
            other => {
                tracing::error!(error = %other, "signing an access token failed");
                OAuthError::unavailable("signing failed (see the factory's log)")
            }
        })?;
    Ok((token, exp, jti))
}
