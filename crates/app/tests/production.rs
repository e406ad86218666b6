#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `PRODUCTION` (issue 21, item 12): one switch turns every workshop
//! shortcut off. Against the real servers, all started with
//! `--production`: scenarios 6-10 still work (the gateway through the real
//! nginx, the mesh through real Envoy sidecars), and every shortcut is
//! refused:
//!
//! | shortcut | with PRODUCTION |
//! | --- | --- |
//! | `/issueToken`, `/verify` | 403 pointing to `POST /token` |
//! | anonymous key management (factory `/keys`, `/rotate`, `/utils/dump`) | 403 unless the admin's client certificate, over mTLS |
//! | servicea's `POST /gen-keys`, the console | 403 (use `app gen-keys`); no console |
//! | the trace (`?trace=1`, `x-s2s-trace`) | ignored: the plain answer, no trace header |
//! | permissive mTLS | strict: an https client without a certificate is refused |
//! | the gateway taking `/issueToken` tokens | tested in `gateway.rs` (`in_production_the_gateway_accepts_access_tokens_only`) |

use test_support as common;

use common::{
    Options,
    gateway::Edge,
    get_json, json_reply,
    mesh::{Mesh, MeshOptions},
};
use serde_json::Value;

/// Options with every process in production.
fn production() -> Options {
    Options {
        production: true,
        ..Options::default()
    }
}

/// The stack, its verifier and the real nginx, every process in production.
async fn production_edge() -> Edge {
    Edge::start_verifier_with(
        production(),
        None,
        [1000, 2000, 5000],
        &["--production", "true"],
    )
    .await
}

fn says(case: &str, body: &Value, words: &[&str]) {
    let text = body.to_string().to_lowercase();
    for w in words {
        assert!(
            text.contains(&w.to_lowercase()),
            "{case}: {body} does not say {w:?}"
        );
    }
}

#[tokio::test]
async fn scenarios_6_to_9_work_and_every_shortcut_is_refused() {
    let e = production_edge().await;
    let s = &e.s;
    for n in [6, 7, 8, 9] {
        let (status, body) = s.get_a(&format!("/scenario{n}")).await;
        assert_eq!(
            status,
            200,
            "scenario {n} in production: {body}\nnginx: {}",
            e.gateway.error_log()
        );
    }

    // /issueToken and /verify: off, whatever ISSUE_TOKEN_SHORTCUT says.
    for path in ["/issueToken/servicea", "/verify/servicea"] {
        let (status, body) = json_reply(
            s.client
                .post(format!("{}{path}", s.factory.url()))
                .json(&serde_json::json!({})),
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
        says(path, &body, &["/token"]);
    }

    // Key management: refused anonymously and for any other workload, on
    // both listeners; the admin's certificate over mTLS may.
    let plain = format!("{}/keys/evil", s.factory.url());
    let https = format!("{}/keys/evil", s.factory.https_url());
    let as_a = s.files.client_as("servicea");
    for (case, status_body) in [
        ("GET /keys anonymously", get_json(&s.client, &plain).await),
        (
            "POST /keys/servicea/rotate anonymously",
            json_reply(s.client.post(format!(
                "{}/keys/servicea/rotate?emergency=1",
                s.factory.url()
            )))
            .await,
        ),
        (
            "POST /utils/dump anonymously",
            json_reply(s.client.post(format!("{}/utils/dump", s.factory.url()))).await,
        ),
        (
            "GET /keys as servicea over mTLS",
            get_json(&as_a, &https).await,
        ),
    ] {
        let (status, body) = status_body;
        assert_eq!(status, 403, "{case}: {body}");
        says(case, &body, &["admin", "mtls"]);
    }
    let (_, keys) = s.get(&s.factory, "/utils/keys").await;
    assert!(
        !keys.to_string().contains("evil"),
        "a refused call created a key: {keys}"
    );
    let admin = s.files.client_as("admin");
    let (status, body) = get_json(&admin, &https).await;
    assert_eq!(status, 200, "the admin over mTLS: {body}");

    // servicea's own key management and the console: off.
    let (status, body) = s.post(&s.a, "/gen-keys").await;
    assert_eq!(status, 403, "{body}");
    says("POST /gen-keys", &body, &["app gen-keys"]);
    let (status, _) = s.get_a("/console").await;
    assert_eq!(status, 404, "the console is a workshop tool");

    // The trace: ?trace=1 gets the plain answer, and no service answers
    // the trace header.
    let (status, body) = s.get_a("/scenario6?trace=1").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("trace").is_none(), "a trace in production: {body}");
    assert_eq!(body["valid"], true, "{body}");
    let answer = s
        .client
        .get(format!("{}/hello", s.b.url()))
        .header("x-s2s-trace", "1")
        .send()
        .await
        .unwrap();
    assert!(
        answer.headers().get("x-s2s-trace").is_none(),
        "serviceb answered the trace header in production"
    );

    // Permissive mTLS is strict: serviceb's and the factory's https
    // listeners refuse a client without a certificate (scenario 3's
    // one-way TLS is a workshop lesson).
    for url in [
        format!("{}/hello", s.b.https_url()),
        format!("{}/hello", s.factory.https_url()),
    ] {
        let err = s.client.get(&url).send().await;
        assert!(err.is_err(), "{url} without a client certificate: {err:?}");
    }
}

#[tokio::test]
async fn scenario_10_works_in_production() {
    let m = Mesh::start(MeshOptions {
        stack: production(),
        ..MeshOptions::default()
    })
    .await;
    let (status, body) = m.s.get_a("/scenario10").await;
    assert_eq!(
        status,
        200,
        "scenario 10 in production: {body}\n{}",
        m.logs()
    );
}

/// The attack suite's tokens, against the paths that verify tokens with
/// `PRODUCTION` on: serviceb's `/scenario6-server` (locally, from the JWK
/// Set) and the gateway (`/serviceb/scenario9-server`, through the real
/// nginx and the verifier). Signed with the factory's own key (dumped by
/// the admin over mTLS) where the attack is in the claims, so only the
/// rule under test can refuse it. Each is a 4xx with JSON that says why,
/// and a valid token passes right after it.
#[tokio::test]
async fn hostile_tokens_are_refused_on_every_production_path() {
    use common::forge::{Sig, forge};
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

    let e = production_edge().await;
    let s = &e.s;
    // The factory's signing key, as an attacker who stole it would hold
    // it: dumped by the admin (the only one who may), read from KEYS_DIR.
    let admin = s.files.client_as("admin");
    let (status, body) =
        json_reply(admin.post(format!("{}/utils/dump", s.factory.https_url()))).await;
    assert_eq!(status, 200, "dump by the admin: {body}");
    let pem = std::fs::read(s.files.keys.join("servicea-private.pem")).unwrap();
    let factory_key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let (_, jwks) = s.get(&s.factory, "/.well-known/jwks.json").await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let public_pem = s2s_auth::KeyPair::from_private_pem(std::str::from_utf8(&pem).unwrap())
        .unwrap()
        .public()
        .pem()
        .to_owned();
    let other = s2s_auth::KeyPair::generate(s2s_auth::SigningAlgorithm::RS256).unwrap();
    let other_key = EncodingKey::from_rsa_pem(other.private_pem().as_bytes()).unwrap();
    let hmac = EncodingKey::from_secret(public_pem.as_bytes());

    let now = common::factory::now_unix();
    let claims = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = json!({
            "iss": "https://jwt-factory/", "sub": "servicea", "aud": "serviceb",
            "client_id": "servicea", "jti": "j", "iat": now, "exp": now + 60,
        });
        edit(c.as_object_mut().unwrap());
        c
    };
    let header = |alg: &str, typ: &str| json!({ "alg": alg, "typ": typ, "kid": kid });
    let ok = |_: &mut serde_json::Map<String, Value>| {};
    let signed = Sig::By(&factory_key, Algorithm::RS256);
    // A token signed with the factory's own key, with `changes` to the
    // claims of a valid access token.
    let signed_with = |changes: &[(&str, Value)]| {
        let edit = |c: &mut serde_json::Map<String, Value>| {
            for (name, value) in changes {
                c.insert((*name).to_owned(), value.clone());
            }
        };
        forge(&header("RS256", "at+jwt"), &claims(&edit), signed)
    };
    let bound = json!({ "x5t#S256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            forge(&header("none", "at+jwt"), &claims(&ok), Sig::Raw("")),
        ),
        (
            "HS256 keyed with the factory's public key",
            forge(
                &header("HS256", "at+jwt"),
                &claims(&ok),
                Sig::By(&hmac, Algorithm::HS256),
            ),
        ),
        (
            "another key under the factory's kid",
            forge(
                &header("RS256", "at+jwt"),
                &claims(&ok),
                Sig::By(&other_key, Algorithm::RS256),
            ),
        ),
        ("expired", signed_with(&[("exp", (now - 600).into())])),
        ("for servicec", signed_with(&[("aud", "servicec".into())])),
        (
            "another issuer",
            signed_with(&[("iss", "https://evil/".into())]),
        ),
        (
            "another subject",
            signed_with(&[("sub", "servicec".into()), ("client_id", "servicec".into())]),
        ),
        (
            "client_id other than sub",
            signed_with(&[("client_id", "admin".into())]),
        ),
        (
            "an /issueToken token (typ JWT)",
            forge(&header("RS256", "JWT"), &claims(&ok), signed),
        ),
        ("a string exp", signed_with(&[("exp", "9999999999".into())])),
        (
            "certificate-bound, over plain http",
            signed_with(&[("cnf", bound)]),
        ),
        (
            "a kid that walks the file system",
            forge(
                &json!({ "alg": "RS256", "typ": "at+jwt", "kid": "../../etc/passwd" }),
                &claims(&ok),
                signed,
            ),
        ),
        (
            "a 100 KB token",
            format!("{}.{}.x", "a".repeat(50_000), "b".repeat(50_000)),
        ),
    ];
    let valid = forge(&header("RS256", "at+jwt"), &claims(&ok), signed);
    let paths = [
        (
            "serviceb /scenario6-server",
            format!("{}/scenario6-server", s.b.url()),
        ),
        ("the gateway", e.gateway.url("/serviceb/scenario9-server")),
    ];
    for (where_, url) in &paths {
        for (attack, token) in &attacks {
            let (status, body) = json_reply(s.client.get(url).bearer_auth(token)).await;
            assert!(
                (400..500).contains(&status),
                "{attack} at {where_}: {status} {body}"
            );
            assert!(body.is_object(), "{attack} at {where_}: not JSON: {body}");
            let (status, body) = json_reply(s.client.get(url).bearer_auth(&valid)).await;
            assert_eq!(
                status, 200,
                "a valid token at {where_} after {attack}: {body}"
            );
        }
    }
}
