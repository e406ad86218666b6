#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key rotation as the receivers live it: valid calls keep passing while
//! the factory's key is rotated (twice in quick succession, and once more
//! across a factory restart), while made-up `kid`s flood serviceb, and
//! while the factory is down. Real servers, short windows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;
use test_support::{Options, Stack, start_factory_on, status_and_value as send};
use tokio::net::TcpListener;

/// The factory publishes a next key 2 s before it signs, and says the JWK
/// Set may be cached 2 s; the receivers cache it 2 s at most, and refetch
/// for an unknown kid at most once a second.
const FACTORY: [&str; 4] = [
    "--jwks-max-age-secs",
    "2",
    "--rotation-publish-ahead-secs",
    "2",
];

fn receivers(refresh_min: &str) -> Vec<String> {
    [
        "--jwks-max-age-secs",
        "2",
        "--jwks-refresh-min-secs",
        refresh_min,
    ]
    .map(String::from)
    .to_vec()
}

async fn stack(refresh_min: &str) -> Stack {
    Stack::start(Options {
        factory_args: FACTORY.to_vec(),
        bc_args: receivers(refresh_min),
        ..Default::default()
    })
    .await
}

async fn issue(client: &reqwest::Client, factory: &str) -> String {
    test_support::issue_at(client, factory, "servicea", "serviceb").await
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// `token` naming `kid` instead (the signature no longer matches, but a
/// verifier looks the kid up first: what an unauthenticated flood sends).
fn with_kid(token: &str, kid: &str) -> String {
    let (header, rest) = token.split_once('.').unwrap();
    let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    h["kid"] = kid.into();
    format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap())
    )
}

async fn rotate(client: &reqwest::Client, factory: &str) -> Value {
    let (status, body) = send(client.post(format!("{factory}/keys/servicea/rotate"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Issues tokens until one is signed by `want` (bounded).
async fn wait_until_signing(client: &reqwest::Client, factory: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while kid(&issue(client, factory).await) != want {
        assert!(Instant::now() < deadline, "{want} never started signing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// 401/403: a valid call refused. Must stay 0.
    refused: AtomicU64,
    /// 5xx: the factory was down (during its restart).
    unavailable: AtomicU64,
}

/// What a [`load`] task makes of a call that cannot connect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unreachable {
    /// It fails the test.
    Fails,
    /// It counts as unavailable (servicea restarting).
    Counts,
}

/// `GET url` in a loop until `stop`, counting outcomes in `tally`; each
/// refusal is kept in `refusals` as `url: status body`.
fn load(
    client: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    refusals: Arc<std::sync::Mutex<Vec<String>>>,
    unreachable: Unreachable,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = if unreachable == Unreachable::Fails {
                let (status, body) = send(client.get(&url)).await;
                (status, body.to_string())
            } else {
                let Ok(r) = client.get(&url).send().await else {
                    tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            };
            let counter = match status {
                200 => &tally.ok,
                401 | 403 => {
                    refusals
                        .lock()
                        .unwrap()
                        .push(format!("{url}: {status} {body}"));
                    &tally.refused
                }
                _ => &tally.unavailable,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// The issue's test: 4 clients call /scenario5 and 2 call /scenario3
/// without pause, one more floods serviceb with made-up kids
/// (`servicea.bogus000`), while servicea's factory key is rotated twice in
/// quick succession (the second as soon as the first has activated) and
/// once more across a factory restart. No valid call may be refused.
#[tokio::test]
async fn valid_calls_are_never_refused_across_rotations_a_restart_and_a_kid_flood() {
    let mut s = stack("1").await;
    let factory = s.factory.url();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (s5, s3) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = format!("{}/scenario5", s.a.url());
        tasks.push(load(
            s.client.clone(),
            url,
            stop.clone(),
            s5.clone(),
            refusals.clone(),
            Unreachable::Fails,
        ));
    }
    for _ in 0..2 {
        let url = format!("{}/scenario3", s.a.url());
        tasks.push(load(
            s.client.clone(),
            url,
            stop.clone(),
            s3.clone(),
            refusals.clone(),
            Unreachable::Fails,
        ));
    }
    // The flood: a kid of the caller's that does not exist.
    let bogus = with_kid(&issue(&s.client, &factory).await, "servicea.bogus000");
    let flood = {
        let (client, url, stop) = (
            s.client.clone(),
            format!("{}/scenario5-server", s.b.url()),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = send(client.get(&url).bearer_auth(&bogus)).await;
                assert_eq!(status, 403, "a made-up kid: {body}");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        })
    };
    let mut timeline = Vec::new();
    let mut mark = |what: String| {
        timeline.push(format!("{:>6} ms  {what}", started.elapsed().as_millis()));
    };

    // Two rotations in quick succession.
    for n in 1..=2 {
        let r = rotate(&s.client, &factory).await;
        let new = r["kid"].as_str().unwrap().to_owned();
        mark(format!(
            "rotation {n}: next {new} published, signs from {}; {} verifies until {}",
            r["activatesAt"], r["previousKid"], r["previousValidUntil"]
        ));
        wait_until_signing(&s.client, &factory, &new).await;
        mark(format!("{new} signs"));
    }

    // A third across a restart: published, dumped, the factory restarted
    // before the activation; the restarted one activates it on time.
    let r = rotate(&s.client, &factory).await;
    let new = r["kid"].as_str().unwrap().to_owned();
    mark(format!(
        "rotation 3: next {new} published, signs from {}",
        r["activatesAt"]
    ));
    let (status, _) = send(s.client.post(format!("{factory}/utils/dump"))).await;
    assert_eq!(status, 200);
    let addr = s.factory.addr;
    s.factory.stop().await;
    mark("factory stopped".into());
    let mut flags = vec!["--algorithm", "RS256"];
    flags.extend(FACTORY);
    s.factory = start_factory_on(
        TcpListener::bind(addr).await.unwrap(),
        &s.path("keys"),
        &flags,
    );
    mark("factory restarted on the same port".into());
    wait_until_signing(&s.client, &factory, &new).await;
    mark(format!("{new} signs (activated by the restarted factory)"));
    // Let the receivers' caches turn over once more with the new key.
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let flooded = flood.await.unwrap();
    let (fetches, _) = s.b.receiver.as_ref().unwrap().jwks_fetches();
    mark(format!(
        "done: scenario5 {} ok, {} refused, {} factory-down; scenario3 {} ok, {} refused; \
         {flooded} made-up kids sent; serviceb fetched the JWK Set {fetches} times",
        s5.ok.load(Ordering::Relaxed),
        s5.refused.load(Ordering::Relaxed),
        s5.unavailable.load(Ordering::Relaxed),
        s3.ok.load(Ordering::Relaxed),
        s3.refused.load(Ordering::Relaxed),
    ));
    eprintln!("{}", timeline.join("\n"));
    let refusals = refusals.lock().unwrap();
    assert!(refusals.is_empty(), "valid calls refused: {refusals:#?}");
    assert!(s5.ok.load(Ordering::Relaxed) > 100);
    assert!(s3.ok.load(Ordering::Relaxed) > 50);
    assert_eq!(s3.unavailable.load(Ordering::Relaxed), 0);
    // The flood did not turn into fetches: background refreshes (about one
    // per 1.6 s) and a few unknown-kid refetches (at most one a second).
    let secs = started.elapsed().as_secs() + 1;
    assert!(fetches <= 2 * secs + 2, "{fetches} fetches in {secs} s");
}

/// The security review's second reproduction: a made-up kid sent before a
/// rotation used up the refetch slot, and the real new kid was then
/// refused for JWKS_REFRESH_MIN_SECS. Here made-up kids arrive without a
/// pause, so the slot is always taken, and the new kid must still pass the
/// moment it signs: it never needs the slot (publish-ahead + background
/// refresh). Receivers' refetch limit 2 s: no longer than the factory's
/// publish-ahead, as docs/rotation.md requires.
#[tokio::test]
async fn made_up_kids_before_and_during_a_rotation_do_not_delay_the_new_key() {
    let s = stack("2").await;
    let factory = s.factory.url();
    let url = format!("{}/scenario5-server", s.b.url());
    let token = issue(&s.client, &factory).await;
    assert_eq!(send(s.client.get(&url).bearer_auth(&token)).await.0, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (client, url, stop) = (s.client.clone(), url.clone(), stop.clone());
        let bogus = with_kid(&token, "servicea.bogus000");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(send(client.get(&url).bearer_auth(&bogus)).await.0, 403);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = rotate(&s.client, &factory).await;
    let new = r["kid"].as_str().unwrap().to_owned();
    // The first token the new key signs, sent at once.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let t = issue(&s.client, &factory).await;
        if kid(&t) == new {
            break t;
        }
        assert!(Instant::now() < deadline, "{new} never started signing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, body) = send(s.client.get(&url).bearer_auth(&first)).await;
    stop.store(true, Ordering::Relaxed);
    flood.await.unwrap();
    assert_eq!(status, 200, "the new kid, right after it activated: {body}");
}

/// The factory goes away: serviceb keeps serving from its copy, retries in
/// the background once per JWKS_REFRESH_MIN_SECS (each failure logged
/// once), never once per request; and the task stops with serviceb.
#[tokio::test]
async fn a_failing_background_refresh_keeps_the_copy_and_tries_once_per_period() {
    let mut s = stack("1").await;
    let token = issue(&s.client, &s.factory.url()).await;
    let url = format!("{}/scenario5-server", s.b.url());
    assert_eq!(send(s.client.get(&url).bearer_auth(&token)).await.0, 200);
    s.factory.stop().await;

    let receiver = s.b.receiver.as_ref().unwrap();
    let (fetches, _) = receiver.jwks_fetches();
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let (status, body) = send(s.client.get(&url).bearer_auth(&token)).await;
        assert_eq!(status, 200, "from the cached copy: {body}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (now, failures) = receiver.jwks_fetches();
    let tries = now - fetches;
    eprintln!(
        "{requests} requests in 5 s with the factory down: {failures} failed background refreshes, {tries} fetches"
    );
    // Fresh for 2 s, refreshed at 1.6 s, then retried once a second.
    assert!((2..=6).contains(&failures), "{failures} failures");
    assert_eq!(tries, failures, "requests did not fetch in its place");
    assert!(requests > 100);

    // serviceb stops: so does its background task.
    let mut b = s.b;
    let receiver = b.receiver.clone().unwrap();
    b.stop().await;
    let after_stop = receiver.jwks_fetches().0;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.jwks_fetches().0,
        after_stop,
        "the task outlived serviceb"
    );
}

/// servicea's arguments as `Stack::start` gives them, for a restart.
fn servicea_args(s: &Stack, extra: &[&str]) -> Vec<String> {
    let p = |rel: &str| s.path(rel).to_str().unwrap().to_owned();
    let mut args = vec![
        "--service-a-private-key-path".into(),
        p("scenario-3-keys/jwt-private.pem"),
        "--service-a-public-key-path".into(),
        p("scenario-3-keys/jwt-public.pem"),
        "--ca-cert-path".into(),
        p("certs/ca.pem"),
        "--issuer".into(),
        "https://service-issuer".into(),
        "--algorithm".into(),
        "RS256".into(),
        "--jwt-factory-endpoint".into(),
        s.factory.url(),
        "--service-b-endpoint".into(),
        s.b.url(),
        "--service-c-endpoint".into(),
        s.c.url(),
        "--service-b-endpoint-https".into(),
        s.b.https_url(),
        "--service-c-endpoint-https".into(),
        s.c.https_url(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// `POST /gen-keys` until it is accepted (409 while the previous key
/// still verifies); the new kid.
async fn gen_keys_when_allowed(s: &Stack, timeline: &mut Vec<String>, started: Instant) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(s.client.post(format!("{}/gen-keys", s.a.url()))).await;
        match status {
            200 => {
                timeline.push(format!(
                    "{:>6} ms  gen-keys: next {} published, signs from {}",
                    started.elapsed().as_millis(),
                    body["kid"],
                    body["activatesAt"]
                ));
                return body["kid"].as_str().unwrap().to_owned();
            }
            409 => assert!(
                body["message"].as_str().unwrap().contains("try again"),
                "{body}"
            ),
            other => panic!("gen-keys: {other} {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "gen-keys refused for too long: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until servicea has made the next key current (the next files are gone).
async fn wait_promoted(s: &Stack) {
    let next = s.path("scenario-3-keys/jwt-public.next.pem");
    let deadline = Instant::now() + Duration::from_secs(15);
    while next.exists() {
        assert!(Instant::now() < deadline, "the next key was never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scenarios 3-4 under load while servicea rotates its own key twice in
/// quick succession (as quick as the overlap allows) and once more across
/// a restart of servicea between publication and promotion: 0 refusals.
/// Tokens live 1 s, so the previous key is needed for 1 + 5 s.
#[tokio::test]
async fn scenario3_calls_pass_while_servicea_rotates_its_key_twice_and_across_a_restart() {
    let extra = [
        "--token-lifetime-secs",
        "1",
        "--scenario3-publish-ahead-secs",
        "2",
    ];
    let mut s = Stack::start(Options::default()).await;
    // servicea again, with the short windows (Stack's flags cannot be overridden).
    let addr = s.a.addr;
    s.a.stop().await;
    s.a = test_support::start_service(
        app::Role::A,
        &servicea_args(&s, &extra),
        TcpListener::bind(addr).await.unwrap(),
        None,
    )
    .await;
    let started = Instant::now();
    let mut timeline = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for path in ["/scenario3", "/scenario3", "/scenario3", "/scenario4"] {
        let url = format!("{}{path}", s.a.url());
        tasks.push(load(
            s.client.clone(),
            url,
            stop.clone(),
            tally.clone(),
            refusals.clone(),
            Unreachable::Counts,
        ));
    }

    let first = gen_keys_when_allowed(&s, &mut timeline, started).await;
    // A second call while the first is pending: 409 at once.
    let (status, body) = send(s.client.post(format!("{}/gen-keys", s.a.url()))).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("under way"),
        "{body}"
    );
    wait_promoted(&s).await;
    timeline.push(format!(
        "{:>6} ms  {first} signs",
        started.elapsed().as_millis()
    ));
    let second = gen_keys_when_allowed(&s, &mut timeline, started).await;
    wait_promoted(&s).await;
    timeline.push(format!(
        "{:>6} ms  {second} signs",
        started.elapsed().as_millis()
    ));

    // The third: servicea stops right after publishing it, and completes
    // the rotation when it starts again.
    let third = gen_keys_when_allowed(&s, &mut timeline, started).await;
    let addr = s.a.addr;
    s.a.stop().await;
    timeline.push(format!(
        "{:>6} ms  servicea stopped",
        started.elapsed().as_millis()
    ));
    assert!(s.path("scenario-3-keys/jwt-public.next.pem").exists());
    s.a = test_support::start_service(
        app::Role::A,
        &servicea_args(&s, &extra),
        TcpListener::bind(addr).await.unwrap(),
        None,
    )
    .await;
    timeline.push(format!(
        "{:>6} ms  servicea restarted",
        started.elapsed().as_millis()
    ));
    wait_promoted(&s).await;
    timeline.push(format!(
        "{:>6} ms  {third} signs",
        started.elapsed().as_millis()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    timeline.push(format!(
        "{:>6} ms  done: scenario3/4 {} ok, {} refused, {} unavailable (servicea restarting)",
        started.elapsed().as_millis(),
        tally.ok.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
    ));
    eprintln!("{}", timeline.join("\n"));
    let refusals = refusals.lock().unwrap();
    assert!(refusals.is_empty(), "valid calls refused: {refusals:#?}");
    assert!(tally.ok.load(Ordering::Relaxed) > 50);
    // The seed's files are the current pair; the old key is the previous one.
    let current = std::fs::read_to_string(s.path("scenario-3-keys/jwt-public.pem")).unwrap();
    let previous =
        std::fs::read_to_string(s.path("scenario-3-keys/jwt-public.previous.pem")).unwrap();
    assert_ne!(current, previous);
    assert!(!s.path("scenario-3-keys/jwt-private.next.pem").exists());
}
