//! Asking a running sidecar which configuration it has applied, through
//! Envoy's admin interface (`/stats`, the `version_text` of each source).
//!
//! A policy change is applied when each sidecar reports the versions just
//! written: that is what `app mesh-config --wait` and the tests wait for,
//! instead of sleeping.

use std::time::{Duration, Instant};

use crate::{MeshError, render::SidecarConfig};

/// The stat that holds the version Envoy accepted from each file.
fn stat_of(file: &str) -> Option<&'static str> {
    match file {
        "cds.json" => Some("cluster_manager.cds.version_text"),
        "lds.json" => Some("listener_manager.lds.version_text"),
        "rds.json" => Some("http.inbound.rds.inbound.version_text"),
        _ => None,
    }
}

/// Versions a sidecar reports, read from its `/stats` text.
pub fn reported(stats: &str, stat: &str) -> Option<String> {
    stats.lines().find_map(|line| {
        let value = line.strip_prefix(stat)?.strip_prefix(": ")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// Waits until the sidecar of `config` (admin on loopback) reports every
/// version of `config`, or fails after `timeout` saying which it lacks.
pub async fn wait_applied(
    client: &reqwest::Client,
    config: &SidecarConfig,
    timeout: Duration,
) -> Result<(), MeshError> {
    let url = format!(
        "http://127.0.0.1:{}/stats?filter=version_text",
        config.sidecar.admin
    );
    let started = Instant::now();
    loop {
        let last;
        match client.get(&url).send().await {
            Ok(r) => match r.text().await {
                Ok(stats) => {
                    let missing: Vec<String> = config
                        .files
                        .iter()
                        .filter_map(|(file, _, version)| {
                            let stat = stat_of(file)?;
                            let got = reported(&stats, stat);
                            (got.as_deref() != Some(version.as_str())).then(|| {
                                format!(
                                    "{file} {version} (it runs {})",
                                    got.as_deref().unwrap_or("none")
                                )
                            })
                        })
                        .collect();
                    if missing.is_empty() {
                        return Ok(());
                    }
                    last = missing.join(", ");
                }
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = format!("admin {url}: {e}"),
        }
        if started.elapsed() >= timeout {
            return Err(MeshError::NotApplied {
                workload: config.sidecar.workload.clone(),
                waited: timeout,
                missing: last,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
