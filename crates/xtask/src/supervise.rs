//! The supervisor: starts the stack, says when it is ready (the ready
//! marker), then watches it until `cargo xtask down`, Ctrl-C (SIGINT or
//! SIGTERM), the exit of the script that owns it, or the failure of any
//! process; in every case it stops every process. A failure is narrated:
//! which process, and the last lines of its log.

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, Result};
use tokio::{
    net::UnixListener,
    signal::unix::{SignalKind, signal},
};

use crate::{
    child,
    commands::{self, Next, Supervised},
    keys, paths, prepare, say,
    stack::Failure,
};

/// How the supervision ended.
#[derive(Debug)]
enum Ending {
    Down,
    Interrupted,
    OwnerGone,
    Failed,
}

/// How to supervise.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The pid of the script to stop on a failure, and to outlive by nothing.
    pub owner: Option<u32>,
    /// Make servicea's keys once the stack is ready.
    pub keys: bool,
    /// Say where the console is once ready (the foreground `up`).
    pub banner: bool,
}

/// Runs the stack until it ends.
pub async fn run(mut supervised: Supervised, options: Options) -> Result<ExitCode> {
    let dir = paths::control_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(paths::pid_file(), std::process::id().to_string())?;
    let _ = std::fs::remove_file(paths::ready_marker());
    let _ = std::fs::remove_file(paths::socket());
    let listener = UnixListener::bind(paths::socket()).context("cannot open the control socket")?;
    let result = start_and_watch(&mut supervised, listener, options).await;
    let _ = std::fs::remove_file(paths::ready_marker());
    supervised.stack.stop_all().await;
    let _ = std::fs::remove_file(paths::socket());
    let _ = std::fs::remove_file(paths::pid_file());
    Ok(match result? {
        Ending::Down | Ending::OwnerGone => ExitCode::SUCCESS,
        Ending::Interrupted => ExitCode::from(130),
        Ending::Failed => ExitCode::FAILURE,
    })
}

async fn start_and_watch(
    s: &mut Supervised,
    listener: UnixListener,
    options: Options,
) -> Result<Ending> {
    s.stack.start_all().await?;
    prepare::mesh_config_applied()?;
    if options.keys {
        keys::ensure(&s.client).await?;
    }
    // Whole or absent: readers return as soon as the file exists.
    let ready = paths::ready_marker();
    let partial = ready.with_extension("partial");
    std::fs::write(&partial, s.stack.status().join("\n") + "\n")?;
    std::fs::rename(&partial, &ready)?;
    if options.banner {
        let console = topology::SERVICEA.http_url();
        say::step(&format!(
            "the workshop console: open {console}/ (Ctrl-C here stops everything)"
        ));
        println!("each Run is a real request: $ curl \"{console}/scenario1?trace=1\"");
    }
    watch(s, listener, options.owner).await
}

async fn watch(s: &mut Supervised, listener: UnixListener, owner: Option<u32>) -> Result<Ending> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                say::step("interrupted");
                return Ok(Ending::Interrupted);
            }
            _ = terminate.recv() => return Ok(Ending::Interrupted),
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted
                    && commands::serve(s, stream).await == Next::Down
                {
                    return Ok(Ending::Down);
                }
            }
            _ = tick.tick() => {
                if let Some(failure) = s.stack.failed() {
                    narrate(&failure);
                    owner.into_iter().for_each(child::terminate);
                    return Ok(Ending::Failed);
                }
                if owner.is_some_and(|pid| !child::alive(pid)) {
                    say::step("the script that started the stack has exited: stopping it");
                    return Ok(Ending::OwnerGone);
                }
            }
        }
    }
}

fn narrate(f: &Failure) {
    say::step(&format!(
        "{} stopped on its own ({}); the last lines of {}:",
        f.name,
        f.status,
        paths::shown(&paths::log_of(f.name))
    ));
    println!("{}", f.log_tail);
    eprintln!("{} failed: stopping every process", f.name);
}
