#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Faults against the real servers (issue #4): key files that go missing,
//! empty, corrupt or get replaced while the services run; TLS peers with
//! untrusted, misnamed, expired or not-yet-valid certificates; bursts of
//! concurrent requests; and a SIGTERM in the middle of traffic.
//!
//! Every wait is bounded, and readiness is polled rather than slept on.

use test_support as common;

use std::{
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use app::Role;
use common::{
    ANSWER_WITHIN, Files, Options, Running, Silent, Stack,
    factory::create_key,
    files::peer_flags,
    forge::{Sig, forge},
    get_json, json_reply,
};
use futures::StreamExt as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers.

/// `GET url` with a bearer token; the status and JSON body.
async fn get_bearer(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    json_reply(
        client
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {token}")),
    )
    .await
}

/// A scenario-3 token for `aud`, signed with the private key now on disk.
fn local_token(s: &Stack, aud: &str) -> String {
    let pem = std::fs::read(&s.files.private).unwrap();
    token_with(&EncodingKey::from_rsa_pem(&pem).unwrap(), aud)
}

fn token_with(key: &EncodingKey, aud: &str) -> String {
    let now = s2s_auth::now_unix();
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let claims = json!({
        "iss": "https://service-issuer", "sub": "servicea", "aud": aud,
        "iat": now, "exp": now + 20,
    });
    forge(&header, &claims, Sig::By(key, Algorithm::RS256))
}

/// serviceb's `/scenario3-server` with a fresh token: the status and body.
async fn b3(s: &Stack) -> (u16, Value) {
    let url = format!("{}/scenario3-server", s.b.https_url());
    get_bearer(&s.client, &url, &local_token(s, "serviceb")).await
}

/// serviceb's `/scenario3-server` accepts a fresh token.
async fn b3_accepts(s: &Stack, case: &str) {
    let (status, body) = b3(s).await;
    assert_eq!(status, 200, "{case}: {body}");
    assert_eq!(body["valid"], true, "{case}: {body}");
}

/// serviceb's `/scenario3-server` answers 503 with a message containing all of `says`.
async fn b3_unavailable(s: &Stack, case: &str, says: &[&str]) {
    let (status, body) = b3(s).await;
    assert_eq!(status, 503, "{case}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    for word in says {
        assert!(msg.contains(word), "{case}: {msg:?} does not say {word:?}");
    }
}

/// A second servicea, beside the stack, whose serviceb endpoints are
/// `b_http` and `b_https`, trusting the CA in `certs`, with `extra` flags.
async fn servicea_for(
    s: &Stack,
    b_http: &str,
    b_https: &str,
    certs: &Path,
    extra: &[&str],
) -> Running {
    let files = Files {
        certs: certs.to_owned(),
        ..s.files.clone()
    };
    let mut flags = files.servicea_flags(s.alg, &s.factory.url());
    flags.extend(peer_flags(b_http, b_https, &s.c.url(), &s.c.https_url()));
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    common::start_service(Role::A, &flags, common::bind().await, None).await
}

/// A second serviceb whose https listener uses the certificate in
/// `cert_dir`, and a second servicea that calls it trusting the CA in
/// `ca_dir`.
async fn peer_with_certificate(s: &Stack, cert_dir: &Path, ca_dir: &Path) -> (Running, Running) {
    let b = common::start_service(
        Role::B,
        &s.files.receiver_flags(s.alg, &s.factory.url()),
        common::bind().await,
        Some((common::bind().await, cert_dir)),
    )
    .await;
    let a = servicea_for(s, &b.url(), &b.https_url(), ca_dir, &[]).await;
    (b, a)
}

/// `cert` and its `key` into `dir` under the names the https listener loads.
fn install_server_cert(dir: &Path, cert: &rcgen::Certificate, key: &rcgen::KeyPair) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("localhost.pem"), cert.pem()).unwrap();
    // A private key is written as any private key must be: 0600.
    s2s_auth::files::write_atomic(
        &dir.join("localhost-key.pem"),
        key.serialize_pem().as_bytes(),
        s2s_auth::files::PRIVATE,
    )
    .unwrap();
}

/// A CA of its own (named `ca_name`) and a `localhost` certificate signed
/// by it, into `dir` under the names the https listener loads.
fn foreign_ca_certificate(ca_name: &str, dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    install_server_cert(dir, &leaf.signed_by(&key, &issuer).unwrap(), &key);
}

/// A server certificate for `name`, signed by the stack's own CA (loaded
/// from `certs/ca.pem` and `certs/ca-key.pem`), naming serviceb's SPIFFE ID
/// (servicea pins it), into `dir` under the names the https listener loads.
fn certificate_from_stack_ca(s: &Stack, name: &str, dir: &Path) {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
        SanType, string::Ia5String,
    };
    let ca_pem = std::fs::read_to_string(s.files.ca()).unwrap();
    let ca_key = std::fs::read_to_string(s.files.certs.join("ca-key.pem")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    let spiffe = s2s_web::pki::spiffe_id("cluster.local", "serviceb");
    params
        .subject_alt_names
        .push(SanType::URI(Ia5String::try_from(spiffe).unwrap()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    install_server_cert(dir, &params.signed_by(&key, &issuer).unwrap(), &key);
}

/// servicea's `/scenario3` through a peer with a bad certificate: 502 whose
/// message names the peer, says "certificate", and contains `cause`.
async fn scenario3_fails_with(a: &Running, client: &reqwest::Client, cause: &str) -> String {
    let (status, body) = get_json(client, &format!("{}/scenario3", a.url())).await;
    assert_eq!(status, 502, "{body}");
    let msg = body["message"].as_str().unwrap().to_owned();
    eprintln!("servicea says: {msg}");
    let lower = msg.to_lowercase();
    assert!(lower.contains("serviceb"), "names the peer: {msg}");
    assert!(lower.contains("certificate"), "says certificate: {msg}");
    assert!(
        lower.contains(&cause.to_lowercase()),
        "says {cause:?}: {msg}"
    );
    msg
}

// ---------------------------------------------------------------------------
// Key files on serviceb.

#[tokio::test]
async fn serviceb_key_file_missing_empty_or_corrupt_is_503_then_recovers_without_restart() {
    let s = Stack::start(Options::default()).await;
    let public = s.path("scenario-3-keys/jwt-public.pem");
    let good = std::fs::read(&public).unwrap();
    b3_accepts(&s, "start").await;

    // Missing: 503 naming the file and how to create it.
    std::fs::remove_file(&public).unwrap();
    b3_unavailable(&s, "missing", &["jwt-public.pem", "not found", "gen-keys"]).await;
    // servicea relays serviceb's answer as is.
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("jwt-public.pem"),
        "{body}"
    );
    std::fs::write(&public, &good).unwrap();
    b3_accepts(&s, "restored after missing").await;

    let half = &good[..good.len() / 2];
    let huge = vec![b'A'; 100 * 1024];
    let faults: [(&str, &[u8], &[&str]); 6] = [
        ("empty", b"", &["is not valid"]),
        ("truncated", half, &["is not valid"]),
        (
            "corrupt PEM body",
            b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
            &["is not valid"],
        ),
        (
            "not PEM at all",
            b"hello, I am not a key\n",
            &["is not valid"],
        ),
        (
            "not UTF-8",
            b"\xff\xfe\x00\x01garbage",
            &["is not valid: not UTF-8 text"],
        ),
        ("100 KiB", &huge, &["larger than 65536 bytes"]),
    ];
    for (case, bytes, says) in faults {
        std::fs::write(&public, bytes).unwrap();
        let mut want = vec!["jwt-public.pem"];
        want.extend_from_slice(says);
        b3_unavailable(&s, case, &want).await;
        // Written in place (same inode, as an editor would): still noticed.
        std::fs::write(&public, &good).unwrap();
        b3_accepts(&s, &format!("restored after {case}")).await;
    }

    // A directory where the file should be.
    std::fs::remove_file(&public).unwrap();
    std::fs::create_dir(&public).unwrap();
    b3_unavailable(&s, "directory", &["jwt-public.pem", "not a regular file"]).await;
    std::fs::remove_dir(&public).unwrap();
    std::fs::write(&public, &good).unwrap();
    b3_accepts(&s, "restored after directory").await;

    // Unreadable (mode 000) -- root reads anyway, so only when not root.
    if running_as_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o000)).unwrap();
    b3_unavailable(&s, "unreadable", &["jwt-public.pem", "could not be read"]).await;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    b3_accepts(&s, "restored after unreadable").await;
}

/// Whether this process runs as root (then file modes do not stop reads).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A key of the wrong kind in the public-key file is a broken key file: 503
/// naming it, not a service that refuses every token with "invalid signature".
#[tokio::test]
async fn serviceb_public_key_file_holding_another_kind_of_key_is_503() {
    let s = Stack::start(Options::default()).await;
    let public = s.path("scenario-3-keys/jwt-public.pem");
    let good = std::fs::read(&public).unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    for (case, pem) in [
        ("an EC public key", ec.public_key_pem()),
        (
            "a certificate",
            std::fs::read_to_string(s.path("certs/localhost.pem")).unwrap(),
        ),
    ] {
        std::fs::write(&public, &pem).unwrap();
        b3_unavailable(&s, case, &["jwt-public.pem", "is not valid"]).await;
        std::fs::write(&public, &good).unwrap();
        b3_accepts(&s, &format!("restored after {case}")).await;
    }
}

/// The private key put where the public key belongs (an easy slip when
/// copying `scenario-3-keys/` by hand).
#[tokio::test]
async fn serviceb_public_key_file_holding_the_private_key_is_503() {
    let s = Stack::start(Options::default()).await;
    let public = s.path("scenario-3-keys/jwt-public.pem");
    let good = std::fs::read(&public).unwrap();
    std::fs::copy(s.path("scenario-3-keys/jwt-private.pem"), &public).unwrap();
    b3_unavailable(
        &s,
        "private key in the public key file",
        &["jwt-public.pem", "is not valid"],
    )
    .await;
    std::fs::write(&public, &good).unwrap();
    b3_accepts(&s, "restored").await;
}

#[tokio::test]
async fn key_pair_replaced_while_running_is_used_without_restart() {
    let s = Stack::start(Options::default()).await;
    let private = s.path("scenario-3-keys/jwt-private.pem");
    let public = s.path("scenario-3-keys/jwt-public.pem");
    b3_accepts(&s, "start").await;
    for round in 1..=3 {
        let old = local_token(&s, "serviceb");
        app::caller::generate_keys(s2s_auth::SigningAlgorithm::RS256, &private, &public).unwrap();
        // The old key's tokens are refused at once, on both receivers.
        for url in [
            format!("{}/scenario3-server", s.b.https_url()),
            format!("{}/scenario4-server", s.b.https_url()),
        ] {
            let (status, body) = get_bearer(&s.client, &url, &old).await;
            assert_eq!(status, 403, "round {round}, old key: {body}");
            assert_eq!(body["error"]["message"], "invalid signature", "{body}");
        }
        let url = format!("{}/scenario3-server", s.c.https_url());
        let (status, body) = get_bearer(&s.client, &url, &local_token(&s, "servicec")).await;
        assert_eq!(status, 200, "round {round}, servicec, new key: {body}");
        b3_accepts(&s, &format!("round {round}, new key")).await;
        // servicea signs with the new private key, the receivers verify with
        // the new public key: all three reloaded without a restart.
        let (status, body) = s.get_a("/scenario4").await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
}

/// An in-place rewrite that keeps size, inode and modification time (what
/// `cp -p`, `touch -r` or `rsync --inplace -t` do): the cache must notice.
#[tokio::test]
async fn key_rewritten_in_place_with_the_same_mtime_is_noticed() {
    let s = Stack::start(Options::default()).await;
    let public = s.path("scenario-3-keys/jwt-public.pem");
    b3_accepts(&s, "start").await;
    let before = std::fs::metadata(&public).unwrap();
    // A new pair elsewhere; its public key is copied over the old one.
    let other = tempfile::tempdir().unwrap();
    let (p2, q2) = (other.path().join("k.pem"), other.path().join("k.pub"));
    app::caller::generate_keys(s2s_auth::SigningAlgorithm::RS256, &p2, &q2).unwrap();
    let new_public = std::fs::read(&q2).unwrap();
    assert_eq!(
        new_public.len() as u64,
        before.len(),
        "RSA-2048 PEMs match in size"
    );
    std::fs::write(&public, &new_public).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&public)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = std::fs::metadata(&public).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.modified().unwrap()),
        (before.ino(), before.len(), before.modified().unwrap())
    );
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&p2).unwrap()).unwrap();
    let url = format!("{}/scenario3-server", s.b.https_url());
    let (status, body) = get_bearer(&s.client, &url, &token_with(&key, "serviceb")).await;
    assert_eq!(status, 200, "the new public key is in use: {body}");
}

#[tokio::test]
async fn servicea_signing_key_missing_or_corrupt_is_503_then_recovers() {
    let s = Stack::start(Options::default()).await;
    let private = s.path("scenario-3-keys/jwt-private.pem");
    let good = std::fs::read(&private).unwrap();
    for (case, bytes) in [
        ("missing", None),
        ("empty", Some(&b""[..])),
        ("corrupt", Some(&good[..good.len() / 3])),
    ] {
        match bytes {
            None => std::fs::remove_file(&private).unwrap(),
            Some(b) => std::fs::write(&private, b).unwrap(),
        }
        for scenario in ["/scenario3", "/scenario4"] {
            let (status, body) = s.get_a(scenario).await;
            assert_eq!(status, 503, "{case} {scenario}: {body}");
            let text = body.to_string();
            assert!(text.contains("jwt-private.pem"), "{case}: {text}");
            assert!(text.contains("gen-keys"), "{case}: {text}");
        }
        // Restored as a private key is written: 0600 (one that others can
        // read is refused, see hardening.rs).
        s2s_auth::files::write_atomic(&private, &good, s2s_auth::files::PRIVATE).unwrap();
        let (status, body) = s.get_a("/scenario3").await;
        assert_eq!(status, 200, "restored after {case}: {body}");
    }
}

// ---------------------------------------------------------------------------
// TLS.

#[tokio::test]
async fn tls_peer_with_a_certificate_from_another_ca_is_502_unknown_issuer() {
    let s = Stack::start(Options::default()).await;
    let other = tempfile::tempdir().unwrap();
    foreign_ca_certificate("Some Other CA", other.path());
    let (_b, a) = peer_with_certificate(&s, other.path(), &s.files.certs).await;
    scenario3_fails_with(&a, &s.client, "UnknownIssuer").await;
    // Scenario 1 (plain http) on the same pair is unaffected.
    let (status, body) = get_json(&s.client, &format!("{}/scenario1", a.url())).await;
    assert_eq!(status, 200, "{body}");
}

/// A certificate from another `gen-certs` run (another machine, or
/// `gen-certs --force` without restarting serviceb). Every generated CA has
/// the same name, so the verifier finds "our" CA by name, checks the
/// signature and reports `BadSignature`, which sends people looking at
/// signatures instead of at which CA signed the peer's certificate.
#[tokio::test]
async fn tls_peer_with_a_certificate_from_another_gen_certs_run_is_502_unknown_issuer() {
    let s = Stack::start(Options::default()).await;
    let other = common::files::other_ca();
    let (_b, a) = peer_with_certificate(&s, other.path(), &s.files.certs).await;
    scenario3_fails_with(&a, &s.client, "UnknownIssuer").await;
}

/// A peer that accepts the TCP connection but never completes the TLS
/// handshake: servicea gives up after its *connect* timeout, and the message
/// must say so (not the request timeout, which never elapsed).
#[tokio::test]
async fn tls_handshake_that_never_completes_is_504_naming_the_connect_timeout() {
    let s = Stack::start(Options::default()).await;
    let silent = Silent::start().await;
    let a = servicea_for(
        &s,
        &s.b.url(),
        &format!("https://localhost:{}", silent.addr.port()),
        &s.files.certs,
        &[
            "--connect-timeout-ms",
            "300",
            "--request-timeout-ms",
            "8000",
        ],
    )
    .await;
    let started = Instant::now();
    let (status, body) = get_json(&s.client, &format!("{}/scenario3", a.url())).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        took < Duration::from_secs(4),
        "gave up after the connect timeout: {took:?}"
    );
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("serviceb"), "{msg}");
    assert!(
        msg.contains("300ms") && !msg.contains("8000ms"),
        "names the timeout that fired (connect, 300ms): {msg}"
    );
}

#[tokio::test]
async fn tls_peer_with_a_certificate_for_another_name_is_502_not_valid_for_name() {
    let s = Stack::start(Options::default()).await;
    let ca = &s.files.certs;
    // Control: the same code making a certificate for localhost works, so a
    // failure below is the name, not how the certificate was made.
    let right = tempfile::tempdir().unwrap();
    certificate_from_stack_ca(&s, "localhost", right.path());
    let (_b, a) = peer_with_certificate(&s, right.path(), ca).await;
    let (status, body) = get_json(&s.client, &format!("{}/scenario3", a.url())).await;
    assert_eq!(status, 200, "control: {body}");

    let wrong = tempfile::tempdir().unwrap();
    certificate_from_stack_ca(&s, "example.com", wrong.path());
    let (_b, a) = peer_with_certificate(&s, wrong.path(), ca).await;
    let msg = scenario3_fails_with(&a, &s.client, "not valid for name").await;
    assert!(msg.contains("example.com"), "says which name it has: {msg}");
}

/// servicea's `/scenario3` through a peer whose certificate, and the CA
/// servicea trusts for it, are valid only from `from` to `until` days from
/// now: a 502 that says `cause`.
async fn scenario3_with_certificate_valid(from: i64, until: i64, cause: &str) {
    let s = Stack::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    common::files::gen_certs_valid(
        dir.path(),
        s2s_web::pki::Validity {
            not_before: now + time::Duration::days(from),
            not_after: now + time::Duration::days(until),
        },
    );
    // servicea trusts this CA: its validity is the only fault.
    let (_b, a) = peer_with_certificate(&s, dir.path(), dir.path()).await;
    scenario3_fails_with(&a, &s.client, cause).await;
}

#[tokio::test]
async fn tls_peer_with_an_expired_certificate_is_502_expired() {
    scenario3_with_certificate_valid(-30, -1, "expired").await;
}

#[tokio::test]
async fn tls_peer_with_a_not_yet_valid_certificate_is_502_not_valid_yet() {
    scenario3_with_certificate_valid(1, 30, "not valid yet").await;
}

// ---------------------------------------------------------------------------
// Concurrency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_500_scenario_requests_64_in_flight_all_succeed() {
    // Generous outbound timeouts: this checks correctness under load on a
    // small machine, not latency.
    let slow_ok: Vec<String> = [
        "--request-timeout-ms",
        "30000",
        "--connect-timeout-ms",
        "10000",
    ]
    .map(String::from)
    .to_vec();
    let s = Stack::start(Options {
        a_args: slow_ok.clone(),
        bc_args: slow_ok,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let results: Vec<(usize, u16, Value)> = tokio::time::timeout(
        Duration::from_secs(240),
        futures::stream::iter(0..500)
            .map(|i| {
                let s = &s;
                async move {
                    let path = format!("/scenario{}", i % 4 + 1);
                    let r = s
                        .client
                        .get(format!("{}{path}", s.a.url()))
                        .timeout(Duration::from_secs(120))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("request {i} ({path}): {e:?}"));
                    let status = r.status().as_u16();
                    (i, status, r.json().await.unwrap_or(Value::Null))
                }
            })
            .buffer_unordered(64)
            .collect(),
    )
    .await
    .expect("500 requests did not finish within 240 s");
    assert_eq!(results.len(), 500);
    let failed: Vec<_> = results.iter().filter(|(_, st, _)| *st != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 500 failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    for (i, _, body) in &results {
        match i % 4 {
            0 | 2 => assert_eq!(body["valid"], true, "{i}: {body}"),
            _ => {
                assert_eq!(body["serviceb"]["valid"], true, "{i}: {body}");
                assert_eq!(body["servicec"]["valid"], true, "{i}: {body}");
            }
        }
    }
    eprintln!("500 scenario requests in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_creation_and_dump_keep_every_dumped_file_usable() {
    let s = Stack::start(Options::default()).await;
    let f = s.factory.url();
    let private = s.path("keys/x-private.pem");
    create_key(&s.client, &s.factory, "x").await;

    // While the burst runs, keep reading the dumped private key: an atomic
    // writer never lets a reader see half a file.
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (done, reads, private) = (Arc::clone(&done), Arc::clone(&reads), private.clone());
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Ok(pem) = std::fs::read_to_string(&private) {
                    s2s_auth::KeyPair::from_private_pem(&pem)
                        .unwrap_or_else(|e| panic!("a reader saw a broken private key: {e}"));
                    reads.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::yield_now();
            }
        })
    };

    let statuses: Vec<(String, u16)> = tokio::time::timeout(
        Duration::from_secs(120),
        futures::stream::iter(0..40)
            .map(|i| {
                let (client, f) = (&s.client, &f);
                async move {
                    let (what, rb) = if i % 2 == 0 {
                        ("GET /keys/x", client.get(format!("{f}/keys/x")))
                    } else {
                        ("POST /utils/dump", client.post(format!("{f}/utils/dump")))
                    };
                    let r = rb.send().await.unwrap();
                    (what.to_owned(), r.status().as_u16())
                }
            })
            .buffer_unordered(40)
            .collect(),
    )
    .await
    .expect("keys/dump burst did not finish in time");
    done.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    for (what, status) in &statuses {
        assert_eq!(*status, 200, "{what}");
    }
    assert!(
        reads.load(Ordering::SeqCst) > 0,
        "the reader never saw the file"
    );

    // Every dumped private key parses; no temporary files are left behind.
    let mut names = Vec::new();
    for entry in std::fs::read_dir(s.path("keys")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(!name.starts_with(".tmp"), "left behind: {name}");
        if name.ends_with("-private.pem") {
            let pem = std::fs::read_to_string(&path).unwrap();
            s2s_auth::KeyPair::from_private_pem(&pem)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "servicea-private.pem",
            "servicea-public.pem",
            "x-private.pem",
            "x-public.pem"
        ]
    );
}

/// Two dumps racing write `{id}-public.pem` and `{id}-private.pem` one file
/// at a time each: the pair on disk can end up from two different keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dumped_public_key_matches_the_dumped_private_key_after_concurrent_dumps() {
    let s = Stack::start(Options::default()).await;
    let f = s.factory.url();
    create_key(&s.client, &s.factory, "x").await;
    for round in 0..3 {
        let _: Vec<u16> = futures::stream::iter(0..20)
            .map(|i| {
                let (client, f) = (&s.client, &f);
                async move {
                    let rb = if i % 2 == 0 {
                        client.get(format!("{f}/keys/x"))
                    } else {
                        client.post(format!("{f}/utils/dump"))
                    };
                    rb.send().await.unwrap().status().as_u16()
                }
            })
            .buffer_unordered(20)
            .collect()
            .await;
        let private = std::fs::read_to_string(s.path("keys/x-private.pem")).unwrap();
        let public = std::fs::read_to_string(s.path("keys/x-public.pem")).unwrap();
        let derived = s2s_auth::KeyPair::from_private_pem(&private).unwrap();
        assert_eq!(
            derived.public().pem(),
            public,
            "round {round}: keys/x-public.pem is not the public half of keys/x-private.pem"
        );
    }
}

// ---------------------------------------------------------------------------
// Graceful shutdown of the real binary.

/// Kills the child on drop, so a failing test leaves no process behind.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().unwrap().try_wait().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `what` every 20 ms until it holds, for at most `limit`.
async fn poll_until(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_0() {
    use axum::{Json, Router, extract::State, routing::post};
    common::init();

    // A jwt-factory stand-in that holds every /verify until released.
    #[derive(Clone)]
    struct Hold {
        arrived: Arc<AtomicUsize>,
        release: tokio::sync::watch::Receiver<bool>,
    }
    async fn verify(State(h): State<Hold>) -> Json<Value> {
        h.arrived.fetch_add(1, Ordering::SeqCst);
        let mut release = h.release.clone();
        let _ = release.wait_for(|go| *go).await;
        Json(json!({ "valid": true, "claims": { "sub": "servicea" } }))
    }
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let hold = Hold {
        arrived: Arc::new(AtomicUsize::new(0)),
        release: release_rx,
    };
    let arrived = Arc::clone(&hold.arrived);
    let fake = common::bind().await;
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    let fake_task = tokio::spawn(async move {
        let app = Router::new()
            .route("/verify/{id}", post(verify))
            .with_state(hold);
        axum::serve(fake, app).await.unwrap();
    });

    // serviceb as its own process, https on too, from an empty directory.
    let dir = tempfile::tempdir().unwrap();
    common::files::gen_certs(&dir.path().join("certs"));
    let [port, https_port] = common::free_ports();
    let log_path = dir.path().join("serviceb.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = ChildGuard(Some(
        Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serviceb", "--port", &port.to_string()])
            .args(["--jwt-factory-endpoint", &fake_url])
            .args([
                "--start-https",
                "true",
                "--https-port",
                &https_port.to_string(),
            ])
            .args(["--request-timeout-ms", "60000"])
            .current_dir(dir.path())
            .env_clear()
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    poll_until(
        Duration::from_secs(30),
        "serviceb answers /hello",
        async || {
            if let Some(status) = child.try_wait() {
                panic!(
                    "serviceb exited early ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            probe
                .get(format!("{base}/hello"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    drop(probe);

    // Requests in flight: each is parked in the stand-in factory.
    const IN_FLIGHT: usize = 8;
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let rb = client
                .get(format!("{base}/scenario1-server"))
                .header(AUTHORIZATION, "Bearer a.b.c")
                .timeout(Duration::from_secs(60));
            tokio::spawn(async move {
                let r = rb.send().await?;
                let status = r.status().as_u16();
                Ok::<_, reqwest::Error>((status, r.text().await?))
            })
        })
        .collect();
    poll_until(
        Duration::from_secs(30),
        "all requests reach the factory",
        async || arrived.load(Ordering::SeqCst) == IN_FLIGHT,
    )
    .await;

    // SIGTERM, then wait until serviceb stops accepting connections.
    let kill = Command::new("kill")
        .args(["-TERM", &child.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    poll_until(
        Duration::from_secs(15),
        "serviceb stops accepting",
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        },
    )
    .await;
    assert!(child.try_wait().is_none(), "exited with requests in flight");

    // Let the factory answer: every in-flight request completes, with 200.
    release_tx.send(true).unwrap();
    for r in requests {
        let (status, body) = tokio::time::timeout(ANSWER_WITHIN, r)
            .await
            .expect("in-flight request did not complete")
            .unwrap()
            .expect("in-flight request failed");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"valid\":true"), "{body}");
    }

    // And the process exits, with status 0.
    let mut exit = None;
    poll_until(Duration::from_secs(20), "serviceb exits", async || {
        exit = child.try_wait();
        exit.is_some()
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(exit.unwrap().code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    fake_task.abort();
}

/// On the quick-start stack (no gateway, no sidecars), scenarios 9 and 10
/// answer 502 naming the process that is missing and the command that
/// starts it, not serviceb (issue 22, item 6).
#[tokio::test]
async fn without_the_gateway_or_the_sidecar_the_502_names_what_to_start() {
    // Ports nothing listens on: bound, then released.
    let [gateway, sidecar] = common::free_ports::<2>();
    let s = Stack::start(Options {
        a_args: vec![
            "--gateway-endpoint".into(),
            format!("http://127.0.0.1:{gateway}"),
            "--mesh-proxy".into(),
            format!("http://127.0.0.1:{sidecar}"),
        ],
        ..Options::default()
    })
    .await;
    for (n, says) in [
        (9, ["the gateway (nginx", "scripts/demo.sh"]),
        (10, ["my sidecar (Envoy", "scripts/mesh.sh"]),
    ] {
        let (status, body) = s.get_a(&format!("/scenario{n}")).await;
        assert_eq!(status, 502, "scenario {n}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        for word in says {
            assert!(message.contains(word), "scenario {n}: {message}");
        }
    }
}
