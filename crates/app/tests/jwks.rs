//! Scenario 5 and key rotation: the factory's JWK Set, `kid`s, rotation with
//! an overlap, and serviceb's cached copy of the set, against real servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support as common;

use std::{
    os::unix::fs::PermissionsExt as _,
    time::{Duration, Instant},
};

use common::{
    Options, Running, Stack,
    factory::{self, create_key, dump, rotate},
    forge::edit_header,
    json_reply, reply,
};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use serde_json::{Value, json};

/// A token from `factory`'s key `id`, for serviceb.
async fn issue(s: &Stack, factory: &Running, id: &str) -> String {
    let aud = json!({ "aud": "serviceb" });
    factory::issue(&s.client, factory, id, "", &aud).await
}

/// `factory`'s answer to `/verify/servicea` for `token` (serviceb, servicea).
async fn verify(s: &Stack, factory: &Running, token: &str) -> (u16, Value) {
    factory::verify(
        &s.client, factory, "servicea", token, "serviceb", "servicea",
    )
    .await
}

/// The factory's JWK Set and its `Cache-Control`.
async fn jwks(s: &Stack, factory: &Running) -> (JwkSet, String) {
    let url = format!("{}/.well-known/jwks.json", factory.url());
    let r = reply(s.client.get(url)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cache = r.header("cache-control").unwrap().to_owned();
    (serde_json::from_str(&r.text).unwrap(), cache)
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// serviceb's `/scenario5-server` with `token`.
async fn b5(s: &Stack, token: &str) -> (u16, Value) {
    let url = format!("{}/scenario5-server", s.b.url());
    json_reply(s.client.get(url).bearer_auth(token)).await
}

/// A stack whose receivers also get `bc_args`, and a scenario-5 token that
/// serviceb has accepted once (so it holds the factory's JWK Set).
async fn with_cached_set(bc_args: &[&str]) -> (Stack, String) {
    let s = Stack::start(Options {
        bc_args: bc_args.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    })
    .await;
    let token = issue(&s, &s.factory, "servicea").await;
    assert_eq!(b5(&s, &token).await.0, 200);
    (s, token)
}

fn fetches(s: &Stack) -> u64 {
    s.b.receiver.as_ref().unwrap().jwks_fetches().0
}

/// `token` with another `kid` (the signature no longer matches, but a
/// verifier looks the `kid` up first).
fn with_kid(token: &str, kid: &str) -> String {
    edit_header(token, |h| {
        h.insert("kid".into(), kid.into());
    })
}

/// Rotation signs with the new key at once, as before publish-ahead
/// existed: these tests are about the overlap after a rotation and the
/// receivers' refetch; publish-ahead has its own tests (`tests/rotation.rs`).
fn sign_at_once() -> Options {
    Options {
        factory_args: vec!["--rotation-publish-ahead-secs", "0"],
        ..Default::default()
    }
}

#[tokio::test]
async fn scenario5_valid_and_expired() {
    let s = Stack::start(Options::default()).await;
    let (body, expired) = s.valid_then_expired(5).await;
    assert_eq!(body["claims"]["iss"], "https://jwt-factory/");
    assert_eq!(body["claims"]["aud"], "serviceb");
    assert_eq!(expired["error"]["name"], "TokenExpiredError");
}

#[tokio::test]
async fn the_jwk_set_parses_and_each_key_verifies_the_tokens_it_signed() {
    let s = Stack::start(sign_at_once()).await;
    let f = &s.factory;
    create_key(&s.client, f, "serviceb").await;
    let before = issue(&s, f, "servicea").await;
    let rotated = rotate(&s.client, f, "servicea").await;
    let after = issue(&s, f, "servicea").await;
    let other = issue(&s, f, "serviceb").await;
    assert_eq!(rotated["previousKid"], kid(&before));
    assert_eq!(rotated["kid"], kid(&after));
    assert_ne!(
        kid(&before),
        kid(&after),
        "a kid names a key pair, not a key id"
    );
    assert!(kid(&before).starts_with("servicea.") && kid(&other).starts_with("serviceb."));

    let (set, cache) = jwks(&s, f).await;
    assert_eq!(cache, "public, max-age=300");
    assert_eq!(set.keys.len(), 3, "servicea current + previous, serviceb");
    for jwk in &set.keys {
        let json = serde_json::to_value(jwk).unwrap();
        for field in ["kid", "kty", "alg", "use", "n", "e"] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "RS256");
        assert_eq!(json["kty"], "RSA");
    }
    // An independent check: each token verifies with the JWK its kid names.
    for token in [&before, &after, &other] {
        let jwk = set.find(&kid(token)).expect("kid in the set");
        let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["serviceb"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    }
    // ...and not with another one.
    let wrong = set.find(&kid(&other)).unwrap();
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["serviceb"]);
    assert!(
        jsonwebtoken::decode::<Value>(&after, &DecodingKey::from_jwk(wrong).unwrap(), &v).is_err()
    );
}

#[tokio::test]
async fn a_rotated_out_key_verifies_until_its_tokens_expire_then_drops_out() {
    // Tokens (both kinds) live 2 s and no leeway: the previous key
    // overlaps for 2 s.
    let s = Stack::start(Options {
        factory_args: vec![
            "--token-lifetime-secs",
            "2",
            "--access-token-lifetime-secs",
            "2",
            "--leeway-secs",
            "0",
            "--rotation-publish-ahead-secs",
            "0",
        ],
        ..Default::default()
    })
    .await;
    let f = &s.factory;
    let old = issue(&s, f, "servicea").await;
    rotate(&s.client, f, "servicea").await;
    let (status, body) = verify(&s, f, &old).await;
    assert_eq!(status, 200, "old token, during the overlap: {body}");
    assert_eq!(jwks(&s, f).await.0.keys.len(), 2);

    // Bounded wait for the overlap to end (about 2 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = verify(&s, f, &old).await;
        if status == 403 {
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg == "jwt expired" || msg.contains("no key with kid"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old token still valid after its expiry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while jwks(&s, f).await.0.keys.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "old key still published after its overlap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = issue(&s, f, "servicea").await;
    assert_eq!(verify(&s, f, &new).await.0, 200);
}

#[tokio::test]
async fn replacing_a_key_ends_old_tokens_at_once_unlike_rotating() {
    let s = Stack::start(Options::default()).await;
    let f = &s.factory;
    let old = issue(&s, f, "servicea").await;
    create_key(&s.client, f, "servicea").await;
    let (status, body) = verify(&s, f, &old).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no key with kid"),
        "{body}"
    );
    assert_eq!(jwks(&s, f).await.0.keys.len(), 1);
}

#[tokio::test]
async fn dump_and_restart_during_the_overlap_keep_the_previous_key() {
    let mut s = Stack::start(sign_at_once()).await;
    let old = issue(&s, &s.factory, "servicea").await;
    rotate(&s.client, &s.factory, "servicea").await;
    dump(&s.client, &s.factory).await;
    let retired: Vec<_> = std::fs::read_dir(s.path("keys"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.to_str().unwrap().contains("servicea.retired-")
                && p.to_str().unwrap().ends_with("-private.pem")
        })
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert_eq!(
        std::fs::metadata(&retired[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    s.factory.stop().await;
    let restarted = common::start_factory(&s.files.keys, &[]).await;
    let (status, body) = verify(&s, &restarted, &old).await;
    assert_eq!(status, 200, "old token after the restart: {body}");
    assert_eq!(jwks(&s, &restarted).await.0.keys.len(), 2);
}

#[tokio::test]
async fn serviceb_fetches_the_set_once_and_again_only_for_a_new_kid() {
    let s = Stack::start(sign_at_once()).await;
    for _ in 0..5 {
        assert_eq!(s.get_a("/scenario5").await.0, 200);
    }
    assert_eq!(fetches(&s), 1, "one fetch for five requests");

    rotate(&s.client, &s.factory, "servicea").await;
    let (status, body) = s.get_a("/scenario5").await;
    assert_eq!(status, 200, "new kid after the rotation: {body}");
    assert_eq!(fetches(&s), 2, "one refetch for the new kid");
    for _ in 0..5 {
        assert_eq!(s.get_a("/scenario5").await.0, 200);
    }
    assert_eq!(fetches(&s), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_refetch() {
    let (s, token) = with_cached_set(&[]).await;
    assert_eq!(fetches(&s), 1);
    for i in 0..100 {
        let (status, body) = b5(&s, &with_kid(&token, &format!("forged-{i}"))).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("no key with kid forged-{i}")),
            "{body}"
        );
    }
    assert!(
        fetches(&s) <= 2,
        "{} fetches for 100 unknown kids",
        fetches(&s)
    );
    // The real kid still verifies, from the cache.
    assert_eq!(b5(&s, &token).await.0, 200);
}

#[tokio::test]
async fn the_cached_set_keeps_working_while_the_factory_is_down() {
    // JWKS_MAX_AGE_SECS=0: the cached set is always stale, so every request
    // tries to refresh it; with the factory down, the stale set still serves.
    for max_age in ["300", "0"] {
        let (mut s, token) = with_cached_set(&[
            "--jwks-max-age-secs",
            max_age,
            "--jwks-refresh-min-secs",
            "0",
        ])
        .await;
        s.factory.stop().await;
        for _ in 0..3 {
            let (status, body) = b5(&s, &token).await;
            assert_eq!(status, 200, "max-age {max_age}, factory down: {body}");
        }
    }
}

#[tokio::test]
async fn no_set_and_no_factory_is_a_502_not_a_hang() {
    let mut s = Stack::start(Options::default()).await;
    let token = issue(&s, &s.factory, "servicea").await;
    s.factory.stop().await;
    let started = Instant::now();
    let (status, body) = b5(&s, &token).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("jwt-factory"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_token_without_kid_or_with_an_unknown_kid_is_a_clear_403() {
    let s = Stack::start(Options::default()).await;
    let token = issue(&s, &s.factory, "servicea").await;
    let (status, body) = b5(&s, &with_kid(&token, "servicea-nosuchkey")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "invalid token");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no key with kid servicea-nosuchkey"),
        "{body}"
    );

    // Remove the kid: a JWK Set verifier cannot pick a key.
    let no_kid = edit_header(&token, |h| {
        h.remove("kid");
    });
    let (status, body) = b5(&s, &no_kid).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no kid"),
        "{body}"
    );
}

#[tokio::test]
async fn rotating_an_unknown_key_is_a_404() {
    let s = Stack::start(Options::default()).await;
    let (status, body) = s.post(&s.factory, "/keys/nobody/rotate").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("key not found"),
        "{body}"
    );
}

/// Every key id's keys are in the factory's set, and `/issueToken` lets the
/// body set `sub`. A token from another key id's key that claims to be
/// servicea must still be refused: only servicea's keys verify servicea.
#[tokio::test]
async fn a_token_signed_with_another_key_ids_key_is_refused_even_if_it_claims_servicea() {
    let s = Stack::start(Options::default()).await;
    let f = &s.factory;
    create_key(&s.client, f, "mallory").await;
    let claims = json!({ "sub": "servicea", "aud": "serviceb" });
    let forged = factory::issue(&s.client, f, "mallory", "", &claims).await;
    assert!(kid(&forged).starts_with("mallory."));
    let (status, body) = b5(&s, &forged).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a key of servicea"),
        "{body}"
    );
    assert_eq!(fetches(&s), 0, "a foreign kid causes no fetch");
    // The same holds on the factory's own path (scenarios 1-2).
    let (status, body) = verify(&s, f, &forged).await;
    assert_eq!(status, 403, "{body}");
    // servicea's real tokens still pass.
    assert_eq!(s.get_a("/scenario5").await.0, 200);
}

/// A JWK Set whose freshness is short still causes at most one refetch for
/// a flood of unknown kids: it is never fresh for less than the refetch
/// interval.
#[tokio::test]
async fn a_short_cache_lifetime_does_not_defeat_the_refetch_limit() {
    let (s, token) = with_cached_set(&["--jwks-max-age-secs", "0"]).await;
    for i in 0..50 {
        assert_eq!(
            b5(&s, &with_kid(&token, &format!("servicea.forged{i}")))
                .await
                .0,
            403
        );
    }
    assert!(fetches(&s) <= 2, "{} fetches", fetches(&s));
}

/// With the factory down, the cached set serves only `JWKS_MAX_STALE_SECS`
/// past its freshness: a key the issuer withdrew is not trusted forever.
#[tokio::test]
async fn a_stale_set_is_not_served_past_its_limit() {
    let (mut s, token) = with_cached_set(&[
        "--jwks-max-age-secs",
        "0",
        "--jwks-refresh-min-secs",
        "0",
        "--jwks-max-stale-secs",
        "0",
    ])
    .await;
    s.factory.stop().await;
    let (status, body) = b5(&s, &token).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("jwt-factory"),
        "{body}"
    );
}

/// Key creation is open to anyone (the demo's simplification), so what it
/// can grow is bounded: 256 key ids, 3 rotated-out keys per key id in
/// overlap. Past a bound, a 409 that says which and what to do.
#[tokio::test]
async fn key_ids_and_rotations_are_bounded() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    // ES256: key generation is fast enough to reach the bound quickly.
    let f = common::start_factory(
        &dir.path().join("keys"),
        &[
            "--algorithm",
            "ES256",
            "--rotation-publish-ahead-secs",
            "0",
            // Past the bound on the pace of new key ids, to reach this one.
            "--new-key-ids-per-minute",
            "1000",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: String| json_reply(client.post(format!("{}{path}", f.url())));
    let limit = jwt_factory::keystore::MAX_KEY_IDS;
    for i in 0..limit {
        let (status, body) = post(format!("/keys/k{i}")).await;
        assert_eq!(status, 200, "key {i}: {body}");
    }
    let (status, body) = post("/keys/one-too-many".into()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("256 key ids"),
        "{body}"
    );
    // Replacing an existing key id is still fine.
    assert_eq!(post("/keys/k0".into()).await.0, 200);

    for n in 0..jwt_factory::keystore::MAX_RETIRING {
        let (status, body) = post("/keys/k1/rotate".into()).await;
        assert_eq!(status, 200, "rotation {n}: {body}");
    }
    let (status, body) = post("/keys/k1/rotate".into()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("rotated-out keys still verifying"),
        "{body}"
    );
    // The JWK Set holds every current key and the overlapping ones, no more.
    let r = reply(client.get(format!("{}/.well-known/jwks.json", f.url()))).await;
    let set: JwkSet = serde_json::from_str(&r.text).unwrap();
    assert_eq!(set.keys.len(), limit + jwt_factory::keystore::MAX_RETIRING);
}
