//! The routers without a socket: each role's router is called with
//! `tower::ServiceExt::oneshot` (as axum's `examples/testing` does), so what
//! is routed where is checked without ports, TLS or other servers: one path
//! per row of the scenario table, on the right listener and no other; the
//! JSON 404 and 405 of every listener; `/hello`; a receiver path without a
//! token; the factory's key-id check and its issue-and-verify path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use app::{Role, caller, receiver, scenarios::SCENARIOS};
use axum::{
    Router,
    body::Body,
    http::{Method, Request},
};
use common::{Reply, factory::assert_token, oneshot};
use serde_json::{Value, json};
use tempfile::TempDir;

/// `method path` with no body, straight into `router`.
async fn call(router: &Router, method: Method, path: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    oneshot(router, req).await
}

/// `POST path` with `body` as JSON, straight into `router`.
async fn post_json(router: &Router, path: &str, body: &Value) -> Reply {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    oneshot(router, req).await
}

/// Every listener of the services, by name: servicea's, and serviceb's and
/// servicec's plain http and https routers.
fn service_routers() -> Vec<(String, Router)> {
    let mut routers = vec![(
        "servicea".to_owned(),
        caller::router(common::servicea_state(&[])),
    )];
    for role in [Role::B, Role::C] {
        let state = common::receiver_state(role, &[]);
        let name = role.name();
        routers.push((format!("{name} http"), receiver::http_router(state.clone())));
        routers.push((format!("{name} https"), receiver::https_router(state)));
    }
    routers
}

/// jwt-factory's router, its KEYS_DIR in a temp dir (empty, not created).
fn factory() -> (Router, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::factory_config(&dir.path().join("keys"), &[]);
    (jwt_factory::app(jwt_factory::AppState::load(config)), dir)
}

/// The message of a JSON error answer with `status`.
fn error_text(r: Reply, status: u16, field: &str) -> String {
    let what = r.what.clone();
    let (got, body) = r.into_json();
    assert_eq!(got, status, "{what}: {body}");
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no {field:?} string in {body}"))
        .to_owned()
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404_on_every_listener() {
    let past_the_table = format!("/scenario{}", SCENARIOS.len() + 1);
    for (name, router) in service_routers() {
        for path in ["/nope", "/scenario0", past_the_table.as_str(), "/hello/x"] {
            let msg = error_text(call(&router, Method::GET, path).await, 404, "message");
            assert!(msg.contains("no such endpoint"), "{name} {path}: {msg}");
        }
    }
    let (factory, _dir) = factory();
    for path in ["/nope", "/hello", "/scenario1"] {
        let msg = error_text(call(&factory, Method::GET, path).await, 404, "error");
        assert!(msg.contains("endpoint"), "jwt-factory {path}: {msg}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_on_every_listener() {
    for (name, router) in service_routers() {
        for method in [Method::POST, Method::DELETE] {
            let msg = error_text(
                call(&router, method.clone(), "/hello").await,
                405,
                "message",
            );
            assert!(msg.contains("method"), "{name} {method} /hello: {msg}");
        }
    }
    let (factory, _dir) = factory();
    for (method, path) in [
        (Method::DELETE, "/keys/x"),
        (Method::GET, "/issueToken/x"),
        (Method::GET, "/utils/dump"),
    ] {
        let msg = error_text(call(&factory, method.clone(), path).await, 405, "error");
        assert!(msg.contains("method"), "jwt-factory {method} {path}: {msg}");
    }
}

#[tokio::test]
async fn hello_answers_on_every_service_listener() {
    for (name, router) in service_routers() {
        let r = call(&router, Method::GET, "/hello").await;
        assert_eq!((r.status, r.text.as_str()), (200, "hello"), "{name}");
    }
}

/// The table numbers its rows 1, 2, 3, ... and servicea routes
/// `/scenario{n}` for each. `POST` there is a 405, not a 404: the path is
/// routed, and no scenario runs (it would call other servers).
#[tokio::test]
async fn servicea_routes_one_path_per_row_of_the_table() {
    let numbers: Vec<usize> = SCENARIOS.iter().map(|s| usize::from(s.n)).collect();
    assert_eq!(numbers, (1..=SCENARIOS.len()).collect::<Vec<_>>());
    let router = caller::router(common::servicea_state(&[]));
    for s in &SCENARIOS {
        let r = call(&router, Method::POST, &s.path()).await;
        assert_eq!(r.status, 405, "POST {} is routed: {}", s.path(), r.text);
        let r = call(&router, Method::GET, &s.receiver_path()).await;
        assert_eq!(
            r.status,
            404,
            "{} is a receiver's: {}",
            s.receiver_path(),
            r.text
        );
    }
    // `/gen-keys` writes keys: POST only.
    let msg = error_text(
        call(&router, Method::GET, "/gen-keys").await,
        405,
        "message",
    );
    assert!(msg.contains("method"), "{msg}");
}

/// serviceb and servicec route `/scenario{n}-server` for every row: on the
/// https listener only when the row's token travels over TLS, on the plain
/// http listener only otherwise. Without a token: 401, `WWW-Authenticate:
/// Bearer` (RFC 6750), a JSON message; nothing else runs. Scenarios 7 and 9
/// ask for no token: without a client certificate (none here, no socket)
/// it is a 401 that asks for the one they need. Scenario 10's token is
/// checked by serviceb's sidecar: without the sidecar's headers, a 401
/// saying it is served through the mesh only.
#[tokio::test]
async fn receivers_route_each_row_on_its_listener_and_ask_for_a_token() {
    for role in [Role::B, Role::C] {
        let state = common::receiver_state(role, &[]);
        let http = receiver::http_router(state.clone());
        let https = receiver::https_router(state);
        for s in &SCENARIOS {
            let path = s.receiver_path();
            let (served, elsewhere) = if s.check.over_tls() {
                (&https, &http)
            } else {
                (&http, &https)
            };
            let r = call(served, Method::GET, &path).await;
            let case = format!("{} {path} (over TLS: {})", role.name(), s.check.over_tls());
            let no_token_asked = match s.check {
                app::scenarios::Check::Identity => Some("needs a client certificate"),
                app::scenarios::Check::Gateway => Some("through the gateway only"),
                // The sidecar checked the token: without its headers, 401.
                app::scenarios::Check::Mesh => Some("through the mesh only"),
                _ => None,
            };
            if let Some(says) = no_token_asked {
                let msg = error_text(r, 401, "message");
                assert!(msg.contains(says), "{case}: {msg}");
            } else {
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{case}");
                assert_eq!(error_text(r, 401, "message"), "no token provided", "{case}");
            }
            let r = call(elsewhere, Method::GET, &path).await;
            assert_eq!(r.status, 404, "{case}, on the other listener: {}", r.text);
            let r = call(served, Method::GET, &s.path()).await;
            assert_eq!(r.status, 404, "{case}: servicea's path: {}", r.text);
        }
    }
}

#[tokio::test]
async fn the_factory_refuses_a_bad_key_id_with_a_json_400() {
    let (factory, dir) = factory();
    let long = "x".repeat(65);
    for id in ["a.b", "..%2F..%2Fescape", "%00", "a%20b", long.as_str()] {
        for method in [Method::GET, Method::POST] {
            let r = call(&factory, method.clone(), &format!("/keys/{id}")).await;
            let msg = error_text(r, 400, "error");
            assert!(msg.contains("invalid key id"), "{method} /keys/{id}: {msg}");
        }
    }
    let keys = dir.path().join("keys");
    assert_eq!(common::factory::file_names(&keys), Vec::<String>::new());
}

#[tokio::test]
async fn the_factory_creates_issues_and_verifies_through_its_router() {
    let (factory, _dir) = factory();
    let (status, body) = call(&factory, Method::POST, "/keys/servicea")
        .await
        .into_json();
    assert_eq!(status, 200, "{body}");
    assert!(body["publicKey"].is_string(), "{body}");

    let r = post_json(
        &factory,
        "/issueToken/servicea",
        &json!({ "aud": "serviceb" }),
    )
    .await;
    let token = assert_token(r);
    let claims = json!({ "token": token, "aud": "serviceb", "sub": "servicea" });
    let (status, body) = post_json(&factory, "/verify/servicea", &claims)
        .await
        .into_json();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["claims"]["aud"], "serviceb", "{body}");
}
