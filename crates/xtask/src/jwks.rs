//! `cargo xtask wait-sidecar-jwks`: a readiness check for scenario 10's
//! mesh steps. The sidecars fetch the factory's JWK Set when they start and
//! every JWKS_CACHE_SECS (env/mesh.env), never for an unknown kid: a key
//! the factory made after their last fetch is unknown to them until the
//! next. This waits for serviceb's sidecar (which verifies scenario 10's
//! tokens) to fetch again, reading its admin `/stats` counter.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::paths;

const STAT: &str = "http.inbound.jwt_authn.jwks_fetch_success";
const WITHIN: Duration = Duration::from_secs(30);

/// The counter `STAT` of serviceb's sidecar (0 if it does not answer).
async fn fetches(client: &reqwest::Client, admin: &str) -> u64 {
    let url = format!("{admin}/stats?filter={STAT}");
    let Ok(answer) = client.get(url).timeout(Duration::from_secs(2)).send().await else {
        return 0;
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(name, _)| *name == STAT)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until serviceb's sidecar has fetched the key set again.
pub async fn wait_refresh() -> Result<()> {
    let Some(sidecar) = topology::sidecar_of("serviceb") else {
        bail!("serviceb has no sidecar in the topology");
    };
    let admin = sidecar.http_url();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let before = fetches(&client, &admin).await;
    println!(
        "(serviceb's sidecar has fetched the factory's key set {before} times; waiting for its next refresh, so it knows servicea's current key)"
    );
    let started = Instant::now();
    loop {
        let now = fetches(&client, &admin).await;
        if now > before {
            println!("(refreshed: fetch number {now})");
            return Ok(());
        }
        if started.elapsed() > WITHIN {
            let log = paths::shown(&paths::log_of(sidecar.name));
            bail!(
                "serviceb's sidecar did not refresh the factory's key set within {WITHIN:?} (log: {log})"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
