//! The factory's whole `/issueToken` and `/verify` paths, per algorithm:
//! routing, key-id check, body parsing, signing or decode + validation, the
//! answer. Driven through the router without a socket.
//!
//! Run: `cargo bench -p jwt-factory --bench verify_path`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::{body::Body, http::Request};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let config = test_support::factory_config(dir.path(), &["--algorithm", alg]);
        let router = jwt_factory::app(jwt_factory::AppState::load(config));
        let call = |method: &str, uri: &str, body: String| {
            let router = router.clone();
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .unwrap();
            async move {
                let res = router.oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200);
                axum::body::to_bytes(res.into_body(), 1 << 16)
                    .await
                    .unwrap()
            }
        };
        rt.block_on(call("POST", "/keys/servicea", String::new()));
        let token = rt.block_on(call(
            "POST",
            "/issueToken/servicea",
            r#"{"aud":"serviceb"}"#.into(),
        ));
        let token = String::from_utf8(token.to_vec()).unwrap();
        let verify_body = format!(r#"{{"token":"{token}","aud":"serviceb","sub":"servicea"}}"#);

        let mut group = c.benchmark_group(format!("jwt-factory {alg}"));
        group.bench_function("POST /issueToken", |b| {
            b.to_async(&rt).iter(|| {
                call(
                    "POST",
                    "/issueToken/servicea",
                    r#"{"aud":"serviceb"}"#.into(),
                )
            })
        });
        group.bench_function("POST /verify", |b| {
            b.to_async(&rt)
                .iter(|| call("POST", "/verify/servicea", verify_body.clone()))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
