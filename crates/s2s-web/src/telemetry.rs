//! Logging set-up shared by every binary: human-readable lines at `info`,
//! so a workshop audience can follow each step across four terminals.
//! `RUST_LOG` overrides the filter (e.g. `RUST_LOG=debug`). Colours only on
//! a terminal, so log files stay plain text.
//!
//! Why a non-blocking writer: a scenario request narrates about twenty
//! lines, and written straight to stdout each line is a `write` system call
//! on the thread serving the request. Under load that cost 21% of
//! `/scenario1`'s throughput. Here lines go through a queue to one writer
//! thread, which writes them through a buffer and flushes whenever the queue
//! is empty: under load many lines share one system call, and when idle
//! every line is on screen at once. The queue never drops a line
//! (`lossy(false)`): under extreme load a request waits for the writer
//! rather than lose narration.

use std::io::{BufWriter, IsTerminal as _};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. Keep the guard for the life of the
/// process: dropping it flushes what is still queued. `None` when a
/// subscriber was already installed (as in tests).
#[must_use = "dropping the guard stops the log writer"]
pub fn init() -> Option<WorkerGuard> {
    init_on(std::io::stdout(), std::io::stdout().is_terminal())
}

/// As [`init`], logging to stderr: for a command whose stdout is its
/// answer (`app fetch-token`).
#[must_use = "dropping the guard stops the log writer"]
pub fn init_on_stderr() -> Option<WorkerGuard> {
    init_on(std::io::stderr(), std::io::stderr().is_terminal())
}

fn init_on<W: std::io::Write + Send + 'static>(out: W, ansi: bool) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info,hyper=warn,rustls=warn"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::new(out));
    fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer)
        .try_init()
        .ok()
        .map(|()| guard)
}
