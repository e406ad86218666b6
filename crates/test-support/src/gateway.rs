//! The gateway of scenario 9 for tests: the verifier in this process, and
//! a real nginx (Debian's package) as a child process, with the
//! configuration `app gateway-config` renders, in a temp run directory, on
//! free ports.
//!
//! nginx must be installed (`scripts/test.sh` installs it): a test that
//! needs it fails loudly when it is missing, it is never skipped.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use app::{Role, tools::gateway_config, verifier};
use clap::Parser as _;

use crate::{Options, Running, Stack, bind};

/// The nginx binary: on `PATH`, or Debian's `/usr/sbin/nginx` (the same
/// lookup as the supervisor's, `cargo xtask`).
pub fn nginx_binary() -> PathBuf {
    xtask::install::nginx_binary().unwrap_or_else(|| {
        panic!(
            "nginx is not installed: the gateway tests need the real one. \
             Run `scripts/test.sh` (it installs nginx), or `apt-get install nginx`"
        )
    })
}

/// The verifier's flags for a stack: the stack's factory, its algorithm,
/// routes serviceb and servicec; then `extra`.
pub fn verifier_flags(s: &Stack, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--host",
        "127.0.0.1",
        "--jwt-factory-endpoint",
        &s.factory.url(),
        "--algorithm",
        s.alg,
        "--caller",
        "servicea",
        "--factory-issuer",
        "https://jwt-factory/",
        "--leeway-secs",
        "5",
    ]
    .map(String::from)
    .to_vec();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

/// Starts the verifier in this process on `listener`.
pub fn start_verifier_on(listener: tokio::net::TcpListener, flags: &[String]) -> Running {
    crate::init();
    let mut argv = vec!["app".to_owned(), Role::Verifier.name().to_owned()];
    argv.extend_from_slice(flags);
    let args = match app::cli::Cli::try_parse_from(&argv) {
        Ok(app::cli::Cli {
            command: app::cli::Command::Verifier(a),
        }) => a,
        other => panic!("{argv:?}: {other:?}"),
    };
    let state = verifier::State::new(args.settle()).unwrap();
    Running::spawn(listener.local_addr().unwrap(), |shutdown| {
        verifier::run(state, listener, shutdown)
    })
}

/// A running nginx (one process, no master: see [`start_nginx`]); killed
/// when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    pub run_dir: PathBuf,
    child: tokio::process::Child,
}

impl Gateway {
    /// `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    /// nginx's error log so far (for assertion messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("error.log")).unwrap_or_default()
    }

    /// Stops nginx (SIGKILL) and waits for it.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Renders the gateway configuration for `s` into `run_dir` (nginx on
/// `listen`, the verifier at `verifier`, routes to the stack's serviceb
/// and servicec https listeners, the stack's gateway certificate), with
/// `timeouts` (connect, auth, request, ms).
pub fn config_for(
    s: &Stack,
    run_dir: &Path,
    listen: SocketAddr,
    verifier: SocketAddr,
    timeouts: [u64; 3],
) -> gateway_config::Args {
    let (cert, _key) = s.files.workload("gateway");
    gateway_config::Args {
        env_file: None,
        listen,
        verifier,
        routes: vec![
            ("serviceb".to_owned(), s.b.https.unwrap()),
            ("servicec".to_owned(), s.c.https.unwrap()),
        ],
        cert,
        ca: s.files.ca(),
        run_dir: run_dir.to_path_buf(),
        connect_timeout_ms: timeouts[0],
        auth_timeout_ms: timeouts[1],
        request_timeout_ms: timeouts[2],
    }
}

/// Writes `args`' configuration and starts nginx with it; returns once
/// `/gateway/health` answers.
pub async fn start_nginx(args: &gateway_config::Args) -> Gateway {
    let written = gateway_config::write(args).unwrap();
    run_nginx(
        &written.run_dir,
        "nginx.conf",
        args.listen,
        "/gateway/health",
    )
    .await
}

/// Starts nginx with `run_dir/conf` (listening on `listen`); returns once
/// `health` answers 2xx through it.
pub async fn run_nginx(run_dir: &Path, conf: &str, listen: SocketAddr, health: &str) -> Gateway {
    let child = tokio::process::Command::new(nginx_binary())
        .arg("-p")
        .arg(run_dir)
        .args(["-c", conf, "-e", "error.log"])
        // One process: killing it (on drop) leaves no worker behind.
        .args(["-g", "master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting nginx");
    let mut gateway = Gateway {
        addr: listen,
        run_dir: run_dir.to_path_buf(),
        child,
    };
    let health = gateway.url(health);
    let run_dir = gateway.run_dir.clone();
    crate::wait_child_answers(
        &mut gateway.child,
        &reqwest::Client::new(),
        &health,
        Duration::from_secs(10),
        || std::fs::read_to_string(run_dir.join("error.log")).unwrap_or_default(),
    )
    .await;
    gateway
}

/// nginx in front of factory replicas (round robin, [`xtask::factory_lb`])
/// on a free address, rendered into `run_dir`; returns once a replica
/// answers `/utils/keys` through it.
pub async fn start_factory_lb(run_dir: &Path, replicas: &[SocketAddr]) -> Gateway {
    let listen = free_addr().await;
    xtask::factory_lb::write(run_dir, listen, replicas).unwrap();
    run_nginx(run_dir, "factory-lb.conf", listen, "/utils/keys").await
}

/// A free address on 127.0.0.1 for nginx, which binds it itself: from
/// below the ephemeral range, handed out once per process (as Envoy's
/// ports, [`crate::mesh`]), so no `bind(0)` of the stack can take it
/// before nginx does.
pub async fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], crate::mesh::free_ports(1)[0]))
}

/// The whole stack behind a real nginx: the stack (servicea told the
/// gateway's address from the start), the verifier, nginx.
pub struct Edge {
    pub s: Stack,
    /// The verifier nginx asks (none when nginx asks another address).
    pub verifier: Option<Running>,
    pub gateway: Gateway,
}

impl Edge {
    /// The stack with `opts`, and nginx with `timeouts` (connect, auth,
    /// request, ms), asking `verifier_at` if given, else a verifier of its
    /// own.
    pub async fn start(opts: Options, verifier_at: Option<SocketAddr>, timeouts: [u64; 3]) -> Self {
        Self::start_verifier_with(opts, verifier_at, timeouts, &[]).await
    }

    /// As [`Edge::start`], the verifier (if its own) started with `extra`
    /// flags too (e.g. `--production`).
    pub async fn start_verifier_with(
        mut opts: Options,
        verifier_at: Option<SocketAddr>,
        timeouts: [u64; 3],
        extra: &[&str],
    ) -> Self {
        let listen = free_addr().await;
        opts.a_args.extend([
            "--gateway-endpoint".into(),
            format!("http://127.0.0.1:{}", listen.port()),
        ]);
        let s = Stack::start(opts).await;
        let verifier = match verifier_at {
            Some(_) => None,
            None => Some(start_verifier_on(bind().await, &verifier_flags(&s, extra))),
        };
        let asked = verifier_at.unwrap_or_else(|| verifier.as_ref().map_or(listen, |v| v.addr));
        let args = config_for(&s, &s.path("gateway"), listen, asked, timeouts);
        let gateway = start_nginx(&args).await;
        Self {
            s,
            verifier,
            gateway,
        }
    }
}
