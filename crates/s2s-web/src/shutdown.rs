//! One shutdown trigger for Ctrl-C and SIGTERM, and one drain period.
//!
//! Servers take the trigger as a parameter (`run(listener, shutdown)`, as
//! mini-redis does), so tests stop them the same way a terminal does.

use std::{future::Future, time::Duration};

use axum_server::Handle;

use crate::connections::ListenAddr;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received: finishing in-flight requests, then exiting"),
        () = term => tracing::info!("SIGTERM received: finishing in-flight requests, then exiting"),
    }
}

/// A server handle that starts a graceful shutdown (at most [`DRAIN`])
/// when `shutdown` resolves. Share it between a process's listeners so one
/// signal stops them all.
pub fn handle_on(shutdown: impl Future<Output = ()> + Send + 'static) -> Handle<ListenAddr> {
    let handle = Handle::new();
    let trigger = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.graceful_shutdown(Some(DRAIN));
    });
    handle
}

/// Aborts a background task when dropped: a task tied to a server (a
/// reaper, a cache refresher) then stops with it, also when the server's
/// future is dropped rather than run to its end.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
