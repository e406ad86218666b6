//! What comes before the first process starts: the release build, the
//! certificates, free ports, and the configuration files nginx and the
//! Envoy sidecars read (`app gateway-config`, `app mesh-config`).

use std::{
    fs::OpenOptions,
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{install, paths, say};

/// `cargo build --release --bin app --bin jwt-factory`.
pub fn build() -> Result<()> {
    say::step("building (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    install::run(Command::new(cargo).args([
        "build",
        "--release",
        "--bin",
        "app",
        "--bin",
        "jwt-factory",
    ]))
}

/// `app gen-certs`: idempotent, so it runs every time, and the line
/// printed is the line run.
pub fn certs() -> Result<()> {
    say::step("the local CA and localhost certificate (created once, then kept)");
    let app = paths::release_bin("app");
    say::shown(&format!("{} gen-certs", paths::shown(&app)));
    install::run(Command::new(&app).arg("gen-certs"))
}

/// Fails naming the first port of the stack something already listens on.
pub fn ports_free() -> Result<()> {
    for port in topology::all_ports() {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            bail!(
                "port {port} is in use: stop whatever runs there (an earlier demo? `cargo xtask down`) and retry"
            );
        }
    }
    Ok(())
}

/// `app TOOL args...`, stderr appended to `LOGS/TOOL.log`; its stdout.
fn app_tool(tool: &str, args: &[&str]) -> Result<String> {
    let log_path = paths::log_of(tool);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let out = Command::new(paths::release_bin("app"))
        .arg(tool)
        .args(args)
        .stderr(Stdio::from(log))
        .output()
        .with_context(|| format!("cannot run app {tool}"))?;
    if !out.status.success() {
        bail!(
            "app {tool} {} failed ({}); its log:\n{}",
            args.join(" "),
            out.status,
            say::tail(&log_path, 10)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes nginx's configuration; returns the command line that runs it.
pub fn gateway_config() -> Result<Vec<String>> {
    let app = paths::shown(&paths::release_bin("app"));
    say::shown(&format!(
        "{app} gateway-config   # target/gateway/nginx.conf from gateway/nginx.conf.template and env/gateway.env"
    ));
    let line = app_tool("gateway-config", &[])?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

/// Writes the sidecars' files (`target/mesh/<workload>/`).
pub fn mesh_config() -> Result<()> {
    let app = paths::shown(&paths::release_bin("app"));
    say::shown(&format!(
        "{app} mesh-config      # target/mesh/<workload>/*.json from the Istio YAML in deploy/istio and env/mesh.env"
    ));
    app_tool("mesh-config", &[]).map(|_| ())
}

/// Returns once every sidecar runs the configuration `mesh_config` wrote:
/// ready is not enough, a sidecar that rejected a file runs without it.
pub fn mesh_config_applied() -> Result<()> {
    app_tool("mesh-config", &["--wait"])
        .context("a sidecar does not run its configuration (logs: sidecar-*.log)")?;
    println!("every sidecar runs the configuration app mesh-config wrote");
    Ok(())
}
