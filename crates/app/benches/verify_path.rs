//! serviceb's whole local verify path (scenarios 3-4), per algorithm:
//! routing, the `Authorization` extractor, the cached public key, decode,
//! validation, the JSON answer. Driven through the router without a socket,
//! so the figure is the service's own cost, not the network's. Each also
//! with the console's trace asked for, to show what a traced request costs
//! (a plain one pays one header lookup).
//!
//! Run: `cargo bench -p app --bench verify_path`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::{body::Body, http::Request};
use criterion::{Criterion, criterion_group, criterion_main};
use s2s_auth::SigningAlgorithm;
use tower::ServiceExt as _;

mod common;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("serviceb /scenario3-server");
    for alg in [
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ] {
        let (router, key) = common::serviceb_https(alg, dir.path());
        // Valid for 30 s: enough for the measurement (criterion's default is 5 s).
        let bearer = common::bearer(&key, alg);
        // Plain, as every scenario call; then asked for the console's
        // trace (`x-s2s-trace: 1`): the check recorded and returned in the
        // answer header.
        for (name, traced) in [
            (alg.name().to_owned(), false),
            (format!("{alg}, traced"), true),
        ] {
            group.bench_function(name, |b| {
                b.to_async(&rt).iter(|| {
                    let mut req =
                        Request::get("/scenario3-server").header("authorization", &bearer);
                    if traced {
                        req = req.header(s2s_web::trace::TRACE, "1");
                    }
                    let req = req.body(Body::empty()).unwrap();
                    let router = router.clone();
                    async move {
                        let res = router.oneshot(req).await.unwrap();
                        assert_eq!(res.status(), 200);
                        assert_eq!(res.headers().contains_key(s2s_web::trace::TRACE), traced);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
