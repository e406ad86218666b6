#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key rotation in phases against the real factory: next, current and
//! retiring keys in the JWK Set and the status endpoint, activation by
//! time, restarts in every phase, emergency rotation, and what loading a
//! hostile `KEYS_DIR` must survive.

use std::{
    collections::BTreeSet,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use reqwest::Client;
use serde_json::{Value, json};
use test_support::{Running, bind, start_factory_on, status_and_value as send};

const X: &str = "x";

/// A factory on `keys` with short windows: next keys publish `ahead` s
/// before they sign, tokens (`/issueToken`'s and `/token`'s) live
/// `lifetime` s, no leeway.
fn factory(
    keys: &Path,
    ahead: &'static str,
    lifetime: &'static str,
) -> impl Future<Output = Running> {
    let keys = keys.to_path_buf();
    async move {
        start_factory_on(
            bind().await,
            &keys,
            &[
                "--rotation-publish-ahead-secs",
                ahead,
                "--token-lifetime-secs",
                lifetime,
                "--access-token-lifetime-secs",
                lifetime,
                "--leeway-secs",
                "0",
            ],
        )
    }
}

async fn create(http: &Client, f: &Running, id: &str) -> String {
    let (status, body) = send(http.get(format!("{}/keys/{id}", f.url()))).await;
    assert_eq!(status, 200, "{body}");
    body["kid"].as_str().unwrap().to_owned()
}

async fn rotate(http: &Client, f: &Running, query: &str) -> (u16, Value) {
    send(http.post(format!("{}/keys/{X}/rotate{query}", f.url()))).await
}

async fn issue(http: &Client, f: &Running) -> String {
    test_support::issue_at(http, &f.url(), X, "serviceb").await
}

async fn verify(http: &Client, f: &Running, token: &str) -> (u16, Value) {
    send(
        http.post(format!("{}/verify/{X}", f.url()))
            .json(&json!({ "token": token, "aud": "serviceb", "sub": X })),
    )
    .await
}

async fn dump(http: &Client, f: &Running) {
    let (status, body) = send(http.post(format!("{}/utils/dump", f.url()))).await;
    assert_eq!(status, 200, "{body}");
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The kids of the JWK Set, sorted.
async fn jwk_kids(http: &Client, f: &Running) -> BTreeSet<String> {
    let (status, body) = send(http.get(format!("{}/.well-known/jwks.json", f.url()))).await;
    assert_eq!(status, 200);
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `(phase, kid)` of each key of X, from the status endpoint.
async fn phases(http: &Client, f: &Running) -> Vec<(String, String)> {
    let (status, body) = send(http.get(format!("{}/utils/keys/{X}/status", f.url()))).await;
    assert_eq!(status, 200, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["phase"].as_str().unwrap().to_owned(),
                k["kid"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(kids: &[&str]) -> BTreeSet<String> {
    kids.iter().map(|k| (*k).to_owned()).collect()
}

fn p(phase: &str, kid: &str) -> (String, String) {
    (phase.to_owned(), kid.to_owned())
}

/// Issues tokens until one is signed by `want`, within `secs`.
async fn issue_until_signed_by(http: &Client, f: &Running, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let token = issue(http, f).await;
        if kid(&token) == want {
            return token;
        }
        assert!(Instant::now() < deadline, "{want} never started signing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now() -> i64 {
    s2s_auth::now_unix()
}

fn unix(iso: &Value) -> i64 {
    let s = iso.as_str().unwrap();
    time_of(s)
}

/// Parses the factory's `2026-12-01T21:20:03.000Z` back to unix seconds.
fn time_of(iso: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| iso[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // days from civil (H. Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[tokio::test]
async fn each_phase_shows_in_the_jwk_set_and_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let http = Client::new();
    // Tokens live 5 s: a retiring key leaves the set 5 s after it stopped signing.
    let f = factory(&dir.path().join("keys"), "2", "5").await;
    let k0 = create(&http, &f, X).await;
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0]));
    assert_eq!(phases(&http, &f).await, vec![p("current", &k0)]);
    let t0 = issue(&http, &f).await;

    // Publish: the next key is in the set at once, and does not sign yet.
    let before = now();
    let (status, r) = rotate(&http, &f, "").await;
    assert_eq!(status, 200, "{r}");
    let k1 = r["kid"].as_str().unwrap().to_owned();
    assert_eq!(r["previousKid"], k0.as_str());
    let activates = unix(&r["activatesAt"]);
    // At least the publish-ahead time, counted in whole seconds.
    assert!((before + 2..=now() + 3).contains(&activates), "{r}");
    assert_eq!(unix(&r["previousValidUntil"]), activates + 5, "{r}");
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0, &k1]));
    assert_eq!(
        phases(&http, &f).await,
        vec![p("next", &k1), p("current", &k0)]
    );
    let (_, status) = send(http.get(format!("{}/utils/keys/{X}/status", f.url()))).await;
    assert_eq!(status["keys"][0]["activatesAt"], r["activatesAt"]);
    if now() < activates {
        assert_eq!(
            kid(&issue(&http, &f).await),
            k0,
            "the next key signs too early"
        );
    }

    // Activate: by time, with no request to make it happen.
    let t1 = issue_until_signed_by(&http, &f, &k1, 10).await;
    assert!(now() >= activates, "signed before its activation time");
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0, &k1]));
    let ph = phases(&http, &f).await;
    assert_eq!(ph, vec![p("current", &k1), p("retiring", &k0)]);
    assert_eq!(verify(&http, &f, &t0).await.0, 200, "the old key's token");
    assert_eq!(verify(&http, &f, &t1).await.0, 200);
    let (_, status) = send(http.get(format!("{}/utils/keys/{X}/status", f.url()))).await;
    assert_eq!(unix(&status["keys"][1]["validUntil"]), activates + 5);

    // Retire: the old key leaves the set once its last token has expired.
    let deadline = Instant::now() + Duration::from_secs(15);
    while jwk_kids(&http, &f).await != set(&[&k1]) {
        assert!(Instant::now() < deadline, "the old key stays published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        now() >= activates + 5,
        "withdrawn before its tokens expired"
    );
    assert_eq!(phases(&http, &f).await, vec![p("current", &k1)]);
}

/// The overlap covers the longest token the factory signs: with
/// `/issueToken` tokens living 1 s and `/token`'s access tokens 4 s, a key
/// that stopped signing stays published (and verifies) for 4 s, not 1 s,
/// so an at+jwt it signed just before never outlives it (issue 21, item 10).
#[tokio::test]
async fn the_overlap_covers_access_tokens_that_outlive_issue_token_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let http = Client::new();
    let f = start_factory_on(
        bind().await,
        &dir.path().join("keys"),
        &[
            "--rotation-publish-ahead-secs",
            "1",
            "--token-lifetime-secs",
            "1",
            "--access-token-lifetime-secs",
            "4",
            "--leeway-secs",
            "0",
        ],
    );
    let k0 = create(&http, &f, X).await;
    let (status, r) = rotate(&http, &f, "").await;
    assert_eq!(status, 200, "{r}");
    let activates = unix(&r["activatesAt"]);
    assert_eq!(
        unix(&r["previousValidUntil"]),
        activates + 4,
        "the overlap must be ACCESS_TOKEN_LIFETIME_SECS when it is the longer: {r}"
    );
    let k1 = r["kid"].as_str().unwrap().to_owned();
    issue_until_signed_by(&http, &f, &k1, 10).await;
    // Past the 1 s lifetime of /issueToken's tokens, still inside the 4 s
    // of an access token signed by k0 just before the switch.
    while now() < activates + 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(now() < activates + 4, "the test ran too slowly to show it");
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0, &k1]));
    let (_, status) = send(http.get(format!("{}/utils/keys/{X}/status", f.url()))).await;
    assert_eq!(unix(&status["keys"][1]["validUntil"]), activates + 4);
}

#[tokio::test]
async fn unknown_pending_and_emergency_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let http = Client::new();
    let f = factory(&dir.path().join("keys"), "300", "3600").await;

    let (status, body) = send(http.post(format!("{}/keys/nobody/rotate", f.url()))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nobody"), "{body}");
    let (status, _) = send(http.get(format!("{}/utils/keys/nobody/status", f.url()))).await;
    assert_eq!(status, 404);

    let k0 = create(&http, &f, X).await;
    let t0 = issue(&http, &f).await;
    let (status, first) = rotate(&http, &f, "").await;
    assert_eq!(status, 200, "{first}");
    let k1 = first["kid"].as_str().unwrap().to_owned();

    // A second rotation while the first is pending: 409, saying when.
    let (status, body) = rotate(&http, &f, "").await;
    assert_eq!(status, 409, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains(&k1) && msg.contains(first["activatesAt"].as_str().unwrap()),
        "{msg}"
    );

    // Emergency: the new key signs now, k0 and the pending k1 are gone.
    let (status, r) = rotate(&http, &f, "?emergency=1").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["emergency"], true);
    let warning = r["warning"].as_str().unwrap();
    assert!(
        warning.contains("breaks cached verifiers on purpose"),
        "{warning}"
    );
    let k2 = r["kid"].as_str().unwrap().to_owned();
    assert_eq!(r["previousKid"], k0.as_str());
    assert!(unix(&r["activatesAt"]) <= now(), "{r}");
    assert_eq!(kid(&issue(&http, &f).await), k2);
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k2]));
    let (status, body) = verify(&http, &f, &t0).await;
    assert_eq!(status, 403, "the compromised key's token: {body}");

    // `?emergency=0` is a phased rotation (the `?expired=` rule).
    let (status, r) = rotate(&http, &f, "?emergency=0").await;
    assert_eq!(status, 200, "{r}");
    assert!(r.get("emergency").is_none(), "{r}");
    assert_eq!(kid(&issue(&http, &f).await), k2, "publish-ahead is 300 s");
}

#[tokio::test]
async fn a_restart_in_each_phase_changes_no_kid_and_refuses_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let http = Client::new();
    let mut f = factory(&keys, "2", "3600").await;
    let k0 = create(&http, &f, X).await;
    let t0 = issue(&http, &f).await;

    // Restart while a next key is pending: still pending, same times.
    let (_, r) = rotate(&http, &f, "").await;
    let k1 = r["kid"].as_str().unwrap().to_owned();
    dump(&http, &f).await;
    f.stop().await;
    let mut f = factory(&keys, "2", "3600").await;
    let (_, status) = send(http.get(format!("{}/utils/keys/{X}/status", f.url()))).await;
    if now() < unix(&r["activatesAt"]) {
        assert_eq!(
            phases(&http, &f).await,
            vec![p("next", &k1), p("current", &k0)]
        );
        assert_eq!(status["keys"][0]["activatesAt"], r["activatesAt"]);
    }
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0, &k1]));
    assert_eq!(verify(&http, &f, &t0).await.0, 200);

    // ... and it activates on schedule.
    let t1 = issue_until_signed_by(&http, &f, &k1, 10).await;
    assert!(now() >= unix(&r["activatesAt"]));

    // Restart while the old key is retiring.
    dump(&http, &f).await;
    f.stop().await;
    let mut f = factory(&keys, "2", "3600").await;
    assert_eq!(
        phases(&http, &f).await,
        vec![p("current", &k1), p("retiring", &k0)]
    );
    assert_eq!(kid(&issue(&http, &f).await), k1);
    for t in [&t0, &t1] {
        assert_eq!(verify(&http, &f, t).await.0, 200);
    }

    // Stopped between publish and activation, started after: it activated
    // "while down", counted from its scheduled time.
    let (_, r) = rotate(&http, &f, "").await;
    let k2 = r["kid"].as_str().unwrap().to_owned();
    dump(&http, &f).await;
    f.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while now() < unix(&r["activatesAt"]) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = factory(&keys, "2", "3600").await;
    assert_eq!(
        phases(&http, &f).await,
        vec![p("current", &k2), p("retiring", &k1), p("retiring", &k0)]
    );
    assert_eq!(kid(&issue(&http, &f).await), k2);
    assert_eq!(jwk_kids(&http, &f).await, set(&[&k0, &k1, &k2]));
    for t in [&t0, &t1] {
        assert_eq!(verify(&http, &f, t).await.0, 200);
    }
}

/// The security review's reproduction: two rotations in the same second
/// used to write one retired file name twice, so a restart lost a key.
#[tokio::test]
async fn two_rotations_in_the_same_second_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let http = Client::new();
    let mut f = factory(&keys, "0", "3600").await;
    create(&http, &f, X).await;
    let t1 = issue(&http, &f).await;
    let (a, _) = rotate(&http, &f, "").await;
    let (b, _) = rotate(&http, &f, "").await;
    assert_eq!((a, b), (200, 200));
    let kids = jwk_kids(&http, &f).await;
    assert_eq!(kids.len(), 3);
    dump(&http, &f).await;
    let retired = fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.contains(".retired-") && n.ends_with("-private.pem")
        })
        .count();
    assert_eq!(retired, 2, "one file per retired key");
    f.stop().await;

    let f = factory(&keys, "0", "3600").await;
    let (status, body) = verify(&http, &f, &t1).await;
    assert_eq!(status, 200, "T1 after the restart: {body}");
    assert_eq!(jwk_kids(&http, &f).await, kids);
}

/// A key pair's private PEM for planting files.
fn private_pem(alg: s2s_auth::SigningAlgorithm) -> String {
    s2s_auth::KeyPair::generate(alg)
        .unwrap()
        .private_pem()
        .to_owned()
}

fn write_private(path: &Path, pem: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(pem.as_bytes()).unwrap();
}

#[tokio::test]
async fn loading_keys_dir_follows_no_symlink_cleans_tmp_and_survives_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&keys).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let pem = private_pem(s2s_auth::SigningAlgorithm::RS256);
    write_private(&keys.join("good-private.pem"), &pem);
    // A symlink where a key should be: not followed, not loaded.
    write_private(&outside.join("target.pem"), &pem);
    std::os::unix::fs::symlink(outside.join("target.pem"), keys.join("linked-private.pem"))
        .unwrap();
    // What a SIGKILL during a dump leaves: temporary files, one a key.
    write_private(&keys.join(".tmp-abc123"), &pem);
    fs::write(keys.join(".tmp-xyz"), b"half a public key").unwrap();
    // A directory named like a retired file, and one like a next file.
    let now = now();
    fs::create_dir(keys.join(format!("good.retired-{now}-private.pem"))).unwrap();
    fs::create_dir(keys.join(format!("good.next-{now}.abc-public.pem"))).unwrap();

    let http = Client::new();
    let f = factory(&keys, "0", "3600").await;
    let (_, ids) = send(http.get(format!("{}/utils/keys", f.url()))).await;
    assert_eq!(ids, json!(["good"]), "the symlinked key is not loaded");
    let names: Vec<String> = fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".tmp-")),
        "stale temporary files removed: {names:?}"
    );
    // Dump still works, and leaves the directories alone.
    create(&http, &f, "other").await;
    rotate_id(&http, &f, "good").await;
    dump(&http, &f).await;
    assert!(
        keys.join(format!("good.retired-{now}-private.pem"))
            .is_dir()
    );
    // The symlink is left as it was, pointing where it pointed.
    assert!(
        fs::symlink_metadata(keys.join("linked-private.pem"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

async fn rotate_id(http: &Client, f: &Running, id: &str) {
    let (status, body) = send(http.post(format!("{}/keys/{id}/rotate", f.url()))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_planted_folder_is_held_to_the_same_bounds_as_the_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let alg = s2s_auth::SigningAlgorithm::ES256;
    let pem = private_pem(alg);
    // 300 key ids: over MAX_KEY_IDS (256).
    for i in 0..300 {
        write_private(&keys.join(format!("k{i:03}-private.pem")), &pem);
    }
    // 11 retiring keys for one id, all still in their overlap.
    let now = now();
    for i in 0..11 {
        write_private(
            &keys.join(format!("k000.retired-{}.t{i}-private.pem", now - i)),
            &private_pem(alg),
        );
    }
    let http = Client::new();
    let f = start_factory_on(bind().await, &keys, &["--algorithm", "ES256"]);
    let (_, ids) = send(http.get(format!("{}/utils/keys", f.url()))).await;
    let ids = ids.as_array().unwrap();
    assert_eq!(ids.len(), jwt_factory::keystore::MAX_KEY_IDS);
    assert_eq!(ids[0], "k000");
    let (_, status) = send(http.get(format!("{}/utils/keys/k000/status", f.url()))).await;
    let retiring = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["phase"] == "retiring")
        .count();
    assert_eq!(retiring, jwt_factory::keystore::MAX_RETIRING, "{status}");

    // Full: a new key id is refused before any key is generated.
    let started = Instant::now();
    for i in 0..20 {
        let (status, body) = send(http.get(format!("{}/keys/new{i}", f.url()))).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    }
    // k000 has 3 retiring keys: rotating is refused, also before any work.
    let (status, body) = send(http.post(format!("{}/keys/k000/rotate", f.url()))).await;
    assert_eq!(status, 409, "{body}");
    eprintln!("21 refusals took {:?}", started.elapsed());
}

/// `--help` explains the new setting and its default.
#[test]
fn help_explains_the_publish_ahead_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-factory"))
        .arg("--help")
        .env_remove("ROTATION_PUBLISH_AHEAD_SECS")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: ROTATION_PUBLISH_AHEAD_SECS"), "{help}");
    assert!(help.contains("Default: JWKS_MAX_AGE_SECS"), "{help}");
}
