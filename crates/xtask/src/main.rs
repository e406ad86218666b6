//! `cargo xtask`: the command line. Each verb is one module's job; this
//! file only parses and dispatches, and reports an error the scripts' way.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::{control, install, jwks, openbao, paths, test_cmd, up};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "Install, start, supervise and stop the workshop's stack"
)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Install what is missing (default: what the tests need).
    Install { tools: Vec<install::Tool> },
    /// Build, then start the nine processes and supervise them.
    Up(up::UpArgs),
    /// The background supervisor `up --detach` starts.
    #[command(hide = true)]
    Supervise(up::SuperviseArgs),
    /// Stop every process and the supervisor (nothing running: nothing to do).
    Down,
    /// Stop one process of the running stack (SIGTERM, then SIGKILL).
    Stop { name: String },
    /// Start one stopped process again and wait until it answers.
    Start {
        name: String,
        /// jwt-factory or servicea: with its keys in OpenBao (`cargo xtask
        /// openbao up` first), logged in with its credentials in openbao/.
        #[arg(long)]
        openbao: bool,
    },
    /// OpenBao for scenario 11: `up` (a dev server, configured), `down`,
    /// `audit [PATH_PART]` (its audit log, one line a request), `revoke ROLE`.
    Openbao {
        #[command(subcommand)]
        action: OpenbaoAction,
    },
    /// `NAME PID READY_MS URL`, one line per running process.
    Status,
    /// Callers on servicea in the background, for the key rotation.
    Load {
        #[command(subcommand)]
        action: LoadAction,
    },
    /// Wait until serviceb's sidecar has fetched the factory's keys again.
    WaitSidecarJwks,
    /// The load benchmark's tables (settings from DURATION, ALGORITHMS, ...).
    Bench,
    /// deploy/ checked offline: ConfigMaps current, the manifests, the
    /// Istio resources (K8S_DIR, ISTIO_DIR, ISTIO_SCHEMAS_DIR).
    ValidateDeploy,
    /// Install what the tests need, then `cargo test --workspace ARGS`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum OpenbaoAction {
    /// Start `bao server -dev` and configure it (engines, policy, AppRole).
    Up,
    /// Stop it.
    Down,
    /// Its audit log, one line per request (only paths containing FILTER).
    Audit { filter: Option<String> },
    /// Revoke ROLE centrally: its secret ids destroyed, its tokens revoked.
    Revoke { role: String },
    /// Workload certificates from OpenBao's PKI engine, in gen-certs'
    /// layout (default target/openbao/certs), renewed with --renew.
    Certs {
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long)]
        renew: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LoadAction {
    /// One caller per PATH (e.g. /scenario5), without pause.
    Start { paths: Vec<String> },
    /// Stop them; fails unless there were calls and none failed.
    Stop,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match std::env::set_current_dir(paths::root())
        .map_err(Into::into)
        .and_then(|()| run(cli.command))
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cargo xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(verb: Verb) -> Result<ExitCode> {
    match verb {
        Verb::Install { tools } => {
            let tools = if tools.is_empty() {
                install::FOR_TESTS.to_vec()
            } else {
                tools
            };
            tools.into_iter().try_for_each(install::ensure)?;
        }
        Verb::Up(args) => return up::up(&args),
        Verb::Supervise(args) => return up::supervise(&args, false),
        Verb::Down => runtime()?.block_on(control::down())?,
        Verb::Stop { name } => control::send(&format!("stop {name}"))?,
        Verb::Start { name, openbao } => {
            let mut command = format!("start {name}");
            if openbao {
                command.push_str(" --openbao");
            }
            control::send(&command)?;
        }
        Verb::Openbao { action } => match action {
            OpenbaoAction::Up => runtime()?.block_on(openbao::up())?,
            OpenbaoAction::Down => runtime()?.block_on(openbao::down())?,
            OpenbaoAction::Audit { filter } => openbao::audit(filter.as_deref())?,
            OpenbaoAction::Revoke { role } => runtime()?.block_on(openbao::revoke(&role))?,
            OpenbaoAction::Certs { dir, ttl, renew } => {
                runtime()?.block_on(xtask::openbao_certs::run(dir, &ttl, renew))?;
            }
        },
        Verb::Status => control::send("status")?,
        Verb::Load {
            action: LoadAction::Start { paths },
        } => {
            control::send(&format!("load-start {}", paths.join(" ")))?;
        }
        Verb::Load {
            action: LoadAction::Stop,
        } => control::send("load-stop")?,
        Verb::WaitSidecarJwks => runtime()?.block_on(jwks::wait_refresh())?,
        Verb::Bench => xtask::bench::run()?,
        Verb::ValidateDeploy => xtask::validate_deploy::run()?,
        Verb::Test { args } => test_cmd::run(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
