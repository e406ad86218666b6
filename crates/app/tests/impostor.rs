#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 21, item 6: servicea pins each peer's workload identity.
//!
//! Every workload certificate from `gen-certs` is valid for `localhost`,
//! so a check of the chain and the name alone lets any workload stand in
//! for any other. Here an impostor (servicec's real certificate and key,
//! from the stack's own CA) takes the port servicea is configured to use
//! for serviceb's https listener, then the factory's mTLS port (:5556), and
//! the tests show, against the real servers:
//!
//! - servicea answers 502 with a JSON message naming the SPIFFE ID it
//!   expected and the one the server presented, and logs the same;
//! - the impostor receives no HTTP request at all (no scenario-3/4 token,
//!   no scenario-8 bound token, no scenario-7 call, no client assertion):
//!   the handshake fails before servicea sends anything;
//! - once the genuine server is back on its port, the same scenarios
//!   answer 200 again.

use test_support as common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::Role;
use axum::{Router, body::Bytes, http::HeaderMap};
use common::{Options, Stack, files::Files};
use s2s_web::tls::{MtlsMode, ServerTls};
use serde_json::Value;
use tokio::task::JoinHandle;

const SPIFFE_B: &str = "spiffe://cluster.local/ns/default/sa/serviceb";
const SPIFFE_C: &str = "spiffe://cluster.local/ns/default/sa/servicec";
const SPIFFE_FACTORY: &str = "spiffe://cluster.local/ns/default/sa/jwt-factory";

/// Whether the log has a line containing `text`.
fn logged(text: &str) -> bool {
    common::captured_log::text()
        .lines()
        .any(|l| l.contains(text))
}

/// An https server on a port another service should hold, with another
/// workload's genuine certificate. It answers every request with 200
/// `{"valid": true}` and writes down what it received.
struct Impostor {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Impostor {
    /// Serves https on 127.0.0.1:`port` with `workload`'s certificate and
    /// key (asking for client certificates, as the real listeners do).
    async fn start_on(port: u16, files: &Files, workload: &str) -> Self {
        let (cert, key) = files.workload(workload);
        let tls = ServerTls {
            cert,
            key,
            client_ca: files.ca(),
            mode: MtlsMode::Permissive,
        };
        let config = s2s_web::tls::server_config(&tls).await.unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let app = Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let body = String::from_utf8_lossy(&body);
                log.lock().unwrap().push(format!(
                    "{method} {uri} authorization: {auth} body: {}",
                    body.chars().take(120).collect::<String>()
                ));
                axum::Json(serde_json::json!({ "valid": true }))
            },
        );
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .unwrap()
            .handle(handle.clone());
        let task = tokio::spawn(server.serve(app.into_make_service()));
        handle.listening().await.expect("the impostor listens");
        Self {
            addr,
            seen,
            handle,
            task,
        }
    }

    /// What it received, one line per request.
    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops it and frees its port.
    async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the impostor stops")
            .unwrap()
            .unwrap();
    }
}

/// A listener on 127.0.0.1:`port` again.
async fn rebind(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap()
}

/// The message servicea gives for its serviceb leg.
fn b_message(path: &str, body: &Value) -> String {
    let message = if path == "/scenario4" {
        &body["serviceb"]["message"]
    } else {
        &body["message"]
    };
    message.as_str().unwrap_or_default().to_owned()
}

/// Asserts a 502 whose message names `expected` and `presented`.
/// Asserts a 502 whose message names `expected` and `presented`, and a
/// log line that does too.
fn refused_naming(path: &str, status: u16, message: &str, expected: &str, presented: &str) {
    assert_eq!(status, 502, "{path}: {message}");
    let both = format!("expected {expected}, the server presented {presented}");
    assert!(message.contains(&both), "{path} says {both:?}: {message}");
    assert!(logged(&both), "{path}: servicea logs {both:?}");
}

#[tokio::test]
async fn an_impostor_on_servicebs_https_port_receives_nothing_and_servicea_names_both_ids() {
    common::captured_log::install();
    let mut s = Stack::start(Options::default()).await;
    const PATHS: [&str; 4] = ["/scenario3", "/scenario4", "/scenario7", "/scenario8"];
    for path in PATHS {
        let (status, body) = s.get_a(path).await;
        assert_eq!(status, 200, "genuine serviceb, {path}: {body}");
    }

    // serviceb goes away; servicec's workload takes its https port.
    let (b_http, b_https) = (s.b.addr, s.b.https.unwrap());
    s.b.stop().await;
    let impostor = Impostor::start_on(b_https.port(), &s.files, "servicec").await;
    assert_eq!(impostor.addr, b_https);

    let mut answers = Vec::new();
    for path in PATHS {
        answers.push((path, s.get_a(path).await));
    }
    let received = impostor.requests();
    eprintln!(
        "the impostor received {} requests: {received:#?}",
        received.len()
    );
    for (path, (status, body)) in &answers {
        eprintln!("servicea {path}: {status} {body}");
    }
    for (path, (status, body)) in &answers {
        refused_naming(path, *status, &b_message(path, body), SPIFFE_B, SPIFFE_C);
    }
    // Scenario 4's other leg, to the genuine servicec, still works.
    let (_, (_, four)) = &answers[1];
    assert_eq!(four["servicec"]["valid"], true, "{four}");
    assert!(
        received.is_empty(),
        "no token or request may reach the impostor: {received:#?}"
    );
    impostor.stop().await;

    // The genuine serviceb, back on its ports: everything works again.
    s.b = common::start_service(
        Role::B,
        &s.files.receiver_flags(s.alg, &s.factory.url()),
        rebind(b_http.port()).await,
        Some((rebind(b_https.port()).await, &s.files.certs)),
    )
    .await;
    for path in PATHS {
        let (status, body) = s.get_a(path).await;
        assert_eq!(status, 200, "genuine serviceb again, {path}: {body}");
    }
}

/// The factory's mTLS port (scenario 8's `POST /token`): an impostor there
/// would get servicea's client assertion, which it could replay at the
/// plain-http `/token` within the assertion's lifetime.
#[tokio::test]
async fn an_impostor_on_the_factorys_mtls_port_receives_no_client_assertion() {
    common::captured_log::install();
    let mut s = Stack::start(Options::default()).await;
    let (f_http, f_https) = (s.factory.addr, s.factory.https.unwrap());
    s.factory.stop().await;
    let impostor = Impostor::start_on(f_https.port(), &s.files, "servicec").await;

    let (status, body) = s.get_a("/scenario8").await;
    let (expired_status, expired) = s.get_a("/scenario8?expired=1").await;
    let received = impostor.requests();
    eprintln!(
        "the impostor received {} requests: {received:#?}",
        received.len()
    );
    eprintln!("servicea /scenario8: {status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    refused_naming("/scenario8", status, message, SPIFFE_FACTORY, SPIFFE_C);
    let message = expired["message"].as_str().unwrap_or_default();
    refused_naming(
        "/scenario8?expired=1",
        expired_status,
        message,
        SPIFFE_FACTORY,
        SPIFFE_C,
    );
    assert!(
        received.is_empty(),
        "no client assertion may reach the impostor: {received:#?}"
    );
    impostor.stop().await;

    // The genuine factory, back on its ports with its keys: a bound token.
    let clients = s.path("clients.json");
    let flags = [
        "--algorithm",
        s.alg,
        "--clients-file",
        clients.to_str().unwrap(),
    ];
    s.factory = common::start_factory_tls_on(
        rebind(f_http.port()).await,
        rebind(f_https.port()).await,
        &s.files.keys,
        &flags,
        &s.files.certs,
    )
    .await;
    let (status, body) = s.get(&s.factory, "/keys/servicea").await;
    assert_eq!(status, 200, "servicea's key at the factory: {body}");
    let (status, body) = s.get_a("/scenario8").await;
    assert_eq!(status, 200, "genuine factory again: {body}");
}
