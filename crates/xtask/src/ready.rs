//! The readiness wait, shared by the supervisor and the tests
//! (test-support): poll a URL until it answers 2xx, within a bounded time,
//! and fail at once, with the end of its log, if the process exits first.
//! No fixed sleep stands in for it.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Polls `url` with `client` until it answers 2xx; returns how long that
/// took. Fails if `child` exits first or `within` passes; `log` gives what
/// the process printed, for the error.
pub async fn wait_answers(
    child: &mut tokio::process::Child,
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    log: impl Fn() -> String,
) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{url}: the process exited during start-up ({status}); its log:\n{}",
                log()
            );
        }
        let answer = client.get(url).timeout(Duration::from_secs(1)).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!(
        "{url} did not answer within {within:?}; the process's log:\n{}",
        log()
    )
}

/// A client for the readiness checks: no proxy, trusting the local CA
/// (`certs/ca.pem`) for the https listeners.
pub fn client(ca_pem: &[u8]) -> Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem)?;
    Ok(reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()?)
}
