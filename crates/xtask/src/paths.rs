//! Where things are: the repository, the release binaries, the logs, the
//! virtualenv and the supervisor's control files. One place, so every verb
//! (and the scripts, which read the same defaults) agree.

use std::path::{Path, PathBuf};

/// The repository's root (xtask lives in `crates/xtask`).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/`.
pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// A release binary of the workspace (`app`, `jwt-factory`).
pub fn release_bin(name: &str) -> PathBuf {
    target().join("release").join(name)
}

/// The processes' logs: `LOGS`, or `target/demo-logs` (one `NAME.log` each).
pub fn logs() -> PathBuf {
    std::env::var_os("LOGS").map_or_else(|| root().join("target/demo-logs"), PathBuf::from)
}

/// The log of the process `name`.
pub fn log_of(name: &str) -> PathBuf {
    logs().join(format!("{name}.log"))
}

/// The Python virtualenv of the project's tools: `VENV`, or `target/venv`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("VENV").map_or_else(|| root().join("target/venv"), PathBuf::from);
    std::path::absolute(&venv).unwrap_or(venv)
}

/// The supervisor's files: its control socket, pid and ready marker.
pub fn control_dir() -> PathBuf {
    root().join("target/xtask")
}

/// The control socket `cargo xtask stop/start/down/status` talk to.
pub fn socket() -> PathBuf {
    control_dir().join("control.sock")
}

/// The running supervisor's pid.
pub fn pid_file() -> PathBuf {
    control_dir().join("supervisor.pid")
}

/// Written once every process answers: one `NAME PID READY_MS URL` line each.
pub fn ready_marker() -> PathBuf {
    control_dir().join("ready")
}

/// `path` relative to the repository's root if it is under it, for narration.
pub fn shown(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}
