//! The bench's settings, from the environment as `scripts/bench.sh`
//! documents them: DURATION, ALGORITHMS, RUST_LOG, CONNECTIONS, FRESH_SECS,
//! OPENBAO.

use anyhow::{Context as _, Result};

/// What a bench run measures, and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds per row.
    pub duration: u64,
    /// One run of the whole stack each (e.g. RS256 ES256).
    pub algorithms: Vec<String>,
    /// The services' log level for the rows (the narration row is `info`).
    pub rust_log: String,
    pub connections: u32,
    /// The `/token` fresh-assertion row's length.
    pub fresh_secs: u64,
    /// The rows with the factory's keys in OpenBao too (`OPENBAO=0`: not).
    pub openbao: bool,
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn number<T: std::str::FromStr>(name: &str, default: &str) -> Result<T> {
    let text = var(name, default);
    text.parse()
        .ok()
        .with_context(|| format!("{name}={text} is not a number"))
}

impl Settings {
    /// From the environment, with the script's defaults.
    pub fn from_env() -> Result<Self> {
        let duration: u64 = number("DURATION", "10")?;
        Ok(Self {
            duration,
            algorithms: var("ALGORITHMS", "RS256 ES256")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            rust_log: var("RUST_LOG", "warn"),
            connections: number("CONNECTIONS", "32")?,
            fresh_secs: number("FRESH_SECS", &duration.max(20).to_string())?,
            openbao: var("OPENBAO", "1") != "0",
        })
    }
}
