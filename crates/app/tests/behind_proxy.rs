//! Issue 21, item 13: behind a proxy that keeps the client's `Host`, every
//! request got 421, because the `Host` check compared the port. The real
//! Envoy (the one the mesh tests run) listens on a port of its own in
//! front of serviceb and forwards `Host: localhost:<envoy's port>` as it
//! got it: serviceb answers. A foreign name through the same Envoy is
//! still refused (DNS rebinding is stopped by the name), and the
//! cross-site rule compares `Origin` with that same `Host`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{process::Stdio, time::Duration};

use app::Role;
use serde_json::json;
use test_support::{self as common, mesh::envoy_binary};

/// A minimal static Envoy: a listener on `listen` routing everything to
/// `upstream`, without touching `Host`; its admin on `admin`.
fn envoy_config(listen: u16, admin: u16, upstream: u16) -> serde_json::Value {
    let address =
        |port: u16| json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } });
    json!({
        "admin": { "address": address(admin) },
        "static_resources": {
            "listeners": [{
                "name": "edge",
                "address": address(listen),
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "edge",
                        "route_config": { "virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "serviceb" } }]
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
                        }]
                    }
                }]}]
            }],
            "clusters": [{
                "name": "serviceb",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "serviceb",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(upstream) } }] }]
                }
            }]
        }
    })
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serviceb_answers_behind_envoy_on_another_port() {
    let b = common::start_service_with(Role::B, &[]).await;
    let [listen, admin] = common::free_ports();
    assert_ne!(listen, b.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("envoy.json");
    let log = dir.path().join("envoy.log");
    let config_json = envoy_config(listen, admin, b.addr.port()).to_string();
    std::fs::write(&config, config_json).unwrap();
    let out = std::fs::File::create(&log).unwrap();
    let mut envoy = tokio::process::Command::new(envoy_binary())
        .arg("-c")
        .arg(&config)
        .args(["--disable-hot-restart", "--concurrency", "1"])
        .args(["--log-level", "warn", "--drain-time-s", "1"])
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .expect("starting envoy");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    common::wait_child_answers(
        &mut envoy,
        &http,
        &format!("http://127.0.0.1:{admin}/ready"),
        Duration::from_secs(20),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    )
    .await;
    let edge: std::net::SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();

    // The client's Host, Envoy's port: served (it was 421).
    for host in [format!("localhost:{listen}"), format!("127.0.0.1:{listen}")] {
        let answer = common::raw_http(edge, &get("/hello", &host, "")).await;
        assert_eq!(answer.status(), 200, "{host}: {answer:?}");
        assert_eq!(answer.body, "hello");
    }
    // Through Envoy indeed, reaching a route that checks a token.
    let r = http
        .get(format!("http://localhost:{listen}/scenario5-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["server"], "envoy");
    assert_eq!(r.status(), 401, "{:?}", r.text().await);

    // A foreign name through the same Envoy: still 421, JSON.
    for host in ["evil.example".to_owned(), format!("evil.example:{listen}")] {
        let answer = common::raw_http(edge, &get("/hello", &host, "")).await;
        assert_eq!(answer.status(), 421, "{host}: {answer:?}");
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("is not served here"), "{body}");
    }

    // The page Envoy serves is serviceb's own origin, whatever serviceb's
    // port: its POST is not refused as cross-site (405: no POST route);
    // another origin's is (403).
    let post = |origin: &str| {
        format!(
            "POST /hello HTTP/1.1\r\nHost: localhost:{listen}\r\nOrigin: {origin}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let own = common::raw_http(edge, &post(&format!("http://localhost:{listen}"))).await;
    assert_eq!(own.status(), 405, "{own:?}");
    let foreign = common::raw_http(edge, &post("https://evil.example")).await;
    assert_eq!(foreign.status(), 403, "{foreign:?}");
    assert!(foreign.body.contains("another origin"), "{foreign:?}");
}
