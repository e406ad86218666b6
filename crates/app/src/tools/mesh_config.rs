//! `app mesh-config` (scenario 10): the laptop's Envoy sidecars, configured
//! from the Istio resources under `deploy/istio/` (see the `mesh` crate).
//!
//! ```text
//! app mesh-config                                    # deploy/istio: mTLS and tokens, no policy yet
//! app mesh-config deploy/istio/steps/2-allow-nothing.yaml --wait
//! envoy -c target/mesh/serviceb/envoy.json ...       # the lines it prints
//! ```
//!
//! Run it again with other policies while the sidecars run, the way
//! `kubectl apply` changes a cluster: the files are replaced atomically,
//! each Envoy reloads them, and `--wait` returns once every sidecar runs
//! the new version (or fails, naming the one that does not).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use mesh::{Policies, Sidecar, SidecarConfig, Topology, write::Written};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Env file to load first. Default: env/mesh.env, if it exists.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Istio resources applied to every run (files, or folders of *.yaml),
    /// comma-separated.
    #[arg(
        long,
        env = "ISTIO_BASE",
        value_delimiter = ',',
        default_value = "deploy/istio"
    )]
    pub base: Vec<PathBuf>,

    /// More Istio resources on top (a step of scripts/mesh.sh).
    #[arg(value_name = "POLICY")]
    pub policies: Vec<PathBuf>,

    /// The workloads with a sidecar, `NAME=HOST:PORT` of each application,
    /// comma-separated. The Nth gets the ports SIDECAR_PORT_BASE + 10 N
    /// (admin), + 1 (inbound, mTLS) and + 2 (outbound proxy).
    #[arg(long, env = "MESH_WORKLOADS", value_delimiter = ',',
          default_value = crate::defaults::mesh_workloads(),
          value_parser = super::gateway_config::route)]
    pub workloads: Vec<(String, SocketAddr)>,

    #[arg(long, env = "SIDECAR_PORT_BASE", default_value_t = topology::SIDECAR_PORT_BASE,
          value_parser = clap::value_parser!(u16).range(1024..=60000))]
    pub port_base: u16,

    /// Services outside the mesh that policies name, `NAME=HOST:PORT`
    /// (a jwksUri at http://jwt-factory.default.svc.cluster.local:5555
    /// goes to jwt-factory's address here).
    #[arg(long, env = "MESH_SERVICES", value_delimiter = ',',
          default_value = crate::defaults::mesh_services(),
          value_parser = super::gateway_config::route)]
    pub services: Vec<(String, SocketAddr)>,

    /// How long a sidecar keeps the JWK Set it fetched. jwt-factory must
    /// publish a new key at least this long before signing with it
    /// (ROTATION_PUBLISH_AHEAD_SECS).
    #[arg(long, env = "JWKS_CACHE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub jwks_cache_secs: u64,

    /// The workload certificates' SPIFFE trust domain.
    #[arg(long, env = "TRUST_DOMAIN", default_value = s2s_web::identity::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// The CA of the workload certificates (`app gen-certs`).
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca: PathBuf,

    /// Where `<workload>.pem` and `<workload>-key.pem` are.
    #[arg(long, env = "CERTS_DIR", default_value = "certs")]
    pub certs: PathBuf,

    /// Where each sidecar's files go: RUN_DIR/<workload>/.
    #[arg(long, env = "RUN_DIR", default_value = "target/mesh")]
    pub run_dir: PathBuf,

    /// Wait until every sidecar runs what was written (they must be
    /// running), at most WAIT_SECS.
    #[arg(long)]
    pub wait: bool,

    #[arg(long, env = "WAIT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub wait_secs: u64,
}

impl Args {
    /// The topology, with absolute paths (Envoy resolves relative ones
    /// against its own working directory).
    pub fn topology(&self) -> anyhow::Result<Topology> {
        let mut sidecars = Vec::new();
        for (i, (name, app)) in self.workloads.iter().enumerate() {
            if self.workloads[..i].iter().any(|(n, _)| n == name) {
                bail!("MESH_WORKLOADS names {name} twice");
            }
            let index = u16::try_from(i + 1).context("too many workloads")?;
            let sidecar =
                Sidecar::numbered(name, *app, self.port_base, index).with_context(|| {
                    format!(
                        "SIDECAR_PORT_BASE {} leaves no ports for {name}",
                        self.port_base
                    )
                })?;
            sidecars.push(sidecar);
        }
        let absolute = |p: &Path, what: &str| {
            std::fs::canonicalize(p).with_context(|| {
                format!("{what} {}: not found. Create it with `cargo run --release --bin app -- gen-certs`", p.display())
            })
        };
        let certs = absolute(&self.certs, "CERTS_DIR")?;
        for s in &sidecars {
            for file in [
                format!("{}.pem", s.workload),
                format!("{}-key.pem", s.workload),
            ] {
                absolute(&certs.join(&file), "workload certificate")?;
            }
        }
        let td = &self.trust_domain;
        if td.is_empty()
            || !td
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            bail!("TRUST_DOMAIN {td:?}: a DNS name (lowercase letters, digits, '.', '-')");
        }
        Ok(Topology {
            trust_domain: self.trust_domain.clone(),
            namespace: "default".into(),
            ca: absolute(&self.ca, "CA_CERT_PATH")?,
            certs,
            sidecars,
            services: self.services.iter().cloned().collect::<BTreeMap<_, _>>(),
            jwks_cache: Duration::from_secs(self.jwks_cache_secs),
        })
    }

    /// Every policy file, base first.
    pub fn policy_paths(&self) -> Vec<PathBuf> {
        self.base.iter().chain(&self.policies).cloned().collect()
    }
}

/// The configuration of every sidecar, written; what each one enforces.
#[derive(Debug)]
pub struct Applied {
    pub run_dir: PathBuf,
    pub configs: Vec<SidecarConfig>,
    pub changed: Vec<String>,
}

impl Applied {
    /// The command line that runs a sidecar.
    pub fn command(&self, workload: &str) -> String {
        format!(
            "envoy -c {} --disable-hot-restart --concurrency 1 --log-level warn --drain-time-s 2",
            self.run_dir.join(workload).join("envoy.json").display()
        )
    }
}

/// Reads the policies, renders and writes every sidecar's files.
pub fn apply(args: &Args) -> anyhow::Result<Applied> {
    let topology = args.topology()?;
    let policies = Policies::load(&args.policy_paths())?;
    if args.workloads.is_empty() {
        bail!("MESH_WORKLOADS names no workload");
    }
    // 0755 whatever the umask (a umask of 002 would make them group-
    // writable, which the check below refuses); folders that exist keep
    // their mode and are checked.
    let create = |dir: &Path| {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
    };
    create(&args.run_dir)?;
    let run_dir = std::fs::canonicalize(&args.run_dir)?;
    let configs = mesh::render(&topology, &policies, &run_dir)?;
    for c in &configs {
        create(&run_dir.join(&c.sidecar.workload))?;
    }
    // The sidecars reload whatever file is moved into these folders: one
    // that others may write to lets them change what is enforced.
    let dirs = configs.iter().map(|c| run_dir.join(&c.sidecar.workload));
    for dir in std::iter::once(run_dir.clone()).chain(dirs) {
        if let Ok(meta) = std::fs::metadata(&dir) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o022 != 0 {
                bail!(
                    "{} may be written by group or others, and the sidecars load any file \
                     moved into it: `chmod go-w {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
    }
    let mut changed = Vec::new();
    for config in &configs {
        let dir = run_dir.join(&config.sidecar.workload);
        let done = mesh::write::write(config, &dir)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        for (file, what) in done {
            if what != Written::Unchanged {
                changed.push(format!("{}/{file}", config.sidecar.workload));
            }
        }
    }
    Ok(Applied {
        run_dir,
        configs,
        changed,
    })
}

/// `app mesh-config`: apply, narrate, and with `--wait` wait for every sidecar.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let applied = apply(args)?;
    let files: Vec<String> = args
        .policy_paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(
        "translated the Istio resources in {} into Envoy configuration",
        files.join(", ")
    );
    for config in &applied.configs {
        tracing::info!(
            "{}'s sidecar (admin 127.0.0.1:{}):",
            config.sidecar.workload,
            config.sidecar.admin
        );
        for line in &config.summary {
            tracing::info!("  {line}");
        }
    }
    if applied.changed.is_empty() {
        tracing::info!("nothing changed in {}", applied.run_dir.display());
    } else {
        tracing::info!(
            "wrote {} in {}",
            applied.changed.join(", "),
            applied.run_dir.display()
        );
    }
    for config in &applied.configs {
        println!("{}", applied.command(&config.sidecar.workload));
    }
    if args.wait {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        for config in &applied.configs {
            mesh::admin::wait_applied(&client, config, Duration::from_secs(args.wait_secs)).await?;
        }
        tracing::info!("every sidecar runs the new configuration");
    }
    Ok(())
}
