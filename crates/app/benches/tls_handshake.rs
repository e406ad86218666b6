//! What mutual TLS costs against one-way TLS (scenarios 7-8 against 3-4):
//! `GET /hello` on a real serviceb https listener (permissive mode, its
//! workload certificate), from a client with or without servicea's
//! workload certificate, over a kept-alive connection or a new connection
//! (a full handshake) per request. Client and server share this process,
//! so each figure is the whole round trip's CPU on one connection.
//!
//! Run: `cargo bench -p app --bench tls_handshake` (`scripts/bench.sh`
//! runs it and prints the ratios).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use app::Role;
use criterion::{Criterion, criterion_group, criterion_main};
use test_support::{Files, bind, start_service};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::generate(dir.path(), None);
    test_support::init();
    let serviceb = rt.block_on(async {
        let args = files.receiver_flags("RS256", "http://127.0.0.1:9");
        start_service(
            Role::B,
            &args,
            bind().await,
            Some((bind().await, &files.certs)),
        )
        .await
    });
    let url = format!("{}/hello", serviceb.https_url());
    let mut group = c.benchmark_group("serviceb https GET /hello");
    for (name, mtls, keep_alive) in [
        ("one-way TLS, kept-alive", false, true),
        ("mTLS, kept-alive", true, true),
        ("one-way TLS, new connection", false, false),
        ("mTLS, new connection", true, false),
    ] {
        let mut builder = files.client();
        if mtls {
            builder = builder.identity(files.identity("servicea"));
        }
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder.build().unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let r = client.get(&url).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap()
            });
        });
    }
    group.finish();
    drop(serviceb);
}

criterion_group!(benches, bench);
criterion_main!(benches);
