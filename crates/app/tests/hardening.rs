//! What the security review of issue 10 found, each against real servers
//! on port 0: connections that never closed, log amplification, a key
//! endpoint that starved servicea, any `Host` and any content type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use app::Role;
use test_support::{self as common, Options, Running, Stack};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

// ------------------------------------------------- item 1: connections

const HEADER_MS: u64 = 400;
const IDLE_MS: u64 = 700;
const BODY_MS: u64 = 500;
/// What a close may take beyond its timeout: the reaper's tick and a
/// busy test machine.
const SLACK: Duration = Duration::from_millis(1500);

/// Each listener test runs with the workshop's settings, then with
/// `PRODUCTION` (every shortcut off): the protections hold in both.
const SETTINGS: [bool; 2] = [false, true];

fn limits(cap: u64, production: bool) -> Vec<String> {
    [
        "--header-timeout-ms",
        &HEADER_MS.to_string(),
        "--idle-timeout-ms",
        &IDLE_MS.to_string(),
        "--body-timeout-ms",
        &BODY_MS.to_string(),
        "--max-connections",
        &cap.to_string(),
        "--production",
        &production.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn serviceb(cap: u64, production: bool) -> Running {
    common::init();
    common::start_service(
        Role::B,
        &limits(cap, production),
        common::bind().await,
        None,
    )
    .await
}

/// `GET /hello` on a new connection: its status, within 2 s.
async fn hello(addr: SocketAddr) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    match client
        .get(format!("http://127.0.0.1:{}/hello", addr.port()))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(err) => panic!("/hello failed: {err}"),
    }
}

/// Asks `/hello` every 100 ms until dropped, counting failures: the
/// service must answer throughout.
struct HelloLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HelloLoop {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, o) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                assert_eq!(hello(addr).await, 200, "/hello must answer throughout");
                o.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { stop, ok, task }
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.ok.load(Ordering::SeqCst)
    }
}

/// Reads until the server closes `stream` (EOF or reset); how long that
/// took from `since`, and what was read. Panics past `max`.
async fn closed_by_server(
    stream: &mut TcpStream,
    since: Instant,
    max: Duration,
) -> (Duration, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = max.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {:?} (read so far: {:?})",
                since.elapsed(),
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (since.elapsed(), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_socket_that_sends_nothing_is_closed_after_the_header_timeout() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let hellos = HelloLoop::start(b.addr);
        let start = Instant::now();
        let mut s = connect(b.addr).await;
        let (took, _) = closed_by_server(&mut s, start, ms(HEADER_MS) + SLACK).await;
        assert!(took >= ms(HEADER_MS) - ms(50), "closed too early: {took:?}");
        assert!(hellos.finish().await >= 1);
    }
}

#[tokio::test]
async fn an_http2_preface_alone_is_closed_after_the_header_timeout() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let hellos = HelloLoop::start(b.addr);
        let start = Instant::now();
        let mut s = connect(b.addr).await;
        s.write_all(H2_PREFACE).await.unwrap();
        s.write_all(&SETTINGS_EMPTY).await.unwrap();
        let (took, _) = closed_by_server(&mut s, start, ms(HEADER_MS) + SLACK).await;
        assert!(took >= ms(HEADER_MS) - ms(50), "closed too early: {took:?}");
        assert!(hellos.finish().await >= 1);
    }
}

#[tokio::test]
async fn a_half_open_socket_is_closed_after_the_header_timeout() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let start = Instant::now();
        let mut s = connect(b.addr).await;
        // The client's half is closed (FIN sent); the server's stays open
        // unless the server closes it.
        s.shutdown().await.unwrap();
        closed_by_server(&mut s, start, ms(HEADER_MS) + SLACK).await;
        // Half-open after a first request: the idle timeout (or hyper, on EOF).
        let start = Instant::now();
        let mut s = connect(b.addr).await;
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let (_, seen) = closed_by_server(&mut s, start, ms(IDLE_MS) + SLACK).await;
        assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
        assert_eq!(hello(b.addr).await, 200);
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let mut s = connect(b.addr).await;
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let (took, seen) = closed_by_server(&mut s, start, ms(IDLE_MS) + SLACK).await;
        let seen = String::from_utf8_lossy(&seen);
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        assert!(took >= ms(IDLE_MS) - ms(100), "closed too early: {took:?}");
        assert_eq!(hello(b.addr).await, 200);
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let mut s = connect(b.addr).await;
        s.write_all(H2_PREFACE).await.unwrap();
        s.write_all(&SETTINGS_EMPTY).await.unwrap();
        s.write_all(&h2_get_hello(b.addr.port())).await.unwrap();
        let start = Instant::now();
        let (took, seen) = closed_by_server(&mut s, start, ms(IDLE_MS) + SLACK).await;
        // A HEADERS frame (type 1) on stream 1 came back: the request was
        // served, then the connection idled out.
        assert!(
            h2_frames(&seen).contains(&(1, 1)),
            "no response headers: {seen:?}"
        );
        assert!(took >= ms(IDLE_MS) - ms(100), "closed too early: {took:?}");
        assert_eq!(hello(b.addr).await, 200);
    }
}

#[tokio::test]
async fn a_next_request_head_trickled_on_a_kept_alive_connection_is_cut_off() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        // A long idle timeout: the close comes from the header deadline.
        common::init();
        let mut args = limits(64, production);
        let i = args.iter().position(|a| a == "--idle-timeout-ms").unwrap();
        args[i + 1] = "30000".into();
        let b = common::start_service(Role::B, &args, common::bind().await, None).await;
        let mut s = connect(b.addr).await;
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let (mut read, mut write) = s.into_split();
        let start = Instant::now();
        let trickle = tokio::spawn(async move {
            for b in b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: " {
                if write.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let limit = ms(HEADER_MS) + SLACK;
        loop {
            match tokio::time::timeout(limit.saturating_sub(start.elapsed()), read.read(&mut buf))
                .await
            {
                Err(_) => panic!("still open after {:?}", start.elapsed()),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
        trickle.abort();
        assert!(start.elapsed() >= ms(HEADER_MS) - ms(50));
        assert_eq!(hello(b.addr).await, 200);
    }
}

#[tokio::test]
async fn a_body_sent_one_byte_at_a_time_is_cut_off_with_a_json_408() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        let b = serviceb(64, production).await;
        let hellos = HelloLoop::start(b.addr);
        let mut s = connect(b.addr).await;
        s.write_all(
            b"POST /hello HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
        let start = Instant::now();
        let (mut read, mut write) = s.into_split();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if write.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let limit = ms(BODY_MS) + SLACK;
        loop {
            match tokio::time::timeout(limit.saturating_sub(start.elapsed()), read.read(&mut buf))
                .await
            {
                Err(_) => panic!("still open after {:?}", start.elapsed()),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            }
        }
        trickle.abort();
        let seen = String::from_utf8_lossy(&seen);
        assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
        assert!(seen.contains("application/json"), "{seen}");
        assert!(seen.contains("BODY_TIMEOUT_MS"), "{seen}");
        assert!(start.elapsed() >= ms(BODY_MS) - ms(50));
        assert!(hellos.finish().await >= 1);
    }
}

#[tokio::test]
async fn past_the_connection_cap_hello_still_answers_at_once() {
    // The workshop settings, then PRODUCTION (issue 21, item 12).
    for production in SETTINGS {
        // Long timeouts here: /hello must answer because of the cap's policy
        // (the oldest idle connection makes room), not because idle sockets
        // timed out.
        common::init();
        let cap = 20;
        let mut args = limits(cap, production);
        for (flag, value) in [
            ("--header-timeout-ms", "30000"),
            ("--idle-timeout-ms", "30000"),
        ] {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1] = value.into();
        }
        let b = common::start_service(Role::B, &args, common::bind().await, None).await;
        let mut idle = Vec::new();
        for _ in 0..(cap + 30) {
            idle.push(connect(b.addr).await);
        }
        for _ in 0..5 {
            let start = Instant::now();
            assert_eq!(hello(b.addr).await, 200);
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "/hello took {:?} past the cap",
                start.elapsed()
            );
        }
        // The server holds at most `cap`: the oldest idle sockets were closed.
        let mut closed = 0;
        for s in &mut idle {
            let mut buf = [0u8; 16];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await
            {
                closed += 1;
            }
        }
        assert!(
            closed >= idle.len() - usize::try_from(cap).unwrap(),
            "only {closed} of {} idle sockets closed",
            idle.len()
        );
    }
}

#[tokio::test]
async fn the_https_listener_closes_a_silent_socket_and_the_factory_an_idle_one() {
    let s = Stack::start(Options {
        bc_args: limits(64, false),
        factory_args: vec!["--header-timeout-ms", "400", "--idle-timeout-ms", "700"],
        ..Options::default()
    })
    .await;
    let start = Instant::now();
    let mut tls = connect(s.b.https.unwrap()).await;
    closed_by_server(&mut tls, start, ms(HEADER_MS) + SLACK).await;

    let mut f = connect(s.factory.addr).await;
    f.write_all(b"GET /utils/keys HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let (took, seen) = closed_by_server(&mut f, start, ms(IDLE_MS) + SLACK).await;
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    assert!(took >= ms(IDLE_MS) - ms(100), "closed too early: {took:?}");
    let mut silent = connect(s.factory.addr).await;
    closed_by_server(&mut silent, Instant::now(), ms(HEADER_MS) + SLACK).await;
    let (status, _) = s.get_a("/scenario1").await;
    assert_eq!(status, 200);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A HEADERS frame (END_STREAM | END_HEADERS) for `GET /hello` on stream 1,
/// HPACK without Huffman: indexed `:method GET` (2) and `:scheme http` (6),
/// literal `:path` (name 4) and `:authority` (name 1).
fn h2_get_hello(port: u16) -> Vec<u8> {
    let authority = format!("localhost:{port}");
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend_from_slice(b"/hello");
    block.extend([0x01, u8::try_from(authority.len()).unwrap()]);
    block.extend_from_slice(authority.as_bytes());
    let len = block.len();
    let mut frame = vec![0, 0, u8::try_from(len).unwrap(), 1, 0x05, 0, 0, 0, 1];
    frame.extend(block);
    frame
}

/// The (type, stream) of each whole HTTP/2 frame in `bytes`.
fn h2_frames(bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5] & 0x7f, rest[6], rest[7], rest[8]]);
        frames.push((rest[3], stream));
        rest = rest.get(9 + len..).unwrap_or_default();
    }
    frames
}

// ------------------------------------------------- item 3: gen-keys

#[tokio::test]
async fn fifty_parallel_gen_keys_run_one_at_a_time_and_scenario1_keeps_answering() {
    let s = Stack::start(Options::default()).await;
    let url = format!("{}/gen-keys", s.a.url());
    let scenarios = {
        let (client, a) = (s.client.clone(), s.a.url());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                let r = client.get(format!("{a}/scenario1")).send().await.unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        })
    };
    let calls = (0..50).map(|_| {
        let (client, url) = (s.client.clone(), url.clone());
        tokio::spawn(async move {
            let r = client.post(&url).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body)
        })
    });
    let answers = futures::future::join_all(calls).await;
    let mut ok = 0;
    for answer in answers {
        let (status, body) = answer.unwrap();
        match status {
            200 => ok += 1,
            // Refused at once: another generation runs, or (issue 11) a
            // rotation is under way or its previous key still verifies.
            409 => assert!(
                [
                    "already being generated",
                    "rotation is already under way",
                    "still verifies"
                ]
                .iter()
                .any(|why| body["message"].as_str().unwrap().contains(why)),
                "{body}"
            ),
            other => panic!("gen-keys answered {other}: {body}"),
        }
    }
    // The stack starts with a key, so the one call that gets through
    // rotates; every other is refused, while it runs or after it (the next
    // key is pending, then the previous one still verifies).
    assert_eq!(ok, 1, "exactly one rotation runs");
    assert_eq!(scenarios.await.unwrap(), vec![200; 10]);
    // The lock is released: the next call is not refused for a running
    // generation (a rotation's overlap may still refuse it, see issue 11).
    let r = s.client.post(&url).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status == 200 || (status == 409 && !text.contains("already being generated")),
        "{status}: {text}"
    );
    let (status, _) = s.get_a("/scenario3").await;
    assert_eq!(status, 200);
}

// ------------------------------------------------- item 5: Host

/// One raw HTTP/1.1 request; the status line and the body.
async fn raw(addr: SocketAddr, request: &str) -> (String, String) {
    let answer = common::raw_http(addr, request).await;
    (answer.status_line, answer.body)
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// The `Host` rule on one listener: foreign names 421 JSON, our names
/// (with any port: a proxy in front keeps the client's Host) 200.
async fn assert_host_rule(who: &str, addr: SocketAddr, path: &str) {
    let port = addr.port();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        "localhost.evil.example".to_owned(),
        format!("localhost:{port}0000"),
    ] {
        let (status, body) = raw(addr, &get(path, &host)).await;
        assert!(status.starts_with("HTTP/1.1 421"), "{who} {host}: {status}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        // The factory's error key is `error`, the services' `message`.
        let says = body["message"].as_str().or(body["error"].as_str());
        assert!(
            says.unwrap().contains("is not served here"),
            "{who}: {body}"
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
        // Names only: a proxy in front (its own port) keeps the Host.
        format!("localhost:{}", port + 1),
        "localhost:18080".to_owned(),
    ] {
        let (status, body) = raw(addr, &get(path, &host)).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{who} {host}: {status}");
        assert!(path != "/hello" || body == "hello", "{who} {host}: {body}");
    }
}

#[tokio::test]
async fn a_request_for_another_host_is_421_in_production_too() {
    let s = Stack::start(Options {
        production: true,
        ..Options::default()
    })
    .await;
    for (who, addr) in [
        ("servicea", s.a.addr),
        ("serviceb", s.b.addr),
        ("servicec", s.c.addr),
    ] {
        assert_host_rule(who, addr, "/hello").await;
    }
    assert_host_rule("jwt-factory", s.factory.addr, "/utils/keys").await;
    let (status, body) = s.get_a("/scenario6").await;
    assert_eq!(status, 200, "scenario6: {body}");
}

#[tokio::test]
async fn a_request_for_another_host_is_421_json_on_every_service() {
    let s = Stack::start(Options::default()).await;
    for (who, addr) in [
        ("servicea", s.a.addr),
        ("serviceb", s.b.addr),
        ("servicec", s.c.addr),
    ] {
        assert_host_rule(who, addr, "/hello").await;
    }
    // Over https (HTTP/2: the name is in `:authority`), same rule.
    let r = s
        .client
        .get(format!("{}/hello", s.b.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // The scenarios, which call each other by 127.0.0.1 and localhost, work.
    for n in 1..=4 {
        let (status, body) = s.get_a(&format!("/scenario{n}")).await;
        assert_eq!(status, 200, "scenario{n}: {body}");
    }
}

#[tokio::test]
async fn allowed_hosts_adds_names() {
    let b =
        common::start_service_with(Role::B, &["--allowed-hosts", "serviceb.test,Other.Test"]).await;
    let port = b.addr.port();
    for (host, expect) in [
        (format!("serviceb.test:{port}"), "200"),
        (format!("other.test:{port}"), "200"),
        (format!("localhost:{port}"), "200"),
        (format!("third.test:{port}"), "421"),
    ] {
        let (status, _) = raw(b.addr, &get("/hello", &host)).await;
        assert!(status.contains(expect), "{host}: {status}");
    }
}

// ------------------------------------------------- item 6: key file modes

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_signing_key_others_can_read_is_a_503_naming_the_chmod_until_fixed() {
    let s = Stack::start(Options::default()).await;
    let key = s.path("scenario-3-keys/jwt-private.pem");
    for mode in [0o644, 0o666, 0o640] {
        chmod(&key, mode);
        let (status, body) = s.get_a("/scenario3").await;
        assert_eq!(status, 503, "{mode:o}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
        assert!(
            msg.contains(&format!("chmod 600 {}", key.display())),
            "{msg}"
        );
    }
    chmod(&key, 0o600);
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 200, "fixed without a restart: {body}");
}

#[tokio::test]
async fn a_tls_key_others_can_read_stops_the_receiver_at_start_naming_the_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    s2s_web::pki::generate(
        &s2s_web::pki::CertFiles::in_dir(&certs),
        false,
        &Default::default(),
    )
    .unwrap();
    let key = certs.join("localhost-key.pem");
    chmod(&key, 0o644);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_app"));
    for v in common::all_service_vars() {
        cmd.env_remove(v);
    }
    let out = cmd
        .current_dir(dir.path())
        .args([
            "serviceb",
            "--port",
            "0",
            "--https-port",
            "0",
            "--start-https",
        ])
        .arg("--server-private-key-path")
        .arg(&key)
        .arg("--server-public-key-path")
        .arg(certs.join("localhost.pem"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("serviceb did not stop")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
    assert!(stderr.contains("mode 0644"), "{stderr}");
}

// ------------------------------------------------- item 7: strictness

mod forged {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use s2s_auth::{KeyPair, SigningAlgorithm};
    use serde_json::{Value, json};

    use super::*;

    pub fn now() -> i64 {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    }

    /// A token with exactly this header and these claims, signed by `key`.
    pub fn token(header: &Value, claims: &Value, key: &KeyPair, alg: SigningAlgorithm) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(alg, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The token with its ECDSA signature's `s` replaced by `n - s`: the
    /// high-s twin, which verifies just as well mathematically.
    pub fn high_s_twin(token: &str, alg: SigningAlgorithm) -> String {
        let order = match alg {
            SigningAlgorithm::ES256 => {
                hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
            }
            _ => panic!("not ECDSA"),
        };
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let (r, s) = sig.split_at(sig.len() / 2);
        let mut twin = order.clone();
        let mut borrow = 0i16;
        for (t, d) in twin.iter_mut().zip(s).rev() {
            let v = i16::from(*t) - i16::from(*d) - borrow;
            borrow = i16::from(v < 0);
            *t = v.rem_euclid(256).to_le_bytes()[0];
        }
        let mut high = r.to_vec();
        high.extend(twin);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(high))
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Both kinds of verifier of serviceb: local (`/scenario3-server`, https,
    /// servicea's own key) and the factory (`/scenario1-server`, the
    /// factory's key for servicea, with its `kid`). Each a URL, a key, the
    /// claims it expects and the header's `kid`.
    pub struct Paths {
        pub local: (String, KeyPair, Value),
        pub factory: (String, KeyPair, Value, String),
    }

    pub async fn paths(s: &Stack, alg: SigningAlgorithm) -> Paths {
        let local_key = KeyPair::from_private_pem(
            &std::fs::read_to_string(s.path("scenario-3-keys/jwt-private.pem")).unwrap(),
        )
        .unwrap();
        let r = s
            .client
            .post(format!("{}/utils/dump", s.factory.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let factory_key = KeyPair::from_private_pem(
            &std::fs::read_to_string(s.path("keys/servicea-private.pem")).unwrap(),
        )
        .unwrap();
        let kid = s2s_auth::jwk::kid_of(
            &s2s_auth::jwk::public_jwk(
                &s2s_auth::KeyId::parse("servicea").unwrap(),
                factory_key.public(),
                alg,
            )
            .unwrap(),
        )
        .to_owned();
        let now = now();
        Paths {
            local: (
                format!("{}/scenario3-server", s.b.https_url()),
                local_key,
                json!({"iss": "https://service-issuer", "sub": "servicea", "aud": "serviceb",
                       "iat": now, "exp": now + 20}),
            ),
            factory: (
                format!("{}/scenario1-server", s.b.url()),
                factory_key,
                json!({"iss": "https://jwt-factory/", "sub": "servicea", "aud": "serviceb",
                       "iat": now, "exp": now + 600}),
                kid,
            ),
        }
    }

    /// The status and message of serviceb's answer to `token` at `url`.
    pub async fn send(s: &Stack, url: &str, token: &str) -> (u16, String) {
        let r = s.client.get(url).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        (status, message)
    }
}

#[tokio::test]
async fn typ_must_be_jwt_and_iat_positive_on_both_kinds_of_verifier() {
    use s2s_auth::SigningAlgorithm::RS256;
    use serde_json::json;
    let s = Stack::start(Options::default()).await;
    let p = forged::paths(&s, RS256).await;
    let (local_url, local_key, local_claims) = &p.local;
    let (factory_url, factory_key, factory_claims, kid) = &p.factory;
    // header, a claim to set, the status, what the message says
    type Case = (
        serde_json::Value,
        Option<(&'static str, i64)>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (json!({"alg": "RS256", "typ": "JWT"}), None, 200, ""),
        (json!({"alg": "RS256", "typ": "jwt"}), None, 200, ""),
        (
            json!({"alg": "RS256", "typ": "application/JWT"}),
            None,
            200,
            "",
        ),
        (
            json!({"alg": "RS256"}),
            None,
            403,
            "jwt type invalid. expected: JWT",
        ),
        (
            json!({"alg": "RS256", "typ": "at+jwt"}),
            None,
            403,
            "jwt type invalid",
        ),
        (
            json!({"alg": "RS256", "typ": "JWS"}),
            None,
            403,
            "jwt type invalid",
        ),
        (
            json!({"alg": "RS256", "typ": 1}),
            None,
            403,
            "jwt type invalid",
        ),
        (
            json!({"alg": "RS256", "typ": ""}),
            None,
            403,
            "jwt type invalid",
        ),
        (
            json!({"alg": "RS256", "typ": "JWT"}),
            Some(("iat", 0)),
            403,
            "invalid iat value",
        ),
        (
            json!({"alg": "RS256", "typ": "JWT"}),
            Some(("iat", -5)),
            403,
            "invalid iat value",
        ),
        (
            json!({"alg": "RS256", "typ": "JWT"}),
            Some(("iat", i64::MIN)),
            403,
            "invalid iat value",
        ),
    ];
    for (header, claim, status, says) in cases {
        for (url, key, claims, kid) in [
            (local_url, local_key, local_claims, None),
            (factory_url, factory_key, factory_claims, Some(kid)),
        ] {
            let mut header = header.clone();
            if let Some(kid) = kid {
                header["kid"] = kid.as_str().into();
            }
            let mut claims = claims.clone();
            if let Some((name, value)) = claim {
                claims[name] = value.into();
            }
            let token = forged::token(&header, &claims, key, RS256);
            let (got, message) = forged::send(&s, url, &token).await;
            assert_eq!(got, status, "{url} {header} {claim:?}: {message}");
            assert!(message.contains(says), "{url} {header}: {message}");
        }
    }
}

#[tokio::test]
async fn a_high_s_es256_signature_is_refused_on_both_kinds_of_verifier() {
    use s2s_auth::SigningAlgorithm::ES256;
    use serde_json::json;
    let s = Stack::start(Options {
        algorithm: Some("ES256"),
        ..Options::default()
    })
    .await;
    let p = forged::paths(&s, ES256).await;
    // Local: servicea's own key.
    let (url, key, claims) = &p.local;
    let token = forged::token(&json!({"alg": "ES256", "typ": "JWT"}), claims, key, ES256);
    assert_eq!(forged::send(&s, url, &token).await.0, 200, "low s");
    let (status, message) = forged::send(&s, url, &forged::high_s_twin(&token, ES256)).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("non-canonical"), "{message}");
    // The factory: a token it issued, re-encoded.
    let token = common::issue_at(&s.client, &s.factory.url(), "servicea", "serviceb").await;
    let url = &p.factory.0;
    assert_eq!(forged::send(&s, url, &token).await.0, 200, "as issued");
    let (status, message) = forged::send(&s, url, &forged::high_s_twin(&token, ES256)).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("non-canonical"), "{message}");
    // servicea's own ES256 scenarios still pass: it signs low-s.
    for _ in 0..10 {
        assert_eq!(s.get_a("/scenario3").await.0, 200);
    }
}
