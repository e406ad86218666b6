//! A real browser for the console's tests: Debian's Chromium, driven by
//! Playwright for Python from the virtualenv `scripts/test.sh` installs.
//! Missing either is a loud failure that says how to install it, never a
//! skipped test.

use std::path::PathBuf;

use crate::mesh::repo_root;

/// The Python of the project's virtualenv with Playwright installed:
/// `PLAYWRIGHT_PYTHON` (an absolute path, which `scripts/test.sh` exports),
/// or the repository's `target/venv`.
pub fn python_with_playwright() -> PathBuf {
    let python = std::env::var_os("PLAYWRIGHT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/venv/bin/python"));
    let installed = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        installed,
        "Playwright for Python is not installed for {}: the console tests drive a real browser. \
         Run `scripts/test.sh` (it installs playwright from PyPI into target/venv)",
        python.display()
    );
    python
}

/// Chromium: `CHROMIUM_BIN`, or Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium is not installed at {}: the console tests drive a real browser. Run \
         `scripts/test.sh` (it installs Debian's chromium), or set CHROMIUM_BIN",
        path.display()
    );
    path
}

/// Where the console tests save their screenshots: `target/console/`.
pub fn screenshots_dir() -> PathBuf {
    let dir = repo_root().join("target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
