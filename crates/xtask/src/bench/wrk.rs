//! One wrk run and what its output says: requests per second, latency
//! percentiles, errors; and the CPU time wrk itself spent (read from
//! `/proc` while it is a zombie, before it is reaped).

use std::{
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};
use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};

use super::procstat;

/// What one wrk run measured.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// As wrk prints it.
    pub rps_text: String,
    pub rps: f64,
    pub requests: u64,
    pub p50: String,
    pub p99: String,
    pub errors: u64,
    /// wrk's own CPU time, in clock ticks.
    pub wrk_ticks: u64,
}

/// A load: connections, URL, optional Lua script and its environment.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub connections: u32,
    pub url: &'a str,
    pub script: Option<&'a Path>,
    pub env: Vec<(&'static str, String)>,
}

/// Runs wrk with `load` for `secs` seconds.
pub fn run(load: &Load<'_>, secs: u64) -> Result<Measured> {
    let threads = if load.connections < 2 { 1 } else { 2 };
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg(load.url)
        .envs(load.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(script) = load.script {
        cmd.arg("-s").arg(script);
    }
    let mut child = cmd.spawn().context("cannot run wrk")?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let pid = Pid::from_child(&child);
    let _ = waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    );
    let wrk_ticks = procstat::ticks(child.id());
    child.wait()?;
    Ok(Measured {
        wrk_ticks,
        ..parse(&out)
    })
}

/// Reads wrk's report.
pub fn parse(out: &str) -> Measured {
    let mut m = Measured::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rps, ..] => {
                m.rps_text = (*rps).to_owned();
                m.rps = rps.parse().unwrap_or(0.0);
            }
            [n, "requests", "in", ..] => m.requests = n.parse().unwrap_or(0),
            ["50%", p, ..] => m.p50 = (*p).to_owned(),
            ["99%", p, ..] => m.p99 = (*p).to_owned(),
            ["Non-2xx", .., n] => m.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                m.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 2s test @ http://localhost:3000/scenario1\n  Latency Distribution\n     50%    1.20ms\n     99%    5.00ms\n  2000 requests in 2.00s, 1.00MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 3\nRequests/sec:   1000.50\n";
        let m = parse(out);
        assert_eq!(m.rps_text, "1000.50");
        assert_eq!(m.requests, 2000);
        assert_eq!((m.p50.as_str(), m.p99.as_str()), ("1.20ms", "5.00ms"));
        assert_eq!(m.errors, 6);
    }
}
