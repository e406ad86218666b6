//! One shutdown trigger for Ctrl-C and SIGTERM. Servers take the trigger as a
//! parameter (`run(listener, shutdown)`), so tests can stop them the same way.

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
