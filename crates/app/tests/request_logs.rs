//! Log amplification (issue 10, item 2): a request's path is logged once,
//! bounded and escaped, and token-like query values never reach the log.
//! Its own test binary: it installs the process's log subscriber, writing
//! to a buffer the tests read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use app::Role;
use test_support as common;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn log_len() -> usize {
    test_support::captured_log::len()
}

fn log_text() -> String {
    test_support::captured_log::text()
}

#[tokio::test]
async fn three_hundred_requests_with_65_kb_paths_grow_the_log_by_a_bounded_amount() {
    test_support::captured_log::install();
    common::init();
    let b = common::start_service(Role::B, &[], common::bind().await, None).await;
    let path = format!("/{}", "A".repeat(65_000));
    let request =
        format!("GET {path}?q=%0a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let before = log_len();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(b.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 404"),
            "{:.100}",
            String::from_utf8_lossy(&answer)
        );
    }
    let grown = log_len() - before;
    let per_request = grown / 300;
    // One `-->` line with at most 128 characters of path, one response line.
    assert!(
        per_request < 700,
        "{per_request} log bytes per request ({grown} in all)"
    );
    let text = log_text();
    assert!(
        !text.contains(&"A".repeat(200)),
        "a long path reached the log"
    );
    assert!(
        text.contains("path=(no route)"),
        "unmatched routes are named so"
    );
}

#[tokio::test]
async fn a_token_in_the_query_string_never_reaches_the_log() {
    test_support::captured_log::install();
    let s = common::Stack::start(common::Options::default()).await;
    let token = common::issue_at(&s.client, &s.factory.url(), "servicea", "serviceb").await;
    assert_eq!(token.split('.').count(), 3, "{token}");
    let signature = token.rsplit('.').next().unwrap().to_owned();
    for url in [
        format!("{}/scenario1-server?access_token={token}", s.b.url()),
        format!("{}/scenario1-server?token={token}&x=1", s.b.url()),
        format!("{}/scenario1-server?anything={token}", s.b.url()),
        format!("{}/no-such-path/{token}", s.b.url()),
        format!("{}/utils/keys?access_token={token}", s.factory.url()),
    ] {
        s.client.get(&url).send().await.unwrap();
    }
    let text = log_text();
    assert!(
        !text.contains(&signature),
        "the token's signature was logged"
    );
    assert!(!text.contains(&token[..60]), "the token was logged");
    assert!(text.contains("access_token=<redacted>"), "no redacted line");
}

#[tokio::test]
async fn the_connection_cap_is_logged_once_per_interval_not_per_connection() {
    test_support::captured_log::install();
    let b = common::start_service_with(Role::B, &["--max-connections", "5"]).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(b.addr).await.unwrap());
    }
    let r = reqwest::get(format!("{}/hello", b.url())).await.unwrap();
    assert_eq!(r.status(), 200);
    let port = format!(":{}: connection cap reached", b.addr.port());
    let lines = log_text().lines().filter(|l| l.contains(&port)).count();
    assert_eq!(lines, 1, "the cap was hit 36 times, logged {lines} times");
}
