//! Every accepted connection, tracked: how many a listener holds, which are
//! idle, and how to close one from outside.
//!
//! What hyper, hyper-util and axum-server offer covers part of it, and
//! [`crate::serve`] uses it: hyper's HTTP/1 `header_read_timeout`, HTTP/2
//! keep-alive pings, the TLS handshake timeout of axum-server. What they lack
//! is written here, by hand:
//!
//! - a deadline for each request head whatever the protocol: hyper's
//!   header timeout is HTTP/1 only and starts once hyper-util's auto
//!   builder has seen bytes, so a socket that sends nothing, or an HTTP/2
//!   preface and then nothing, was held forever; and it also runs while a
//!   keep-alive connection waits, which made it an idle timeout (see
//!   [`Observed`]);
//! - an idle timeout: hyper has none for HTTP/1 keep-alive or HTTP/2
//!   connections (HTTP/2 pings only detect a dead peer, not an idle one);
//! - a cap on connections per listener: axum-server accepts whatever comes;
//! - at the cap, room for a new connection: the oldest idle connection is
//!   closed, or, when every one is busy, the one reading a request body
//!   the slowest (see [`Registry::make_room`]), so a flood of bodies sent
//!   one byte at a time cannot keep `/hello` waiting.
//!
//! How: the listener wraps each accepted socket in a [`Tracked`] stream,
//! the clear-text stream (above TLS) in an [`Observed`] one, and each
//! connection's service in a [`TrackedService`], which together know
//! whether a request is in flight and when the connection was last busy. A
//! reaper task per listener closes connections that stayed idle past their
//! limit; closing means the stream's next read or write fails, so hyper ends
//! the connection and the socket is dropped.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::task::AtomicWaker;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// The bounds on connections of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A new connection must complete its first request head within this.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections held at once by the listener.
    pub max_connections: usize,
}

/// How often the cap is logged at most, per listener.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A request body must have been read for this long before its
/// connection may be closed for a new one: its rate is then a measure, and
/// an honest body (16 KiB at most here) has long arrived.
const BODY_GRACE_MS: u64 = 300;

/// One accepted connection.
#[derive(Debug)]
struct Conn {
    /// Order of acceptance: the smallest id among idle ones is the oldest.
    id: u64,
    /// Requests whose response is not ready yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// Milliseconds since the registry's epoch at acceptance or at the end
    /// of the last request.
    last_busy_ms: AtomicU64,
    /// Milliseconds since the epoch (+1, 0 = none) when bytes of a next
    /// request head began to arrive on an idle HTTP/1 connection.
    head_since_ms: AtomicU64,
    /// The connection speaks HTTP/2 (it opened with the preface): its idle
    /// bytes are pings and window updates, not a request head.
    http2: AtomicBool,
    /// Set by the reaper or the cap: the next read or write fails.
    closed: AtomicBool,
    /// Clear-text bytes received so far.
    bytes_in: AtomicU64,
    /// Requests whose body is being read ([`BodyWatch`]).
    body_readers: AtomicUsize,
    /// Milliseconds since the epoch (+1, 0 = none) when the first of them
    /// began, and `bytes_in` then.
    body_since_ms: AtomicU64,
    body_bytes_at_start: AtomicU64,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
}

impl Conn {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// While every request of the connection is reading its body, for at
    /// least [`BODY_GRACE_MS`]: the bytes per second received since, and
    /// for how long (ms). `None` otherwise.
    fn body_rate(&self, now_ms: u64) -> Option<(u64, u64)> {
        let readers = self.body_readers.load(Ordering::SeqCst);
        if readers == 0 || readers < self.in_flight.load(Ordering::SeqCst) {
            return None;
        }
        let since = self.body_since_ms.load(Ordering::SeqCst).checked_sub(1)?;
        let elapsed = now_ms.saturating_sub(since);
        if elapsed < BODY_GRACE_MS {
            return None;
        }
        let bytes = self
            .bytes_in
            .load(Ordering::SeqCst)
            .saturating_sub(self.body_bytes_at_start.load(Ordering::SeqCst));
        Some((bytes.saturating_mul(1000) / elapsed, elapsed))
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub(crate) struct Registry {
    local: SocketAddr,
    limits: ConnectionLimits,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    /// Wakes an accept waiting for a free slot.
    freed: tokio::sync::Notify,
    /// When the cap was last logged, and how often it was hit since.
    cap_log: Mutex<(Option<Instant>, u64)>,
}

impl Registry {
    pub(crate) fn new(local: SocketAddr, limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            local,
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(BTreeMap::new()),
            freed: tokio::sync::Notify::new(),
            cap_log: Mutex::new((None, 0)),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for one more connection: there is a free slot, or the oldest
    /// idle connection is closed to make one, or, when none is idle, the
    /// one reading a request body the slowest ([`Self::slowest_body`]).
    /// `false`: every connection is busy with a request past its body.
    ///
    /// Why close the oldest idle one rather than make the new connection
    /// wait: a flood of idle sockets would otherwise keep every real client
    /// waiting in the kernel's backlog for a whole header or idle timeout
    /// (the backlog is first come, first served, so behind the flood), and
    /// the service would look down. An idle connection costs its client
    /// nothing to lose: HTTP clients open a new one (ours retry an
    /// idempotent request once, see [`crate::outbound`]).
    ///
    /// Why then the slowest body: a client that sends its body one byte at
    /// a time holds a busy slot for a whole `BODY_TIMEOUT_MS`, so 512 of
    /// them kept every other client waiting. An honest body arrives at
    /// once; the one that arrives slowest is the one to give up. Only when
    /// every connection is busy past its body (in a handler) do new ones
    /// wait in the backlog: handlers are bounded by request timeouts.
    fn make_room(&self) -> bool {
        let conns = self.conns();
        let open = conns.values().filter(|c| !c.is_closed()).count();
        if open < self.limits.max_connections {
            return true;
        }
        let oldest_idle = conns
            .values()
            .filter(|c| !c.is_closed() && c.is_idle())
            .min_by_key(|c| (c.last_busy_ms.load(Ordering::SeqCst), c.id));
        match oldest_idle {
            Some(conn) => {
                conn.close();
                drop(conns);
                self.log_cap("closing the oldest idle connection for each new one");
                true
            }
            None => {
                drop(conns);
                self.slowest_body()
            }
        }
    }

    /// Closes the connection reading a request body the slowest (for at
    /// least [`BODY_GRACE_MS`]), for a new one; `false` if there is none.
    fn slowest_body(&self) -> bool {
        let now = self.now_ms();
        let conns = self.conns();
        let slowest = conns
            .values()
            .filter(|c| !c.is_closed())
            .filter_map(|c| c.body_rate(now).map(|(rate, ms)| (rate, ms, c.clone())))
            // The lowest rate; among equals, the longest read.
            .min_by_key(|(rate, ms, c)| (*rate, std::cmp::Reverse(*ms), c.id));
        match slowest {
            Some((rate, ms, conn)) => {
                conn.close();
                drop(conns);
                tracing::debug!(
                    "{}: closing connection {}: its request body came at {rate} B/s for {ms}ms",
                    self.local,
                    conn.id
                );
                self.log_cap(
                    "every connection is busy: closing the one reading a request body the \
                     slowest for each new one",
                );
                true
            }
            None => {
                drop(conns);
                self.log_cap("every connection is busy: new ones wait in the backlog");
                false
            }
        }
    }

    /// Logs that the cap was reached, at most once per [`CAP_LOG_INTERVAL`].
    fn log_cap(&self, what: &str) {
        let mut log = self.cap_log.lock().unwrap_or_else(|p| p.into_inner());
        log.1 += 1;
        if log.0.is_none_or(|at| at.elapsed() >= CAP_LOG_INTERVAL) {
            tracing::warn!(
                "{}: connection cap reached ({} connections, MAX_CONNECTIONS): {what} \
                 ({} times since the last report; reported at most every {}s)",
                self.local,
                self.limits.max_connections,
                log.1,
                CAP_LOG_INTERVAL.as_secs()
            );
            *log = (Some(Instant::now()), 0);
        }
    }

    fn register(self: &Arc<Self>, stream: TcpStream) -> Tracked {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_busy_ms: AtomicU64::new(self.now_ms()),
            head_since_ms: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            body_readers: AtomicUsize::new(0),
            body_since_ms: AtomicU64::new(0),
            body_bytes_at_start: AtomicU64::new(0),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
        });
        self.conns().insert(conn.id, conn.clone());
        Tracked {
            inner: stream,
            conn,
            registry: self.clone(),
        }
    }

    /// Closes connections idle past their limit: the header timeout until
    /// a first request arrived, or since the first bytes of a next request
    /// head (HTTP/1); the idle timeout otherwise. Runs until aborted.
    pub(crate) async fn reap(self: Arc<Self>) {
        let shortest = self.limits.header_timeout.min(self.limits.idle_timeout);
        let tick = (shortest / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = self.now_ms();
            for conn in self.conns().values() {
                if conn.is_closed() || !conn.is_idle() {
                    continue;
                }
                let head_since = conn.head_since_ms.load(Ordering::SeqCst);
                let (since, limit) = if conn.requests.load(Ordering::SeqCst) == 0 {
                    (
                        conn.last_busy_ms.load(Ordering::SeqCst),
                        self.limits.header_timeout,
                    )
                } else if head_since != 0 {
                    (head_since - 1, self.limits.header_timeout)
                } else {
                    (
                        conn.last_busy_ms.load(Ordering::SeqCst),
                        self.limits.idle_timeout,
                    )
                };
                let waited = now.saturating_sub(since);
                if u128::from(waited) >= limit.as_millis() {
                    tracing::debug!(
                        "{}: closing connection {}: no request for {waited}ms",
                        self.local,
                        conn.id
                    );
                    conn.close();
                }
            }
        }
    }
}

/// The address type of a [`CappedListener`] (axum-server's `Address`), so
/// axum-server's accept loop goes through the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl axum_server::Address for ListenAddr {
    type Stream = Tracked;
    type Listener = CappedListener;
}

/// A `TcpListener` that accepts only while the cap allows (see
/// [`Registry::make_room`]) and sets `TCP_NODELAY` and TCP keepalive on
/// each connection.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    registry: Arc<Registry>,
}

impl CappedListener {
    pub(crate) fn new(inner: TcpListener, registry: Arc<Registry>) -> Self {
        Self { inner, registry }
    }
}

/// TCP keepalive: a peer that vanished without closing (a half-open
/// socket) is detected by the kernel even while a request is in flight;
/// idle ones are closed sooner by the idle timeout.
fn keepalive(stream: &TcpStream) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

impl axum_server::AddrListener<Tracked, ListenAddr> for CappedListener {
    async fn bind_to(_: ListenAddr) -> io::Result<Self> {
        Err(io::Error::other(
            "a capped listener is made by s2s_web::serve, from a bound TcpListener",
        ))
    }

    async fn accept_stream(&self) -> io::Result<(Tracked, ListenAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        // At most one accepted socket waits here for a slot; the next ones
        // wait in the kernel's backlog, costing no file descriptor.
        loop {
            let freed = self.registry.freed.notified();
            if self.registry.make_room() {
                break;
            }
            // Re-checked on every tick too: a busy connection becoming idle
            // makes room without freeing a slot.
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
        stream.set_nodelay(true)?;
        if let Err(err) = keepalive(&stream) {
            tracing::debug!(%err, "cannot set TCP keepalive");
        }
        Ok((self.registry.register(stream), ListenAddr(peer)))
    }

    fn get_local_addr(&self) -> io::Result<ListenAddr> {
        self.inner.local_addr().map(ListenAddr)
    }
}

/// A tracked connection's socket: fails every read and write once the
/// connection is closed from outside, and leaves the registry when dropped.
#[derive(Debug)]
pub struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection closed by the server (idle, header timeout or connection cap)",
    )
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.registry.conns().remove(&self.conn.id);
        self.registry.freed.notify_one();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.conn.read_waker.register(cx.waker());
        if self.conn.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.conn.write_waker.register(cx.waker());
        if self.conn.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.conn.write_waker.register(cx.waker());
        if self.conn.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.write_waker.register(cx.waker());
        if self.conn.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Wraps an inner acceptor (none, or TLS): its stream in [`Observed`], to
/// see request bytes in clear text, and each connection's service in a
/// [`TrackedService`] (an axum-server `Accept`).
#[derive(Clone, Debug)]
pub struct TrackingAcceptor<A> {
    inner: A,
}

impl<A> TrackingAcceptor<A> {
    pub fn new(inner: A) -> Self {
        Self { inner }
    }
}

type AcceptFuture<T, U> = Pin<Box<dyn Future<Output = io::Result<(T, U)>> + Send>>;

impl<A, S> axum_server::accept::Accept<Tracked, S> for TrackingAcceptor<A>
where
    A: axum_server::accept::Accept<Tracked, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Observed<A::Stream>;
    type Service = TrackedService<A::Service>;
    type Future = AcceptFuture<Self::Stream, Self::Service>;

    fn accept(&self, stream: Tracked, service: S) -> Self::Future {
        let conn = stream.conn.clone();
        let registry = stream.registry.clone();
        let inner = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((
                Observed {
                    inner: stream,
                    conn: conn.clone(),
                    registry: registry.clone(),
                    first_read: true,
                },
                TrackedService {
                    inner: service,
                    conn,
                    registry,
                },
            ))
        })
    }
}

/// A connection's stream in clear text (above TLS): notes when the bytes
/// of a next request head start to arrive on an idle HTTP/1 connection, so
/// the reaper can give that head `HEADER_TIMEOUT_MS`.
///
/// hyper's own HTTP/1 `header_read_timeout` is not used: in hyper 1.x it
/// also runs while a keep-alive connection waits for its next request, so
/// it closed every idle connection after `HEADER_TIMEOUT_MS` (10 s), under
/// pooled clients that kept them for 30 s: the "connection closed before
/// message completed" race of the issue.
#[derive(Debug)]
pub struct Observed<S> {
    inner: S,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    first_read: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if matches!(poll, Poll::Ready(Ok(()))) && !read.is_empty() {
            this.conn
                .bytes_in
                .fetch_add(read.len() as u64, Ordering::SeqCst);
            if this.first_read {
                this.first_read = false;
                if read.starts_with(b"PRI ") {
                    this.conn.http2.store(true, Ordering::SeqCst);
                }
            }
            if this.conn.is_idle()
                && this.conn.requests.load(Ordering::SeqCst) > 0
                && !this.conn.http2.load(Ordering::SeqCst)
            {
                let now = this.registry.now_ms() + 1;
                let _ = this.conn.head_since_ms.compare_exchange(
                    0,
                    now,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service that counts its requests in flight.
#[derive(Clone, Debug)]
pub struct TrackedService<S> {
    inner: S,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

/// A request in flight: counted until its response is ready (or dropped).
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .last_busy_ms
            .store(self.registry.now_ms(), Ordering::SeqCst);
        self.conn.head_since_ms.store(0, Ordering::SeqCst);
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, B> tower::Service<axum::http::Request<B>> for TrackedService<S>
where
    S: tower::Service<axum::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(BodyWatch {
            conn: self.conn.clone(),
            registry: self.registry.clone(),
        });
        self.conn.in_flight.fetch_add(1, Ordering::SeqCst);
        self.conn.requests.fetch_add(1, Ordering::SeqCst);
        self.conn.head_since_ms.store(0, Ordering::SeqCst);
        let guard = InFlight {
            conn: self.conn.clone(),
            registry: self.registry.clone(),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let _guard = guard;
            fut.await
        })
    }
}

/// A request's connection, for [`crate::guard`]'s body reader to say when
/// it reads the body (see [`Registry::slowest_body`]).
#[derive(Clone, Debug)]
pub(crate) struct BodyWatch {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl BodyWatch {
    /// The body is being read until the returned guard is dropped.
    pub(crate) fn reading(&self) -> ReadingBody {
        if self.conn.body_readers.fetch_add(1, Ordering::SeqCst) == 0 {
            self.conn
                .body_bytes_at_start
                .store(self.conn.bytes_in.load(Ordering::SeqCst), Ordering::SeqCst);
            self.conn
                .body_since_ms
                .store(self.registry.now_ms() + 1, Ordering::SeqCst);
        }
        ReadingBody {
            conn: self.conn.clone(),
        }
    }
}

/// A body being read; see [`BodyWatch::reading`].
#[derive(Debug)]
pub(crate) struct ReadingBody {
    conn: Arc<Conn>,
}

impl Drop for ReadingBody {
    fn drop(&mut self) {
        if self.conn.body_readers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.conn.body_since_ms.store(0, Ordering::SeqCst);
        }
    }
}
