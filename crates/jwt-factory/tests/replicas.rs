#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 24, item 5: two factory replicas on one OpenBao, behind the real
//! nginx (round robin). Tokens from either verify everywhere, a rotation
//! started on one is seen by both, an assertion used on one is refused on
//! the other (even at the same instant), and stopping one under load
//! refuses no valid call but the one in flight on each connection.

mod support;
use support::{ISSUER, JWT_BEARER, refused};

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use reqwest::{Client, StatusCode};
use s2s_auth::{
    KeyPair, SigningAlgorithm,
    files::{PUBLIC, write_atomic},
    jws::{self, Claims},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use test_support::{
    Reply, Running,
    factory::{create_key, now_unix, rotate},
    gateway::{Gateway, start_factory_lb},
    json_reply,
    openbao::DevBao,
    reply, start_factory_opened,
};

/// OpenBao, two replicas and nginx in front; servicea is a registered
/// client whose key (a client's own, not the factory's) is here.
struct Replicas {
    bao: DevBao,
    dir: TempDir,
    a: Running,
    b: Running,
    lb: Gateway,
    client_key: KeyPair,
    http: Client,
}

impl Replicas {
    async fn start() -> Self {
        test_support::init();
        let bao = DevBao::start().await;
        let dir = tempfile::tempdir().unwrap();
        let client_key = KeyPair::generate(SigningAlgorithm::RS256).unwrap();
        let public = dir.path().join("servicea.pem");
        write_atomic(&public, client_key.public().pem().as_bytes(), PUBLIC).unwrap();
        let registry = json!({ "clients": [
            { "client_id": "servicea", "key_file": public, "audiences": ["serviceb"] },
        ]});
        let clients = dir.path().join("clients.json");
        write_atomic(&clients, registry.to_string().as_bytes(), PUBLIC).unwrap();
        let a = replica(&bao, dir.path(), &clients).await;
        let b = replica(&bao, dir.path(), &clients).await;
        let lb = start_factory_lb(dir.path(), &[a.addr, b.addr]).await;
        let http = Client::new();
        // Through nginx: one replica creates it, the other reads it back.
        create_key(&http, &a, "servicea").await;
        let r = Self {
            bao,
            dir,
            a,
            b,
            lb,
            client_key,
            http,
        };
        r.until_both_publish("servicea.v1-").await;
        r
    }

    /// A fresh assertion of servicea's.
    fn assertion(&self) -> String {
        let now = now_unix();
        let claims = json!({ "iss": "servicea", "sub": "servicea", "aud": ISSUER,
            "iat": now, "exp": now + 60, "jti": uuid() });
        let claims: Claims = claims.as_object().unwrap().clone();
        jws::sign(&claims, &self.client_key, SigningAlgorithm::RS256).unwrap()
    }

    async fn token_at(&self, base: &str, assertion: &str) -> Reply {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("audience", "serviceb"),
        ];
        reply(self.http.post(format!("{base}/token")).form(&form)).await
    }

    async fn jwks_at(&self, f: &Running) -> JwkSet {
        let (status, body) = json_reply(self.http.get(f.url_of("/.well-known/jwks.json"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Waits (at most 10 s) until both replicas publish a kid starting
    /// with `prefix`.
    async fn until_both_publish(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for f in [&self.a, &self.b] {
            while !kids(&self.jwks_at(f).await)
                .iter()
                .any(|k| k.starts_with(prefix))
            {
                assert!(
                    Instant::now() < deadline,
                    "{} never published {prefix}: {:?}",
                    f.addr,
                    kids(&self.jwks_at(f).await)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

trait UrlOf {
    fn url_of(&self, path: &str) -> String;
}
impl UrlOf for Running {
    fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }
}

async fn replica(bao: &DevBao, dir: &Path, clients: &Path) -> Running {
    let mut flags = bao.factory_flags();
    flags.extend(
        [
            "--clients-file",
            clients.to_str().unwrap(),
            "--openbao-sync-ms",
            "200",
            "--rotation-publish-ahead-secs",
            "2",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    start_factory_opened(&dir.join("keys"), &flags)
        .await
        .unwrap()
}

fn uuid() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "jti-{}-{}-{}",
        std::process::id(),
        now_unix(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap_or_default())
        .collect()
}

fn access_token(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json.as_ref().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Checks an access token against a JWK Set alone.
fn verifies_with(set: &JwkSet, token: &str) {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} not in {:?}", kids(set)));
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&["serviceb"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
}

#[tokio::test]
async fn an_assertion_used_on_one_replica_is_refused_on_the_other() {
    let r = Replicas::start().await;
    let once = r.assertion();
    access_token(&r.token_at(&r.a.url(), &once).await);
    let why = refused(&r.token_at(&r.b.url(), &once).await, 401, "invalid_client");
    assert!(why.contains("already used"), "{why}");

    // The same assertion at both replicas at the same instant: one wins.
    for _ in 0..10 {
        let twice = r.assertion();
        let (a, b) = (r.a.url(), r.b.url());
        let (x, y) = tokio::join!(r.token_at(&a, &twice), r.token_at(&b, &twice));
        let ok = [&x, &y].iter().filter(|r| r.status == 200).count();
        assert_eq!(ok, 1, "{} / {}", x.text, y.text);
    }
    // Each replica's in-memory cache alone would have let these through:
    // it is OpenBao's check-and-set that refused them.
    let audit = std::fs::read_to_string(r.bao.audit_log()).unwrap();
    assert!(
        audit.contains("secret/data/jwt-factory/jti/"),
        "no jti records audited"
    );
}

#[tokio::test]
async fn tokens_from_either_replica_verify_everywhere_and_a_rotation_on_one_is_seen_by_both() {
    let r = Replicas::start().await;
    // Through nginx, round robin: the tokens come from both replicas.
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(access_token(
            &r.token_at(&r.lb.url(""), &r.assertion()).await,
        ));
    }
    let (set_a, set_b) = (r.jwks_at(&r.a).await, r.jwks_at(&r.b).await);
    assert_eq!(kids(&set_a), kids(&set_b), "the same JWK Set at both");
    for t in &tokens {
        verifies_with(&set_a, t);
        verifies_with(&set_b, t);
    }

    // Rotate on A: B publishes the next key too, then both sign with it.
    let next = rotate(&r.http, &r.a, "servicea").await["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.starts_with("servicea.v2-"), "{next}");
    r.until_both_publish(&next).await;
    let status = |f: &Running| {
        let url = f.url_of("/utils/keys/servicea/status");
        let http = r.http.clone();
        async move { json_reply(http.get(url)).await.1 }
    };
    assert_eq!(
        status(&r.a).await,
        status(&r.b).await,
        "the same phases at both"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for f in [&r.a, &r.b] {
        loop {
            let t = access_token(&r.token_at(&f.url(), &r.assertion()).await);
            if jsonwebtoken::decode_header(&t).unwrap().kid.as_deref() == Some(next.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never signed with {next}",
                f.addr
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The tokens from before the rotation still verify at both.
    for t in &tokens {
        verifies_with(&r.jwks_at(&r.a).await, t);
        verifies_with(&r.jwks_at(&r.b).await, t);
    }
}

#[tokio::test]
async fn stopping_one_replica_under_load_refuses_no_valid_call_but_one_per_connection() {
    let mut r = Replicas::start().await;
    let r_lb = r.lb.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    const CONNECTIONS: usize = 4;
    let mut loads = Vec::new();
    for _ in 0..CONNECTIONS {
        // One kept-alive connection each.
        let http = Client::builder().pool_max_idle_per_host(1).build().unwrap();
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), r_lb.clone());
        loads.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let res = http
                    .post(format!("{url}/issueToken/servicea"))
                    .json(&json!({ "aud": "serviceb" }))
                    .send()
                    .await;
                match res {
                    Ok(res) if res.status() == StatusCode::OK => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{other:?}"));
                    }
                }
            }
            failures
        }));
    }
    let before = Instant::now();
    while ok.load(Ordering::Relaxed) < 50 {
        assert!(before.elapsed() < Duration::from_secs(20), "no load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.a.stop_within(Duration::from_secs(10)).await;
    let at_stop = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < at_stop + 100 {
        assert!(
            before.elapsed() < Duration::from_secs(40),
            "the load stopped with the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for l in loads {
        failures.extend(l.await.unwrap());
    }
    assert!(
        failures.len() <= CONNECTIONS,
        "{} of {} calls refused: {failures:?}",
        failures.len(),
        ok.load(Ordering::Relaxed)
    );
    eprintln!(
        "stopped replica A under load: {} calls answered, {} refused",
        ok.load(Ordering::Relaxed),
        failures.len()
    );
    // Nothing was lost: B signs on with the same key, and its set has it.
    let t = access_token(&r.token_at(&r_lb, &r.assertion()).await);
    verifies_with(&r.jwks_at(&r.b).await, &t);
    drop(r.dir);
}

/// Two replicas change the same key id before either has read the
/// other's record: the second loses the check-and-set, answers 409, and
/// holds the winner's keys from then on (never its own stale ones); a
/// retry then builds on them.
#[tokio::test]
async fn a_change_that_loses_to_another_replica_is_a_409_and_leaves_the_winners_keys() {
    test_support::init();
    let bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let slow = |dir: &Path| {
        let mut flags = bao.factory_flags();
        // No background read during the test: only the conflict reloads.
        flags.extend(["--openbao-sync-ms", "60000"].map(String::from));
        let keys = dir.join("keys");
        async move {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            start_factory_opened(&keys, &flags).await.unwrap()
        }
    };
    let (a, b) = (slow(dir.path()).await, slow(dir.path()).await);
    let http = Client::new();
    create_key(&http, &a, "x").await;
    let winner = kids(&{
        let (_, body) = json_reply(http.get(a.url_of("/.well-known/jwks.json"))).await;
        serde_json::from_value::<JwkSet>(body).unwrap()
    });
    let token =
        test_support::factory::issue(&http, &a, "x", "", &json!({ "aud": "serviceb" })).await;

    // B has never seen x: its write expects no record, and loses.
    let (status, body) = json_reply(http.post(b.url_of("/keys/x"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("another replica"),
        "{body}"
    );
    let (status, body) = json_reply(http.get(b.url_of("/.well-known/jwks.json"))).await;
    assert_eq!(status, StatusCode::OK);
    let set: JwkSet = serde_json::from_value(body).unwrap();
    assert_eq!(kids(&set), winner, "B holds A's keys after losing");
    let (code, body) = test_support::factory::verify(&http, &b, "x", &token, "serviceb", "x").await;
    assert_eq!(code, 200, "A's token at B: {body}");

    // A retry on B rotates on top of A's keys: A's token still verifies.
    let rotation = rotate(&http, &b, "x").await;
    // (The lost attempt made a Transit version that nothing publishes.)
    assert_eq!(rotation["previousKid"], winner[0].as_str(), "{rotation}");
    assert_ne!(rotation["kid"], winner[0].as_str(), "{rotation}");
    let (code, body) = test_support::factory::verify(&http, &b, "x", &token, "serviceb", "x").await;
    assert_eq!(code, 200, "{body}");
}
