#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 21, item 15: 250 anonymous `GET /keys/evilN` filled the 256 key
//! ids in 26 s, and each grew the JWK Set every verifier fetches. Against
//! the real factory: new key ids come at most `NEW_KEY_IDS_PER_MINUTE` at
//! once, then 429 with `Retry-After`; replacing or rotating an existing
//! key id is not a new one and is never refused for it.

use reqwest::Client;
use test_support::{init, json_reply, reply, start_factory};

#[tokio::test]
async fn new_key_ids_are_bounded_per_minute_replacements_are_not() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let f = start_factory(
        &dir.path().join("keys"),
        &[
            "--algorithm",
            "ES256",
            "--new-key-ids-per-minute",
            "3",
            "--rotation-publish-ahead-secs",
            "0",
        ],
    )
    .await;
    let http = Client::new();
    let url = |path: &str| format!("{}{path}", f.url());
    for id in ["k0", "k1", "k2"] {
        let (status, body) = json_reply(http.get(url(&format!("/keys/{id}")))).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    // The fourth new key id within the minute: 429, JSON, Retry-After.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = reply(http.request(method.clone(), url("/keys/evil3"))).await;
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry), "{method}: Retry-After {retry}");
        let (status, body) = r.into_json();
        assert_eq!(status, 429, "{method}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("NEW_KEY_IDS_PER_MINUTE"), "{body}");
        assert!(message.contains("at most 3 new key ids a minute"), "{body}");
    }
    let (_, ids) = json_reply(http.get(url("/utils/keys"))).await;
    assert_eq!(ids, serde_json::json!(["k0", "k1", "k2"]));
    assert!(
        !json_reply(http.get(url("/.well-known/jwks.json")))
            .await
            .1
            .to_string()
            .contains("evil3")
    );

    // Existing key ids: replaced and rotated as often as asked.
    for _ in 0..3 {
        for id in ["k0", "k1", "k2"] {
            let (status, body) = json_reply(http.post(url(&format!("/keys/{id}")))).await;
            assert_eq!(status, 200, "{id}: {body}");
        }
    }
    let (status, body) = json_reply(http.post(url("/keys/k0/rotate"))).await;
    assert_eq!(status, 200, "{body}");
}

/// The default lets the workshop create its key ids (servicea, serviceb,
/// servicec and a few more) at once, and is a bound: `--help` names it.
#[test]
fn the_default_and_its_help() {
    use clap::CommandFactory as _;
    let config = test_support::factory_config(std::path::Path::new("keys"), &[]);
    assert_eq!(config.new_key_ids_per_minute, 30);
    let help = jwt_factory::Config::command()
        .render_long_help()
        .to_string();
    assert!(help.contains("NEW_KEY_IDS_PER_MINUTE"), "{help}");
}
