//! Listening: accepts TCP (and TLS, with rustls and ALPN h2/http1.1) connections and serves
//! them with hyper-util's auto builder (HTTP/1.1 and HTTP/2, upgrades allowed). The TLS
//! certificate sits behind a [`TlsSwap`] read once per accepted connection, so it can be
//! replaced while the listener runs.
//!
//! Every connection has a deadline; a connection task is the hyper connection plus a
//! watchdog (`tokio::select!` on both) fed by the service wrapper, which counts requests in
//! flight (a request stays in flight until its response body has ended or been dropped) and
//! the instant the last one ended:
//! - **first request**: the TLS handshake must finish within `header_read_timeout`, and then a
//!   complete first request head (HTTP/1) or the h2 preface, SETTINGS and a first HEADERS must
//!   arrive within another `header_read_timeout`; otherwise the connection is closed (this
//!   covers sockets that send nothing or half a preface, which hyper-util's version detection
//!   and hyper's HTTP/1 header timer would wait on forever). Later HTTP/1 heads are bounded by
//!   hyper's own header read timeout, which starts at their first byte;
//! - **idle**: with nothing in flight for `idle_timeout`, the connection is shut down
//!   gracefully (HTTP/1 closes, HTTP/2 sends GOAWAY) and dropped 1 s later if the peer does
//!   not finish the close;
//! - **drain**: when `shutdown` resolves, accepting stops and every connection is shut down
//!   gracefully; whatever is still open when `grace` ends (requests, WebSocket tunnels) is
//!   closed.
//!
//! Limits: at most `max_connections` connections at once (the rest wait in the accept queue;
//! an upgraded WebSocket tunnel keeps its connection's slot through [`ConnSlot`]), at most
//! `max_connections_per_ip` from one peer address when set (extra ones are closed at once),
//! a 64 KiB header buffer (hyper answers 431 beyond it) and 100 headers at most. HTTP/2 limits,
//! set explicitly so rapid-reset and CONTINUATION floods stay bounded: 100 concurrent streams,
//! 20 pending-accept reset streams, 256 locally reset streams (a peer that causes more gets
//! GOAWAY `ENHANCE_YOUR_CALM`), a 64 KiB header list (CONTINUATION frames count against it),
//! 256 KiB send buffer per stream, and a PING every 30 s answered within 20 s.
//! Takes an already-bound listener so tests bind port 0.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::body::{Body, BoxError};
use crate::metrics::{CloseReason, ListenerMetrics, TlsFailure};

/// Largest request head hyper buffers; bigger headers get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// HTTP/2 streams one connection may have open at once.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams reset by the peer before they were accepted (rapid reset, CVE-2023-44487).
pub const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset because of peer errors before it sends GOAWAY.
pub const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// Bytes buffered per stream for sending.
pub const H2_MAX_SEND_BUF_SIZE: usize = 256 * 1024;
/// How long a connection that was asked to close (idle, drain, or no first request) may take
/// to finish the close before it is dropped, when nothing is in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Connection facts the request handler needs: who is on the other end, and over TLS or not.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections from one peer address at once; 0 = no limit.
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub grace: Duration,
}

/// Where the listener is in its life; connection tasks and tunnels watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining,
    Closed,
}

/// A connection's place in the limits: the `max_connections` permit and the per-IP count,
/// released when the last holder drops it. The server puts one in every request's extensions
/// so a WebSocket tunnel that outlives its hyper connection keeps the slot and learns when to
/// close.
#[derive(Clone)]
pub struct ConnSlot {
    _held: Arc<Held>,
    phase: watch::Receiver<Phase>,
    idle_timeout: Duration,
}

struct Held {
    _permit: OwnedSemaphorePermit,
    _per_ip: Option<PerIpGuard>,
    _open: Option<OpenGuard>,
}

/// The connection's place in `connections_open`, given back when the last holder drops it.
struct OpenGuard(prometheus::IntGauge);

impl OpenGuard {
    fn enter(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ConnSlot {
    /// The idle timeout tunnels use (`server.idle_timeout_secs`).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Resolves when the listener's shutdown grace period is over (or the listener is gone).
    pub async fn closed(&mut self) {
        let _ = self.phase.wait_for(|p| *p == Phase::Closed).await;
    }
}

impl std::fmt::Debug for ConnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSlot").finish_non_exhaustive()
    }
}

/// Open connections per peer address.
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

struct PerIpGuard {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PerIpGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PerIpGuard {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// What the watchdog knows about a connection, updated by the service wrapper.
struct Activity {
    started: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the last request stopped being in flight.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Acquire))
    }
}

/// One request in flight; dropped when its response body ends or is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: &Arc<Activity>) -> Self {
        a.requests.fetch_add(1, Ordering::Relaxed);
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.started.elapsed().as_millis() as u64;
        a.last_ms.fetch_max(ms, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it ends.
pub struct Tracked {
    inner: Body,
    guard: Option<InFlight>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Builds a TLS acceptor from PEM files, offering h2 and http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    tls_config(cert, key).map(TlsAcceptor::from)
}

/// The public listener's TLS configuration, replaceable while it serves: the accept loop
/// reads it once per connection, so a new certificate applies to the connections accepted
/// after [`TlsSwap::replace`] and open connections keep theirs.
#[derive(Clone)]
pub struct TlsSwap(Arc<arc_swap::ArcSwap<ServerConfig>>);

impl TlsSwap {
    /// Reads the certificate chain and key (PEM).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(arc_swap::ArcSwap::new(tls_config(
            cert, key,
        )?))))
    }

    /// Reads the files again; on error the current configuration stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        self.0.store(tls_config(cert, key)?);
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.load_full())
    }
}

impl From<TlsAcceptor> for TlsSwap {
    fn from(acceptor: TlsAcceptor) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::new(acceptor.config().clone())))
    }
}

/// The rustls server configuration for a PEM certificate chain and key, offering h2 and
/// http/1.1.
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    use anyhow::Context;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("opening {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("reading certificates from {}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("opening {}", key.display()))?,
    ))
    .with_context(|| format!("reading the private key from {}", key.display()))?
    .with_context(|| format!("no private key in {}", key.display()))?;
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_send_buf_size(H2_MAX_SEND_BUF_SIZE)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// The threads that serve the public listener's connections: one current-thread runtime per
/// core. A connection, its requests and the upstream connections they use (see
/// [`core_index`] and `proxy::forward::Upstream`) stay on one thread, so a request wakes no
/// other thread of the gateway (the shape nginx and Pingora have; `benches/floor.rs` measures
/// it against one multi-thread runtime). The accept loop hands each new connection to the
/// next core in turn. Dropping `Cores` stops the threads; whatever they still serve is closed.
pub struct Cores {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    _stop: watch::Sender<()>,
}

thread_local! {
    static CORE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the core runtime running on this thread, `None` elsewhere.
pub fn core_index() -> Option<usize> {
    CORE.with(|c| c.get())
}

impl Cores {
    /// Starts `n` (at least 1) core threads.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let (stop, stopped) = watch::channel(());
        let mut handles = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("sessiongate-core-{i}"))
                .spawn(move || {
                    CORE.with(|c| c.set(Some(i)));
                    rt.block_on(async move {
                        // Err: `Cores` was dropped.
                        while stopped.changed().await.is_ok() {}
                    });
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    fn next(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains. `metrics` counts
/// connections accepted and open, those the server closes on its own (by reason), failed TLS
/// handshakes and pauses at `max_connections`.
/// With `cores`, connections are served on those threads; without, on the caller's runtime.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    tls: Option<TlsSwap>,
    limits: Limits,
    metrics: Option<ListenerMetrics>,
    cores: Option<Arc<Cores>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(builder(&limits));
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let per_ip = Arc::new(PerIp::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let metrics = Arc::new(metrics);
    let count = {
        let metrics = metrics.clone();
        move |reason: CloseReason| {
            if let Some(m) = metrics.as_ref() {
                m.closed(reason);
            }
        }
    };
    tokio::pin!(shutdown);

    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(m) = metrics.as_ref() {
                    m.limit_wait();
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Some(m) = metrics.as_ref() {
            m.accepted.inc();
        }
        let per_ip_guard = if limits.max_connections_per_ip > 0 {
            match per_ip.enter(addr.ip().to_canonical(), limits.max_connections_per_ip) {
                Some(g) => Some(g),
                None => {
                    count(CloseReason::PerIpLimit);
                    tracing::debug!(peer = %addr, "connection refused: per-IP limit reached");
                    drop(stream);
                    continue;
                }
            }
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr,
            tls: tls.is_some(),
        };
        let slot = ConnSlot {
            _held: Arc::new(Held {
                _permit: permit,
                _per_ip: per_ip_guard,
                _open: metrics.as_ref().as_ref().map(|m| OpenGuard::enter(&m.open)),
            }),
            phase: phase_rx.clone(),
            idle_timeout: limits.idle_timeout,
        };
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.as_ref().map(TlsSwap::acceptor);
        let limits = limits.clone();
        let count = count.clone();
        // The socket leaves this runtime's reactor here and joins the reactor of the runtime
        // that serves it (`from_std` below runs there): registered where it was accepted, every
        // readiness event of a connection served on a core thread would pass through this
        // runtime's thread and wake the core with a cross-thread unpark, once per request.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = %addr, error = %e, "accepted connection unusable");
                continue;
            }
        };
        let metrics = metrics.clone();
        let connection = async move {
            let phase = slot.phase.clone();
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "accepted connection unusable");
                    return;
                }
            };
            let stream = match tls {
                None => Io::Plain(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => Io::Tls(Box::new(s)),
                        failed => {
                            if let Some(m) = metrics.as_ref() {
                                m.tls_failed(match failed {
                                    Err(_) => TlsFailure::Timeout,
                                    Ok(_) => TlsFailure::Error,
                                });
                            }
                            return;
                        }
                    }
                }
            };
            // The first-request deadline starts after the TLS handshake.
            let activity = Arc::new(Activity::new());
            let service = {
                let activity = activity.clone();
                service_fn(move |mut req: Request<Incoming>| {
                    let guard = InFlight::start(&activity);
                    req.extensions_mut().insert(slot.clone());
                    // Boxed per request: hyper keeps one allocation the size of the service's
                    // future for the whole life of a connection, and the handler's future is
                    // several KiB; as a box, an idle keep-alive connection holds a pointer.
                    let fut = Box::pin(handler(req, peer));
                    async move {
                        let resp = fut.await;
                        Ok::<_, Infallible>(resp.map(|inner| Tracked {
                            inner,
                            guard: Some(guard),
                        }))
                    }
                })
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            watch_connection(conn, &activity, &limits, phase, count).await;
        };
        match &cores {
            Some(cores) => drop(cores.next().spawn(connection)),
            None => drop(tokio::spawn(connection)),
        }
    }
    drop(listener);
    let _ = phase_tx.send(Phase::Draining);
    // Every connection and tunnel holds a permit: all of them back means all are closed.
    tokio::select! {
        _ = permits.acquire_many(max as u32) => {}
        _ = tokio::time::sleep(limits.grace) => {
            tracing::warn!(grace_secs = limits.grace.as_secs(), "shutdown grace period over; closing remaining connections");
        }
    }
    let _ = phase_tx.send(Phase::Closed);
}

/// Runs one connection under its deadlines (see the module doc); `closing` is told why when
/// the watchdog, not the peer or the drain, closes it.
async fn watch_connection<C>(
    conn: C,
    activity: &Activity,
    limits: &Limits,
    mut phase: watch::Receiver<Phase>,
    count: impl Fn(CloseReason),
) where
    C: GracefulConnection,
{
    tokio::pin!(conn);
    let sleep = tokio::time::sleep_until(activity.started + limits.header_read_timeout);
    tokio::pin!(sleep);
    // Set once the connection has been asked to close: by when it must be gone.
    let mut closing: Option<Instant> = None;
    if *phase.borrow() != Phase::Serving {
        conn.as_mut().graceful_shutdown();
        closing = Some(Instant::now() + CLOSE_GRACE);
    }
    loop {
        let deadline = match closing {
            Some(by) => by,
            // Woken at least every idle_timeout so idleness after the first request is seen.
            None if activity.requests.load(Ordering::Relaxed) == 0 => (activity.started
                + limits.header_read_timeout)
                .min(Instant::now() + limits.idle_timeout),
            None if activity.in_flight.load(Ordering::Acquire) > 0 => {
                Instant::now() + limits.idle_timeout
            }
            None => activity.last() + limits.idle_timeout,
        };
        sleep.as_mut().reset(deadline);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = &mut sleep => {
                let now = Instant::now();
                let idle = activity.in_flight.load(Ordering::Acquire) == 0;
                match closing {
                    // The peer did not finish the close: drop it, unless a request is still
                    // being answered (bounded by its own timeouts and the drain).
                    Some(_) if idle => return,
                    Some(_) => closing = Some(now + CLOSE_GRACE),
                    None if activity.requests.load(Ordering::Relaxed) == 0
                        && now >= activity.started + limits.header_read_timeout =>
                    {
                        tracing::debug!("no complete request head before the deadline; closing");
                        count(CloseReason::HeaderTimeout);
                        conn.as_mut().graceful_shutdown();
                        // Nothing was asked: nothing to wait for beyond flushing a GOAWAY.
                        closing = Some(now + Duration::from_millis(100));
                    }
                    // Still before the first-request deadline.
                    None if activity.requests.load(Ordering::Relaxed) == 0 => {}
                    None if idle && now >= activity.last() + limits.idle_timeout => {
                        count(CloseReason::IdleTimeout);
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now + CLOSE_GRACE);
                    }
                    None => {}
                }
            }
            changed = phase.changed() => {
                let p = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closed };
                match p {
                    Phase::Serving => {}
                    Phase::Draining => {
                        if closing.is_none() {
                            conn.as_mut().graceful_shutdown();
                            closing = Some(Instant::now() + CLOSE_GRACE);
                        }
                    }
                    Phase::Closed => return,
                }
            }
        }
    }
}

/// A plain or TLS stream, so both go through one connection type.
enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
