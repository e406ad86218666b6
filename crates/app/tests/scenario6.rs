//! Scenario 6: servicea gets a token from jwt-factory's `POST /token`
//! (client credentials, private_key_jwt), caches it, refreshes it in the
//! background; serviceb verifies it locally and requires `typ: at+jwt` and
//! `client_id`. Against the real stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{Options, Stack, factory, json_reply};

fn jti(body: &Value) -> String {
    body["claims"]["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn scenario6_valid_cached_and_expired() {
    let s = Stack::start(Options::default()).await;
    let (status, first) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{first}");
    let claims = &first["claims"];
    assert_eq!(claims["iss"], "https://jwt-factory/");
    assert_eq!(claims["sub"], "servicea");
    assert_eq!(claims["client_id"], "servicea");
    assert_eq!(claims["aud"], "serviceb");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // The second call uses the cached token: same jti.
    let (status, second) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(jti(&first), jti(&second), "the token is cached");

    // ?expired=1: servicea's client assertion is expired; the factory
    // refuses it, servicea relays the refusal.
    let (status, body) = s.get_a("/scenario6?expired=1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(body["factory_status"], 401, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // ...and the cached token is untouched.
    let (_, third) = s.get_a("/scenario6").await;
    assert_eq!(jti(&first), jti(&third));
}

#[tokio::test]
async fn with_the_factory_stopped_scenario6_still_answers_from_its_cached_token() {
    let mut s = Stack::start(Options::default()).await;
    let (status, before) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{before}");
    // serviceb has the JWK Set cached from scenario 6 itself.
    s.factory.stop().await;
    for _ in 0..3 {
        let (status, body) = s.get_a("/scenario6").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(jti(&before), jti(&body));
    }
    for n in [1, 2, 5] {
        let (status, body) = s.get_a(&format!("/scenario{n}")).await;
        assert_eq!(status, 502, "scenario {n}: {body}");
        assert!(
            body.to_string().contains("jwt-factory unavailable"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_audience_servicea_may_not_have_is_refused_with_invalid_target() {
    let s = Stack::start(Options::default()).await;
    let (status, body) = s.get_a("/scenario6/token?audience=jwt-factory").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "invalid_target", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("allowed: serviceb, servicec"),
        "{body}"
    );
    let (status, body) = s.get_a("/scenario6/token?audience=servicec").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["aud"], "servicec");
    assert!(
        body.get("access_token").is_none(),
        "the token stays inside servicea"
    );
    let (status, body) = s.get_a("/scenario6/token?audience=../x").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn serviceb_accepts_only_access_tokens_for_itself() {
    let s = Stack::start(Options::default()).await;
    let url = format!("{}/scenario6-server", s.b.url());
    // A scenario-5 token: same key, same claims, but typ JWT and no client_id.
    let aud = json!({ "aud": "serviceb" });
    let plain = factory::issue(&s.client, &s.factory, "servicea", "", &aud).await;
    let (status, body) = json_reply(s.client.get(&url).bearer_auth(&plain)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("typ"),
        "{body}"
    );
    // No token: 401.
    let (status, _) = json_reply(s.client.get(&url)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_token_is_refreshed_in_the_background_before_it_expires() {
    // 12 s tokens: usable until 5 s before expiry, refreshed once less
    // than 12/5 + 5 = 7 s are left.
    let s = Stack::start(Options {
        factory_args: vec!["--access-token-lifetime-secs", "12"],
        ..Default::default()
    })
    .await;
    let (status, first) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{first}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Still served from the cache (this request does not wait for the
    // factory); it starts the background refresh.
    let (status, second) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(jti(&first), jti(&second));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, third) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "{third}");
    assert_ne!(jti(&first), jti(&third), "refreshed in the background");
}
