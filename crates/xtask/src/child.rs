//! One child process of the stack: started with its output in its log
//! file, in a process group of its own (a Ctrl-C reaches the supervisor,
//! which stops the children in order, not every child at once), and
//! stopped the way the scripts did: SIGTERM, a bounded wait, then SIGKILL.

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result};
use rustix::process::{Pid, Signal, kill_process};

/// A running child.
#[derive(Debug)]
pub struct Child {
    pub name: &'static str,
    pub pid: u32,
    pub log: PathBuf,
    pub inner: tokio::process::Child,
}

/// Starts `argv` as `name`, stdout and stderr to `log` (appended to if
/// `append`, as for a restart, else truncated).
pub fn spawn(name: &'static str, argv: &[String], log: &Path, append: bool) -> Result<Child> {
    let (program, args) = argv
        .split_first()
        .with_context(|| format!("{name}: empty command line"))?;
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let inner = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {name}: {}", argv.join(" ")))?;
    let pid = inner.id().with_context(|| format!("{name} has no pid"))?;
    Ok(Child {
        name,
        pid,
        log: log.to_path_buf(),
        inner,
    })
}

impl Child {
    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.inner.try_wait().ok().flatten()
    }

    /// SIGTERM, up to `within` for it to exit, then SIGKILL.
    pub async fn stop(mut self, within: Duration) -> Result<()> {
        if self.exited().is_some() {
            return Ok(());
        }
        terminate(self.pid);
        if tokio::time::timeout(within, self.inner.wait())
            .await
            .is_err()
        {
            self.inner
                .kill()
                .await
                .with_context(|| format!("cannot kill {} (pid {})", self.name, self.pid))?;
        }
        Ok(())
    }
}

/// Sends SIGTERM to `pid` (nothing if it is gone).
pub fn terminate(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::TERM);
    }
}

/// Whether a process `pid` exists and has not exited: an exited process
/// whose parent has not reaped it yet (a zombie, state `Z` in
/// `/proc/PID/stat`) has.
pub fn alive(pid: u32) -> bool {
    let exists = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok());
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    exists && !zombie
}

/// Waits up to `within` for process `pid` (not a child) to exit.
pub async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
