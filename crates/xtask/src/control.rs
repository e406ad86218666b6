//! The control channel between `cargo xtask stop|start|status|down|load`
//! and the running supervisor: a Unix socket under `target/xtask/`, one
//! command line in, the narration lines back, and a last line `ok` or
//! `error: why`. Every wait on it is bounded.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{child, paths};

/// Longest a command may take: a restart waits for readiness, a stop up to
/// its SIGKILL, `down` for all nine.
const REPLY_WITHIN: Duration = Duration::from_secs(180);

/// The pid in `target/xtask/supervisor.pid`, if that process runs and is
/// an xtask (a stale file's pid may belong to another process by now).
pub fn running_supervisor() -> Option<u32> {
    let pid = std::fs::read_to_string(paths::pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_xtask = String::from_utf8_lossy(&cmdline).contains("xtask");
    (child::alive(pid) && is_xtask).then_some(pid)
}

/// Sends `command` to the supervisor; prints its narration; fails with its
/// error.
pub fn send(command: &str) -> Result<()> {
    ask(command)?.iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// Sends `command` to the supervisor; its narration lines; fails with its
/// error.
pub fn ask(command: &str) -> Result<Vec<String>> {
    let socket = paths::socket();
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "no stack is running ({} does not answer): start it with `cargo xtask up`",
            paths::shown(&socket)
        )
    })?;
    stream.set_read_timeout(Some(REPLY_WITHIN))?;
    writeln!(stream, "{command}")?;
    let mut last = String::new();
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line =
            line.with_context(|| format!("no answer to `{command}` within {REPLY_WITHIN:?}"))?;
        if !last.is_empty() {
            lines.push(std::mem::take(&mut last));
        }
        last = line;
    }
    match last.strip_prefix("error: ") {
        Some(why) => bail!("{why}"),
        None if last == "ok" => Ok(lines),
        None => bail!(
            "the supervisor ended without answering `{command}` (it stops everything on a failure: see its narration)"
        ),
    }
}

/// `cargo xtask down`: stops the stack, and returns once the supervisor
/// (and so every process) is gone. Nothing running is not an error.
pub async fn down() -> Result<()> {
    let Some(pid) = running_supervisor() else {
        return Ok(());
    };
    // It may be stopping already (Ctrl-C, a failure): then it does not answer.
    let _ = tokio::task::spawn_blocking(|| send("down")).await;
    if !child::wait_gone(pid, Duration::from_secs(60)).await {
        bail!("the supervisor (pid {pid}) did not exit within 60 s");
    }
    Ok(())
}
