#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scenario 9, the gateway pattern, against a real nginx (Debian's, with
//! `auth_request`) configured by `app gateway-config`, the real verifier
//! and the real stack: real servers on port 0, real mTLS from nginx to the
//! services with the gateway's workload certificate.
//!
//! What it proves:
//!
//! - A token is verified once, at the edge: servicea's `/scenario9` and a
//!   factory token sent straight to the gateway reach serviceb (or
//!   servicec, on its route) with exactly the identity the token carries,
//!   `via: gateway`.
//! - Every token the verifier refuses (expired, for another service, from
//!   another issuer, for another subject, naming an unknown `kid`) is a 403
//!   in the services' JSON shape with RFC 6750's challenge; a request
//!   without a token is a 401; two `Authorization` headers and a 100 KB
//!   token are a 400. Every refusal is JSON (content type
//!   `application/json`, a body that parses), never nginx's HTML, and says
//!   why.
//! - Identity headers cannot be forged: sent through the gateway, every
//!   client `X-Jwt-*` header is overwritten or dropped; sent straight to
//!   serviceb (no certificate, plain http, servicea's certificate) they are
//!   a 401 naming who sent them. The gateway's own certificate is the one
//!   trust anchor: presented directly, its headers are believed.
//! - Failures are JSON within bounded time: serviceb down is a 502, the
//!   verifier down a 503, a verifier that never answers a 503 after the
//!   auth timeout.
//! - Path tricks (`..`, `%2e%2e`, `%2f`), sent as raw bytes so no client
//!   normalises them, never take a serviceb token to servicec.
//! - `app gateway-config` writes a configuration `nginx -t` accepts, and
//!   refuses paths nginx would misread and missing certificates, writing
//!   nothing.

use test_support as common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use app::tools::gateway_config;
use common::{
    Options, Reply, Silent,
    factory::{self, payload},
    forge::edit_header,
    gateway::{Gateway, nginx_binary},
    raw_http, reply,
};
use serde_json::{Map, Value, json};
use tokio::process::Command;

const APP: &str = env!("CARGO_BIN_EXE_app");
const PRINCIPAL_A: &str = "cluster.local/ns/default/sa/servicea";
/// Connect, auth (the verifier's answer) and request timeouts, ms.
const TIMEOUTS: [u64; 3] = [1000, 2000, 5000];
/// How long a failure may take to become an answer, at most.
const BOUNDED: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------
// The stack behind a real nginx.

/// The stack, the verifier and nginx in front (test-support's
/// [`common::gateway::Edge`]), with what these tests ask of it.
struct Edge(common::gateway::Edge);

impl std::ops::Deref for Edge {
    type Target = common::gateway::Edge;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Edge {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Edge {
    /// The stack, the real verifier, nginx with [`TIMEOUTS`].
    async fn start() -> Self {
        Self::start_with(None, TIMEOUTS).await
    }

    /// The stack and nginx with `timeouts`, asking `verifier_at` instead
    /// of a verifier of its own if given.
    async fn start_with(verifier_at: Option<SocketAddr>, timeouts: [u64; 3]) -> Self {
        Self(common::gateway::Edge::start(Options::default(), verifier_at, timeouts).await)
    }

    /// A token from the factory's `/issueToken/servicea{query}` with
    /// these claims: signed with its real key, with its `kid`.
    async fn token(&self, query: &str, claims: Value) -> String {
        factory::issue(&self.s.client, &self.s.factory, "servicea", query, &claims).await
    }

    /// A fresh token for `aud`.
    async fn token_for(&self, aud: &str) -> String {
        self.token("", json!({ "aud": aud })).await
    }

    /// `GET path` on the gateway with these headers (appended: a name
    /// given twice is sent twice).
    async fn send(&self, path: &str, headers: &[(&str, String)]) -> Reply {
        let mut rb = self.s.client.get(self.gateway.url(path));
        for (name, value) in headers {
            rb = rb.header(*name, value);
        }
        reply(rb).await
    }

    /// As [`Edge::send`]; also how long the answer took.
    async fn timed(&self, path: &str, headers: &[(&str, String)]) -> (Reply, Duration) {
        let start = Instant::now();
        let r = self.send(path, headers).await;
        (r, start.elapsed())
    }

    /// The answer of a call that must succeed: 200, JSON.
    fn accepted(&self, case: &str, r: Reply) -> Value {
        let (status, body) = r.into_json();
        assert_eq!(
            status,
            200,
            "{case}: {body}\nnginx: {}",
            self.gateway.error_log()
        );
        body
    }
}

/// `Authorization: Bearer token`.
fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A refusal: `expected` status, JSON (content type `application/json`, a
/// body that parses) whose reason says every one of `says`; the body.
fn refused(case: &str, r: Reply, expected: u16, says: &[&str]) -> Value {
    let reason = r.reason();
    let what = r.what.clone();
    let (status, body) = r.into_json();
    assert_eq!(status, expected, "{case}: {what}: {body}");
    for word in says {
        assert!(
            reason.contains(&word.to_lowercase()),
            "{case}: {body} does not say {word:?}"
        );
    }
    body
}

/// `body` (serviceb's or servicec's answer through the gateway) is valid,
/// with servicea's identity for `aud`, via the gateway.
fn assert_via_gateway(case: &str, body: &Value, aud: &str) {
    assert_eq!(body["valid"], true, "{case}: {body}");
    let identity = &body["identity"];
    assert_eq!(identity["sub"], "servicea", "{case}: {body}");
    assert_eq!(identity["aud"], aud, "{case}: {body}");
    assert_eq!(identity["via"], "gateway", "{case}: {body}");
}

/// The identity `token` carries, as the receivers answer it: its `sub`,
/// `aud`, and, for the STS's access token (`typ: at+jwt`) only, its
/// `client_id` and `jti`: an `/issueToken` token's are whatever its
/// caller asked for, so the gateway never forwards them; `via: gateway`.
fn identity_of(token: &str) -> Value {
    let claims = payload(token);
    let access = jsonwebtoken::decode_header(token).unwrap().typ.as_deref() == Some("at+jwt");
    let forwarded: &[&str] = if access {
        &["sub", "aud", "client_id", "jti"]
    } else {
        &["sub", "aud"]
    };
    let mut identity: Map<String, Value> = forwarded
        .iter()
        .copied()
        .filter_map(|c| claims[c].as_str().map(|v| (c.to_owned(), v.into())))
        .collect();
    identity.insert("via".into(), "gateway".into());
    Value::Object(identity)
}

/// `body` is valid, with exactly the identity `token` carries: nothing
/// more, nothing changed.
fn assert_identity_of(case: &str, body: &Value, token: &str) {
    assert_eq!(body["valid"], true, "{case}: {body}");
    assert_eq!(body["identity"], identity_of(token), "{case}: {body}");
}

// ---------------------------------------------------------------------------
// 1. Verified once, at the edge.

#[tokio::test]
async fn scenario9_and_a_factory_token_reach_the_service_with_the_verified_identity() {
    let e = Edge::start().await;
    let (status, body) = e.s.get_a("/scenario9").await;
    assert_eq!(
        status,
        200,
        "servicea's /scenario9: {body}\nnginx: {}",
        e.gateway.error_log()
    );
    assert_via_gateway("servicea's /scenario9", &body, "serviceb");

    // Straight to the gateway, each service on its own route.
    for aud in ["serviceb", "servicec"] {
        let token = e.token_for(aud).await;
        let case = format!("a factory token for {aud}, straight to the gateway");
        let path = format!("/{aud}/scenario9-server");
        let body = e.accepted(&case, e.send(&path, &[bearer(&token)]).await);
        assert_via_gateway(&case, &body, aud);
        assert_identity_of(&case, &body, &token);
    }

    // An `aud` array that contains the route's service: the identity's
    // `aud` is the audience verified, not the array.
    let token = e
        .token("", json!({ "aud": ["serviceb", "elsewhere"] }))
        .await;
    let case = "a token for [serviceb, elsewhere]";
    let body = e.accepted(
        case,
        e.send("/serviceb/scenario9-server", &[bearer(&token)])
            .await,
    );
    assert_via_gateway(case, &body, "serviceb");
}

/// Issue 21, item 11: the gateway forwards only claims the factory vouched
/// for. servicea's `/scenario9` sends the STS's access token (`typ:
/// at+jwt`): its `client_id` (= `sub`) and `jti` were set by the factory
/// for a client it authenticated, and are forwarded. An `/issueToken`
/// token whose caller chose `client_id` and `jti` gets neither forwarded.
#[tokio::test]
async fn only_claims_the_factory_vouched_for_are_forwarded() {
    let e = Edge::start().await;
    let (status, body) = e.s.get_a("/scenario9").await;
    assert_eq!(status, 200, "{body}\nnginx: {}", e.gateway.error_log());
    let identity = &body["identity"];
    assert_eq!(identity["client_id"], "servicea", "{body}");
    assert!(
        identity["jti"].as_str().is_some_and(|j| j.len() >= 16),
        "the access token's jti, set by the factory: {body}"
    );

    let chosen = e
        .token(
            "",
            json!({ "aud": "serviceb", "client_id": "admin", "jti": "chosen-by-the-caller" }),
        )
        .await;
    let case = "an /issueToken token with a client_id and jti of its caller's choosing";
    let body = e.accepted(
        case,
        e.send("/serviceb/scenario9-server", &[bearer(&chosen)])
            .await,
    );
    assert_identity_of(case, &body, &chosen);
    for key in ["client_id", "jti"] {
        assert!(body["identity"].get(key).is_none(), "{case}: {body}");
    }
}

/// A certificate-bound access token (scenario 8's, RFC 8705) is refused at
/// the gateway: nginx takes its clients over plain http, so no certificate
/// can prove the caller holds the key it is bound to. A stolen bound token
/// must not get through where serviceb's own plain listener refuses it.
#[tokio::test]
async fn a_certificate_bound_token_is_refused_at_the_gateway() {
    let e = Edge::start().await;
    let s = &e.s;
    let mut args = s.files.servicea_flags(s.alg, &s.factory.url());
    args.extend(["--jwt-factory-endpoint-https".into(), s.factory.https_url()]);
    let bound = common::servicea_state(&args)
        .token("serviceb", app::caller::Grant::Bound)
        .await
        .unwrap()
        .token
        .clone();
    assert!(payload(&bound).get("cnf").is_some(), "bound: {bound}");
    let body = refused(
        "a bound token through the gateway",
        e.send("/serviceb/scenario9-server", &[bearer(&bound)])
            .await,
        401,
        &["invalid token"],
    );
    let why = body["error_description"].as_str().unwrap_or_default();
    assert!(why.contains("presented none"), "{body}");
}

/// With `PRODUCTION`, the gateway's verifier accepts the STS's access
/// tokens only: scenario 9 still works, an `/issueToken` token is refused
/// with JSON that says which tokens are accepted.
#[tokio::test]
async fn in_production_the_gateway_accepts_access_tokens_only() {
    let e = Edge(
        common::gateway::Edge::start_verifier_with(
            Options::default(),
            None,
            TIMEOUTS,
            &["--production", "true"],
        )
        .await,
    );
    let (status, body) = e.s.get_a("/scenario9").await;
    assert_eq!(status, 200, "{body}\nnginx: {}", e.gateway.error_log());
    assert_eq!(body["identity"]["client_id"], "servicea", "{body}");

    let token = e.token_for("serviceb").await;
    refused(
        "an /issueToken token in production",
        e.send("/serviceb/scenario9-server", &[bearer(&token)])
            .await,
        403,
        &["only access tokens", "at+jwt"],
    );
}

// ---------------------------------------------------------------------------
// 2. Refusals: JSON that says why.

/// A request the gateway must refuse, and how.
struct Refusal<'a> {
    case: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
    status: u16,
    says: &'a [&'a str],
}

/// Sends each request: each is refused as it says, as JSON; a 401 carries
/// RFC 6750's `Bearer` challenge, a 403 `invalid_token` and the services'
/// refusal shape.
async fn assert_refusals(e: &Edge, refusals: Vec<Refusal<'_>>) {
    for r in refusals {
        let answer = e.send(r.path, &r.headers).await;
        let challenge = answer.header("www-authenticate").map(str::to_owned);
        let body = refused(r.case, answer, r.status, r.says);
        eprintln!("{}: {} {body}", r.case, r.status);
        let expected = match r.status {
            401 => Some("Bearer"),
            403 => Some(r#"Bearer error="invalid_token""#),
            _ => continue,
        };
        assert_eq!(challenge.as_deref(), expected, "{}: {body}", r.case);
        if r.status == 403 {
            factory::refused(r.status, &body);
        }
    }
}

#[tokio::test]
async fn tokens_the_verifier_refuses_are_403_json_saying_why() {
    let e = Edge::start().await;
    // Through servicea: the gateway refuses the expired token, servicea
    // relays the refusal.
    let (status, body) = e.s.get_a("/scenario9?expired=1").await;
    assert_eq!(status, 403, "servicea's /scenario9?expired=1: {body}");
    assert!(
        body.to_string().contains("TokenExpiredError"),
        "servicea's /scenario9?expired=1: {body}"
    );

    let b = "/serviceb/scenario9-server";
    let expired = e.token("?expired=1", json!({ "aud": "serviceb" })).await;
    let for_b = e.token_for("serviceb").await;
    let other_iss = e
        .token("", json!({ "aud": "serviceb", "iss": "https://evil/" }))
        .await;
    let other_sub = e
        .token("", json!({ "aud": "serviceb", "sub": "admin" }))
        .await;
    let unknown_kid = edit_header(&for_b, |h| {
        h.insert("kid".into(), "servicea.nosuchkey".into());
    });
    let cases = vec![
        Refusal {
            case: "expired",
            path: b,
            headers: vec![bearer(&expired)],
            status: 403,
            says: &["TokenExpiredError", "jwt expired"],
        },
        Refusal {
            case: "a token for serviceb on servicec's route",
            path: "/servicec/scenario9-server",
            headers: vec![bearer(&for_b)],
            status: 403,
            says: &["jwt audience invalid. expected: servicec"],
        },
        Refusal {
            case: "another issuer, signed with the factory's own key",
            path: b,
            headers: vec![bearer(&other_iss)],
            status: 403,
            says: &["jwt issuer invalid. expected: https://jwt-factory/"],
        },
        Refusal {
            case: "another subject, signed with the factory's own key",
            path: b,
            headers: vec![bearer(&other_sub)],
            status: 403,
            says: &["jwt subject invalid. expected: servicea"],
        },
        Refusal {
            case: "an unknown kid",
            path: b,
            headers: vec![bearer(&unknown_kid)],
            status: 403,
            says: &["no key with kid servicea.nosuchkey"],
        },
    ];
    assert_refusals(&e, cases).await;
}

#[tokio::test]
async fn requests_without_one_readable_token_are_refused_as_json() {
    let e = Edge::start().await;
    let token = e.token_for("serviceb").await;
    let huge = "a".repeat(100 * 1024);
    let cases = vec![
        Refusal {
            case: "no token",
            path: "/serviceb/scenario9-server",
            headers: vec![],
            status: 401,
            says: &["no token provided"],
        },
        Refusal {
            case: "two Authorization headers",
            path: "/serviceb/scenario9-server",
            headers: vec![bearer(&token), bearer(&token)],
            status: 400,
            says: &["bad request", "sent twice"],
        },
        Refusal {
            case: "a 100 KB token",
            path: "/serviceb/scenario9-server",
            headers: vec![bearer(&huge)],
            status: 400,
            says: &["over 8 KiB"],
        },
        Refusal {
            case: "no such route",
            path: "/servicez/scenario9-server",
            headers: vec![bearer(&token)],
            status: 404,
            says: &["no such route"],
        },
    ];
    assert_refusals(&e, cases).await;
}

// ---------------------------------------------------------------------------
// 3. Identity headers: believed from the gateway's certificate alone.

/// `rb` claiming, in identity headers, to come from `admin` for serviceb.
fn as_admin(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("x-jwt-sub", "admin")
        .header("x-jwt-aud", "serviceb")
}

#[tokio::test]
async fn forged_identity_headers_are_overwritten_at_the_gateway_and_refused_at_serviceb() {
    let e = Edge::start().await;
    // An /issueToken token with a jti (its caller chose it) and no
    // client_id: the forged X-Jwt-Jti and X-Jwt-Client-Id must be dropped,
    // and the token's own jti not forwarded either.
    let token = e
        .token("", json!({ "aud": "serviceb", "jti": "jti-of-the-token" }))
        .await;
    let forged = [
        ("x-jwt-sub", "admin"),
        ("x-jwt-aud", "servicec"),
        ("x-jwt-jti", "forged-jti"),
        ("x-jwt-client-id", "forged-client"),
        ("x-jwt-role", "admin"),
        ("x-jwt-admin", "1"),
    ];
    let mut headers = vec![bearer(&token)];
    headers.extend(forged.map(|(n, v)| (n, v.to_owned())));
    let case = "a valid token with forged X-Jwt-* headers, through the gateway";
    let body = e.accepted(case, e.send("/serviceb/scenario9-server", &headers).await);
    assert_identity_of(case, &body, &token);
    for key in ["jti", "client_id", "role", "admin"] {
        assert!(body["identity"].get(key).is_none(), "{case}: {body}");
    }

    // Straight to serviceb, without the gateway's certificate: refused,
    // naming who sent them, whatever the path.
    let s = &e.s;
    let b_https = |path: &str| format!("{}{path}", s.b.https_url());
    let as_a = s.files.client_as("servicea");
    let cases = [
        (
            "no certificate",
            &s.client,
            b_https("/scenario9-server"),
            "no client certificate",
        ),
        (
            "plain http",
            &s.client,
            format!("{}/scenario5-server", s.b.url()),
            "no client certificate",
        ),
        (
            "servicea's certificate",
            &as_a,
            b_https("/scenario3-server"),
            PRINCIPAL_A,
        ),
        (
            "servicea's certificate",
            &as_a,
            b_https("/scenario9-server"),
            PRINCIPAL_A,
        ),
    ];
    for (who, client, url, named) in cases {
        let rb = as_admin(client.get(&url));
        let case = format!("forged X-Jwt-* straight to serviceb with {who}: {url}");
        let body = refused(
            &case,
            reply(rb).await,
            401,
            &["accepted only from the gateway"],
        );
        assert_eq!(body["error"], "unauthenticated", "{case}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("this request came from {named}")),
            "{case}: {body}"
        );
    }

    // The trust anchor: whoever presents the gateway's certificate is
    // believed, so its key must be kept as well as the factory's.
    let rb = as_admin(
        s.files
            .client_as("gateway")
            .get(b_https("/scenario9-server")),
    );
    let case = "X-Jwt-* with the gateway's own certificate, straight to serviceb";
    let body = e.accepted(case, reply(rb).await);
    let expected = json!({ "sub": "admin", "aud": "serviceb", "via": "gateway" });
    assert_eq!(body["identity"], expected, "{case}: {body}");
}

// ---------------------------------------------------------------------------
// 4. Failures behind the gateway: JSON, in bounded time.

/// The answer took less than [`BOUNDED`].
fn assert_bounded(case: &str, took: Duration) {
    eprintln!("{case}: answered in {took:?}");
    assert!(took < BOUNDED, "{case}: took {took:?}");
}

#[tokio::test]
async fn serviceb_down_is_502_and_the_verifier_down_503_as_json_in_bounded_time() {
    let mut e = Edge::start().await;
    let token = e.token_for("serviceb").await;
    let path = "/serviceb/scenario9-server";
    let body = e.accepted("control", e.send(path, &[bearer(&token)]).await);
    assert_via_gateway("control", &body, "serviceb");

    e.s.b.stop().await;
    let case = "serviceb down";
    let (r, took) = e.timed(path, &[bearer(&token)]).await;
    refused(case, r, 502, &["serviceb unavailable"]);
    assert_bounded(case, took);

    e.verifier.as_mut().unwrap().stop().await;
    let case = "the verifier down";
    let (r, took) = e.timed(path, &[bearer(&token)]).await;
    refused(
        case,
        r,
        503,
        &["token verifier is unavailable", "nothing was forwarded"],
    );
    assert_bounded(case, took);
}

/// nginx checks that it reached serviceb itself (`proxy_ssl_name`), not
/// just any workload with a certificate from the CA: serviceb's listener
/// serving servicec's certificate (swapped in before nginx's first
/// connection; the listener re-reads it) gets no identity forwarded to it.
#[tokio::test]
async fn the_gateway_forwards_only_to_the_workload_the_route_names() {
    let e = Edge::start().await;
    let (b_cert, b_key) = e.s.files.workload("serviceb");
    let (c_cert, c_key) = e.s.files.workload("servicec");
    // The key first, the certificate last: the listener watches the
    // certificate file.
    std::fs::copy(c_key, &b_key).unwrap();
    std::fs::copy(c_cert, &b_cert).unwrap();
    let token = e.token_for("serviceb").await;
    let case = "serviceb's port presenting servicec's certificate";
    let r = e
        .send("/serviceb/scenario9-server", &[bearer(&token)])
        .await;
    refused(case, r, 502, &["serviceb unavailable"]);
    assert!(
        e.gateway
            .error_log()
            .contains("upstream SSL certificate does not match \"serviceb\""),
        "{case}: nginx says why: {}",
        e.gateway.error_log()
    );
    // servicec's own route still works: its certificate is its own.
    let token = e.token_for("servicec").await;
    let body = e.accepted(
        "servicec, control",
        e.send("/servicec/scenario9-server", &[bearer(&token)])
            .await,
    );
    assert_via_gateway("servicec, control", &body, "servicec");
}

#[tokio::test]
async fn a_verifier_that_never_answers_is_503_after_the_auth_timeout() {
    let silent = Silent::start().await;
    let e = Edge::start_with(Some(silent.addr), [1000, 500, 5000]).await;
    let token = e.token_for("serviceb").await;
    let case = "the verifier accepts and never answers (auth timeout 500 ms)";
    let (r, took) = e
        .timed("/serviceb/scenario9-server", &[bearer(&token)])
        .await;
    refused(case, r, 503, &["token verifier is unavailable"]);
    assert_bounded(case, took);
    assert!(
        silent.hits() >= 1,
        "{case}: nginx asked the silent verifier"
    );
}

// ---------------------------------------------------------------------------
// 5. Path tricks.

/// `GET path` as raw bytes, so nothing normalises it on the way; the
/// status and the body, which must be JSON.
async fn raw_get(gateway: &Gateway, path: &str, token: &str) -> (u16, Value) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    let answer = raw_http(gateway.addr, &request).await;
    let body = serde_json::from_str(&answer.body).unwrap_or_else(|err| {
        panic!(
            "{path}: not JSON ({err}): {}: {}",
            answer.status_line, answer.body
        )
    });
    (answer.status(), body)
}

#[tokio::test]
async fn path_escapes_never_take_a_serviceb_token_to_servicec() {
    let e = Edge::start().await;
    let token = e.token_for("serviceb").await;
    let (status, body) = raw_get(&e.gateway, "/serviceb/scenario9-server", &token).await;
    assert_eq!(status, 200, "control, raw: {body}");
    assert_via_gateway("control, raw", &body, "serviceb");

    for path in [
        "/serviceb/../servicec/scenario9-server",
        "/serviceb/%2e%2e/servicec/scenario9-server",
        "/serviceb/%2E%2E/servicec/scenario9-server",
        "/serviceb/..%2fservicec/scenario9-server",
        "/serviceb/..%2Fservicec/scenario9-server",
        "/serviceb%2f..%2fservicec/scenario9-server",
        "/serviceb/./../servicec/scenario9-server",
        "/serviceb//../servicec/scenario9-server",
    ] {
        let (status, body) = raw_get(&e.gateway, path, &token).await;
        eprintln!("{path}: {status} {body}");
        assert_ne!(body["identity"]["aud"], "servicec", "{path}: {body}");
        assert!(
            status == 200 || (400..500).contains(&status),
            "{path}: a refusal, not a failure: {status} {body}"
        );
        if status == 200 {
            // Only serviceb answers an identity for serviceb.
            assert_via_gateway(path, &body, "serviceb");
        }
    }
}

// ---------------------------------------------------------------------------
// 6. `app gateway-config`.

/// `app gateway-config args...` in `cwd`, no env variable of the host
/// read; whether it succeeded, its stdout, its stderr.
async fn gateway_config_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(APP);
    cmd.current_dir(cwd).arg("gateway-config").args(args);
    for v in common::env_vars("gateway-config") {
        cmd.env_remove(v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("app gateway-config did not finish in time")
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `nginx -t` with `args`: whether nginx accepts the configuration, and
/// what it said.
async fn nginx_test(args: &[&str]) -> (bool, String) {
    let out = Command::new(nginx_binary())
        .arg("-t")
        .args(args)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), said)
}

#[tokio::test]
async fn app_gateway_config_writes_a_configuration_nginx_accepts() {
    let dir = tempfile::tempdir().unwrap();
    common::files::gen_certs(&dir.path().join("certs"));
    let listen = format!("127.0.0.1:{}", common::free_port());
    let (ok, stdout, stderr) = gateway_config_in(dir.path(), &["--listen", &listen]).await;
    assert!(ok, "app gateway-config: {stdout}{stderr}");

    // The line it prints runs nginx: test the configuration with it.
    let line = stdout.trim();
    let args: Vec<&str> = line.split(' ').collect();
    assert_eq!(args[0], "nginx", "{line}");
    let (ok, said) = nginx_test(&args[1..]).await;
    assert!(ok, "nginx -t refused the configuration of `{line}`: {said}");
    assert!(said.contains("test is successful"), "{said}");
    let config = dir.path().join("target/gateway/nginx.conf");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("listen {listen};")), "{text}");

    // Control: nginx -t does read it.
    std::fs::write(&config, format!("{text}\nnot_a_directive on;\n")).unwrap();
    let (ok, said) = nginx_test(&args[1..]).await;
    assert!(!ok && said.contains("not_a_directive"), "{said}");

    // Without certificates: it fails, saying how to make them.
    let empty = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = gateway_config_in(empty.path(), &[]).await;
    assert!(!ok, "with no certificates: {stdout}");
    assert!(stderr.contains("gen-certs"), "{stderr}");
}

/// The configuration's settings with the gateway certificate, key and CA
/// in `certs`, into `run_dir`.
fn config_args(certs: &Path, run_dir: PathBuf) -> gateway_config::Args {
    let files = s2s_web::pki::CertFiles::in_dir(certs);
    let (cert, _key) = files.workload("gateway");
    gateway_config::Args {
        env_file: None,
        listen: "127.0.0.1:8080".parse().unwrap(),
        verifier: "127.0.0.1:3003".parse().unwrap(),
        routes: vec![("serviceb".into(), "127.0.0.1:8443".parse().unwrap())],
        cert,
        ca: certs.join("ca.pem"),
        run_dir,
        connect_timeout_ms: TIMEOUTS[0],
        auth_timeout_ms: TIMEOUTS[1],
        request_timeout_ms: TIMEOUTS[2],
    }
}

/// `from` copied into the new directory `dir`; the copy.
fn copy_into(from: &Path, dir: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(from, &to).unwrap();
    to
}

#[tokio::test]
async fn paths_nginx_would_misread_and_missing_certificates_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    common::files::gen_certs(&certs);
    let good = config_args(&certs, dir.path().join("run"));
    gateway_config::write(&good).expect("control: the files as gen-certs wrote them");

    let spaced = dir.path().join("run dir");
    let semicolon = copy_into(&good.cert, dir.path().join("a;b"));
    let spaced_ca = copy_into(&good.ca, dir.path().join("my certs"));
    let missing = certs.join("nowhere.pem");
    let cases = [
        (
            "RUN_DIR with a space",
            config_args(&certs, spaced.clone()),
            spaced.clone(),
            "nginx would misread",
        ),
        (
            "a certificate path with ;",
            gateway_config::Args {
                cert: semicolon.clone(),
                ..config_args(&certs, dir.path().join("run-semicolon"))
            },
            semicolon,
            "nginx would misread",
        ),
        (
            "a CA path with a space",
            gateway_config::Args {
                ca: spaced_ca.clone(),
                ..config_args(&certs, dir.path().join("run-ca"))
            },
            spaced_ca,
            "nginx would misread",
        ),
        (
            "a missing certificate",
            gateway_config::Args {
                cert: missing.clone(),
                ..config_args(&certs, dir.path().join("run-missing"))
            },
            missing,
            "gen-certs",
        ),
    ];
    for (case, args, named, says) in cases {
        let msg = match gateway_config::write(&args) {
            Ok(w) => panic!("{case}: written to {}", w.config.display()),
            Err(e) => format!("{e:#}"),
        };
        eprintln!("{case}: {msg}");
        let named = named.to_str().unwrap();
        assert!(
            msg.contains(named) && msg.contains(says),
            "{case}: names {named} and says {says:?}: {msg}"
        );
        assert!(
            !args.run_dir.join("nginx.conf").exists(),
            "{case}: nothing written"
        );
    }
}

// ---------------------------------------------------------------------------
// The console's trace through nginx.

/// The hops of a traced answer, at its top level.
fn hops_of(body: &Value) -> Vec<&Value> {
    body["trace"]
        .as_array()
        .unwrap_or_else(|| panic!("no trace: {body}"))
        .iter()
        .filter(|e| e["kind"] == "hop")
        .collect()
}

/// `/scenario9?trace=1`: nginx passes the trace flag on and relays
/// serviceb's part, so serviceb's check (the identity believed from the
/// gateway's certificate) appears under servicea's hop to the gateway; an
/// expired token is refused by the gateway, and the answer says why.
#[tokio::test]
async fn scenario9_traced_carries_servicebs_part_back_through_nginx() {
    let e = Edge::start().await;
    let (status, body) = e.s.get_a("/scenario9?trace=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"],
        200,
        "{body}\nnginx: {}",
        e.gateway.error_log()
    );
    let hops = hops_of(&body);
    let to_gateway = hops
        .iter()
        .find(|h| h["to"] == "gateway")
        .unwrap_or_else(|| panic!("no hop to the gateway: {body}"));
    assert!(
        to_gateway["url"]
            .as_str()
            .unwrap()
            .ends_with("/serviceb/scenario9-server"),
        "{to_gateway}"
    );
    assert_eq!(to_gateway["token"]["claims"]["aud"], "serviceb");
    let checks: Vec<&Value> = to_gateway["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "check")
        .collect();
    assert!(
        checks.iter().any(|c| c["by"] == "serviceb"
            && c["result"] == "allowed"
            && c["what"]
                .as_str()
                .unwrap()
                .contains("believed from the gateway's certificate")),
        "serviceb's check, relayed by nginx: {to_gateway}"
    );

    let (status, body) = e.s.get_a("/scenario9?trace=1&expired=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 403, "{body}");
    assert_eq!(body["reason"], "jwt expired", "{body}");
}

/// The console's forge lesson through the real nginx: the forged
/// `X-Jwt-Sub: admin` is replaced by the verified identity; the same
/// headers straight to serviceb are refused.
#[tokio::test]
async fn the_forge_control_through_nginx_forwards_the_verified_identity_only() {
    let e = Edge::start().await;
    let (status, body) = common::json_reply(
        e.s.client
            .post(format!("{}/console/forge", e.s.a.url()))
            .header("x-console", "1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let steps = body["steps"].as_array().unwrap();
    assert_eq!(
        steps[0]["status"],
        200,
        "{body}\nnginx: {}",
        e.gateway.error_log()
    );
    assert_eq!(steps[0]["answer"]["identity"]["sub"], "servicea", "{body}");
    assert_eq!(steps[0]["answer"]["identity"]["via"], "gateway", "{body}");
    assert_eq!(steps[1]["status"], 401, "{body}");
    assert!(
        steps[1]["reason"]
            .as_str()
            .unwrap()
            .contains("accepted only from the gateway"),
        "{body}"
    );
}

/// Issue 23: nginx keeps its connection to the verifier alive. It reads no
/// body from an `auth_request` answer, and one left unread makes it close
/// the connection after each answer, so every request through the
/// gateway paid a connect, an accept and a close. The verifier answers
/// headers only; the closed connections nginx leaves behind (TIME_WAIT on
/// its side, towards the verifier's port) stay far below the requests.
#[tokio::test]
async fn the_gateway_keeps_its_connection_to_the_verifier_alive() {
    let e = Edge::start().await;
    let port = e.verifier.as_ref().unwrap().addr.port();
    let before = closed_towards(port);
    let token = e.token_for("serviceb").await;
    for i in 0..20 {
        let case = format!("request {i} through the gateway");
        e.accepted(
            &case,
            e.send("/serviceb/scenario9-server", &[bearer(&token)])
                .await,
        );
    }
    for i in 0..10 {
        let r = e
            .send("/serviceb/scenario9-server", &[bearer("not-a-token")])
            .await;
        refused(&format!("refusal {i}"), r, 403, &["jwt malformed"]);
    }
    let closed = closed_towards(port).saturating_sub(before);
    assert!(
        closed <= 2,
        "nginx closed {closed} connections to the verifier for 30 requests: it does not keep them alive"
    );
}

/// Sockets in TIME_WAIT whose peer is 127.0.0.1 or ::1 at `port` (the
/// side that closed keeps TIME_WAIT): from /proc/net/tcp and tcp6.
fn closed_towards(port: u16) -> usize {
    let peer = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && cols[2].ends_with(&peer) && cols[3] == "06"
                })
                .count()
        })
        .sum()
}
