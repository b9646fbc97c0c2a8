//! Forwarding to upstreams with hyper-util's pooled client (HTTP/1.1, or HTTP/2 over TLS
//! when the upstream offers it): bodies stream both ways, the time to response headers is
//! bounded by `server.upstream_timeout_secs`, a failure of the client's own request body is
//! reported as the client's ([`ForwardError::ClientBody`]), not the upstream's, and WebSocket
//! upgrades are spliced — only a real WebSocket switch (`Upgrade: websocket` and the
//! `Sec-WebSocket-Accept` of RFC 6455 §4.2.2 for the key that was sent). A tunnel keeps its
//! connection's [`ConnSlot`], ends after `server.idle_timeout_secs` without data in either
//! direction, and is closed when the shutdown grace period ends.
//!
//! Header hygiene is not done here (see `headers.rs`); this module only moves requests. It picks
//! no status codes: failures are a [`ForwardError`], which `error.rs` turns into a refusal.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use http::{header, HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::{Body, BodyFault, BodyWatch};
use crate::server::ConnSlot;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why [`Upstream::send`] has no response to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The client's own request body failed first (stalled or malformed): the client's fault,
    /// whatever the upstream did meanwhile.
    #[error("{0}")]
    ClientBody(BodyFault),
    /// No response head within `server.upstream_timeout_secs`.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The upstream could not be connected to, or the exchange failed before a response head
    /// arrived (the error and its sources, joined).
    #[error("upstream failed: {0}")]
    Connect(String),
}

/// The upstream client: one connection pool per core thread (`server::Cores`), so a request
/// uses connections its own thread drives, and one for every other thread.
#[derive(Clone)]
pub struct Upstream {
    clients: Arc<[Client<Connector, Body>]>,
    timeout: Duration,
}

impl Upstream {
    pub fn new(timeout: Duration, cores: usize) -> Self {
        // One connector (and TLS configuration) shared by every pool; only the pools differ.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls_client_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let clients = (0..=cores)
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(256)
                    .build(connector.clone())
            })
            .collect();
        Self { clients, timeout }
    }

    /// Sends `req` upstream. A connection failure is [`ForwardError::Connect`], no response
    /// headers within the timeout [`ForwardError::Timeout`] — unless the client's request body
    /// (watched by `body`) failed first: then [`ForwardError::ClientBody`]. The response body
    /// is not awaited here: it streams to the client.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        body: &BodyWatch,
    ) -> Result<Response<Incoming>, ForwardError> {
        // The client speaks HTTP/1.1 upstream whatever the client used.
        *req.version_mut() = Version::HTTP_11;
        let last = self.clients.len() - 1;
        let client = &self.clients[crate::server::core_index().map_or(last, |i| i.min(last))];
        let result = tokio::time::timeout(self.timeout, client.request(req)).await;
        match (result, body.fault()) {
            (Ok(Ok(resp)), _) => Ok(resp),
            (_, Some(fault)) => Err(ForwardError::ClientBody(fault)),
            (Err(_), None) => Err(ForwardError::Timeout),
            (Ok(Err(e)), None) => Err(ForwardError::Connect(error_chain(&e))),
        }
    }
}

/// The TLS client configuration for upstreams (the OTLP exporter and the events webhook
/// too): the web PKI roots, ring.
pub fn rustls_client_config() -> tokio_rustls::rustls::ClientConfig {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tokio_rustls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Whether a `101` from upstream is a WebSocket switch answering `key`.
pub fn is_websocket_switch(resp: &Response<Incoming>, key: &HeaderValue) -> bool {
    let h = resp.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    let accept = h
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes().trim_ascii() == websocket_accept(key.as_bytes()).as_bytes());
    upgrade && accept
}

/// After a checked WebSocket `101` from upstream, splices the client's and the upstream's
/// upgraded connections together in a background task until either side closes, nothing
/// moves for the idle timeout, or the listener's grace period ends. `slot` keeps the client
/// connection's place in `max_connections` meanwhile.
pub fn splice_websocket(
    client_upgrade: hyper::upgrade::OnUpgrade,
    upstream_resp: &mut Response<Incoming>,
    mut slot: ConnSlot,
) {
    let upstream_upgrade = hyper::upgrade::on(upstream_resp);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let idle = slot.idle_timeout();
        let started = tokio::time::Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let mut client = Active::new(TokioIo::new(client), started, last.clone());
        let mut upstream = Active::new(TokioIo::new(upstream), started, last.clone());
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        let sleep = tokio::time::sleep(idle);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                r = &mut copy => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "websocket connection ended");
                    }
                    return;
                }
                _ = &mut sleep => {
                    let until = started + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
                    if tokio::time::Instant::now() >= until {
                        tracing::debug!("websocket tunnel idle; closing");
                        return;
                    }
                    sleep.as_mut().reset(until);
                }
                _ = slot.closed() => {
                    tracing::debug!("shutdown grace period over; closing websocket tunnel");
                    return;
                }
            }
        }
    });
}

/// A tunnel end that records when data last arrived from it.
struct Active<T> {
    io: T,
    started: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(io: T, started: tokio::time::Instant, last_ms: Arc<AtomicU64>) -> Self {
        Self {
            io,
            started,
            last_ms,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = self.started.elapsed().as_millis() as u64;
            self.last_ms.fetch_max(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        assert_eq!(
            super::websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
