//! The bench's tables, printed as `scripts/bench.sh` printed them: one row
//! per load (requests/s, p50/p99, ratio to the signing rate, errors), the
//! CPU profile per process, memory and start-up time per process, and the
//! notes (fresh assertions, narration cost, TLS handshakes, speed-ups).

use std::collections::BTreeMap;

/// The processes whose CPU time is profiled, in the profile's column order.
pub const PROFILED: [&str; 10] = [
    "jwt-factory",
    "servicea",
    "serviceb",
    "servicec",
    "verifier",
    "gateway",
    "sidecar-servicea",
    "sidecar-serviceb",
    "sidecar-servicec",
    // The OpenBao dev server, in the rows with the factory's keys there.
    "openbao",
];

/// The rows compared across algorithms.
pub const COMPARED: [&str; 11] = [
    "GET /scenario1",
    "GET /scenario2",
    "GET /scenario3",
    "GET /scenario4",
    "GET /scenario6",
    "GET /scenario7",
    "GET /scenario8",
    "GET /scenario9",
    "GET /scenario10",
    "POST /issueToken",
    "POST /verify",
];

/// Everything measured, filled in as the bench runs.
#[derive(Debug, Default)]
pub struct Report {
    pub sign_rate: f64,
    pub rows: Vec<String>,
    pub profile: Vec<String>,
    /// (alg, process) → (RSS after load, ready ms).
    pub memory: Vec<(String, String, String, String)>,
    pub fresh: Vec<String>,
    pub narration: Vec<String>,
    pub handshake: Vec<String>,
    /// "alg/row" → requests/s.
    pub rps: BTreeMap<String, f64>,
    /// (alg, row, rps, ratio) for the chart.
    pub tsv: Vec<String>,
    /// What this machine asks of each row, measured in the same run.
    pub floor: super::floor::Floor,
    /// (alg, row, CPU µs per request of every service, all processes).
    pub cpu: Vec<(String, String, u64)>,
    /// "alg/row" → CPU µs per request of each [`PROFILED`] process.
    pub by_process: BTreeMap<String, Vec<u64>>,
    /// "alg/row" → wrk's p50, as it prints it.
    pub p50: BTreeMap<String, String>,
    /// wrk's connections on the rows at load.
    pub connections: u32,
}

/// The table's header line.
pub fn header() -> String {
    format!(
        "{:<8} {:<26} {:>5} {:>10} {:>10} {:>10} {:>7} {:>7}",
        "alg", "request", "conns", "req/s", "p50", "p99", "x sign", "errors"
    )
}

/// The profile's header line.
pub fn profile_header() -> String {
    let mut line = format!("{:<8} {:<26}", "alg", "request");
    for name in [
        "factory", "servicea", "serviceb", "servicec", "verifier", "nginx", "envoy-a", "envoy-b",
        "envoy-c", "all", "wrk",
    ] {
        line.push_str(&format!(" {name:>9}"));
    }
    line
}

impl Report {
    /// `b` over `a` for each compared row, when both ran.
    pub fn speedups(&self, a: &str, b: &str) -> Vec<String> {
        COMPARED
            .iter()
            .filter_map(|name| {
                let x = self.rps.get(&format!("{a}/{name}"))?;
                let y = self.rps.get(&format!("{b}/{name}"))?;
                Some(format!("  {name:<20} {:>6.2}x", y / x))
            })
            .collect()
    }

    /// Prints every table after the runs.
    pub fn print(&self, title: &str, algorithms: &[String]) {
        crate::say::step(title);
        println!(
            "single-core RSA-2048 signing (openssl speed): {}/s; 'x sign' = req/s divided by that",
            self.sign_rate
        );
        println!("{}", header());
        self.rows.iter().for_each(|r| println!("{r}"));
        println!("\nCPU time per request, in microseconds, by process (clock-tick resolution):");
        println!("{}", profile_header());
        self.profile.iter().for_each(|r| println!("{r}"));
        self.print_floor();
        println!(
            "\n{:<8} {:<17} {:>26} {:>18}",
            "alg", "process", "RSS after load", "ready after start"
        );
        for (alg, name, rss, ready) in &self.memory {
            println!("{alg:<8} {name:<17} {rss:>26} {ready:>15} ms");
        }
        println!(
            "\nPOST /token with fresh assertions (the jti cache, issue 21: the old shared 10,000-entry cache refused from the 10,001st):"
        );
        self.fresh.iter().for_each(|r| println!("{r}"));
        if !self.narration.is_empty() {
            println!("\ncost of the workshop narration (same run):");
            self.narration.iter().for_each(|r| println!("{r}"));
        }
        println!(
            "\nTLS handshakes, mutual against one-way (cargo bench -p app --bench tls_handshake: one GET /hello, client and serviceb on one thread; new connection = full handshake):"
        );
        self.handshake.iter().for_each(|r| println!("{r}"));
        if let [a, b, ..] = algorithms {
            println!("\nspeed-up of {b} over {a} (req/s ratio):");
            self.speedups(a, b).iter().for_each(|r| println!("{r}"));
        }
    }
}

impl Report {
    /// A row's CPU per request over its floor, when the run measured both.
    pub fn x_floor(&self, alg: &str, row: &str) -> Option<f64> {
        let (_, _, cpu) = self.cpu.iter().find(|(a, r, _)| a == alg && r == row)?;
        let floor = self.floor.of(alg, super::floor::shape(row)?)?;
        Some(*cpu as f64 / floor.max(f64::MIN_POSITIVE))
    }

    /// Each row's CPU per request against its floor (issue 23's target:
    /// at most 1.5x).
    fn print_floor(&self) {
        let f = &self.floor;
        println!(
            "\nCPU per request against the floor: its signatures and verifications (openssl speed) plus its hop ends at {:.1} µs plain, {:.1} µs TLS (nginx return 200 and wrk, same run):",
            f.hop_plain_us, f.hop_tls_us
        );
        println!(
            "{:<8} {:<26} {:>9} {:>5} {:>11} {:>9} {:>8} {:>7}",
            "alg", "request", "crypto", "hops", "floor µs", "CPU µs", "x floor", "≤ 1.5x"
        );
        for (alg, row, cpu) in &self.cpu {
            let Some(shape) = super::floor::shape(row) else {
                continue;
            };
            let Some(floor) = f.of(alg, shape) else {
                continue;
            };
            let crypto = format!("{}S+{}V", shape.signatures, shape.verifications);
            let hops = format!("{}+{}", shape.plain, shape.tls);
            let x = self.x_floor(alg, row).unwrap_or_default();
            let met = if x <= 1.5 { "yes" } else { "no" };
            println!(
                "{alg:<8} {row:<26} {crypto:>9} {hops:>5} {floor:>11.0} {cpu:>9} {x:>8.2} {met:>7}"
            );
        }
    }
}
