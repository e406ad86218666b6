//! One algorithm's run: a stack with `ALGORITHM` set, fresh keys of its
//! kind, then each row of the table (a wrk load, with the CPU time each
//! process spent on it), the /token row with fresh assertions, memory and
//! start-up times; then, unless the rows ran at `info`, one row again with
//! the workshop narration on, to show what it costs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use topology::{FACTORY, SERVICEA};

use super::{
    procstat,
    report::{PROFILED, Report, header},
    settings::Settings,
    stack::{self, Running},
    wrk::{self, Load},
};
use crate::{control, paths, say};

/// The current algorithm's context for its rows.
struct Run<'a> {
    settings: &'a Settings,
    alg: &'a str,
    procs: Vec<Running>,
}

fn script(name: &str) -> PathBuf {
    paths::root().join("scripts/bench").join(name)
}

/// Every row of `alg`, into `report`.
pub fn algorithm(settings: &Settings, alg: &str, work: &Path, report: &mut Report) -> Result<()> {
    let run = Run {
        settings,
        alg,
        procs: stack::up(alg, &settings.rust_log)?,
    };
    let (a, f) = (SERVICEA.http_url(), FACTORY.http_url());
    http("GET", &format!("{f}/keys/servicea"), None)?;
    http("POST", &format!("{a}/gen-keys"), None)?;
    let token = http(
        "POST",
        &format!("{f}/issueToken/servicea"),
        Some(r#"{"aud":"serviceb"}"#),
    )?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    say::step(&format!(
        "ALGORITHM={alg}: {} s per row (after a 2 s warm-up), wrk on the same {cores} cores as the servers",
        settings.duration
    ));
    println!("{}", header());
    run.scenario_rows(report)?;
    run.factory_rows(report, token)?;
    run.fresh_token_row(report, work)?;
    let mut run = run;
    if settings.openbao {
        run.openbao_rows(report, work)?;
    }
    for p in run.procs.iter().filter(|p| p.name != "openbao") {
        report.memory.push((
            alg.to_owned(),
            p.name.clone(),
            procstat::rss(p.pid),
            p.ready_ms.clone(),
        ));
    }
    stack::down()?;
    if settings.rust_log != "info" {
        narration(settings, alg, report)?;
    }
    Ok(())
}

/// `/scenario1` again on a stack at `RUST_LOG=info`.
fn narration(settings: &Settings, alg: &str, report: &mut Report) -> Result<()> {
    say::step(&format!(
        "ALGORITHM={alg}: /scenario1 again with the workshop narration on (RUST_LOG=info)"
    ));
    let run = Run {
        settings,
        alg,
        procs: stack::up(alg, "info")?,
    };
    http(
        "GET",
        &format!("{}/keys/servicea", FACTORY.http_url()),
        None,
    )?;
    let url = format!("{}/scenario1", SERVICEA.http_url());
    let load = Load {
        connections: settings.connections,
        url: &url,
        script: None,
        env: vec![],
    };
    run.row(report, "GET /scenario1 (log info)", &load, true)?;
    stack::down()?;
    let rps = |name: &str| {
        report
            .rps
            .get(&format!("{alg}/{name}"))
            .copied()
            .unwrap_or(0.0)
    };
    let ratio = rps("GET /scenario1 (log info)") / rps("GET /scenario1").max(f64::MIN_POSITIVE);
    report.narration.push(format!(
        "  {alg:<8} /scenario1 at info: {ratio:.2}x its throughput at {} (target: at least 0.90)",
        settings.rust_log
    ));
    Ok(())
}

impl Run<'_> {
    /// A row per scenario on servicea, as a browser or curl calls them.
    fn scenario_rows(&self, report: &mut Report) -> Result<()> {
        let (a, c) = (SERVICEA.http_url(), self.settings.connections);
        for (name, conns, path) in [
            ("GET /scenario1", c, "/scenario1"),
            ("GET /scenario1 (1 conn)", 1, "/scenario1"),
            ("GET /scenario1?trace=1", c, "/scenario1?trace=1"),
            ("GET /scenario2", c, "/scenario2"),
            ("GET /scenario3", c, "/scenario3"),
            ("GET /scenario4", c, "/scenario4"),
            ("GET /scenario6", c, "/scenario6"),
            ("GET /scenario6?trace=1", c, "/scenario6?trace=1"),
            ("GET /scenario7", c, "/scenario7"),
            ("GET /scenario8", c, "/scenario8"),
            ("GET /scenario9", c, "/scenario9"),
            ("GET /scenario10", c, "/scenario10"),
        ] {
            self.get_row(report, name, conns, &format!("{a}{path}"))?;
        }
        Ok(())
    }

    /// One row of plain `GET url` on `conns` connections.
    fn get_row(&self, report: &mut Report, name: &str, conns: u32, url: &str) -> Result<()> {
        let load = Load {
            connections: conns,
            url,
            script: None,
            env: vec![],
        };
        self.row(report, name, &load, true).map(drop)
    }

    /// The factory's /issueToken and /verify (with `token`), one signature
    /// or one verification per request.
    fn factory_rows(&self, report: &mut Report, token: String) -> Result<()> {
        let (f, c) = (FACTORY.http_url(), self.settings.connections);
        self.issue_row(report, "POST /issueToken")?;
        let verify = script("verify.lua");
        let url = format!("{f}/verify/servicea");
        let load = Load {
            connections: c,
            url: &url,
            script: Some(&verify),
            env: vec![("TOKEN", token)],
        };
        self.row(report, "POST /verify", &load, true)?;
        Ok(())
    }

    /// One row of `POST /issueToken/servicea`: one signature a request.
    fn issue_row(&self, report: &mut Report, name: &str) -> Result<()> {
        let (issue, c) = (script("issue.lua"), self.settings.connections);
        let url = format!("{}/issueToken/servicea", FACTORY.http_url());
        let load = Load {
            connections: c,
            url: &url,
            script: Some(&issue),
            env: vec![],
        };
        self.row(report, name, &load, true).map(drop)
    }

    /// One row of `POST /token`, each request with the next of the
    /// assertions in `assertions`; its req/s.
    fn token_row(&self, report: &mut Report, name: &str, assertions: &Path) -> Result<f64> {
        let token_lua = script("token.lua");
        let url = format!("{}/token", FACTORY.http_url());
        let load = Load {
            connections: self.settings.connections,
            url: &url,
            script: Some(&token_lua),
            env: vec![("ASSERTIONS", assertions.display().to_string())],
        };
        self.row(report, name, &load, false)
    }

    /// The factory's /issueToken and /token, and /scenario1 and 6, with
    /// the factory's keys in OpenBao (issue 24): a dev server, the factory
    /// restarted with KEY_BACKEND=openbao, OpenBao's CPU counted with the
    /// rest. Then the factory again on its files, and OpenBao stopped.
    fn openbao_rows(&mut self, report: &mut Report, work: &Path) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(crate::openbao::up())?;
        control::send("stop jwt-factory")?;
        control::send("start jwt-factory --openbao")?;
        // servicea's cached scenario-6 token was signed with the factory's
        // file keys, which the factory on OpenBao does not publish: a new
        // servicea fetches one OpenBao signs, and caches it.
        control::send("stop servicea")?;
        control::send("start servicea")?;
        self.refresh_pids()?;
        let (a, f, c) = (
            SERVICEA.http_url(),
            FACTORY.http_url(),
            self.settings.connections,
        );
        http("POST", &format!("{f}/keys/servicea"), None)?;
        self.get_row(
            report,
            "GET /scenario1 +openbao",
            c,
            &format!("{a}/scenario1"),
        )?;
        // Its token is cached: it must cost what it costs with files.
        self.get_row(
            report,
            "GET /scenario6 +openbao",
            c,
            &format!("{a}/scenario6"),
        )?;
        self.issue_row(report, "POST /issueToken +openbao")?;
        // The assertions of the files row: this factory (and OpenBao's
        // shared jti records) has seen none of them.
        let assertions = work.join("assertions.txt");
        self.token_row(report, "POST /token (fresh jti) +openbao", &assertions)?;
        control::send("stop jwt-factory")?;
        control::send("start jwt-factory")?;
        runtime.block_on(crate::openbao::down())?;
        self.refresh_pids()
    }

    /// The pids again from the supervisor (a process restarted), and
    /// OpenBao's if it runs.
    fn refresh_pids(&mut self) -> Result<()> {
        let status = control::ask("status")?;
        let mut procs = stack::running(status.iter().map(String::as_str));
        if let Some(pid) = crate::openbao::running() {
            procs.push(Running {
                name: "openbao".into(),
                pid,
                ready_ms: "-".into(),
            });
        }
        self.procs = procs;
        Ok(())
    }

    fn pid_of(&self, name: &str) -> Option<u32> {
        self.procs.iter().find(|p| p.name == name).map(|p| p.pid)
    }

    /// One row of the table and of the CPU profile.
    fn row(&self, report: &mut Report, name: &str, load: &Load<'_>, warm_up: bool) -> Result<f64> {
        let secs = if name.contains("fresh jti") {
            self.settings.fresh_secs
        } else {
            self.settings.duration
        };
        if warm_up {
            let _ = wrk::run(load, 2);
        }
        let ticks = || -> Vec<u64> {
            PROFILED
                .iter()
                .map(|n| self.pid_of(n).map_or(0, procstat::ticks_with_children))
                .collect()
        };
        let before = ticks();
        let m = wrk::run(load, secs)?;
        let after = ticks();
        let ratio = m.rps / report.sign_rate;
        let row = format!(
            "{:<8} {name:<26} {:>5} {:>10} {:>10} {:>10} {:>7.2} {:>7}",
            self.alg, load.connections, m.rps_text, m.p50, m.p99, ratio, m.errors
        );
        println!("{row}");
        report.rows.push(row);
        report.rps.insert(format!("{}/{name}", self.alg), m.rps);
        report
            .tsv
            .push(format!("{}\t{name}\t{}\t{ratio:.3}", self.alg, m.rps_text));
        let per_request = |ticks: u64| ticks * procstat::tick_us() / m.requests.max(1);
        let mut line = format!("{:<8} {name:<26}", self.alg);
        let mut total = 0;
        let mut each = Vec::new();
        for (b, a) in before.iter().zip(&after) {
            let us = per_request(a.saturating_sub(*b));
            total += us;
            each.push(us);
            line.push_str(&format!(" {us:>9}"));
        }
        let key = format!("{}/{name}", self.alg);
        report.by_process.insert(key.clone(), each);
        report.p50.insert(key, m.p50.clone());
        line.push_str(&format!(" {total:>9} {:>9}", per_request(m.wrk_ticks)));
        report
            .cpu
            .push((self.alg.to_owned(), name.to_owned(), total));
        report.profile.push(line);
        Ok(m.rps)
    }

    /// POST /token with a fresh client assertion (a new jti) every request,
    /// for FRESH_SECS: more than the 10,000 jtis the factory's cache held
    /// before issue 21, all of which must get a token (errors 0).
    fn fresh_token_row(&self, report: &mut Report, work: &Path) -> Result<()> {
        let (alg, secs) = (self.alg, self.settings.fresh_secs);
        let issue = report
            .rps
            .get(&format!("{alg}/POST /issueToken"))
            .copied()
            .unwrap_or(0.0);
        let count = ((issue * 1.3 * secs as f64) as u64 + 1000).max(12_000);
        println!(
            "signing {count} client assertions for the /token row (scenario-3-keys/jwt-private.pem, one jti each)"
        );
        let assertions = work.join("assertions.txt");
        sign_assertions(alg, count, &assertions)?;
        let rps = self.token_row(report, "POST /token (fresh jti)", &assertions)?;
        let sent = (rps * secs as f64) as u64;
        report.fresh.push(format!(
            "  {alg:<8} about {sent} requests in {secs} s, each with a new assertion ({count} signed); errors: see the row (must be 0)"
        ));
        if sent <= 10_000 {
            eprintln!(
                "note: fewer than 10,000 /token requests: raise FRESH_SECS to overflow the old cache"
            );
        }
        Ok(())
    }
}

/// `count` client assertions signed with servicea's scenario-3 key, into `out`.
fn sign_assertions(alg: &str, count: u64, out: &Path) -> Result<()> {
    let key = paths::root().join("scenario-3-keys/jwt-private.pem");
    let file = std::fs::File::create(out)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "bench",
            "-q",
            "-p",
            "jwt-factory",
            "--bench",
            "fresh_assertions",
            "--",
        ])
        .arg(key)
        .args([
            alg,
            "servicea",
            "https://jwt-factory/",
            &count.to_string(),
            "600",
        ])
        .stdout(Stdio::from(file))
        .status()?;
    if !status.success() {
        bail!("could not sign the assertions for the /token row ({status})");
    }
    Ok(())
}

/// One request; the body of its 2xx answer.
fn http(method: &str, url: &str, json: Option<&str>) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut request = client.request(method.parse()?, url);
        if let Some(body) = json {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let answer = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        Ok(answer
            .with_context(|| format!("{method} {url} failed"))?
            .text()
            .await?)
    })
}
