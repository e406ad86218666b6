//! The floor each row's CPU per request is judged against, measured in
//! the same run (issue 23): what this machine asks for the work a request
//! cannot avoid.
//!
//! - A *hop end* is one side of one HTTP exchange. Its cost is measured
//!   with a minimal server (nginx's `return 200`, one worker, no master)
//!   and a minimal client (wrk), kept alive on loopback, plain and over
//!   TLS: (server's + client's CPU per request) / 2.
//! - The cryptography: each algorithm's signature and verification, from
//!   `openssl speed` (the same primitives aws-lc-rs implements).
//!
//! A row's floor is its signatures and verifications plus its hop ends at
//! that cost ([`Shape`]). The services' CPU per request over it ("x
//! floor") is what their plumbing costs beyond what the hardware asks.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    procstat,
    wrk::{self, Load},
};
use crate::{install, paths, say};

/// What one row's request does that no implementation can skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub signatures: u32,
    pub verifications: u32,
    /// Hop ends over plain http (the client's side of the first hop is
    /// the load generator's, not counted).
    pub plain: u32,
    /// Hop ends over kept-alive TLS.
    pub tls: u32,
}

/// The shape of a row, by its name (`(log info)` and `?trace=1` rows
/// have their plain row's shape); `None` for a row with no model.
pub fn shape(row: &str) -> Option<Shape> {
    // With the factory's keys in OpenBao: the same work, plus the call to
    // OpenBao (two more plain hop ends) for each signature, and for
    // /token's shared jti record.
    if let Some(base) = row.strip_suffix(" +openbao") {
        let mut s = shape(base)?;
        s.plain += 2 * s.signatures;
        if base.starts_with("POST /token") {
            s.plain += 2;
        }
        return Some(s);
    }
    let base = row
        .trim_end_matches(" (log info)")
        .trim_end_matches(" (1 conn)")
        .trim_end_matches("?trace=1");
    let s = |signatures, verifications, plain, tls| Shape {
        signatures,
        verifications,
        plain,
        tls,
    };
    Some(match base {
        // servicea's answer; servicea → factory; servicea → serviceb;
        // serviceb → factory: 1 + 2 + 2 + 2.
        "GET /scenario1" => s(1, 1, 7, 0),
        "GET /scenario2" => s(2, 2, 13, 0),
        // servicea signs; serviceb verifies; the call over TLS.
        "GET /scenario3" => s(1, 1, 1, 2),
        "GET /scenario4" => s(2, 2, 1, 4),
        "GET /scenario5" => s(1, 1, 5, 0),
        // A cached access token: serviceb's verification only.
        "GET /scenario6" => s(0, 1, 3, 0),
        "GET /scenario7" => s(0, 0, 1, 2),
        "GET /scenario8" => s(0, 1, 1, 2),
        // servicea → nginx → verifier (plain), nginx → serviceb (mTLS).
        "GET /scenario9" => s(0, 1, 5, 2),
        // servicea → its sidecar → (mTLS) → serviceb's sidecar → serviceb.
        "GET /scenario10" => s(0, 1, 5, 2),
        "POST /issueToken" => s(1, 0, 1, 0),
        "POST /verify" => s(0, 1, 1, 0),
        // The client assertion's verification, then the token's signature.
        "POST /token (fresh jti)" => s(1, 1, 1, 0),
        _ => return None,
    })
}

/// Algorithm → (one signature, one verification), µs of CPU.
pub type Costs = BTreeMap<String, (f64, f64)>;

/// The costs measured in this run, in microseconds of CPU.
#[derive(Debug, Default, Clone)]
pub struct Floor {
    /// One hop end over plain http, and over TLS.
    pub hop_plain_us: f64,
    pub hop_tls_us: f64,
    /// Algorithm (RS256, ES256, ...) → (signature, verification).
    pub crypto: Costs,
    /// Single-core RSA-2048 signatures per second.
    pub rsa_sign_rate: f64,
}

impl Floor {
    /// The floor of a request of `shape` signed with `alg`.
    pub fn of(&self, alg: &str, shape: Shape) -> Option<f64> {
        let (sign, verify) = *self.crypto.get(alg)?;
        Some(
            f64::from(shape.signatures) * sign
                + f64::from(shape.verifications) * verify
                + f64::from(shape.plain) * self.hop_plain_us
                + f64::from(shape.tls) * self.hop_tls_us,
        )
    }
}

/// Measures the floor: the cryptography, then the hop ends.
pub fn measure(secs: u64, connections: u32) -> Result<Floor> {
    let (crypto, rsa_sign_rate) = crypto()?;
    let (hop_plain_us, hop_tls_us) = hop_ends(secs, connections)?;
    println!(
        "floor: one hop end costs {hop_plain_us:.1} µs plain, {hop_tls_us:.1} µs over TLS (nginx return 200 and wrk, kept alive, c{connections})"
    );
    Ok(Floor {
        hop_plain_us,
        hop_tls_us,
        crypto,
        rsa_sign_rate,
    })
}

/// `openssl speed`'s per-operation costs of each algorithm the services
/// sign with.
fn crypto() -> Result<(Costs, f64)> {
    say::step(
        "measuring signatures and verifications on one core (openssl speed -mr -seconds 3 rsa2048 ecdsap256 ed25519)",
    );
    // Machine-readable: `+F2:i:bits:sign/s:verify/s[:...]` for RSA, `+F4`
    // for ECDSA, `+F6:i:bits:name:sign/s:verify/s` for EdDSA; the first two
    // rates are sign and verify in every OpenSSL 3 (3.2 adds encrypt and
    // decrypt after them).
    let out = Command::new("openssl")
        .args([
            "speed",
            "-mr",
            "-seconds",
            "3",
            "rsa2048",
            "ecdsap256",
            "ed25519",
        ])
        .stderr(Stdio::null())
        .output()
        .context("cannot run openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rates = |tag: &str| rates_of(&text, tag);
    let us = |(sign, verify): (f64, f64)| (1e6 / sign, 1e6 / verify);
    let rsa = rates("+F2:")?;
    let ecdsa = rates("+F4:")?;
    let eddsa = rates("+F6:")?;
    let mut crypto = BTreeMap::new();
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        crypto.insert(alg.to_owned(), us(rsa));
    }
    crypto.insert("ES256".to_owned(), us(ecdsa));
    crypto.insert("EdDSA".to_owned(), us(eddsa));
    println!(
        "openssl: RSA-2048 {:.0} signatures/s, {:.0} verifications/s; P-256 {:.0}/s, {:.0}/s; Ed25519 {:.0}/s, {:.0}/s (one core)",
        rsa.0, rsa.1, ecdsa.0, ecdsa.1, eddsa.0, eddsa.1
    );
    Ok((crypto, rsa.0))
}

/// The sign and verify rates of `openssl speed -mr`'s line `tag`.
fn rates_of(text: &str, tag: &str) -> Result<(f64, f64)> {
    let line = text
        .lines()
        .find(|l| l.starts_with(tag))
        .with_context(|| format!("openssl speed -mr printed no {tag} line"))?;
    let numbers: Vec<f64> = line
        .split(':')
        .skip(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [sign, verify, ..] if sign > 0.0 && verify > 0.0 => Ok((sign, verify)),
        _ => bail!("cannot read openssl's rates from {line:?}"),
    }
}

/// One hop end's CPU, plain and over TLS: nginx answering `return 200`
/// to wrk on loopback, kept alive.
fn hop_ends(secs: u64, connections: u32) -> Result<(f64, f64)> {
    say::step(
        "measuring one hop end: nginx's return 200 (one worker) and wrk, on loopback, kept alive, plain and TLS",
    );
    let dir = paths::target().join("bench-logs/floor");
    std::fs::create_dir_all(&dir)?;
    let [plain, tls] = [free_port()?, free_port()?];
    std::fs::write(dir.join("nginx.conf"), config(&dir, plain, tls))?;
    let nginx = install::nginx_binary().context("nginx is not installed")?;
    let mut server = Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nginx for the floor")?;
    let measured = (|| {
        wait_listening(&mut server, plain)?;
        wait_listening(&mut server, tls)?;
        let pid = server.id();
        let plain = one_hop_end(
            pid,
            &format!("http://127.0.0.1:{plain}/"),
            secs,
            connections,
        )?;
        let tls = one_hop_end(pid, &format!("https://127.0.0.1:{tls}/"), secs, connections)?;
        Ok((plain, tls))
    })();
    crate::child::terminate(server.id());
    stop_within(&mut server, Duration::from_secs(10));
    measured
}

/// (server + client CPU per request) / 2 for a load of `url`.
fn one_hop_end(server: u32, url: &str, secs: u64, connections: u32) -> Result<f64> {
    let load = Load {
        connections,
        url,
        script: None,
        env: vec![],
    };
    let _ = wrk::run(&load, 1);
    let before = procstat::ticks(server);
    let m = wrk::run(&load, secs)?;
    let after = procstat::ticks(server);
    if m.requests == 0 || m.errors > 0 {
        bail!(
            "the floor's load of {url} failed: {} requests, {} errors",
            m.requests,
            m.errors
        );
    }
    let ticks = after.saturating_sub(before) + m.wrk_ticks;
    Ok((ticks * procstat::tick_us()) as f64 / m.requests as f64 / 2.0)
}

/// nginx at its leanest: one process, no logs, keep-alive without limit,
/// a fixed answer; TLS with the local CA's localhost certificate.
fn config(dir: &Path, plain: u16, tls: u16) -> String {
    let certs = paths::root().join("certs");
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid {pid};\nerror_log {err} warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 10000000;\n  keepalive_timeout 60s;\n\
         \x20 client_body_temp_path {tmp};\n\
         \x20 server {{ listen 127.0.0.1:{plain}; location / {{ return 200 \"hello\"; }} }}\n\
         \x20 server {{ listen 127.0.0.1:{tls} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
         \x20   location / {{ return 200 \"hello\"; }} }}\n}}\n",
        pid = dir.join("nginx.pid").display(),
        err = dir.join("error.log").display(),
        tmp = dir.display(),
        cert = certs.join("localhost.pem").display(),
        key = certs.join("localhost-key.pem").display(),
    )
}

/// Waits `within` for `server` to exit after SIGTERM, then kills it.
fn stop_within(server: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Until `port` accepts a connection (10 s at most), or the server exits.
fn wait_listening(server: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait()? {
            bail!("nginx for the floor exited ({status}): see target/bench-logs/floor/error.log");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("nginx for the floor did not listen on {port} within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_row_has_a_shape_and_variants_share_it() {
        for row in [
            "GET /scenario1",
            "GET /scenario1 (1 conn)",
            "GET /scenario1?trace=1",
            "GET /scenario1 (log info)",
            "GET /scenario10",
            "POST /token (fresh jti)",
        ] {
            assert!(shape(row).is_some(), "{row}");
        }
        assert_eq!(shape("GET /scenario1?trace=1"), shape("GET /scenario1"));
        assert_eq!(shape("GET /nothing"), None);
    }

    #[test]
    fn openssl_machine_readable_rates_are_read_in_every_openssl_3() {
        // OpenSSL 3.0 and 3.2+ (encrypt and decrypt rates after verify).
        let text = "+DTP:2048:private:rsa:3\n+F2:2:2048:3414.49:51630.64\n\
                    +F4:3:256:49715.2:17660.0\n+F6:0:253:Ed25519:25289.0:10677.2\n\
                    +F2:2:4096:500.5:9000.0:8000.0:400.0\n";
        assert_eq!(rates_of(text, "+F2:").unwrap(), (3414.49, 51630.64));
        assert_eq!(rates_of(text, "+F4:").unwrap(), (49715.2, 17660.0));
        assert_eq!(rates_of(text, "+F6:").unwrap(), (25289.0, 10677.2));
        assert_eq!(
            rates_of("+F2:2:4096:500.5:9000:8000:400\n", "+F2:").unwrap(),
            (500.5, 9000.0)
        );
        assert!(rates_of("nothing", "+F2:").is_err());
    }

    #[test]
    fn the_floor_adds_cryptography_and_hop_ends() {
        let floor = Floor {
            hop_plain_us: 10.0,
            hop_tls_us: 20.0,
            crypto: BTreeMap::from([("RS256".to_owned(), (500.0, 20.0))]),
            rsa_sign_rate: 2000.0,
        };
        let s1 = shape("GET /scenario1").unwrap();
        assert_eq!(floor.of("RS256", s1), Some(500.0 + 20.0 + 70.0));
        let s3 = shape("GET /scenario3").unwrap();
        assert_eq!(floor.of("RS256", s3), Some(500.0 + 20.0 + 10.0 + 40.0));
        assert_eq!(floor.of("ES384", s1), None);
    }
}
