//! Serving a router: every listener of the workshop goes through [`serve`],
//! so each gets the same protections.

use std::time::Duration;

use crate::{
    connections::{CappedListener, ConnectionLimits, ListenAddr, Registry, TrackingAcceptor},
    guard::AllowedHosts,
    identity::PeerAcceptor,
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
    /// The SPIFFE trust domain of client certificates (mTLS listeners).
    pub trust_domain: String,
}

/// The listener bounds as every binary reads them: flattened into each
/// binary's arguments (`#[command(flatten)]`), so the settings, their
/// ranges and their `--help` text are defined once.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenerArgs {
    /// Time a client has to complete each request head, whatever the
    /// protocol (TLS handshake included), before the connection is closed,
    /// ms: against clients that trickle headers or send nothing.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub header_timeout_ms: u64,

    /// A connection with no request in flight is closed after this, ms
    /// (HTTP/1 keep-alive and HTTP/2). Pooled clients drop idle connections
    /// after half of it, before a server can close them under a request.
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(2..=3_600_000))]
    pub idle_timeout_ms: u64,

    /// Time a client has to send a request body once its headers are in,
    /// ms; 408 after it.
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub body_timeout_ms: u64,

    /// Connections each listener holds at once. At the cap, the oldest idle
    /// connection is closed for each new one; when none is idle, the one
    /// reading a request body the slowest; when every one is busy in a
    /// handler, new ones wait in the kernel's backlog. Keep it well below
    /// `ulimit -n`.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connections: u64,

    /// More names requests may be sent to (`Host`), comma-separated, besides
    /// localhost, 127.0.0.1, [::1] and HOST. Other names get 421. Only
    /// names are compared, not ports (a proxy in front may listen on another).
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Threads that serve requests (the async runtime's workers); unset:
    /// one per core. On a machine that runs several of the services, 1
    /// each costs less CPU per request: a request woken on the other
    /// thread pays a cross-thread wake-up (`cargo xtask up` sets 1 for the
    /// workshop's stack; docs/performance.md has the figures).
    #[arg(long, env = "WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// The SPIFFE trust domain of workload certificates: a client
    /// certificate's `spiffe://<domain>/...` ID must be in it. The default
    /// makes principals read as in Istio (`cluster.local/ns/default/sa/servicea`).
    #[arg(long, env = "TRUST_DOMAIN", default_value = crate::identity::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

impl ListenerArgs {
    /// The bounds of a listener on `host` whose routes read at most
    /// `max_body_bytes`, answering errors as `{error_key: ...}`.
    pub fn options(
        &self,
        host: std::net::IpAddr,
        max_body_bytes: usize,
        error_key: &'static str,
    ) -> ServeOptions {
        ServeOptions {
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            max_body_bytes,
            hosts: AllowedHosts::new(host, &self.allowed_hosts),
            error_key,
            trust_domain: self.trust_domain.clone(),
        }
    }

    /// The async runtime of a service with these settings: multi-threaded,
    /// with `WORKER_THREADS` workers (one per core when unset).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.worker_threads {
            builder.worker_threads(usize::from(threads));
        }
        builder.enable_all().build()
    }

    /// How long the process's pooled clients keep an idle connection: half
    /// the idle timeout, so they drop it before a server closes it.
    pub fn pool_idle(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms) / 2
    }
}

/// One listener and the router it serves; with TLS, its configuration.
#[derive(Debug)]
pub struct Listener {
    pub listener: tokio::net::TcpListener,
    pub router: axum::Router,
    pub tls: Option<axum_server::tls_rustls::RustlsConfig>,
    /// What the "listening on" line adds after the address, e.g.
    /// `" (client certificates: strict)"`.
    pub note: String,
}

/// A service's plain listener and, if it has one, its https listener,
/// served with one `handle` (one signal stops both). The first to fail
/// stops both: a service never runs on one listener of two without saying
/// so. `name` opens each "listening on" line.
pub async fn serve_pair(
    name: &str,
    plain: Listener,
    https: Option<Listener>,
    handle: axum_server::Handle<ListenAddr>,
    options: &ServeOptions,
) -> std::io::Result<()> {
    let one = |l: Listener| {
        let handle = handle.clone();
        async move {
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            tracing::info!(
                "{name} listening on {scheme}://{}{}",
                l.listener.local_addr()?,
                l.note
            );
            serve(l.listener, l.router, l.tls, handle, options).await
        }
    };
    let secure = async {
        match https {
            Some(l) => one(l).await,
            None => Ok(()),
        }
    };
    tokio::try_join!(one(plain), secure)?;
    Ok(())
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
/// - requests only for the listener's own names (`Host`, 421 otherwise;
///   names only, the port is not compared);
/// - no state-changing request a browser sends on behalf of another site
///   (Fetch Metadata, `Origin`: 403, see [`crate::cross_site`]).
///
/// `tls` turns it into an https listener; each request then carries the
/// client's certificate as a [`crate::identity::ClientCert`].
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
    // The reaper lives as long as its listener.
    let reaper = crate::shutdown::AbortOnDrop(tokio::spawn(registry.clone().reap()));
    let router = guarded(router, options, tls.is_some());
    let server = axum_server::Server::<ListenAddr>::from_listener(CappedListener::new(
        listener,
        registry.clone(),
    ))
    .handle(handle);
    let make_service = router.into_make_service();
    let result = match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config).handshake_timeout(options.header_timeout);
            let acceptor = PeerAcceptor::new(acceptor, &options.trust_domain);
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

/// The checks [`serve`] puts in front of every router, outermost first: the
/// `Host` (421), a browser's cross-site request (403), and the body's
/// deadline and size (408, 413). Public so that a bench or a test drives a
/// router exactly as a listener does, without a socket. `tls`: the
/// listener's scheme, for the cross-site check's default port.
pub fn guarded(router: axum::Router, options: &ServeOptions, tls: bool) -> axum::Router {
    router.layer(crate::listener_checks::ListenerChecks::new(
        options.hosts.clone(),
        options.error_key,
        options.body_timeout,
        options.max_body_bytes,
        tls,
    ))
}
