//! The running stack, as the supervisor holds it: each process found by
//! its name (never by position), started and waited for, stopped alone or
//! all together, and watched for an exit nobody asked for.

use std::{process::ExitStatus, time::Duration};

use anyhow::{Context as _, Result};

use crate::{
    child::{self, Child},
    paths, ready,
    spec::Spec,
};

/// How long a process may take to answer after it starts.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long a process may take to exit after SIGTERM (then SIGKILL).
const STOP_WITHIN: Duration = Duration::from_secs(10);

struct Slot {
    spec: Spec,
    child: Option<Child>,
    ready_ms: u128,
}

/// The nine processes, running or stopped.
pub struct Stack {
    slots: Vec<Slot>,
    client: reqwest::Client,
}

/// A process that exited on its own.
#[derive(Debug)]
pub struct Failure {
    pub name: &'static str,
    pub status: ExitStatus,
    pub log_tail: String,
}

impl Stack {
    /// The stack of `specs`, nothing started yet.
    pub fn new(specs: Vec<Spec>, client: reqwest::Client) -> Self {
        let slots = specs
            .into_iter()
            .map(|spec| Slot {
                spec,
                child: None,
                ready_ms: 0,
            })
            .collect();
        Self { slots, client }
    }

    fn slot(&mut self, name: &str) -> Result<&mut Slot> {
        let known: Vec<&str> = self.slots.iter().map(|s| s.spec.process.name).collect();
        self.slots
            .iter_mut()
            .find(|s| s.spec.process.name == name)
            .with_context(|| format!("no process named {name} (known: {})", known.join(", ")))
    }

    /// Starts every process in order, each once the one before answers;
    /// narrates each. On a failure, stops what it started.
    pub async fn start_all(&mut self) -> Result<()> {
        let names: Vec<&'static str> = self.slots.iter().map(|s| s.spec.process.name).collect();
        for name in names {
            match self.start(name, false).await {
                Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                Err(e) => {
                    self.stop_all().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Starts `name` (its log appended to if `append`) and waits until it
    /// answers; the narration lines.
    pub async fn start(&mut self, name: &str, append: bool) -> Result<Vec<String>> {
        self.start_with(name, append, &[]).await
    }

    /// Starts jwt-factory (or servicea) with its keys in OpenBao (scenario
    /// 11: `cargo xtask openbao up` made the credentials); a plain `start`
    /// later brings back the files backend.
    pub async fn start_openbao(&mut self, name: &str) -> Result<Vec<String>> {
        let Some(flags) = crate::openbao::flags_for(name) else {
            anyhow::bail!(
                "--openbao is for {} and {} only",
                topology::FACTORY.name,
                topology::SERVICEA.name
            );
        };
        self.start_with(name, true, &flags).await
    }

    /// As [`Stack::start`], with `extra` arguments after the usual ones.
    async fn start_with(
        &mut self,
        name: &str,
        append: bool,
        extra: &[String],
    ) -> Result<Vec<String>> {
        let client = self.client.clone();
        let slot = self.slot(name)?;
        if let Some(child) = &slot.child {
            anyhow::bail!("{name} is already running (pid {})", child.pid);
        }
        let process = slot.spec.process;
        let log = paths::log_of(process.name);
        let mut argv = slot.spec.argv.clone();
        argv.extend_from_slice(extra);
        let mut child = child::spawn(process.name, &argv, &log, append)?;
        let started = format!(
            "started {} (pid {}): {}",
            process.name,
            child.pid,
            argv.join(" ")
        );
        let url = slot.spec.ready_url.clone();
        let waited = ready::wait_answers(&mut child.inner, &client, &url, READY_WITHIN, || {
            say_tail(&log)
        })
        .await;
        match waited {
            Ok(took) => {
                slot.ready_ms = took.as_millis();
                slot.child = Some(child);
                let ready = format!("{} is ready in {} ms ({url})", process.name, slot.ready_ms);
                Ok(vec![started, ready])
            }
            Err(e) => {
                let _ = child.stop(STOP_WITHIN).await;
                Err(e.context(format!(
                    "{} did not start (log: {})",
                    process.name,
                    paths::shown(&log)
                )))
            }
        }
    }

    /// Stops `name` (SIGTERM, then SIGKILL after a bounded wait); the
    /// narration line.
    pub async fn stop(&mut self, name: &str) -> Result<String> {
        let slot = self.slot(name)?;
        let child = slot
            .child
            .take()
            .with_context(|| format!("{name} is not running"))?;
        let pid = child.pid;
        child.stop(STOP_WITHIN).await?;
        Ok(format!("stopped {name} (pid {pid})"))
    }

    /// Stops every running process, the last started first; how many.
    pub async fn stop_all(&mut self) -> usize {
        let running: Vec<Child> = self
            .slots
            .iter_mut()
            .rev()
            .filter_map(|s| s.child.take())
            .collect();
        let n = running.len();
        if n > 0 {
            let pids: Vec<String> = running.iter().map(|c| c.pid.to_string()).collect();
            crate::say::step(&format!("stopping {n} processes (pids {})", pids.join(" ")));
        }
        for child in running {
            let (name, pid) = (child.name, child.pid);
            if let Err(e) = child.stop(STOP_WITHIN).await {
                eprintln!("{name} (pid {pid}): {e:#}");
            }
        }
        n
    }

    /// The first process that exited without being asked to, if any (it is
    /// then no longer counted as running).
    pub fn failed(&mut self) -> Option<Failure> {
        self.slots.iter_mut().find_map(|slot| {
            let status = slot.child.as_mut()?.exited()?;
            let child = slot.child.take()?;
            Some(Failure {
                name: slot.spec.process.name,
                status,
                log_tail: say_tail(&child.log),
            })
        })
    }

    /// One `NAME PID READY_MS URL` line per running process.
    pub fn status(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter_map(|s| {
                let child = s.child.as_ref()?;
                Some(format!(
                    "{} {} {} {}",
                    s.spec.process.name, child.pid, s.ready_ms, s.spec.ready_url
                ))
            })
            .collect()
    }
}

fn say_tail(log: &std::path::Path) -> String {
    crate::say::tail(log, 20)
}
