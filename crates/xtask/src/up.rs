//! `cargo xtask up`: from a fresh clone to a running stack. Builds,
//! installs what is missing, checks the ports are free, writes nginx's and
//! the sidecars' configuration, then starts and supervises the nine
//! processes: in the foreground (Ctrl-C stops them), or with `--detach` in
//! a background supervisor that `up` waits for until the stack is ready.

use std::{
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    commands::Supervised,
    control, install, paths, prepare, ready, say, spec,
    stack::Stack,
    supervise::{self, Options},
};

/// The longest a detached start may take before it counts as failed (each
/// process's own wait is bounded, this bounds them all).
const UP_WITHIN: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Return once the stack is ready and leave it running under a
    /// background supervisor (`cargo xtask down` stops it).
    #[arg(long)]
    pub detach: bool,
    /// Make servicea's keys if they are missing (as the console and the
    /// mesh walk need; the demo makes them step by step).
    #[arg(long)]
    pub keys: bool,
    /// The pid of the script the stack belongs to: its exit stops the
    /// stack, and a failed process stops it (SIGTERM).
    #[arg(long)]
    pub owner: Option<u32>,
    /// Skip `cargo build --release` (already done).
    #[arg(long)]
    pub no_build: bool,
}

/// The detached supervisor (`up --detach` starts it; not for people).
#[derive(clap::Args, Debug)]
pub struct SuperviseArgs {
    #[arg(long)]
    pub owner: Option<u32>,
    #[arg(long)]
    pub keys: bool,
    #[arg(long)]
    pub envoy: PathBuf,
    /// nginx's command line.
    #[arg(last = true)]
    pub nginx: Vec<String>,
}

/// `cargo xtask up`.
pub fn up(args: &UpArgs) -> Result<ExitCode> {
    if let Some(pid) = control::running_supervisor() {
        bail!("a stack is running already (supervisor pid {pid}): `cargo xtask down` stops it");
    }
    if !args.no_build {
        prepare::build()?;
    }
    prepare::certs()?;
    install::ensure(install::Tool::Nginx)?;
    let envoy = match std::env::var_os("ENVOY_BIN") {
        Some(path) => PathBuf::from(path),
        None => install::venv()?,
    };
    prepare::ports_free()?;
    let logs = paths::logs();
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    say::step(&format!(
        "starting the four services, the gateway's verifier, the gateway (nginx) and three Envoy sidecars (logs in {}/)",
        paths::shown(&logs)
    ));
    let nginx = prepare::gateway_config()?;
    prepare::mesh_config()?;
    let sup = SuperviseArgs {
        owner: args.owner,
        keys: args.keys,
        envoy,
        nginx,
    };
    if args.detach {
        detach(&sup)
    } else {
        supervise(&sup, true)
    }
}

/// Runs the supervisor in this process until the stack ends.
pub fn supervise(args: &SuperviseArgs, banner: bool) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ca =
        std::fs::read(paths::root().join("certs/ca.pem")).context("cannot read certs/ca.pem")?;
    let client = ready::client(&ca)?;
    let supervised = Supervised {
        stack: Stack::new(spec::stack(&args.nginx, &args.envoy), client.clone()),
        load: None,
        client,
    };
    let options = Options {
        owner: args.owner,
        keys: args.keys,
        banner,
    };
    runtime.block_on(supervise::run(supervised, options))
}

/// Starts the supervisor in the background and waits until the stack is
/// ready, or the supervisor has given up (it narrates why).
fn detach(args: &SuperviseArgs) -> Result<ExitCode> {
    let _ = std::fs::remove_file(paths::ready_marker());
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("supervise").arg("--envoy").arg(&args.envoy);
    if let Some(owner) = args.owner {
        cmd.arg("--owner").arg(owner.to_string());
    }
    if args.keys {
        cmd.arg("--keys");
    }
    let mut child = cmd
        .arg("--")
        .args(&args.nginx)
        .stdin(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while started.elapsed() < UP_WITHIN {
        if let Some(status) = child.try_wait()? {
            bail!("the stack did not start (supervisor: {status}; why: above)");
        }
        if paths::ready_marker().is_file() {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the stack was not ready within {UP_WITHIN:?}: `cargo xtask down` stops what started")
}
