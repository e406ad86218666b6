//! Issue 21, item 7: the factory holds the JWK Sets of its `jwks_uri`
//! clients with the receivers' rules (the shared `s2s_web::jwks_cache`),
//! against a real factory and a real JWK Set server the test controls.
//! Its own test binary: it installs the process's log subscriber, writing
//! to a buffer the tests read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::{StatusCode, header};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyOperations, PublicKeyUse};
use reqwest::Client;
use s2s_auth::{
    KeyId, KeyPair, SigningAlgorithm,
    files::{PUBLIC, write_atomic},
    jwk::public_jwk,
    jws::{self, Claims},
};
use serde_json::json;
use tempfile::TempDir;
use test_support::{
    Reply, Running, factory::create_key, factory::now_unix, forge::edit_header, reply,
    start_factory,
};

const ISSUER: &str = "https://jwt-factory/";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CLIENT: &str = "rot";

fn log_text() -> String {
    test_support::captured_log::text()
}

/// The client's JWK Set server: serves `set` with `Cache-Control:
/// max-age`, or answers `status` when that is not 200; counts requests.
struct SetServer {
    set: Arc<RwLock<JwkSet>>,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    url: String,
}

impl SetServer {
    async fn start(keys: Vec<Jwk>, max_age: u64) -> Self {
        let set = Arc::new(RwLock::new(JwkSet { keys }));
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, st, h) = (Arc::clone(&set), Arc::clone(&status), Arc::clone(&hits));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                let code = StatusCode::from_u16(st.load(Ordering::SeqCst)).unwrap();
                let body = serde_json::to_string(&*s.read().unwrap()).unwrap();
                async move {
                    if code == StatusCode::OK {
                        let cc = format!("max-age={max_age}");
                        (code, [(header::CACHE_CONTROL, cc)], body)
                    } else {
                        (
                            code,
                            [(header::CACHE_CONTROL, "no-store".into())],
                            "down".into(),
                        )
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            set,
            status,
            hits,
            url,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A factory whose registry has one client, `rot`, with `jwks_uri` = the
/// set server's URL; `flags` are the factory's extra settings.
struct Sts {
    _dir: TempDir,
    factory: Running,
    http: Client,
    alg: SigningAlgorithm,
}

impl Sts {
    async fn start(jwks_url: &str, alg: SigningAlgorithm, flags: &[&str]) -> Self {
        test_support::captured_log::install();
        test_support::init();
        let dir = tempfile::tempdir().unwrap();
        let registry = json!({ "clients": [
            { "client_id": CLIENT, "jwks_uri": jwks_url, "audiences": ["serviceb"] },
        ]});
        let path = dir.path().join("clients.json");
        write_atomic(&path, registry.to_string().as_bytes(), PUBLIC).unwrap();
        let mut all = vec![
            "--clients-file",
            path.to_str().unwrap(),
            "--algorithm",
            alg.name(),
        ];
        all.extend_from_slice(flags);
        let factory = start_factory(&dir.path().join("keys"), &all).await;
        let http = Client::new();
        create_key(&http, &factory, CLIENT).await;
        Self {
            _dir: dir,
            factory,
            http,
            alg,
        }
    }

    /// `POST /token` for serviceb with `assertion`.
    async fn token(&self, assertion: &str) -> Reply {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("audience", "serviceb"),
        ];
        reply(
            self.http
                .post(format!("{}/token", self.factory.url()))
                .form(&form),
        )
        .await
    }

    /// An assertion of `rot` signed by `key`, naming `kid`.
    fn assertion(&self, key: &KeyPair, kid: &str) -> String {
        jws::sign_with_kid(&claims(), key, self.alg, Some(kid)).unwrap()
    }
}

fn claims() -> Claims {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let now = now_unix();
    let jti = format!("jti-{now}-{}", N.fetch_add(1, Ordering::Relaxed));
    let v = json!({ "iss": CLIENT, "sub": CLIENT, "aud": ISSUER,
                    "iat": now, "exp": now + 60, "jti": jti });
    v.as_object().unwrap().clone()
}

/// A key pair of the client and its public JWK under `kid` (its own
/// thumbprint kid when `None`).
fn client_key(alg: SigningAlgorithm, kid: Option<&str>) -> (KeyPair, Jwk, String) {
    let pair = KeyPair::generate(alg).unwrap();
    let mut jwk = public_jwk(&KeyId::parse(CLIENT).unwrap(), pair.public(), alg).unwrap();
    if let Some(kid) = kid {
        jwk.common.key_id = Some(kid.into());
    }
    let kid = jwk.common.key_id.clone().unwrap();
    (pair, jwk, kid)
}

/// The `error_description` of a 401 `invalid_client`.
fn refusal(r: &Reply) -> String {
    assert_eq!(r.status, 401, "{}: {}", r.what, r.text);
    let body = r.json.as_ref().unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

/// The client withdraws a key and its JWK Set server then fails (500): the
/// cached copy serves past its freshness for CLIENT_JWKS_MAX_STALE_SECS at
/// most, then the withdrawn key is refused. (Before: it kept working for as
/// long as the set could not be fetched.)
#[tokio::test]
async fn a_withdrawn_key_stops_working_after_max_stale_while_the_set_server_fails() {
    let alg = SigningAlgorithm::RS256;
    let (k1, j1, kid1) = client_key(alg, None);
    let server = SetServer::start(vec![j1], 1).await;
    let flags = [
        "--client-jwks-max-age-secs",
        "1",
        "--client-jwks-refresh-min-secs",
        "1",
        "--client-jwks-max-stale-secs",
        "2",
    ];
    let s = Sts::start(&server.url, alg, &flags).await;
    let r = s.token(&s.assertion(&k1, &kid1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The client withdraws key 1, and its set server fails from now on.
    server.set.write().unwrap().keys.clear();
    server.status.store(500, Ordering::SeqCst);
    let failed_at = Instant::now();
    // Within its freshness and max-stale, the cached copy still serves.
    let r = s.token(&s.assertion(&k1, &kid1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Then (1 s fresh + 2 s stale) it must stop, not serve for ever.
    let refused = loop {
        let r = s.token(&s.assertion(&k1, &kid1)).await;
        if r.status != 200 {
            break refusal(&r);
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(8),
            "the withdrawn key still works {:?} after the set server failed",
            failed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.contains("cannot authenticate"), "{refused}");
    assert!(
        log_text().contains("the client's JWK Set"),
        "the log names the failing set"
    );
    let stopped = failed_at.elapsed();
    assert!(
        stopped >= Duration::from_secs(1),
        "stopped after {stopped:?}: sooner than its freshness"
    );
    // And it stays refused.
    let r = s.token(&s.assertion(&k1, &kid1)).await;
    refusal(&r);
}

/// Assertions with made-up `kid`s (which anyone can send: no signature is
/// checked before the key is found) use up the unknown-`kid` refetch slot
/// continuously; a key the client publishes ahead of signing with it (by
/// the set's max-age, as the factory's own rotation does) is still accepted
/// at its first use, because the cached set is refreshed in the background.
/// The flood itself causes at most one fetch per refetch interval.
#[tokio::test]
async fn made_up_kids_do_not_delay_a_key_the_client_published_ahead() {
    let alg = SigningAlgorithm::RS256;
    let (k1, j1, kid1) = client_key(alg, None);
    let (k2, j2, kid2) = client_key(alg, None);
    let server = SetServer::start(vec![j1], 2).await;
    let flags = [
        "--client-jwks-max-age-secs",
        "2",
        "--client-jwks-refresh-min-secs",
        "2",
    ];
    let s = Arc::new(Sts::start(&server.url, alg, &flags).await);
    let r = s.token(&s.assertion(&k1, &kid1)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (s, stop, flooded) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&flooded));
        let k1 = KeyPair::from_private_pem(k1.private_pem()).unwrap();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = flooded.fetch_add(1, Ordering::Relaxed);
                let r = s.token(&s.assertion(&k1, &format!("rot.madeup{n}"))).await;
                assert!(refusal(&r).contains("cannot authenticate"), "{}", r.text);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The client publishes key 2, waits the set's max-age (and a little),
    // then signs with it: accepted at once, every time.
    server.set.write().unwrap().keys.push(j2);
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    for _ in 0..3 {
        let r = s.token(&s.assertion(&k2, &kid2)).await;
        assert_eq!(r.status, 200, "key 2 refused during the flood: {}", r.text);
    }
    stop.store(true, Ordering::Relaxed);
    flood.await.unwrap();
    let (elapsed, n, hits) = (
        started.elapsed(),
        flooded.load(Ordering::Relaxed),
        server.hits(),
    );
    assert!(n > 50, "only {n} made-up kids sent");
    // First use, background refreshes (every ~1.6 s) and unknown-kid
    // refetches (one per 2 s): a handful, not one per made-up kid.
    let bound = 2 + 2 * elapsed.as_secs() as usize;
    assert!(
        hits <= bound,
        "{hits} fetches for {n} made-up kids in {elapsed:?} (at most {bound})"
    );
}

/// A `kid` two keys of the client's set claim names neither (the receivers'
/// rule; before: the last one won).
#[tokio::test]
async fn a_duplicated_kid_names_no_key() {
    let alg = SigningAlgorithm::RS256;
    let (a, ja, _) = client_key(alg, Some("rot.dup"));
    let (b, jb, _) = client_key(alg, Some("rot.dup"));
    let (c, jc, kid_c) = client_key(alg, None);
    let server = SetServer::start(vec![ja, jb, jc], 300).await;
    let s = Sts::start(&server.url, alg, &[]).await;
    for key in [&a, &b] {
        let r = s.token(&s.assertion(key, "rot.dup")).await;
        let why = refusal(&r);
        // The answer is the one every unbelievable client gets (no client
        // id can be enumerated); the log says why.
        assert!(why.contains("cannot authenticate"), "{why}");
        assert!(
            log_text().contains("no key with kid rot.dup"),
            "the log says why"
        );
    }
    let r = s.token(&s.assertion(&c, &kid_c)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Keys whose `key_ops` leave out `verify`, whose `use` is not `sig`, or
/// whose curve is not the pinned algorithm's are left out of the set
/// (before: `key_ops` and `crv` were ignored).
#[tokio::test]
async fn keys_whose_key_ops_use_or_crv_do_not_fit_are_refused() {
    let alg = SigningAlgorithm::ES256;
    let (ops, mut j_ops, kid_ops) = client_key(alg, None);
    j_ops.common.key_operations = Some(vec![KeyOperations::Sign]);
    j_ops.common.public_key_use = None;
    let (enc, mut j_enc, kid_enc) = client_key(alg, None);
    j_enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    let (p384, mut j_p384, kid_p384) = client_key(SigningAlgorithm::ES384, None);
    j_p384.common.key_algorithm = None;
    let (good, j_good, kid_good) = client_key(alg, None);
    let server = SetServer::start(vec![j_ops, j_enc, j_p384, j_good], 300).await;
    let s = Sts::start(&server.url, alg, &[]).await;
    for (key, kid) in [(&ops, &kid_ops), (&enc, &kid_enc)] {
        let r = s.token(&s.assertion(key, kid)).await;
        let why = refusal(&r);
        assert!(why.contains("cannot authenticate"), "{why}");
        assert!(
            log_text().contains(&format!("no key with kid {kid}")),
            "the log says why"
        );
    }
    // The P-384 key signs ES384; the header says ES256, the pinned one.
    let token =
        jws::sign_with_kid(&claims(), &p384, SigningAlgorithm::ES384, Some(&kid_p384)).unwrap();
    let token = edit_header(&token, |h| {
        h.insert("alg".into(), "ES256".into());
    });
    let why = refusal(&s.token(&token).await);
    assert!(why.contains("cannot authenticate"), "{why}");
    assert!(
        log_text().contains(&format!("no key with kid {kid_p384}")),
        "the log says why"
    );
    let r = s.token(&s.assertion(&good, &kid_good)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let log = log_text();
    assert!(log.contains("key_ops do not include"), "the log says why");
}

/// A `kid` of 10 KB with a newline: refused without a fetch, and neither
/// the newline nor the length reaches the log or the answer.
#[tokio::test]
async fn a_long_kid_with_a_newline_never_reaches_the_log_raw() {
    let alg = SigningAlgorithm::RS256;
    let (k1, j1, kid1) = client_key(alg, None);
    let server = SetServer::start(vec![j1], 300).await;
    let s = Sts::start(&server.url, alg, &[]).await;
    let r = s.token(&s.assertion(&k1, &kid1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hits = server.hits();
    let forged = "\n2099-01-01T00:00:00Z  INFO forged: client rot authenticated";
    let kid = format!("rot.{forged}{}", "K".repeat(10_240));
    let r = s.token(&s.assertion(&k1, &kid)).await;
    let why = refusal(&r);
    assert!(
        why.len() < 400,
        "the answer repeats the kid: {} bytes",
        why.len()
    );
    assert!(!why.contains('\n'), "{why}");
    assert_eq!(
        server.hits(),
        hits,
        "a kid that is not plain caused a fetch"
    );
    let log = log_text();
    assert!(!log.contains(forged), "the newline forged a log line");
    assert!(
        !log.contains(&"K".repeat(100)),
        "the long kid reached the log"
    );
}
