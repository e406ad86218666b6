#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 24, item 2: servicea's own key (scenarios 3-4 and its client
//! assertions) is a Transit key in a real OpenBao, under a policy that
//! lets servicea sign with it and nothing else; revoking servicea in
//! OpenBao stops its signatures at once, and scenario 3 says why.

use std::path::Path;

use openbao::setup;
use reqwest::StatusCode;
use s2s_auth::SigningAlgorithm;
use serde_json::Value;
use test_support::{Options, Stack, json_reply, openbao::DevBao};

/// servicea's flags for `bao`, with the credentials `creds`.
fn openbao_flags(bao: &DevBao, creds: &setup::Credentials) -> Vec<String> {
    [
        "--self-key-backend",
        "openbao",
        "--openbao-addr",
        &bao.addr,
        "--openbao-role-id-file",
        creds.role_id_file.to_str().unwrap(),
        "--openbao-secret-id-file",
        creds.secret_id_file.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn any_file_mentions(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if std::fs::read(entry.path()).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn servicea_signs_with_its_transit_key_and_a_revocation_stops_it_at_once() {
    let bao = DevBao::start().await;
    setup::transit_key(&bao.root, "transit", "servicea", SigningAlgorithm::RS256)
        .await
        .unwrap();
    let policy = setup::service_policy("transit", "servicea");
    let creds = setup::approle(&bao.root, "servicea", &policy, &bao.dir.path().join("a"))
        .await
        .unwrap();
    let mut a_args = openbao_flags(&bao, &creds);
    a_args.extend([
        "--console-audit-log".to_owned(),
        bao.audit_log().display().to_string(),
    ]);
    let s = Stack::start(Options {
        no_scenario3_keys: true,
        a_args,
        ..Options::default()
    })
    .await;
    let http = reqwest::Client::new();
    let at = |path: &str| format!("{}{path}", s.a.url());

    // Scenarios 3 and 4 (servicea's own tokens) and 6 (its client
    // assertion, which the factory checks with the public key servicea
    // wrote at start): all signed by OpenBao.
    for path in ["/scenario3", "/scenario4", "/scenario6"] {
        let (status, body) = json_reply(http.get(at(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            body.to_string().contains("\"valid\":true"),
            "{path}: {body}"
        );
    }
    // servicea holds no private key: its key folder has the public half only.
    let folder = s.files.public.parent().unwrap();
    assert!(any_file_mentions(folder, "PRIVATE KEY").is_empty());
    assert!(!any_file_mentions(folder, "PUBLIC KEY").is_empty());

    // Every signature is servicea's own AppRole's, with its own policy.
    let audit = std::fs::read_to_string(bao.audit_log()).unwrap();
    let signs: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "response" && l["request"]["path"] == "transit/sign/servicea")
        .collect();
    assert!(signs.len() >= 3, "{} audited signatures", signs.len());
    for line in &signs {
        assert_eq!(
            line["auth"]["policies"],
            serde_json::json!(["default", "servicea"])
        );
    }

    // The console's lesson reads the same lines: who used servicea's key.
    let (status, body) = json_reply(http.get(at("/console/key-audit"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = &body["steps"][0]["answer"];
    assert!(answer["total"].as_u64().unwrap() >= 3, "{body}");
    let last = answer["signatures"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["key"], "servicea", "{body}");
    assert_eq!(
        last["policies"],
        serde_json::json!(["default", "servicea"]),
        "{body}"
    );

    // Its key is rotated in OpenBao, not by POST /gen-keys.
    let (status, body) = json_reply(http.post(at("/gen-keys"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("OpenBao"), "{body}");

    // Revoked centrally: the next signature fails at once, and says why.
    setup::revoke(&bao.root, "servicea").await.unwrap();
    let (status, body) = json_reply(http.get(at("/scenario3"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("OpenBao") && message.contains("revoked"),
        "the answer names OpenBao and the revocation: {message}"
    );
    // The factory's own keys are not servicea's: scenario 1 goes on.
    let (status, body) = json_reply(http.get(at("/scenario1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn servicea_does_not_start_without_its_key_or_with_openbao_down() {
    let mut bao = DevBao::start().await;
    let policy = setup::service_policy("transit", "servicea");
    let creds = setup::approle(&bao.root, "servicea", &policy, &bao.dir.path().join("a"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut args = openbao_flags(&bao, &creds);
    args.extend(
        [
            "--service-a-public-key-path",
            dir.path().join("jwt-public.pem").to_str().unwrap(),
        ]
        .map(String::from),
    );
    let open = |args: Vec<String>| async move {
        let cli = test_support::service_command(app::Role::A, &args);
        match cli {
            app::cli::Command::Servicea(a) => app::caller::State::open(a.settle()).await.err(),
            other => panic!("{other:?}"),
        }
    };
    // No Transit key named servicea: the administrator has not made it.
    let err = open(args.clone()).await.expect("no start without the key");
    assert!(err.to_string().contains("no Transit key servicea"), "{err}");
    bao.stop();
    let err = open(args).await.expect("no start without OpenBao");
    assert!(
        err.to_string().contains("OpenBao at") && err.to_string().contains("unreachable"),
        "{err}"
    );
}

/// Logs in as the cert agent: the AppRole with [`openbao::pki::agent_policy`].
async fn cert_agent(bao: &DevBao) -> openbao::OpenBao {
    openbao::pki::setup(&bao.root, "cluster.local", &s2s_web::pki::WORKLOADS, "1h")
        .await
        .unwrap();
    let creds = setup::approle(
        &bao.root,
        "cert-agent",
        &openbao::pki::agent_policy(),
        &bao.dir.path().join("agent"),
    )
    .await
    .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    openbao::OpenBao::login(
        &bao.addr,
        openbao::AppRole {
            mount: "approle".into(),
            role_id: read(&creds.role_id_file),
            secret_id: read(&creds.secret_id_file),
        },
        openbao::client::Timeouts {
            connect: std::time::Duration::from_secs(1),
            request: std::time::Duration::from_secs(10),
        },
        None,
    )
    .await
    .unwrap()
}

/// servicea's identity and OpenBao's CA, as a fresh client (a new
/// connection, so a new handshake).
fn mtls_client(certs: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let mut pem = std::fs::read(certs.join("servicea.pem")).unwrap();
    pem.extend(std::fs::read(certs.join("servicea-key.pem")).unwrap());
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn workload_certificates_from_openbao_are_renewed_and_picked_up_without_a_restart() {
    let bao = DevBao::start().await;
    let agent = cert_agent(&bao).await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    // Short-lived on purpose: the renewal must happen within the test.
    let first_expiry = xtask::openbao_certs::issue_all(&agent, &certs, "12s", "cluster.local")
        .await
        .unwrap();
    let files = s2s_web::pki::CertFiles::in_dir(&certs);
    for name in s2s_web::pki::WORKLOADS {
        // Valid under the CA, for localhost and its name, exactly one
        // SPIFFE ID: the checks gen-certs' own certificates pass.
        s2s_web::pki::check_workload(&files, name, "cluster.local")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, key) = files.workload(name);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    assert!(!files.ca_key.exists(), "the CA's key stays in OpenBao");
    let lifetime = first_expiry - test_support::factory::now_unix();
    assert!((5..=13).contains(&lifetime), "short-lived: {lifetime} s");

    // serviceb serves scenario 7 (mTLS, servicea allowed by identity) with
    // OpenBao's certificates, and trusts OpenBao's CA alone.
    let s = Stack::start(Options {
        b_certs: Some(certs.clone()),
        ..Options::default()
    })
    .await;
    let url = format!(
        "https://localhost:{}/scenario7-server",
        s.b.https.unwrap().port()
    );
    let (status, body) = json_reply(mtls_client(&certs).get(&url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["principal"], "cluster.local/ns/default/sa/servicea",
        "{body}"
    );

    // The agent issues them all again before they expire; once the first
    // ones have expired, new connections (new handshakes, both sides'
    // certificates) still succeed: serviceb re-read its files, unrestarted.
    let second_expiry = xtask::openbao_certs::issue_all(&agent, &certs, "1h", "cluster.local")
        .await
        .unwrap();
    assert!(second_expiry > first_expiry + 60);
    while test_support::factory::now_unix() <= first_expiry + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let (status, body) = json_reply(mtls_client(&certs).get(&url)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "after the first certificates expired: {body}"
    );
}
