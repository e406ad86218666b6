//! The narration: `==> step` lines (bold on a terminal), the `$ command`
//! line before a command runs, and the last lines of a log. The scripts'
//! style, kept when the work moved from bash to Rust.

use std::{io::IsTerminal, path::Path};

fn bold() -> (&'static str, &'static str) {
    if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    }
}

/// A step of the walkthrough: a blank line, then `==> msg`.
pub fn step(msg: &str) {
    let (on, off) = bold();
    println!("\n{on}==> {msg}{off}");
}

/// The command line about to run, as a workshop would type it.
pub fn shown(cmd: &str) {
    println!("$ {cmd}");
}

/// The last `n` lines of the file at `path` (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
