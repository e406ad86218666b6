//! `cargo xtask test [ARGS]`: the README's test command. Installs what the
//! tests need besides the Rust toolchain (nginx, Chromium, Envoy,
//! Playwright, OpenBao), tells them where (ENVOY_BIN, PLAYWRIGHT_PYTHON,
//! BAO_BIN), then runs
//! `cargo test --workspace ARGS` in its place. The tests that need a tool
//! fail without it; they never skip.

use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Result, anyhow};

use crate::{install, say};

/// Installs, then execs `cargo test --workspace args`.
pub fn run(args: &[String]) -> Result<()> {
    for tool in install::FOR_TESTS {
        install::ensure(tool)?;
    }
    let envoy = install::envoy_binary();
    let python = install::playwright()?;
    say::step(&format!("cargo test --workspace {}", args.join(" ")));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let path = std::env::var("PATH").unwrap_or_default();
    let err = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env("ENVOY_BIN", envoy)
        .env("BAO_BIN", install::bao_binary())
        .env("PLAYWRIGHT_PYTHON", python)
        .env("PATH", format!("{path}:/usr/sbin"))
        .exec();
    Err(anyhow!("cannot run cargo test: {err}"))
}
