#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 24, item 5: the OpenBao side is a three-node Raft cluster (real
//! `bao server` processes, integrated storage). The factory knows every
//! node; the leader is killed while tokens are being signed, and signing
//! goes on: a standby node signs with the key it replicated, and key
//! changes (KV writes) resume once the other two have elected a leader.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Client;
use serde_json::json;
use test_support::{
    Running,
    factory::{create_key, issue, rotate, verify},
    openbao::Cluster,
    reply, start_factory_opened,
};

/// What one signing request at `at` got.
#[derive(Debug)]
struct Outcome {
    at: Instant,
    status: u16,
    body: String,
}

#[tokio::test]
async fn the_cluster_loses_its_leader_under_load_and_signing_goes_on_after_the_election() {
    let mut cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = cluster.factory_flags();
    flags.extend(["--openbao-timeout-ms", "2000"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let f = start_factory_opened(&dir.path().join("keys"), &flags)
        .await
        .unwrap();
    let http = Client::new();
    create_key(&http, &f, "servicea").await;
    let before = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    // Two connections signing all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    for _ in 0..2 {
        let (stop, url) = (stop.clone(), format!("{}/issueToken/servicea", f.url()));
        loads.push(tokio::spawn(async move {
            let http = Client::new();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = reply(http.post(&url).json(&json!({ "aud": "serviceb" }))).await;
                seen.push(Outcome {
                    at: Instant::now(),
                    status: r.status,
                    body: r.text,
                });
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    let killed = Instant::now();
    let new_leader = cluster.new_leader(leader).await;
    let elected = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for l in loads {
        outcomes.extend(l.await.unwrap());
    }
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    let signed_after = outcomes
        .iter()
        .filter(|o| o.at > elected && o.status == 200)
        .count();
    eprintln!(
        "leader node{leader} killed; node{new_leader} elected after {:?}; {} signatures, {} refused",
        elected - killed,
        outcomes.len() - refused.len(),
        refused.len()
    );
    for o in &refused {
        // While there is no leader: a 503 that names OpenBao, never a 500.
        assert_eq!(o.status, 503, "{}", o.body);
        assert!(o.body.contains("OpenBao"), "{}", o.body);
        assert!(
            o.at < elected + Duration::from_millis(500),
            "refused after the election: {}",
            o.body
        );
    }
    assert!(signed_after > 0, "nothing signed after the election");

    // The tokens from before and after verify, and the keys can change
    // again (a KV write, through the new leader).
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    for t in [&before, &token] {
        let (code, body) = verify(&http, &f, "servicea", t, "serviceb", "servicea").await;
        assert_eq!(code, 200, "{body}");
    }
    rotate(&http, &f, "servicea").await;
    drop::<Running>(f);
}
