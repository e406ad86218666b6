//! `cargo xtask bench` (what `scripts/bench.sh` runs): the load benchmark.
//! Starts the stack once per algorithm, loads each scenario and the
//! factory's /issueToken, /verify and /token with wrk, measures the
//! single-core RSA-2048 signing rate with `openssl speed` in the same run,
//! and the floor each row is judged against ([`floor`]: its cryptography
//! and its hop ends at what a minimal server and client cost here),
//! profiles CPU time per process from `/proc`, then the TLS handshake cost
//! (criterion), and prints the tables and draws docs/img/bench-ratios.svg.

mod floor;
mod handshake;
mod keys3;
mod procstat;
mod report;
mod rows;
mod settings;
mod stack;
mod targets;
mod wrk;

use std::process::Command;

use anyhow::Result;

use crate::{install, paths, prepare};
use report::Report;
use settings::Settings;

/// Runs the whole bench.
pub fn run() -> Result<()> {
    let settings = Settings::from_env()?;
    install::ensure(install::Tool::Wrk)?;
    install::ensure(install::Tool::Openssl)?;
    prepare::build()?;
    prepare::certs()?;
    install::ensure(install::Tool::Nginx)?;
    let floor = floor::measure(settings.duration.min(5), settings.connections)?;
    let mut report = Report {
        sign_rate: floor.rsa_sign_rate,
        floor,
        connections: settings.connections,
        ..Report::default()
    };
    let work = paths::root().join("target/bench-logs/work");
    std::fs::create_dir_all(&work)?;
    let kept = keys3::keep(&paths::root().join("scenario-3-keys"))?;
    let measured = settings
        .algorithms
        .iter()
        .try_for_each(|alg| rows::algorithm(&settings, alg, &work, &mut report));
    let stopped = stack::down();
    kept.restore()?;
    measured?;
    stopped?;
    report.handshake = handshake::measure(settings.duration)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let title = format!(
        "results (RUST_LOG={}, {cores} cores, {})",
        settings.rust_log,
        cpu_model()
    );
    report.print(&title, &settings.algorithms);
    println!("\nissue 23's targets on this run (printed, not enforced):");
    targets::lines(&report, &settings.algorithms)
        .iter()
        .for_each(|r| println!("{r}"));
    chart(&settings, &report, &work, cores)
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(": "))
        .map(|(_, m)| m.to_owned())
        .unwrap_or_default()
}

/// docs/img/bench-ratios.svg from the rows (not the narration's).
fn chart(settings: &Settings, report: &Report, work: &std::path::Path, cores: usize) -> Result<()> {
    let tsv = work.join("chart.tsv");
    // alg, row, req/s, x sign, and x floor where the run has it.
    let text: String = report
        .tsv
        .iter()
        .filter(|r| !r.contains("(log info)"))
        .map(|r| {
            let mut cells = r.split('\t');
            let alg = cells.next().unwrap_or_default();
            let row = cells.next().unwrap_or_default();
            let floor = report
                .x_floor(alg, row)
                .map_or(String::new(), |x| format!("{x:.3}"));
            format!("{r}\t{floor}\n")
        })
        .collect();
    std::fs::write(&tsv, text)?;
    std::fs::create_dir_all("docs/img")?;
    println!();
    install::run(
        Command::new("python3")
            .arg("scripts/bench_chart.py")
            .arg(&tsv)
            .arg(report.sign_rate.to_string())
            .arg("docs/img/bench-ratios.svg")
            .arg(format!("RUST_LOG={}, {cores} cores", settings.rust_log)),
    )
}
