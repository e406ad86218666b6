//! The workshop console: a page servicea serves at `/` that runs each
//! scenario and draws what really happened: every hop, the token it
//! carried (decoded), every check and, for a refusal, the verifier's own
//! reason.
//!
//! Why servicea: it is where every scenario starts, so the page needs no
//! other origin (no CORS), and it stays on loopback like the rest. Why
//! these pieces:
//!
//! - The page, its script and its style are compiled into the binary
//!   (`include_str!`): the console works offline, with no CDN, and a
//!   strict Content-Security-Policy (`'self'` only, no inline script).
//! - The scenario list is the scenario table ([`crate::scenarios::SCENARIOS`]):
//!   a new row is a new entry on the page.
//! - A run is the scenario's own endpoint with `?trace=1`
//!   ([`crate::caller::legs::run`], [`s2s_web::trace`]): the diagram is drawn
//!   from the trace of that real request, never from a canned picture.
//! - The controls ([`controls`]) call real endpoints of the factory, the
//!   receivers and the gateway, and are traced the same way.
//!
//! | request | what |
//! | --- | --- |
//! | `GET /` | the page |
//! | `GET /console/{console.js,console.css,favicon.svg}` | its assets |
//! | `GET /console/scenarios` | the scenario table as JSON |
//! | `GET /console/factory-keys` | servicea's keys at the factory: phases, and which kids the JWK Set publishes |
//! | `POST /console/factory-keys/rotate` | rotate servicea's factory key (phased) |
//! | `POST /console/replay` | the replay lesson: a stolen bearer token, a stolen bound token |
//! | `POST /console/forge` | the gateway lesson: a forged `X-Jwt-Sub`, through the gateway and around it |
//! | `GET /console/key-audit` | who used servicea's key? its signatures in OpenBao's audit log (off with PRODUCTION) |

pub(super) mod controls;
mod key_audit;

use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{caller::state::State, scenarios::SCENARIOS};

/// The page's Content-Security-Policy: its own script, style and icon,
/// fetches to servicea only; nothing inline, no frames, no forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The header a console control must carry. A page on another origin
/// cannot send it without a CORS preflight, which servicea never grants,
/// so no other site can make a visitor's browser rotate a key.
const CONTROL_HEADER: &str = "x-console";

/// An embedded asset.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: include_str!("assets/index.html"),
};

const ASSETS: [Asset; 3] = [
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        path: "/console/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

impl Asset {
    fn response(&self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, self.content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// The console's routes, merged into servicea's.
pub(super) fn routes() -> Router<State> {
    let router = ASSETS
        .iter()
        .chain([&PAGE])
        .fold(Router::new(), |router, asset| {
            router.route(asset.path, get(move || async move { asset.response() }))
        })
        .route("/console/scenarios", get(scenarios))
        .route("/console/factory-keys", get(controls::factory_keys))
        .route("/console/key-audit", get(key_audit_route));
    let controls = Router::new()
        .route("/console/factory-keys/rotate", post(controls::rotate))
        .route("/console/replay", post(controls::replay))
        .route("/console/forge", post(controls::forge))
        .route_layer(axum::middleware::from_fn(require_control_header));
    router.merge(controls)
}

/// `GET /console/key-audit`: the lesson "who used servicea's key?",
/// one traced step ([`key_audit`]).
async fn key_audit_route(
    axum::extract::State(state): axum::extract::State<State>,
    rid: s2s_web::request_tracing::RequestId,
) -> Result<Json<Value>, crate::error::AppError> {
    if !state.settings.common.shortcuts {
        return Err(crate::error::AppError::ShortcutOff(
            "GET /console/key-audit is off (PRODUCTION: a service reading the vault's audit log \
             is a workshop shortcut): an auditor reads OpenBao's audit log",
        ));
    }
    let log = state.settings.console_audit_log.clone();
    let name = state.name().to_owned();
    let work = async move {
        tokio::task::spawn_blocking(move || key_audit::signatures(&log, &name))
            .await
            .map_err(crate::error::Internal::from)?
    };
    let title = "who used servicea's key? its signatures in OpenBao's audit log";
    Ok(Json(
        json!({ "steps": [controls::step(&state, &rid, title, "accepted", work).await] }),
    ))
}

/// `GET /console/scenarios`: every row of the scenario table.
async fn scenarios() -> Json<Value> {
    Json(
        SCENARIOS
            .iter()
            .map(|s| {
                json!({
                    "n": s.n,
                    "path": s.path(),
                    "teaches": s.teaches,
                    "story": s.story,
                    "fan_out": s.fan_out,
                    "check": format!("{:?}", s.check),
                })
            })
            .collect(),
    )
}

/// Refuses a control without [`CONTROL_HEADER`]`: 1` (403, JSON). A
/// control a browser says came from another site (`Sec-Fetch-Site`, a
/// foreign `Origin`) never gets here: every listener refuses such a
/// state-changing request ([`s2s_web::cross_site`]).
async fn require_control_header(request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(CONTROL_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    if sent {
        return next.run(request).await;
    }
    let message = format!(
        "console controls need the header `{CONTROL_HEADER}: 1` (the console sends it; \
         a page of another site cannot)"
    );
    (StatusCode::FORBIDDEN, Json(json!({ "message": message }))).into_response()
}
