//! The gateway's verifier (scenario 9): nginx asks it about every request
//! (`auth_request`) before forwarding, so a token is verified once, at the
//! edge, and the services behind get the caller's identity as headers.
//!
//! `GET /auth/{service}` verifies the bearer token locally, with the
//! factory's key named by its `kid`, from the cached JWK Set (scenario 5's
//! cache: fetched when needed, refreshed in the background, stale-while-down,
//! rotation-safe): the pinned algorithm, `iss` the factory, `sub` the
//! caller, `exp`, and `aud` = the service the route leads to
//! (`/serviceb/...` needs a token for serviceb).
//!
//! Which tokens, and what is forwarded, follows who vouched for each claim:
//!
//! | token | accepted | forwarded |
//! | --- | --- | --- |
//! | the STS's access token (`POST /token`, `typ: at+jwt`) | always; `client_id` must equal `sub` | `X-Jwt-Sub`, `X-Jwt-Aud`, `X-Jwt-Client-Id`, `X-Jwt-Jti`: the factory set each one for a client it authenticated |
//! | `/issueToken`'s (`typ: JWT`) | only with the workshop's shortcuts on (not with `PRODUCTION`) | `X-Jwt-Sub`, `X-Jwt-Aud` only: anyone may ask `/issueToken` for any `client_id` and `jti`, so those are never forwarded from such a token |
//!
//! - 200: the identity, as headers nginx copies onto the forwarded request.
//! - 401/403: the services' JSON body, also in the header `X-Auth-Body`.
//!   nginx relays no subrequest body, so its `error_page` answers with
//!   that header's value: the client sees the same JSON a service would
//!   send, never nginx's HTML. (`auth_request` passes on 401 and 403 only:
//!   anything else becomes nginx's 503, so a route the verifier does not
//!   know is a 403 that says so.)
//!
//! It listens on loopback, plain http: only nginx calls it.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State as Shared},
    http::{HeaderName, HeaderValue, Response, StatusCode},
    response::IntoResponse,
    routing::get,
};
use clap::Args as ClapArgs;
use s2s_auth::{
    Expectations, JwtError,
    verify::{TYP_ACCESS_TOKEN, declares_typ},
};
use s2s_web::{
    outbound::{self, ClientError},
    request_tracing::RequestId,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    bearer::BearerToken,
    error::AppError,
    identity_headers::IDENTITY_HEADERS,
    jwks::JwksCache,
    role::Role,
    settings::{Common, CommonArgs, key_id},
    token_check::{JwksSettings, TokenCheckArgs},
};

/// The header that carries a refusal's JSON body to nginx.
const AUTH_BODY: &str = "x-auth-body";

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    #[command(flatten)]
    pub(crate) tokens: TokenCheckArgs,

    /// The services the gateway routes to (comma-separated): `/auth/NAME`
    /// checks that the token is for NAME (`aud`).
    #[arg(long, env = "GATEWAY_ROUTES", value_delimiter = ',',
          default_value = crate::defaults::receiver_names(), value_parser = key_id)]
    pub(crate) routes: Vec<String>,
}

/// What a token for one route's service must satisfy.
#[derive(Clone, Debug)]
pub struct RouteChecks {
    /// The STS's access tokens (`typ: at+jwt`).
    pub(crate) access: Expectations,
    /// `/issueToken`'s tokens (`typ: JWT`): `None` when the workshop's
    /// shortcuts are off, so only access tokens pass.
    pub(crate) shortcut: Option<Expectations>,
}

/// [`Args`] as typed values.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) common: Common,
    pub(crate) caller: String,
    /// What a token for each route's service must satisfy.
    pub(crate) routes: HashMap<String, RouteChecks>,
    pub(crate) jwks: JwksSettings,
}

impl Args {
    pub fn settle(self) -> Settings {
        let common = self.common.settle(Role::Verifier);
        let routes = self
            .routes
            .iter()
            .map(|service| {
                let shortcut = self.tokens.factory_token(common.algorithm, service.clone());
                let checks = RouteChecks {
                    access: Expectations {
                        typ: s2s_auth::verify::TYP_ACCESS_TOKEN,
                        ..shortcut.clone()
                    },
                    shortcut: common.shortcuts.then_some(shortcut),
                };
                (service.clone(), checks)
            })
            .collect();
        Settings {
            jwks: self.tokens.jwks(&common.factory),
            caller: self.tokens.caller,
            common,
            routes,
        }
    }
}

shared_state! {
    /// What the verifier's handler shares.
    State => Inner {
        pub(crate) settings: Settings,
        pub(crate) http: reqwest::Client,
        pub(crate) jwks: JwksCache,
    }
}

impl State {
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let http = outbound::client(settings.common.timeouts, None)?;
        let jwks = JwksCache::new(
            &settings.jwks,
            settings.caller.clone(),
            settings.common.algorithm,
            settings.common.timeouts,
        );
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            jwks,
        })))
    }
}

/// `/auth/{service}` and `/hello`.
pub fn router(state: State) -> Router {
    let shortcuts = state.settings.common.shortcuts;
    let router = Router::new()
        .route("/auth/{service}", get(auth))
        .layer(axum::middleware::map_response(body_in_header))
        .with_state(state);
    crate::common_routes::finish(router, "verifier", shortcuts)
}

/// Serves the verifier on `listener` until `shutdown` resolves, keeping
/// the JWK Set fresh in the background meanwhile.
pub async fn run(
    state: State,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = s2s_web::shutdown::handle_on(shutdown);
    let options = state.settings.common.serve.clone();
    // Aborted when `run` returns or is dropped: it stops with the server.
    let _refresher = s2s_web::shutdown::AbortOnDrop(tokio::spawn({
        let state = state.clone();
        async move { state.jwks.refresh_in_background(&state.http).await }
    }));
    tracing::info!(
        "gateway verifier listening on http://{} (routes: {})",
        listener.local_addr()?,
        state
            .settings
            .routes
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    s2s_web::serve::serve(listener, router(state), None, handle, &options).await?;
    tracing::info!("gateway verifier stopped");
    Ok(())
}

/// The verifier as `app verifier` runs it: listens where `settings` say
/// and serves until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = settings.common.bind().await?;
    let state = State::new(settings)?;
    run(state, listener, s2s_web::shutdown::signal()).await?;
    Ok(())
}

/// `GET /auth/{service}`: is the bearer token good for `service`?
async fn auth(
    Shared(state): Shared<State>,
    Path(service): Path<String>,
    rid: RequestId,
    token: Result<BearerToken, AppError>,
) -> Result<Response<Body>, AppError> {
    let Some(checks) = state.settings.routes.get(&service) else {
        return Ok((
            StatusCode::FORBIDDEN,
            Json(json!({
                "message": format!("the verifier has no route to \"{}\": the verifier's and the gateway's GATEWAY_ROUTES must agree", s2s_auth::untrusted(&service))
            })),
        )
            .into_response());
    };
    let BearerToken(token) = token?;
    let access = declares_typ(&token, TYP_ACCESS_TOKEN);
    let expect = expectations(checks, access)?;
    let (claims, kid) = state.jwks.verify(expect, &token, &state.http, &rid).await?;
    if access && claims.get("client_id") != claims.get("sub") {
        return Err(JwtError::invalid(format!(
            "jwt client_id invalid. expected: {}",
            expect.subject
        ))
        .into());
    }
    // nginx takes its clients over plain http: no client certificate can
    // be checked here, so a certificate-bound token (scenario 8's, RFC
    // 8705) is refused, as serviceb's plain listener refuses it. A stolen
    // bound token must not get through the gateway.
    crate::binding::check(
        &claims,
        &s2s_web::identity::ClientCert::None,
        crate::binding::Binding::IfPresent,
    )?;
    tracing::info!(
        "gateway: {} valid for {service} (iss {}, sub {}, kid {kid}): forwarding {} as X-Jwt-* headers",
        if access {
            "access token"
        } else {
            "/issueToken token"
        },
        expect.issuer,
        expect.subject,
        if access {
            "sub, aud, client_id and jti"
        } else {
            "sub and aud only (the caller chose the rest)"
        },
    );
    // Headers only (see [`body_in_header`]).
    let mut response = StatusCode::OK.into_response();
    forward_identity(response.headers_mut(), &claims, &service, access);
    Ok(response)
}

/// What the token must satisfy, chosen by its header's `typ` (which
/// the verification checks again): an access token always; an
/// `/issueToken` token only with the workshop's shortcuts on.
fn expectations(checks: &RouteChecks, access: bool) -> Result<&Expectations, AppError> {
    match (&checks.shortcut, access) {
        (Some(shortcut), false) => Ok(shortcut),
        (None, false) => Err(JwtError::invalid(
            "the gateway accepts only access tokens from the factory's POST /token \
             (typ at+jwt): /issueToken's tokens are a workshop shortcut, off here",
        )
        .into()),
        (_, true) => Ok(&checks.access),
    }
}

/// The identity headers nginx copies onto the forwarded request, from
/// the verified `claims` of a token for `service`.
fn forward_identity(
    headers: &mut axum::http::HeaderMap,
    claims: &s2s_auth::jws::Claims,
    service: &str,
    access: bool,
) {
    for (header, claim) in IDENTITY_HEADERS {
        // `aud` is the audience verified (the route's service), also when
        // the token's `aud` is an array that contains it. `client_id` and
        // `jti` only from an access token: the factory set them there.
        let value = match claim {
            "aud" => Some(service),
            "sub" => claims.get(claim).and_then(Value::as_str),
            _ if access => claims.get(claim).and_then(Value::as_str),
            _ => None,
        };
        // Only printable ASCII goes into a header; anything else is left
        // out (and said), never passed on mangled.
        match value.map(HeaderValue::from_str) {
            Some(Ok(v)) if v.len() <= 256 => {
                headers.insert(HeaderName::from_static(header), v);
            }
            Some(_) => tracing::warn!("claim {claim} cannot be a header value: left out"),
            None => {}
        }
    }
}

/// A refusal's JSON body, moved into [`AUTH_BODY`] for nginx's
/// `error_page`. Non-ASCII is escaped (`\uXXXX`), so the header is always
/// valid. Every answer of `/auth/{service}` is headers only: nginx never
/// reads an `auth_request` answer's body, and an unread body makes it close
/// the kept-alive connection after each answer (with a body, nearly every
/// request through the gateway opened a new connection to the verifier).
async fn body_in_header(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            ascii.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&ascii) {
        parts.headers.insert(HeaderName::from_static(AUTH_BODY), v);
    }
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    Response::from_parts(parts, Body::empty())
}
