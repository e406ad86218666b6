//! The bench's stacks: `cargo xtask up --detach` with the algorithm and
//! log level of a run (in the environment the processes inherit), logs in
//! target/bench-logs; the pids and start-up times from the ready marker;
//! `down` after each run. No `--owner`: a failed process must not end the
//! bench before it puts scenario-3-keys/ back (its rows then show errors).

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{control, paths};

/// A running process of a bench stack.
#[derive(Debug, Clone)]
pub struct Running {
    pub name: String,
    pub pid: u32,
    pub ready_ms: String,
}

/// Starts the stack with `ALGORITHM=alg` and `RUST_LOG=log`; its processes.
pub fn up(alg: &str, log: &str) -> Result<Vec<Running>> {
    let status = Command::new(std::env::current_exe()?)
        .args(["up", "--detach", "--no-build"])
        .env("ALGORITHM", alg)
        .env("RUST_LOG", log)
        .env("LOGS", paths::root().join("target/bench-logs"))
        .status()
        .context("cannot run cargo xtask up")?;
    if !status.success() {
        bail!("the stack did not start ({status})");
    }
    let marker = std::fs::read_to_string(paths::ready_marker()).context("no ready marker")?;
    Ok(running(marker.lines()))
}

/// The processes of `NAME PID READY_MS URL` lines (the ready marker's, or
/// the supervisor's `status`).
pub fn running<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Running> {
    lines
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(Running {
                name: words.next()?.to_owned(),
                pid: words.next()?.parse().ok()?,
                ready_ms: words.next()?.to_owned(),
            })
        })
        .collect()
}

/// Stops the stack (nothing running: nothing to do).
pub fn down() -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(control::down())
}
