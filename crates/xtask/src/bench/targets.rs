//! Issue 23's targets, checked on this run's figures and printed. They are
//! not tests: a slow machine prints "no", it does not fail the bench.
//!
//! - every row's CPU per request at most 1.5x its floor (the floor table);
//! - `/scenario1` with the narration on (`RUST_LOG=info`) at least 1.0x
//!   the signing rate, and within 10% of its throughput at warn;
//! - `/scenario1` on one connection: p50 at most 1.5x its floor, as time;
//! - each service's resident memory after the load at most 16 MB;
//! - the gateway's verifier (scenario 9) costs no more CPU per request
//!   than serviceb's own check of the same kind of token (scenario 6).

use super::report::{PROFILED, Report};

/// The services whose memory is judged (not nginx or Envoy).
const SERVICES: [&str; 5] = [
    "jwt-factory",
    "servicea",
    "serviceb",
    "servicec",
    "verifier",
];

/// One line per target and algorithm.
pub fn lines(report: &Report, algorithms: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for alg in algorithms {
        out.extend(narration(report, alg));
        out.extend(one_connection(report, alg));
        out.extend(memory(report, alg));
        out.extend(verifier(report, alg));
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "NO" }
}

fn narration(report: &Report, alg: &str) -> Option<String> {
    let info = *report
        .rps
        .get(&format!("{alg}/GET /scenario1 (log info)"))?;
    let warn = *report.rps.get(&format!("{alg}/GET /scenario1"))?;
    let x_sign = info / report.sign_rate.max(f64::MIN_POSITIVE);
    let of_warn = info / warn.max(f64::MIN_POSITIVE);
    let met = x_sign >= 1.0 && of_warn >= 0.9;
    Some(format!(
        "  {alg:<8} /scenario1 at info, c{}: {x_sign:.2}x the signing rate (at least 1.0), {of_warn:.2}x its rate at warn (at least 0.90): {}",
        report.connections,
        verdict(met)
    ))
}

fn one_connection(report: &Report, alg: &str) -> Option<String> {
    let p50 = report.p50.get(&format!("{alg}/GET /scenario1 (1 conn)"))?;
    let p50_us = micros(p50)?;
    let shape = super::floor::shape("GET /scenario1")?;
    let floor = report.floor.of(alg, shape)?;
    Some(format!(
        "  {alg:<8} /scenario1 on one connection: p50 {p50} against 1.5 x its floor of {floor:.0} µs ({:.2}x): {}",
        p50_us / floor,
        verdict(p50_us <= 1.5 * floor)
    ))
}

fn memory(report: &Report, alg: &str) -> Option<String> {
    let over: Vec<String> = report
        .memory
        .iter()
        .filter(|(a, name, ..)| a == alg && SERVICES.contains(&name.as_str()))
        .filter_map(|(_, name, rss, _)| {
            let mb: f64 = rss.split_whitespace().next()?.parse().ok()?;
            (mb > 16.0).then(|| format!("{name} {rss}"))
        })
        .collect();
    Some(format!(
        "  {alg:<8} resident memory after the load, at most 16 MB per service: {}",
        if over.is_empty() {
            "yes".to_owned()
        } else {
            format!("NO ({})", over.join(", "))
        }
    ))
}

fn verifier(report: &Report, alg: &str) -> Option<String> {
    let column = |name: &str| PROFILED.iter().position(|p| *p == name);
    let gateway = report.by_process.get(&format!("{alg}/GET /scenario9"))?;
    let own = report.by_process.get(&format!("{alg}/GET /scenario6"))?;
    let verifier = *gateway.get(column("verifier")?)?;
    let serviceb = *own.get(column("serviceb")?)?;
    Some(format!(
        "  {alg:<8} the gateway's verifier {verifier} µs/req (scenario 9) against serviceb's own check {serviceb} µs/req (scenario 6): {}",
        verdict(verifier <= serviceb)
    ))
}

/// wrk's latency text (`796.00us`, `1.97ms`, `1.20s`) in microseconds.
pub fn micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_in_microseconds() {
        assert_eq!(micros("796.00us"), Some(796.0));
        assert_eq!(micros("1.97ms"), Some(1970.0));
        assert_eq!(micros("1.20s"), Some(1_200_000.0));
        assert_eq!(micros("fast"), None);
    }
}
