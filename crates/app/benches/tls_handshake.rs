//! What mutual TLS costs against one-way TLS (scenarios 7-8 against 3-4):
//! `GET /hello` on a real serviceb https listener (permissive mode, its
//! workload certificate), from a client with or without servicea's
//! workload certificate, over a kept-alive connection or a new connection
//! per request. New connections make a full handshake every time (TLS
//! session resumption is off in the client), which is what a handshake
//! costs at worst. Client and server share one thread (a current-thread
//! runtime), so each figure is the whole round trip's CPU, both ends,
//! without scheduling noise between two cores.
//!
//! Run: `cargo bench -p app --bench tls_handshake` (`scripts/bench.sh`
//! runs it and prints the figures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use app::Role;
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::{
    ClientConfig, RootCertStore,
    client::Resumption,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
};
use test_support::{Files, bind, start_service};

/// A client trusting the stack's CA alone; with `identity`, presenting
/// that workload's certificate; `keep_alive` or a new connection (and a
/// full handshake) per request.
fn client(files: &Files, identity: Option<&str>, keep_alive: bool) -> reqwest::Client {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(files.ca()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some(name) => {
            let (cert, key) = files.workload(name);
            builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(cert).unwrap()],
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve("localhost", ([127, 0, 0, 1], 0).into());
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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
    for (name, identity, keep_alive) in [
        ("one-way TLS, kept-alive", None, true),
        ("mTLS, kept-alive", Some("servicea"), true),
        ("one-way TLS, new connection", None, false),
        ("mTLS, new connection", Some("servicea"), false),
    ] {
        let client = client(&files, identity, keep_alive);
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
