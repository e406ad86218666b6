//! Logging set-up shared by every binary: human-readable lines at `info`,
//! so a workshop audience can follow each step across four terminals.
//! `RUST_LOG` overrides the filter (e.g. `RUST_LOG=debug`). Colours only on
//! a terminal, so log files stay plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber; later calls (as in tests) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info,hyper=warn,rustls=warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
