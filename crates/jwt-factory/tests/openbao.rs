#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 24, item 1: the factory signs with keys it never holds. Every
//! test runs the real OpenBao (`bao server -dev`, installed by
//! `scripts/test.sh`), set up as the demo sets it up, and a real factory
//! with `KEY_BACKEND=openbao` logged in with its own AppRole credentials.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use openbao::{AppRole, OpenBao, OpenBaoError, client::Timeouts};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use test_support::{
    Running,
    factory::{create_key, issue, payload, rotate, verify},
    json_reply,
    openbao::DevBao,
    start_factory_opened,
};

/// A factory on `bao` with `extra` flags, its keys folder under `dir`.
async fn factory(bao: &DevBao, dir: &Path, extra: &[&str]) -> Running {
    let mut flags = bao.factory_flags();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    start_factory_opened(&dir.join("keys"), &flags)
        .await
        .unwrap_or_else(|e| panic!("the factory did not start on OpenBao: {e}"))
}

fn at(f: &Running, path: &str) -> String {
    format!("http://{}{path}", f.addr)
}

/// The factory's JWK Set.
async fn jwks(http: &Client, f: &Running) -> JwkSet {
    let (status, body) = json_reply(http.get(at(f, "/.well-known/jwks.json"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap_or_default())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Checks `token` against the JWK Set alone, as any verifier would: the
/// key its `kid` names, the pinned algorithm, iss/aud/sub.
fn verifies_with(set: &JwkSet, token: &str, alg: jsonwebtoken::Algorithm, sub: &str) {
    let kid = kid_of(token);
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWK Set {:?}", kids(set)));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&["https://jwt-factory/"]);
    v.set_audience(&["serviceb"]);
    v.sub = Some(sub.to_owned());
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("{alg:?} token from OpenBao does not verify: {e}"));
}

/// Every file under `dir`, read as text where it is text.
fn files_mentioning(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn tokens_are_signed_by_openbao_and_verify_everywhere_with_every_algorithm() {
    let bao = DevBao::start().await;
    let http = Client::new();
    for (alg, jwt_alg) in [
        ("RS256", jsonwebtoken::Algorithm::RS256),
        ("PS256", jsonwebtoken::Algorithm::PS256),
        ("ES256", jsonwebtoken::Algorithm::ES256),
        ("ES384", jsonwebtoken::Algorithm::ES384),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let f = factory(&bao, dir.path(), &["--algorithm", alg]).await;
        // One key id per algorithm: a Transit key has one type.
        let id = format!("svc{}", alg.to_lowercase());
        create_key(&http, &f, &id).await;
        let set = jwks(&http, &f).await;
        assert_eq!(kids(&set).len(), 1, "{alg}: {:?}", kids(&set));
        assert!(
            kids(&set)[0].starts_with(&format!("{id}.v1-")),
            "{alg}: the kid names the Transit version: {:?}",
            kids(&set)
        );
        // ECDSA: many tokens, so a high-s signature from OpenBao would be
        // met (and refused by our verifiers) if it were not made low-s.
        let rounds = if alg.starts_with("ES") { 12 } else { 2 };
        for _ in 0..rounds {
            let token = issue(&http, &f, &id, "", &json!({ "aud": "serviceb" })).await;
            verifies_with(&set, &token, jwt_alg, &id);
            let (status, body) = verify(&http, &f, &id, &token, "serviceb", &id).await;
            assert_eq!(status, 200, "{alg}: /verify: {body}");
        }
    }
}

#[tokio::test]
async fn no_private_key_is_in_the_factory_folders_and_every_signature_is_audited() {
    let bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = factory(&bao, dir.path(), &[]).await;
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    rotate(&http, &f, "servicea").await;

    // /utils/dump has nothing to write, and says why.
    let (status, body) = json_reply(http.post(at(&f, "/utils/dump"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["backend"], "openbao", "{body}");
    assert_eq!(body["files"], json!([]), "{body}");
    assert!(body["note"].as_str().unwrap().contains(&bao.addr), "{body}");
    assert!(!dir.path().join("keys").exists(), "KEYS_DIR was written");
    let found = files_mentioning(dir.path(), "PRIVATE KEY");
    assert!(found.is_empty(), "private keys on disk: {found:?}");

    // The audit device has a line for the signature, by the factory's
    // AppRole token (its policy named), not by root.
    let audit = std::fs::read_to_string(bao.audit_log()).unwrap();
    let signs: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "response")
        .filter(|l| l["request"]["path"] == "jwt-factory-transit/sign/jwt-factory-servicea")
        .collect();
    assert_eq!(signs.len(), 1, "one signature, one audited response");
    assert_eq!(
        signs[0]["auth"]["policies"],
        json!(["default", "jwt-factory"]),
        "{}",
        signs[0]
    );
    assert!(payload(&token)["exp"].is_i64());
}

#[tokio::test]
async fn rotation_keeps_its_phases_on_transit_versions_and_a_restart_loses_nothing() {
    let bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let windows = ["--rotation-publish-ahead-secs", "2"];
    let f = factory(&bao, dir.path(), &windows).await;
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    let first = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    assert!(
        kid_of(&first).starts_with("servicea.v1-"),
        "{}",
        kid_of(&first)
    );

    // Phased: version 2 is published at once and signs only later.
    let rotation = rotate(&http, &f, "servicea").await;
    let next = rotation["kid"].as_str().unwrap().to_owned();
    assert!(next.starts_with("servicea.v2-"), "{rotation}");
    assert!(kids(&jwks(&http, &f).await).contains(&next));
    let still = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    assert_eq!(
        kid_of(&still),
        kid_of(&first),
        "signs with v1 until v2 activates"
    );

    // A restart in the middle of the phase: the same kids, the same phase.
    let before = kids(&jwks(&http, &f).await);
    let (_, status_before) = json_reply(http.get(at(&f, "/utils/keys/servicea/status"))).await;
    drop(f);
    let f = factory(&bao, dir.path(), &windows).await;
    assert_eq!(
        kids(&jwks(&http, &f).await),
        before,
        "the JWK Set after a restart"
    );
    let (_, status_after) = json_reply(http.get(at(&f, "/utils/keys/servicea/status"))).await;
    assert_eq!(status_after, status_before, "the phases after a restart");
    let (code, body) = verify(&http, &f, "servicea", &first, "serviceb", "servicea").await;
    assert_eq!(code, 200, "a token from before the restart: {body}");

    // After the publish-ahead time, v2 signs and v1 still verifies.
    let deadline = Instant::now() + Duration::from_secs(10);
    let signed = loop {
        let t = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
        if kid_of(&t) == next {
            break t;
        }
        assert!(Instant::now() < deadline, "v2 never started signing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for token in [&first, &signed] {
        let (code, body) = verify(&http, &f, "servicea", token, "serviceb", "servicea").await;
        assert_eq!(code, 200, "{body}");
    }

    // Emergency: v3 signs at once and v2 (the compromised current key) is
    // withdrawn; v1, retiring since v2 took over, verifies its tokens on.
    let (status, body) = json_reply(http.post(at(&f, "/keys/servicea/rotate?emergency=1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emergency = body["kid"].as_str().unwrap().to_owned();
    assert!(emergency.starts_with("servicea.v3-"), "{body}");
    let after = vec![emergency.clone(), kid_of(&first)];
    assert_eq!(kids(&jwks(&http, &f).await), after);
    let t = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    assert_eq!(kid_of(&t), emergency);
    let (code, _) = verify(&http, &f, "servicea", &signed, "serviceb", "servicea").await;
    assert_eq!(code, 403, "a withdrawn key's token");

    // And that survives a restart too.
    drop(f);
    let f = factory(&bao, dir.path(), &windows).await;
    assert_eq!(kids(&jwks(&http, &f).await), after);
    let t = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    assert_eq!(kid_of(&t), emergency);
}

#[tokio::test]
async fn openbao_down_signing_is_a_503_naming_it_and_verification_goes_on() {
    let mut bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = factory(&bao, dir.path(), &["--openbao-timeout-ms", "500"]).await;
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    bao.stop();
    let started = Instant::now();
    let (status, body) = json_reply(
        http.post(at(&f, "/issueToken/servicea"))
            .json(&json!({ "aud": "serviceb" })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("OpenBao") && message.contains(&bao.addr),
        "the message names OpenBao and its address: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Rotation cannot happen either, and says so the same way.
    let (status, body) = json_reply(http.post(at(&f, "/keys/servicea/rotate"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("OpenBao"),
        "{body}"
    );

    // Verification and the JWK Set go on from the public keys in memory.
    let (code, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(kids(&jwks(&http, &f).await).len(), 1);

    // A factory that starts while OpenBao is down says why and where.
    let err = start_factory_opened(
        &dir.path().join("keys"),
        &bao.factory_flags()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await
    .err()
    .expect("no start without OpenBao");
    assert!(matches!(err, OpenBaoError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&bao.addr), "{err}");
}

#[tokio::test]
async fn the_factory_policy_allows_signing_and_nothing_that_would_reveal_a_key() {
    let bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = factory(&bao, dir.path(), &[]).await;
    let http = Client::new();
    create_key(&http, &f, "servicea").await;

    // Log in as the factory does, with its files alone.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    let factory_bao = OpenBao::login(
        &bao.addr,
        AppRole {
            mount: "approle".into(),
            role_id: read(&bao.factory.role_id_file),
            secret_id: read(&bao.factory.secret_id_file),
        },
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(5),
        },
        None,
    )
    .await
    .unwrap();
    let denied = |r: Result<Option<Value>, OpenBaoError>, what: &str| match r {
        Err(OpenBaoError::Denied { .. }) => {}
        other => panic!("{what} was not denied: {other:?}"),
    };
    let t = "jwt-factory-transit";
    let refused = [
        (
            Method::GET,
            format!("{t}/export/signing-key/jwt-factory-servicea"),
            None,
            "exporting the key",
        ),
        (
            Method::POST,
            format!("{t}/keys/jwt-factory-servicea/config"),
            Some(json!({ "exportable": true })),
            "making the key exportable",
        ),
        // Even with the one parameter key creation may carry: `keys/+` is
        // one path segment, so nothing under a key is granted.
        (
            Method::POST,
            format!("{t}/keys/jwt-factory-servicea/config"),
            Some(json!({ "type": "rsa-2048" })),
            "a key's config, with an allowed parameter",
        ),
        (
            Method::POST,
            format!("{t}/keys/jwt-factory-servicea/trim"),
            Some(json!({ "min_available_version": 1 })),
            "trimming the key's versions",
        ),
        (
            Method::POST,
            format!("{t}/keys/jwt-factory-new"),
            Some(json!({ "type": "rsa-2048", "exportable": true })),
            "creating an exportable key",
        ),
        (
            Method::GET,
            format!("{t}/backup/jwt-factory-servicea"),
            None,
            "a backup of the key",
        ),
        (
            Method::DELETE,
            format!("{t}/keys/jwt-factory-servicea"),
            None,
            "deleting the key",
        ),
        (
            Method::POST,
            "transit/sign/servicea".to_owned(),
            Some(json!({ "input": "aGk=" })),
            "signing with a service's own key, in another mount",
        ),
        (
            Method::POST,
            "transit/keys/anything".to_owned(),
            Some(json!({ "type": "rsa-2048" })),
            "creating a key in another mount",
        ),
        (
            Method::GET,
            "secret/data/other/thing".to_owned(),
            None,
            "another folder of KV",
        ),
        (
            Method::GET,
            "sys/policies/acl/jwt-factory".to_owned(),
            None,
            "reading policies",
        ),
    ];
    for (method, path, body, what) in refused {
        denied(factory_bao.call(method, &path, body.as_ref()).await, what);
    }
    // What it needs, it has.
    factory_bao
        .transit_key(t, "jwt-factory-servicea")
        .await
        .unwrap()
        .expect("its own key");
}

/// A token for the factory's policy, as OpenBao Agent would write it.
async fn agent_token(bao: &DevBao) -> String {
    let answer = bao
        .root
        .call(
            Method::POST,
            "auth/token/create",
            Some(&json!({ "policies": ["jwt-factory"], "ttl": "1h" })),
        )
        .await
        .unwrap()
        .unwrap();
    answer["auth"]["client_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_an_agents_token_file_the_factory_reads_it_again_when_the_token_is_replaced() {
    let bao = DevBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let first = agent_token(&bao).await;
    std::fs::write(&file, &first).unwrap();
    let flags = [
        "--key-backend",
        "openbao",
        "--openbao-addr",
        &bao.addr,
        "--openbao-token-file",
        file.to_str().unwrap(),
    ];
    let f = start_factory_opened(&dir.path().join("keys"), &flags)
        .await
        .unwrap();
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    // The agent renews: the old token is revoked, a new one is in the file.
    bao.root
        .call(
            Method::POST,
            "auth/token/revoke",
            Some(&json!({ "token": first })),
        )
        .await
        .unwrap();
    std::fs::write(&file, agent_token(&bao).await).unwrap();
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    let (code, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    assert_eq!(code, 200, "{body}");
}
