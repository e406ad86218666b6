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
    let e = Edge::start_verifier_with(
        production(),
        None,
        [1000, 2000, 5000],
        &["--production", "true"],
    )
    .await;
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
