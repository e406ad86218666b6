#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Memory under load (issue requirement: "a concurrent burst ... memory back
//! to its baseline afterwards"). servicea, serviceb and servicec run as real
//! processes of the `app` binary, so their resident memory (VmRSS in
//! /proc/PID/status, as scripts/bench.sh reads it) is theirs alone;
//! jwt-factory runs in this test's process.
//!
//! Bursts of 500 requests, 64 in flight, spread evenly over /scenario1 to
//! /scenario5. The first burst is a warm-up: allocators keep freed memory
//! and pools, caches and per-thread arenas fill on first use, so the
//! baseline is read after it. Three more identical bursts follow; after
//! each, no service may have grown by more than [`MAX_GROWTH_KIB`].
//!
//! Every wait is bounded, readiness is polled rather than slept on, and all
//! traffic goes to 127.0.0.1.

use test_support as common;

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use common::{Files, factory::create_key, files::peer_flags};
use futures::StreamExt as _;
use tokio::process::{Child, Command};

/// Requests per burst, and how many are in flight at once.
const BURST: usize = 500;
const IN_FLIGHT: usize = 64;
/// Bursts after the warm-up.
const MEASURED_BURSTS: usize = 3;
const SCENARIOS: [&str; 5] = [
    "/scenario1",
    "/scenario2",
    "/scenario3",
    "/scenario4",
    "/scenario5",
];

/// The most any service's VmRSS may grow over its post-warm-up baseline.
///
/// Per burst of 500 (100 per scenario) the services see:
/// - servicea: 500 requests in, 1,100 calls out (scenario 1: factory + b;
///   2: two factory tokens + b + c; 3: b; 4: b + c; 5: factory + b);
/// - serviceb: 500 requests in (every scenario calls it once), 200 calls
///   out to the factory's /verify (scenarios 1 and 2);
/// - servicec: 200 requests in (scenarios 2 and 4), 100 out (scenario 2).
///
/// Over the 3 measured bursts, 8 MiB is therefore a leak of at most
/// 8 MiB / 1,500 = 5.6 KiB per request on servicea and serviceb (about
/// 2.5 KiB per outbound call on servicea: 8 MiB / 3,300), and
/// 8 MiB / 600 = 14 KiB per request on servicec. A service that kept, say,
/// each request's body, token, headers or a per-request task, buffer or
/// connection fails; smaller, slower leaks need a longer run. (Checked: 6 KiB
/// leaked per request in servicea's scenario runner took it to +11 MiB after
/// the third burst, and this test failed; without it servicea ends within
/// about +1.5 MiB, flattening out: +2.6 MiB after 20 bursts.)
const MAX_GROWTH_KIB: u64 = 8 * 1024;

/// No single request, readiness wait or exit may take longer than this.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A service as a child process of the `app` binary.
struct Service {
    name: &'static str,
    child: Child,
    /// Where `/hello` answers: http for servicea, https for the others.
    hello: String,
}

impl Service {
    fn spawn(name: &'static str, dir: &Path, args: &[String]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
        cmd.arg(name)
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for v in common::all_service_vars() {
            cmd.env_remove(v);
        }
        Self {
            name,
            child: cmd.spawn().unwrap(),
            hello: String::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("already reaped")
    }

    /// Resident memory, KiB (VmRSS in /proc/PID/status).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no VmRSS in {status}", self.name))
    }

    /// Polls `/hello` until it answers 200, for at most [`ANSWER_WITHIN`].
    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited before it was ready: {status}", self.name);
            }
            let ok = client
                .get(&self.hello)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: /hello not 200 within {ANSWER_WITHIN:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit status, within [`ANSWER_WITHIN`].
    fn sigterm(&self) {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(kill.success(), "{}: kill -TERM failed", self.name);
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(ANSWER_WITHIN, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{}: no exit within {ANSWER_WITHIN:?}", self.name))
            .unwrap()
            .code()
    }
}

/// One burst on servicea: [`BURST`] GETs, [`IN_FLIGHT`] at a time, spread
/// evenly over the scenarios. Every one must answer 200.
async fn burst(client: &reqwest::Client, base: &str, label: &str) {
    let started = Instant::now();
    let failures: Vec<String> = futures::stream::iter(0..BURST)
        .map(|i| {
            let url = format!("{base}{}", SCENARIOS[i % SCENARIOS.len()]);
            async move {
                let r = client.get(&url).timeout(ANSWER_WITHIN).send().await;
                match r {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => None,
                        Err(e) => Some(format!("{url}: body: {e}")),
                    },
                    Ok(r) => {
                        let status = r.status();
                        Some(format!(
                            "{url}: {status}: {}",
                            r.text().await.unwrap_or_default()
                        ))
                    }
                    Err(e) => Some(format!("{url}: {e:?}")),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{label}: {} of {BURST} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    println!(
        "{label}: {BURST} requests, {IN_FLIGHT} in flight, all 200, in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_leave_no_errors_and_memory_returns_to_its_baseline() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::generate(dir.path(), Some(s2s_auth::SigningAlgorithm::RS256));
    let client = files
        .client()
        .connect_timeout(Duration::from_secs(2))
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap();

    // jwt-factory in this process, with servicea's key.
    let mut factory = common::start_factory(&files.keys, &[]).await;
    let factory_url = factory.url();
    create_key(&client, &factory, "servicea").await;

    // The three services, as processes, every setting a flag.
    let [a_port, b_port, b_https, c_port, c_https] = common::free_ports();
    // Each receiver serves its own workload certificate, as its env file
    // says: servicea accepts only serviceb's SPIFFE ID from serviceb.
    let receiver = |name: &str, port: u16, https: u16| {
        let (cert, key) = files.workload(name);
        let mut v = files.receiver_flags("RS256", &factory_url);
        v.extend(
            [
                ("--port", port.to_string()),
                ("--start-https", "true".into()),
                ("--https-port", https.to_string()),
                ("--server-public-key-path", path(&cert)),
                ("--server-private-key-path", path(&key)),
            ]
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_owned(), value]),
        );
        v
    };
    let mut a_flags = files.servicea_flags("RS256", &factory_url);
    a_flags.extend(["--port".into(), a_port.to_string()]);
    a_flags.extend(peer_flags(
        &format!("http://127.0.0.1:{b_port}"),
        &format!("https://127.0.0.1:{b_https}"),
        &format!("http://127.0.0.1:{c_port}"),
        &format!("https://127.0.0.1:{c_https}"),
    ));
    let mut b = Service::spawn(
        "serviceb",
        dir.path(),
        &receiver("serviceb", b_port, b_https),
    );
    b.hello = format!("https://127.0.0.1:{b_https}/hello");
    let mut c = Service::spawn(
        "servicec",
        dir.path(),
        &receiver("servicec", c_port, c_https),
    );
    c.hello = format!("https://127.0.0.1:{c_https}/hello");
    let mut a = Service::spawn("servicea", dir.path(), &a_flags);
    a.hello = format!("http://127.0.0.1:{a_port}/hello");
    let mut services = [a, b, c];
    for s in &mut services {
        s.wait_ready(&client).await;
    }
    let base = format!("http://127.0.0.1:{a_port}");

    // Warm-up, then the baseline.
    burst(&client, &base, "warm-up").await;
    let baseline: Vec<u64> = services.iter().map(Service::rss_kib).collect();
    for (s, kib) in services.iter().zip(&baseline) {
        println!("{}: baseline after warm-up {}", s.name, mib(*kib));
    }

    // The measured bursts: all 200, and no service grows past the bound.
    let mut worst = vec![0_i64; services.len()];
    for round in 1..=MEASURED_BURSTS {
        burst(&client, &base, &format!("burst {round}")).await;
        for (i, s) in services.iter().enumerate() {
            let now = s.rss_kib();
            let growth = now as i64 - baseline[i] as i64;
            worst[i] = worst[i].max(growth);
            println!(
                "{}: after burst {round} {} ({:+} KiB over baseline)",
                s.name,
                mib(now),
                growth
            );
        }
    }
    for (i, s) in services.iter().enumerate() {
        assert!(
            worst[i] <= MAX_GROWTH_KIB as i64,
            "{}: VmRSS grew {} KiB over its post-warm-up baseline of {} KiB \
             (at most {MAX_GROWTH_KIB} KiB allowed): memory does not come back",
            s.name,
            worst[i],
            baseline[i]
        );
    }

    // SIGTERM: each service exits with status 0.
    drop(client);
    for s in &services {
        s.sigterm();
    }
    for s in &mut services {
        let code = s.exit_code().await;
        assert_eq!(code, Some(0), "{}: exit status after SIGTERM", s.name);
    }
    factory.stop().await;
}
