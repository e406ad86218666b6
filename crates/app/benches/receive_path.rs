//! What a hop costs us outside the network (issue 23, item 5), so that a
//! later change that adds a layer shows its price in the same run:
//!
//! - **receive path**: serviceb's `/scenario3-server` with an ES256 token
//!   (the cheapest check), driven through the router without a socket:
//!   first the router as the role builds it (routing, request ids and span,
//!   the console's trace layer, body limit, the check, the JSON answer),
//!   then with every layer a listener adds in front ([`s2s_web::serve::guarded`]:
//!   the `Host` check, the cross-site check, the body deadline). The
//!   difference is what those protections cost.
//! - **one outbound call**: the shared client ([`s2s_web::outbound::send_json`],
//!   pooled, kept alive) asking a minimal axum server on loopback for
//!   `/hello`: both hop ends of one exchange, with the kernel's loopback
//!   between them, one call at a time (so the figure is a latency).
//!
//! Run: `cargo bench -p app --bench receive_path`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{body::Body, http::Request};
use criterion::{Criterion, criterion_group, criterion_main};
use s2s_auth::SigningAlgorithm;
use s2s_web::{
    guard::AllowedHosts,
    outbound::{self, Deadline, Repeat, Target, Timeouts},
    request_tracing::RequestId,
    serve::{ServeOptions, guarded},
};
use tower::ServiceExt as _;

mod common;

fn options() -> ServeOptions {
    ServeOptions {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(10),
        max_connections: 1024,
        max_body_bytes: 16 * 1024,
        hosts: AllowedHosts::new(std::net::Ipv4Addr::LOCALHOST.into(), &[]),
        error_key: "message",
        trust_domain: "cluster.local".to_owned(),
    }
}

fn receive_path(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let alg = SigningAlgorithm::ES256;
    let (router, key) = common::serviceb_https(alg, dir.path());
    let mut group = c.benchmark_group("receive path (serviceb /scenario3-server, ES256)");
    for (name, router) in [
        ("the role's router", router.clone()),
        (
            "every layer of a listener",
            guarded(router.clone(), &options(), false),
        ),
    ] {
        // The services refuse a token that lives longer than 30 s: a fresh
        // one for each function (criterion's default takes 8 s).
        let bearer = common::bearer(&key, alg);
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let req = Request::get("/scenario3-server")
                    .header("host", "localhost:3001")
                    .header("authorization", &bearer)
                    .body(Body::empty())
                    .unwrap();
                let router = router.clone();
                async move {
                    let res = router.oneshot(req).await.unwrap();
                    if res.status() != 200 {
                        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
                        panic!("{}", String::from_utf8_lossy(&body));
                    }
                }
            })
        });
    }
    group.finish();
    // The same two routers answering `/hello`: no token, no check, so the
    // figure is the plumbing alone.
    let mut group = c.benchmark_group("receive path (serviceb /hello, plumbing only)");
    for (name, router) in [
        ("the role's router", router.clone()),
        (
            "every layer of a listener",
            guarded(router, &options(), false),
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let req = Request::get("/hello")
                    .header("host", "localhost:3001")
                    .body(Body::empty())
                    .unwrap();
                let router = router.clone();
                async move {
                    let res = router.oneshot(req).await.unwrap();
                    assert_eq!(res.status(), 200);
                }
            })
        });
    }
    group.finish();
}

fn outbound_call(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hello", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_secs(5),
        pool_idle: Duration::from_secs(30),
    };
    let client = outbound::client(timeouts, None).unwrap();
    let target = Target {
        who: "hello",
        url: url.clone(),
    };
    let id = RequestId(Some("bench".to_owned()));
    let mut group = c.benchmark_group("one outbound call (loopback, kept alive)");
    group.bench_function("GET /hello, JSON answer", |b| {
        b.to_async(rt).iter(|| async {
            let answer = outbound::send_json(
                client.get(&url),
                &target,
                &id,
                Deadline::start(timeouts),
                Repeat::IfSafe,
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 200);
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    receive_path(c, &rt);
    outbound_call(c, &rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
