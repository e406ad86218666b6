//! A pooled connection closed by the server just as it is reused: a `GET`
//! is sent again once, a `POST` is not (issue 10, item 1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use s2s_web::{
    outbound::{self, Deadline, Repeat, Target, Timeouts, UpstreamError},
    request_tracing::RequestId,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A server that answers the first request of each connection with
/// keep-alive, then reads the next request and closes without answering:
/// what a client sees when the server's idle timeout closes a pooled
/// connection as the client reuses it. Counts requests received.
async fn closing_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut first = true;
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if !first {
                        return; // closed under the reused connection
                    }
                    first = false;
                    let body = "{\"ok\":true}";
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (url, seen)
}

fn client() -> reqwest::Client {
    outbound::client(
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(3),
            pool_idle: Duration::from_secs(30),
        },
        None,
    )
    .unwrap()
}

/// The closing server as a dependency, by the name its errors give.
fn target(url: &str) -> Target<'static> {
    Target {
        who: "test server",
        url: url.to_owned(),
    }
}

fn deadline() -> Deadline {
    Deadline::start(Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_secs(3),
        pool_idle: Duration::from_secs(30),
    })
}

/// Three calls made by `request` against a server that closes every
/// reused connection under it: each must answer 200, and rounds 1 and 2
/// must have gone out a second time on a new connection (5 requests seen).
async fn three_rounds_each_sent_again_once(
    request: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    repeat: Repeat,
) {
    let (url, seen) = closing_server().await;
    let client = client();
    let target = target(&url);
    let rid = RequestId(None);
    for round in 0..3 {
        let answer = outbound::send_json(request(&client, &url), &target, &rid, deadline(), repeat)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(answer.status, 200);
    }
    assert_eq!(seen.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_get_on_a_connection_closed_under_it_is_sent_again_once() {
    three_rounds_each_sent_again_once(|c, url| c.get(url), Repeat::IfSafe).await;
}

#[tokio::test]
async fn a_post_on_a_connection_closed_under_it_is_not_sent_again() {
    let (url, seen) = closing_server().await;
    let client = client();
    let target = target(&url);
    let rid = RequestId(None);
    let post = || {
        outbound::send_json(
            client.post(&url).body("{}"),
            &target,
            &rid,
            deadline(),
            Repeat::IfSafe,
        )
    };
    post().await.unwrap();
    let err = post().await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("connection closed before message completed"),
        "{err}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_marked_repeatable_is_sent_again_once() {
    three_rounds_each_sent_again_once(|c, url| c.post(url).body("{}"), Repeat::Always).await;
}
