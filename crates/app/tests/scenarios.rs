//! The four scenarios end to end, valid and expired, over real HTTP and
//! real TLS, plus the failures a workshop will meet: no token, no key yet,
//! a dead or silent factory, a peer with an untrusted certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::time::{Duration, Instant};

use common::{Options, Silent, Stack, factory, get_json, json_reply, reply};
use serde_json::{Value, json};

fn error_name(body: &Value) -> &str {
    body["error"]["name"].as_str().unwrap_or_default()
}

/// A fan-out scenario's answer: serviceb and servicec each accepted a token
/// for itself.
fn assert_both_audiences(body: &Value) {
    assert_eq!(body["serviceb"]["claims"]["aud"], "serviceb", "{body}");
    assert_eq!(body["servicec"]["claims"]["aud"], "servicec", "{body}");
}

#[tokio::test]
async fn scenario1_valid_and_expired() {
    let s = Stack::start(Options::default()).await;
    let (body, expired) = s.valid_then_expired(1).await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["claims"]["sub"], "servicea");
    assert_eq!(body["claims"]["aud"], "serviceb");
    assert_eq!(body["claims"]["iss"], "https://jwt-factory/");

    let body = expired;
    assert_eq!(body["message"], "invalid token");
    assert_eq!(body["valid"], false);
    assert_eq!(error_name(&body), "TokenExpiredError");
    assert_eq!(body["error"]["message"], "jwt expired");
    assert!(
        body["error"]["expiredAt"]
            .as_str()
            .unwrap()
            .ends_with(".000Z")
    );
    assert_eq!(body["claims"], serde_json::json!({}));
}

#[tokio::test]
async fn scenario2_both_valid_then_servicec_expired() {
    let s = Stack::start(Options::default()).await;
    let (body, expired) = s.valid_then_expired(2).await;
    assert_both_audiences(&body);

    let body = expired;
    assert_eq!(
        body["serviceb"]["valid"], true,
        "serviceb's token is not expired"
    );
    assert_eq!(error_name(&body["servicec"]), "TokenExpiredError");
}

#[tokio::test]
async fn scenario3_valid_and_expired_over_tls() {
    let s = Stack::start(Options::default()).await;
    let (body, expired) = s.valid_then_expired(3).await;
    assert_eq!(body["claims"]["iss"], "https://service-issuer");
    assert_eq!(body["claims"]["aud"], "serviceb");
    let lifetime =
        body["claims"]["exp"].as_i64().unwrap() - body["claims"]["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 30);

    assert_eq!(error_name(&expired), "TokenExpiredError");
}

#[tokio::test]
async fn scenario4_valid_and_expired() {
    let s = Stack::start(Options::default()).await;
    let (body, expired) = s.valid_then_expired(4).await;
    assert_both_audiences(&body);

    assert_eq!(error_name(&expired["serviceb"]), "TokenExpiredError");
    assert_eq!(error_name(&expired["servicec"]), "TokenExpiredError");
}

#[tokio::test]
async fn expired_flag_zero_or_false_is_not_expired() {
    let s = Stack::start(Options::default()).await;
    for q in ["?expired=0", "?expired=false"] {
        let (status, body) = s.get_a(&format!("/scenario1{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
    }
}

#[tokio::test]
async fn receivers_answer_401_without_a_token() {
    let s = Stack::start(Options::default()).await;
    for url in [
        format!("{}/scenario1-server", s.b.url()),
        format!("{}/scenario2-server", s.c.url()),
        format!("{}/scenario3-server", s.b.https_url()),
        format!("{}/scenario4-server", s.c.https_url()),
    ] {
        let r = reply(s.client.get(&url)).await;
        assert_eq!(r.status, 401, "{url}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let (_, body) = r.into_json();
        assert_eq!(body["message"], "no token provided", "{url}");
    }
}

#[tokio::test]
async fn scenario3_missing_key_is_503_then_gen_keys_fixes_it_without_restart() {
    let s = Stack::start(Options {
        no_scenario3_keys: true,
        ..Default::default()
    })
    .await;
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 503, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("jwt-private.pem"), "{msg}");
    assert!(msg.contains("gen-keys"), "{msg}");

    let (status, body) = s.post(&s.a, "/gen-keys").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["folder"]
            .as_str()
            .unwrap()
            .ends_with("scenario-3-keys")
    );
    let private = s.path("scenario-3-keys/jwt-private.pem");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.get_a("/scenario4").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn rotating_the_scenario3_key_while_running_keeps_working() {
    let s = Stack::start(Options::default()).await;
    assert_eq!(s.get_a("/scenario3").await.0, 200);
    let before = std::fs::read_to_string(s.path("scenario-3-keys/jwt-public.pem")).unwrap();
    assert_eq!(s.post(&s.a, "/gen-keys").await.0, 200);
    // A rotation with an overlap (docs/rotation.md): the new key is
    // published first and becomes current after SCENARIO3_PUBLISH_AHEAD_SECS.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let after = std::fs::read_to_string(s.path("scenario-3-keys/jwt-public.pem")).unwrap();
        if after != before || std::time::Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(before, after, "a new key pair was written");
    let (status, body) = s.get_a("/scenario4").await;
    assert_eq!(
        status, 200,
        "receivers picked up the new public key: {body}"
    );
}

#[tokio::test]
async fn factory_down_gives_502_quickly() {
    let mut s = Stack::start(Options::default()).await;
    s.factory.stop().await;
    let started = Instant::now();
    let (status, body) = s.get_a("/scenario1").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("jwt-factory"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // scenario 2: both legs fail, both are reported.
    let (status, body) = s.get_a("/scenario2").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["serviceb"]["message"]
            .as_str()
            .unwrap()
            .contains("jwt-factory")
    );
    assert!(
        body["servicec"]["message"]
            .as_str()
            .unwrap()
            .contains("jwt-factory")
    );

    // Scenarios 3-4 do not need the factory at all.
    assert_eq!(s.get_a("/scenario3").await.0, 200);
}

#[tokio::test]
async fn silent_factory_gives_504_within_the_timeout() {
    // Accepts connections, never answers.
    let silent = Silent::start().await;
    let s = Stack::start(Options {
        factory_url_for_a: Some(silent.url("")),
        a_args: vec!["--request-timeout-ms".into(), "300".into()],
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let (status, body) = s.get_a("/scenario1").await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 300ms"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn peer_down_in_scenario4_still_reports_the_other_half() {
    let mut s = Stack::start(Options::default()).await;
    s.c.stop().await;
    let (status, body) = s.get_a("/scenario4").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["serviceb"]["valid"], true, "{body}");
    assert!(
        body["servicec"]["message"]
            .as_str()
            .unwrap()
            .contains("servicec"),
        "{body}"
    );
}

#[tokio::test]
async fn servicea_refuses_a_peer_whose_certificate_is_not_from_our_ca() {
    // serviceb gets a certificate from a different CA than servicea trusts.
    let other = common::files::other_ca();
    let s = Stack::start(Options {
        b_certs: Some(other.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 502, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("serviceb") && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    // servicec, with the right certificate, is still fine.
    let (status, body) = s.get_a("/scenario4").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["servicec"]["valid"], true, "{body}");
}

#[tokio::test]
async fn scenario3_endpoints_are_not_served_over_plain_http() {
    let s = Stack::start(Options::default()).await;
    let (status, body) = get_json(&s.client, &format!("{}/scenario3-server", s.b.url())).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn request_id_is_kept_and_returned() {
    let s = Stack::start(Options::default()).await;
    let r = s
        .client
        .get(format!("{}/scenario1", s.a.url()))
        .header("x-request-id", "workshop-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "workshop-42");
    let r = s
        .client
        .get(format!("{}/hello", s.b.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn bad_query_is_a_json_400() {
    let s = Stack::start(Options::default()).await;
    let (status, body) = s.get_a("/scenario1?expired=1&expired=2").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].is_string());
}

/// `ALGORITHM=ES256` or `EdDSA` end to end: factory keys and tokens,
/// servicea's own key, local verification; valid and expired.
#[tokio::test]
async fn every_scenario_works_with_elliptic_curve_algorithms() {
    for alg in ["ES256", "ES384", "EdDSA"] {
        // Behind the real gateway too: scenario 9 goes through nginx.
        let edge = common::gateway::Edge::start(
            Options {
                algorithm: Some(alg),
                ..Default::default()
            },
            None,
            [1000, 2000, 5000],
        )
        .await;
        let s = &edge.s;
        for scenario in &app::scenarios::SCENARIOS {
            if scenario.check == app::scenarios::Check::Mesh {
                // Behind real Envoy sidecars: mesh.rs runs it with these
                // algorithms.
                continue;
            }
            if scenario.check == app::scenarios::Check::Identity {
                // No token to expire: the certificate is the credential.
                let (status, body) = s.get_a(&scenario.path()).await;
                assert_eq!(status, 200, "{alg} {}: {body}", scenario.path());
                continue;
            }
            s.valid_then_expired(scenario.n).await;
        }
        // The token's header names the algorithm.
        let aud = json!({ "aud": "serviceb" });
        let token = factory::issue(&s.client, &s.factory, "servicea", "", &aud).await;
        assert_eq!(
            format!("{:?}", jsonwebtoken::decode_header(&token).unwrap().alg),
            alg
        );
    }
}

/// A receiver whose key file is of the wrong kind for its ALGORITHM says so.
#[tokio::test]
async fn a_key_of_the_wrong_kind_is_a_clear_503() {
    let s = Stack::start(Options::default()).await;
    // Replace servicea's RSA key pair by an EC one while the services expect RS256.
    app::caller::generate_keys(
        s2s_auth::SigningAlgorithm::ES256,
        &s.path("scenario-3-keys/jwt-private.pem"),
        &s.path("scenario-3-keys/jwt-public.pem"),
    )
    .unwrap();
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ALGORITHM=RS256"),
        "{body}"
    );
    // `POST /gen-keys` replaces it at once (it signed nothing usable: no
    // overlap to wait for), and keeps it aside rather than losing it.
    let (status, body) = s.post(&s.a, "/gen-keys").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 200, "the new RSA pair signs at once: {body}");
    for kept in ["jwt-private.unusable.pem", "jwt-public.unusable.pem"] {
        let pem = std::fs::read_to_string(s.path(&format!("scenario-3-keys/{kept}"))).unwrap();
        assert!(pem.contains("BEGIN"), "{kept} kept aside: {pem}");
    }
}

/// A stand-in dependency on 127.0.0.1 answering every request with `answer`;
/// counts the connections it accepts.
async fn stand_in(
    answer: axum::response::Response<String>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{Arc, atomic::AtomicUsize};
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = common::bind().await;
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (status, headers, body) = {
        let (parts, body) = answer.into_parts();
        (parts.status, parts.headers, body)
    };
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let (headers, body) = (headers.clone(), body.clone());
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { (status, headers, body) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test]
async fn a_200_from_the_factory_that_does_not_say_valid_is_not_trusted() {
    let s = Stack::start(Options::default()).await;
    let (fake, _) = stand_in(
        axum::http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(r#"{"valid":false}"#.to_string())
            .unwrap(),
    )
    .await;
    let b = common::start_service(
        app::Role::B,
        &["--jwt-factory-endpoint".into(), fake],
        common::bind().await,
        None,
    )
    .await;
    let url = format!("{}/scenario1-server", b.url());
    let (status, body) = json_reply(s.client.get(url).bearer_auth("a.b.c")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unexpected answer"),
        "{body}"
    );
}

#[tokio::test]
async fn a_redirect_from_a_peer_is_not_followed() {
    let s = Stack::start(Options::default()).await;
    let (elsewhere, hits) = stand_in(
        axum::http::Response::builder()
            .status(200)
            .body("{}".to_string())
            .unwrap(),
    )
    .await;
    let (redirecting, _) = stand_in(
        axum::http::Response::builder()
            .status(307)
            .header("location", format!("{elsewhere}/steal"))
            .body(String::new())
            .unwrap(),
    )
    .await;
    let a = common::start_service(
        app::Role::A,
        &[
            "--jwt-factory-endpoint".into(),
            s.factory.url(),
            "--service-b-endpoint".into(),
            redirecting,
        ],
        common::bind().await,
        None,
    )
    .await;
    let (status, body) = get_json(&s.client, &format!("{}/scenario1", a.url())).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the bearer token went to the redirect target"
    );
}

#[tokio::test]
async fn an_unreasonable_request_id_is_replaced() {
    let s = Stack::start(Options::default()).await;
    for bad in ["x".repeat(100), "has space".into(), "semi;colon".into()] {
        let r = s
            .client
            .get(format!("{}/hello", s.b.url()))
            .header("x-request-id", &bad)
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 8, "{id}");
    }
}

/// A client that sends half its headers and waits ("slowloris") is cut off
/// after HEADER_TIMEOUT_MS, on every kind of listener; the servers go on.
#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = Stack::start(Options {
        bc_args: vec!["--header-timeout-ms".into(), "300".into()],
        factory_args: vec!["--header-timeout-ms", "300"],
        ..Default::default()
    })
    .await;
    for (name, addr) in [("serviceb", s.b.addr), ("jwt-factory", s.factory.addr)] {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 512];
        // Closed (0 bytes, or a reset) rather than left waiting.
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name} kept a half-sent request open"));
        assert!(matches!(read, Ok(0) | Err(_)), "{name}: {read:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{name}: {took:?}"
        );
    }
    assert_eq!(s.get_a("/scenario1").await.0, 200);
}
