//! How each of the nine processes runs and when it is ready, derived from
//! the `topology` crate: its command line and the URL that answers once it
//! serves. Names, ports and URLs are never written here.

use std::path::Path;

use topology::{Kind, PROCESSES, Process};

use crate::paths;

/// One process of the stack, as the supervisor runs it.
#[derive(Clone, Debug)]
pub struct Spec {
    pub process: &'static Process,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Answers (2xx) once the process serves.
    pub ready_url: String,
}

/// Envoy's flags: one worker thread, a listener change drains open
/// connections within 2 s, access log lines reach the log within 200 ms.
const ENVOY_FLAGS: [&str; 9] = [
    "--disable-hot-restart",
    "--concurrency",
    "1",
    "--log-level",
    "warn",
    "--drain-time-s",
    "2",
    "--file-flush-interval-msec",
    "200",
];

/// The nine processes in start order; `nginx` is `app gateway-config`'s
/// command line, `envoy` the Envoy binary.
pub fn stack(nginx: &[String], envoy: &Path) -> Vec<Spec> {
    PROCESSES
        .iter()
        .map(|process| Spec {
            process,
            argv: argv(process, nginx, envoy),
            ready_url: ready_url(process),
        })
        .collect()
}

fn argv(p: &Process, nginx: &[String], envoy: &Path) -> Vec<String> {
    let bin = |name: &str| paths::release_bin(name).display().to_string();
    match p.kind {
        Kind::Factory => vec![bin(p.name)],
        // One worker each, as Envoy's `--concurrency 1`: the stack's
        // processes share the machine's cores, and a request woken on a
        // second thread of the same service costs more CPU than it gains
        // (docs/performance.md). The factory keeps one per core: its
        // signatures are the one part that wants them.
        Kind::Caller | Kind::Receiver | Kind::Verifier => vec![
            bin("app"),
            p.name.to_owned(),
            "--worker-threads".to_owned(),
            "1".to_owned(),
        ],
        Kind::Gateway => {
            // `nginx -p ...`: found on PATH or in /usr/sbin (Debian's place,
            // not always on a non-login PATH).
            let mut argv = nginx.to_vec();
            if let Some(found) = argv.first().and_then(|p| crate::install::on_path(p)) {
                argv[0] = found.display().to_string();
            }
            argv
        }
        Kind::Sidecar => {
            let mut argv = vec![envoy.display().to_string()];
            argv.extend(ENVOY_FLAGS.map(str::to_owned));
            argv.extend([
                "-c".to_owned(),
                format!("target/mesh/{}/envoy.json", p.workload),
            ]);
            argv
        }
    }
}

fn ready_url(p: &Process) -> String {
    match p.kind {
        Kind::Factory => format!("{}/utils/keys", p.http_url()),
        Kind::Receiver => format!("{}/hello", p.https_url().unwrap_or_else(|| p.http_url())),
        Kind::Caller | Kind::Verifier => format!("{}/hello", p.http_url()),
        Kind::Gateway => format!("{}/gateway/health", p.http_url()),
        Kind::Sidecar => format!("{}/ready", p.http_url()),
    }
}
