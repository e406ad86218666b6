//! Serving a router: every listener of the workshop goes through [`serve`],
//! so each gets the same protections.

/// Serves `router` on `listener` until `handle` is told to shut down.
///
/// Every listener of the workshop goes through here, so each gets the same
/// protections: `TCP_NODELAY` (no Nagle stalls on small answers), and a
/// limit on how long a client may take to send its request headers, after
/// which hyper closes the connection, so a client that trickles headers
/// ("slowloris") cannot hold connections forever. (`axum::serve` offers
/// neither setting.) `tls` turns it into an https listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use axum_server::{accept::NoDelayAcceptor, tls_rustls::RustlsAcceptor};
    let server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    let make_service = router.into_make_service();
    match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
            let mut server = server.acceptor(acceptor);
            limit_headers(server.http_builder(), header_timeout);
            server.serve(make_service).await
        }
        None => {
            let mut server = server.acceptor(NoDelayAcceptor::new());
            limit_headers(server.http_builder(), header_timeout);
            server.serve(make_service).await
        }
    }
}

fn limit_headers(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: std::time::Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
}
