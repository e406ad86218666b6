//! Issue 10, items 1 and 5 on the factory: any `Host` and any content type
//! were accepted (a web page could use DNS rebinding to read tokens).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use reqwest::Client;
use serde_json::Value;
use test_support::factory::{Factory, create_key};

/// One raw HTTP/1.1 request; the status and the JSON body (`Null` if none).
async fn raw(addr: SocketAddr, request: String) -> (u16, Value) {
    let answer = test_support::raw_http(addr, &request).await;
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status(), json)
}

fn post(path: &str, host: &str, content_type: Option<&str>, body: &str) -> String {
    let ct = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_review_reproduction_is_refused_twice_over() {
    // curl -H 'Host: evil.example' -H 'Content-Type: text/plain'
    //      -d '{"aud":"serviceb"}' localhost:5555/issueToken/servicea
    let f = Factory::start().await;
    create_key(&Client::new(), &f, "servicea").await;
    let body = r#"{"aud":"serviceb"}"#;
    let (status, json) = raw(
        f.addr,
        post(
            "/issueToken/servicea",
            "evil.example",
            Some("text/plain"),
            body,
        ),
    )
    .await;
    assert_eq!(status, 421, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("evil.example"),
        "{json}"
    );
    // The right host, the wrong type: 415.
    let host = format!("localhost:{}", f.addr.port());
    let (status, json) = raw(
        f.addr,
        post("/issueToken/servicea", &host, Some("text/plain"), body),
    )
    .await;
    assert_eq!(status, 415, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("application/json"),
        "{json}"
    );
    // Both right: a token.
    let (status, _) = raw(
        f.addr,
        post(
            "/issueToken/servicea",
            &host,
            Some("application/json"),
            body,
        ),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn token_and_verify_endpoints_require_json_and_bodiless_ones_do_not() {
    let f = Factory::start().await;
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    let host = format!("127.0.0.1:{}", f.addr.port());
    let verify = r#"{"token":"x.y.z","aud":"serviceb","sub":"servicea"}"#;
    for path in ["/issueToken/servicea", "/verify/servicea"] {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let (status, json) = raw(f.addr, post(path, &host, ct, verify)).await;
            assert_eq!(status, 415, "{path} {ct:?}: {json}");
            assert!(json["error"].is_string(), "{path} {ct:?}: {json}");
        }
        // With a charset, or in capitals: JSON all the same.
        for ct in ["application/json; charset=utf-8", "Application/JSON"] {
            let (status, json) = raw(f.addr, post(path, &host, Some(ct), verify)).await;
            assert_ne!(status, 415, "{path} {ct}: {json}");
        }
    }
    // No body and no content type: claims are optional.
    let (status, _) = raw(f.addr, post("/issueToken/servicea", &host, None, "")).await;
    assert_eq!(status, 200);
    // Endpoints without a body need no content type.
    for path in [
        "/keys/servicec",
        "/keys/servicea/rotate",
        "/utils/dump",
        "/dump",
    ] {
        let (status, json) = raw(f.addr, post(path, &host, None, "")).await;
        assert_eq!(status, 200, "{path}: {json}");
    }
}

#[tokio::test]
async fn a_request_for_another_host_is_421_on_every_factory_endpoint() {
    let f = Factory::start().await;
    create_key(&Client::new(), &f, "servicea").await;
    for path in [
        "/keys/servicea",
        "/.well-known/jwks.json",
        "/utils/keys",
        "/utils/publicKey/servicea",
        "/no-such-endpoint",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: rebound.example:{}\r\nConnection: close\r\n\r\n",
            f.addr.port()
        );
        let (status, json) = raw(f.addr, request).await;
        assert_eq!(status, 421, "{path}: {json}");
    }
    // No Host at all (HTTP/1.0): refused too.
    let (status, _) = raw(f.addr, "GET /utils/keys HTTP/1.0\r\n\r\n".into()).await;
    assert_eq!(status, 421);
}
