//! Background callers for the key rotation of the walkthrough: each calls
//! one path on servicea without pause until told to stop, and every
//! answer's status is counted. A rotation done right fails no call.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;

/// Callers running in the supervisor.
pub struct Load {
    stop: Arc<AtomicBool>,
    callers: Vec<JoinHandle<Vec<u16>>>,
}

/// What the callers saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub calls: usize,
    /// Status → how many answers had it (0: no answer).
    pub statuses: BTreeMap<u16, usize>,
}

impl Summary {
    /// The calls that did not answer 200.
    pub fn failed(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(status, _)| **status != 200)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One caller per path, each on `base` (servicea's URL).
pub fn start(client: &reqwest::Client, base: &str, paths: &[String]) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let callers = paths
        .iter()
        .map(|path| {
            let (client, stop, url) = (client.clone(), stop.clone(), format!("{base}{path}"));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let answer = client
                        .get(&url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    seen.push(answer.map_or(0, |r| r.status().as_u16()));
                }
                seen
            })
        })
        .collect();
    Load { stop, callers }
}

impl Load {
    /// Stops the callers after their current call; what they saw.
    pub async fn stop(self) -> Summary {
        self.stop.store(true, Ordering::SeqCst);
        let mut summary = Summary::default();
        for caller in self.callers {
            for status in caller.await.unwrap_or_default() {
                summary.calls += 1;
                *summary.statuses.entry(status).or_default() += 1;
            }
        }
        summary
    }
}
