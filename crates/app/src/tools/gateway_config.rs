//! The gateway's nginx configuration (scenario 9), generated from the
//! template in the repository (`gateway/nginx.conf.template` and
//! `gateway/route.template`) with the ports and paths of
//! `env/gateway.env`, into a run directory of its own. nginx then runs as
//! the invoking user with that directory as its prefix:
//!
//! ```text
//! cargo run --release --bin app -- gateway-config      # writes target/gateway/nginx.conf
//! nginx -p target/gateway -c nginx.conf -e error.log   # the line it prints
//! ```
//!
//! Every value is checked before it is written into the configuration:
//! route names are service names, addresses are `host:port`, and paths are
//! existing files with no character nginx would read as syntax.

use std::{
    net::SocketAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;

const MAIN: &str = include_str!("../../../../gateway/nginx.conf.template");
const ROUTE: &str = include_str!("../../../../gateway/route.template");

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Env file to load first. Default: env/gateway.env, if it exists.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Where nginx listens (the gateway's address).
    #[arg(long, env = "GATEWAY_LISTEN", default_value = crate::defaults::gateway_listen())]
    pub listen: SocketAddr,

    /// The verifier nginx asks about each request (`app verifier`).
    #[arg(long, env = "VERIFIER_ADDR", default_value = crate::defaults::verifier_addr())]
    pub verifier: SocketAddr,

    /// The routes: `NAME=HOST:PORT` of each service's https (mTLS)
    /// listener, comma-separated. `/NAME/...` leads there.
    #[arg(long, env = "GATEWAY_ROUTES", value_delimiter = ',',
          default_value = crate::defaults::gateway_routes(),
          value_parser = route)]
    pub routes: Vec<(String, SocketAddr)>,

    /// The gateway's workload certificate, presented to the services, with
    /// its private key beside it (NAME-key.pem).
    #[arg(long, env = "GATEWAY_CERT_PATH", default_value = "certs/gateway.pem")]
    pub cert: PathBuf,

    /// The CA the services' certificates must chain to.
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca: PathBuf,

    /// nginx's prefix: the configuration, pid, logs and temp files.
    #[arg(long, env = "RUN_DIR", default_value = "target/gateway")]
    pub run_dir: PathBuf,

    /// Time to connect to the verifier or a service, ms.
    #[arg(long, env = "CONNECT_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub connect_timeout_ms: u64,

    /// Time the verifier has to answer, ms; then 503.
    #[arg(long, env = "AUTH_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub auth_timeout_ms: u64,

    /// Time a service has to answer, ms; then 502.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub request_timeout_ms: u64,
}

pub(crate) fn route(raw: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?}: a route is NAME=HOST:PORT"))?;
    let name = crate::settings::key_id(name)?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{raw:?}: {addr:?} is not HOST:PORT ({e})"))?;
    Ok((name, addr))
}

/// What `write` wrote.
#[derive(Debug)]
pub struct Written {
    pub run_dir: PathBuf,
    pub config: PathBuf,
}

impl Written {
    /// The command line that runs nginx with it.
    pub fn command(&self) -> String {
        format!(
            "nginx -p {} -c nginx.conf -e error.log",
            self.run_dir.display()
        )
    }
}

/// A path nginx can read as one token: absolute, existing, no syntax.
fn nginx_path(path: &Path, what: &str) -> anyhow::Result<String> {
    let abs = path.canonicalize().with_context(|| {
        format!(
            "{what} {}: not found (run `cargo run --release --bin app -- gen-certs`)",
            path.display()
        )
    })?;
    let text = abs
        .to_str()
        .with_context(|| format!("{what} {}: not UTF-8", abs.display()))?;
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || ";{}'\"\\$#".contains(c))
    {
        bail!("{what} {text}: nginx would misread this path (spaces, quotes, ; {{ }} $ #)");
    }
    Ok(text.to_owned())
}

fn ms(v: u64) -> String {
    format!("{}ms", Duration::from_millis(v).as_millis())
}

/// The configuration for `args`, rendered (nothing is written).
pub fn render(args: &Args, run_dir: &str) -> anyhow::Result<String> {
    if args.routes.is_empty() {
        bail!("GATEWAY_ROUTES is empty: name at least one service");
    }
    let mut upstreams = String::new();
    let mut routes = String::new();
    for (name, addr) in &args.routes {
        // Idle connections kept: as many as the gateway's busiest load
        // holds at once (see the verifier's upstream in the template).
        upstreams.push_str(&format!(
            "    upstream {name} {{\n        server {addr};\n        keepalive 64;\n    }}\n"
        ));
        routes.push_str(
            &ROUTE
                .replace("{{NAME}}", name)
                .replace("{{CONNECT_TIMEOUT}}", &ms(args.connect_timeout_ms))
                .replace("{{AUTH_TIMEOUT}}", &ms(args.auth_timeout_ms)),
        );
    }
    // Running as root, nginx would hand its workers to `nobody`, who can
    // read neither the run directory nor the key: keep the invoking user.
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let user = if as_root { "user root;" } else { "" };
    Ok(MAIN
        .replace("{{UPSTREAMS}}", &upstreams)
        .replace("{{ROUTES}}", &routes)
        .replace("{{RUN_DIR}}", run_dir)
        .replace("{{USER_DIRECTIVE}}", user)
        .replace("{{LISTEN}}", &args.listen.to_string())
        .replace("{{VERIFIER}}", &args.verifier.to_string())
        .replace("{{CERT}}", &nginx_path(&args.cert, "gateway certificate")?)
        .replace(
            "{{KEY}}",
            &nginx_path(
                &crate::settings::key_beside_cert("GATEWAY_KEY_PATH", &args.cert),
                "gateway key",
            )?,
        )
        .replace("{{CA}}", &nginx_path(&args.ca, "CA certificate")?)
        .replace("{{CONNECT_TIMEOUT}}", &ms(args.connect_timeout_ms))
        .replace("{{READ_TIMEOUT}}", &ms(args.request_timeout_ms)))
}

/// Writes `RUN_DIR/nginx.conf` and the temp directories nginx needs.
pub fn write(args: &Args) -> anyhow::Result<Written> {
    std::fs::create_dir_all(args.run_dir.join("tmp"))
        .with_context(|| format!("cannot create {}", args.run_dir.display()))?;
    let run_dir = nginx_path(&args.run_dir, "RUN_DIR")?;
    let config = render(args, &run_dir)?;
    let path = args.run_dir.join("nginx.conf");
    s2s_auth::files::write_atomic(&path, config.as_bytes(), s2s_auth::files::PUBLIC)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Written {
        run_dir: PathBuf::from(run_dir),
        config: path,
    })
}
