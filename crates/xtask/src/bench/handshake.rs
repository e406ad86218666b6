//! The TLS handshake cost, mutual against one-way: criterion's
//! `tls_handshake` bench of the app crate, and its median of each case
//! from criterion's JSON estimates.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{paths, say};

const CASES: [&str; 4] = [
    "one-way TLS, kept-alive",
    "mTLS, kept-alive",
    "one-way TLS, new connection",
    "mTLS, new connection",
];

/// Runs the bench (`secs` of measurement per case); one line per case.
pub fn measure(secs: u64) -> Result<Vec<String>> {
    say::step(
        "TLS handshake cost: mTLS against one-way TLS, kept-alive and new connections (criterion)",
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["bench", "-q", "-p", "app", "--bench", "tls_handshake", "--"])
        .args([
            "--warm-up-time",
            "1",
            "--measurement-time",
            &secs.to_string(),
        ])
        .output()
        .context("cannot run cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("serviceb") {
            println!("{line}");
            lines
                .get(i + 1)
                .into_iter()
                .for_each(|next| println!("{next}"));
        }
    }
    CASES.iter().map(|case| median(case)).collect()
}

fn median(case: &str) -> Result<String> {
    let path = paths::target()
        .join("criterion/serviceb https GET _hello")
        .join(case)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no figures from the tls_handshake bench ({})",
            path.display()
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let ns = json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median in {}", path.display()))?;
    Ok(format!("  {case:<30} {:>9.1} µs", ns / 1000.0))
}
