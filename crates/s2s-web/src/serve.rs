//! Serving a router: every listener of the workshop goes through [`serve`],
//! so each gets the same protections.

use std::{sync::Arc, time::Duration};

use crate::{
    connections::{CappedListener, ConnectionLimits, ListenAddr, Registry, TrackingAcceptor},
    guard::{AllowedHosts, BodyDeadline, HostCheck, body_deadline, check_host},
};

/// The bounds every listener applies (`HEADER_TIMEOUT_MS`,
/// `IDLE_TIMEOUT_MS`, `BODY_TIMEOUT_MS`, `MAX_CONNECTIONS`, `ALLOWED_HOSTS`).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A connection must complete a request head within this, whatever the
    /// protocol (a silent socket, an HTTP/2 preface alone, trickled headers).
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this
    /// (HTTP/1 keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// A request body must have arrived this long after its head.
    pub body_timeout: Duration,
    /// Connections one listener holds at once.
    pub max_connections: usize,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// The names requests must be sent to (`Host`).
    pub hosts: AllowedHosts,
    /// The key of the service's JSON errors: `error` (jwt-factory) or
    /// `message` (the services).
    pub error_key: &'static str,
}

/// Serves `router` on `listener` until `handle` is told to shut down.
///
/// Every listener of the workshop goes through here, so each gets the same
/// protections (`axum::serve` offers none of them):
/// - `TCP_NODELAY` (no Nagle stalls on small answers) and TCP keepalive
///   (a vanished peer is noticed);
/// - a deadline for each request head (`header_timeout`), whatever the
///   protocol ([`crate::connections`]); the TLS handshake gets the same
///   time (axum-server's `handshake_timeout`);
/// - an idle timeout, and HTTP/2 keep-alive pings at half of it, which
///   close a connection whose peer has gone even while a request runs;
/// - a body timeout and size limit ([`crate::guard`]);
/// - at most `max_connections` connections ([`crate::connections`]);
/// - requests only for the listener's own names (`Host`, 421 otherwise).
///
/// `tls` turns it into an https listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    handle: axum_server::Handle<ListenAddr>,
    options: &ServeOptions,
) -> std::io::Result<()> {
    use axum_server::{accept::DefaultAcceptor, tls_rustls::RustlsAcceptor};
    let local = listener.local_addr()?;
    let registry = Registry::new(
        local,
        ConnectionLimits {
            header_timeout: options.header_timeout,
            idle_timeout: options.idle_timeout,
            max_connections: options.max_connections,
        },
    );
    let reaper = AbortOnDrop(tokio::spawn(registry.clone().reap()));
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            BodyDeadline {
                timeout: options.body_timeout,
                max_bytes: options.max_body_bytes,
                error_key: options.error_key,
            },
            body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            HostCheck {
                hosts: Arc::new(options.hosts.clone()),
                port: local.port(),
                error_key: options.error_key,
            },
            check_host,
        ));
    let server = axum_server::Server::<ListenAddr>::from_listener(CappedListener::new(
        listener,
        registry.clone(),
    ))
    .handle(handle);
    let make_service = router.into_make_service();
    let result = match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config).handshake_timeout(options.header_timeout);
            let mut server = server.acceptor(TrackingAcceptor::new(acceptor));
            configure(server.http_builder(), options);
            server.serve(make_service).await
        }
        None => {
            let mut server = server.acceptor(TrackingAcceptor::new(DefaultAcceptor));
            configure(server.http_builder(), options);
            server.serve(make_service).await
        }
    };
    drop(reaper);
    result
}

/// Aborts a task when dropped: the reaper lives as long as its listener.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn configure(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    options: &ServeOptions,
) {
    use hyper_util::rt::TokioTimer;
    // No hyper `header_read_timeout`: the connections module times every
    // request head (hyper's also runs on idle keep-alive connections, so it
    // acted as a second, shorter idle timeout).
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.idle_timeout / 2)
        .keep_alive_timeout(options.header_timeout)
        .max_concurrent_streams(100);
}
