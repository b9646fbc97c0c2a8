//! OpenTelemetry traces (`[tracing]`): one server span per sampled request, with child spans
//! for the access-token check (`session.verify`), each store operation (`store.OP`, recorded
//! by `store::Guarded`) and the upstream call (`upstream`, client kind), exported over
//! OTLP/HTTP protobuf by [`export`].
//!
//! - **Off costs nothing**: without `tracing.endpoint` there is no [`Tracer`]; the request
//!   path checks one `Option`, and [`span`] finds no current trace (a task-local lookup)
//!   without allocating.
//! - **Sampling** is decided once, at the root: a `traceparent` from a peer in
//!   `server.trusted_proxies` decides (its sampled flag; its trace id and span id become the
//!   root's trace and parent); otherwise `tracing.sample_ratio`. A `traceparent` from any other
//!   peer is ignored (a new trace) and never forwarded.
//! - **Context** is the task-local [`CURRENT`], set around the request's handling by
//!   [`Trace::scope`]; work moved to another runtime (MySQL operations hop to the main
//!   runtime, `Sessions::on_store`) carries it with [`in_current`].
//! - **Propagation**: the upstream request gets `traceparent` naming the upstream span (and a
//!   trusted proxy's `tracestate`), so the app's spans join the gateway's.
//! - **Never blocks a request**: a finished span is handed to the exporter's bounded queue with
//!   `try_send`; when it is full the span is dropped and counted
//!   (`trace_spans_dropped_total{reason="queue_full"}`).
//! - **No secrets**: attributes are the HTTP semantic-convention facts (method, path, route,
//!   status, addresses, protocol version, user agent) and the store operation's name: never a
//!   header, cookie, token or query string.
//!
//! Span times are wall-clock (`SystemTime`, not the gateway's test-offset `Clock`): they are
//! for the collector's timeline, not for session rules.

pub mod export;
pub mod proto;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;

use crate::config::TracingConfig;
use crate::metrics::{Metrics, SpanDrop};
pub use proto::SpanKind;
/// OTLP's span status (not an HTTP status).
use proto::SpanStatusCode as SpanOutcome;

/// Finished spans waiting for the exporter at most; more are dropped and counted.
pub const QUEUE_SPANS: usize = 4096;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

tokio::task_local! {
    /// The trace of the request this task is handling, when it is sampled.
    static CURRENT: Trace;
}

/// The process's tracer: the sampling ratio and the exporter's queue. Cheap to clone.
#[derive(Clone)]
pub struct Tracer(Arc<TracerInner>);

struct TracerInner {
    ratio: f64,
    queue: mpsc::Sender<proto::Span>,
    metrics: Metrics,
}

impl Tracer {
    /// Starts the exporter on the current runtime (it runs until every `Tracer` is dropped,
    /// then sends what it holds).
    pub fn start(cfg: &TracingConfig, metrics: Metrics) -> Option<Self> {
        let endpoint = cfg.endpoint.clone()?;
        let (queue, rx) = mpsc::channel(QUEUE_SPANS);
        tokio::spawn(export::run(
            rx,
            endpoint,
            cfg.service_name.clone(),
            metrics.clone(),
        ));
        Some(Self(Arc::new(TracerInner {
            ratio: cfg.sample_ratio,
            queue,
            metrics,
        })))
    }

    /// The sampling decision for a new request: its trace when sampled. `trusted`: the peer
    /// is a trusted proxy, whose `traceparent` is the parent.
    pub fn root(&self, h: &HeaderMap, trusted: bool) -> Option<Trace> {
        let parent = trusted
            .then(|| h.get(TRACEPARENT).and_then(TraceParent::parse))
            .flatten();
        let sampled = match &parent {
            Some(p) => p.sampled,
            None => self.0.ratio >= 1.0 || rand::random::<f64>() < self.0.ratio,
        };
        if !sampled {
            return None;
        }
        let trace_id = match &parent {
            Some(p) => p.trace_id,
            None => nonzero_id(),
        };
        let tracestate = if parent.is_some() {
            h.get(TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        } else {
            String::new()
        };
        Some(Trace(Arc::new(TraceInner {
            tracer: self.clone(),
            trace_id,
            root_id: nonzero_id(),
            remote_parent: parent.map(|p| p.span_id),
            tracestate,
        })))
    }

    fn send(&self, span: proto::Span) {
        if self.0.queue.try_send(span).is_err() {
            self.0
                .metrics
                .trace_spans_dropped_total
                .with_label_values(&[SpanDrop::QueueFull.as_str()])
                .inc();
        }
    }
}

/// A random id that is not all zeroes (W3C: an all-zero id is invalid).
fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = std::array::from_fn(|_| rand::random());
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// A W3C `traceparent` (version `00`): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` for anything malformed, an all-zero id, or
    /// version `ff`. A later version is read by its first four fields, as the W3C spec asks.
    pub fn parse(v: &HeaderValue) -> Option<Self> {
        let s = v.to_str().ok()?;
        let mut parts = s.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let lower_hex = |x: &str| x.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !(lower_hex(version) && lower_hex(trace) && lower_hex(span) && lower_hex(flags)) {
            return None;
        }
        let trace_id: [u8; 16] = hex::decode(trace).ok()?.try_into().ok()?;
        let span_id: [u8; 8] = hex::decode(span).ok()?.try_into().ok()?;
        let flags: [u8; 1] = hex::decode(flags).ok()?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The header value, sampled.
    pub fn header(trace_id: &[u8; 16], span_id: &[u8; 8]) -> HeaderValue {
        let s = format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(span_id));
        HeaderValue::from_str(&s).expect("hex is a valid header value")
    }
}

/// A sampled request's trace: its trace id and root span id. Cheap to clone.
#[derive(Clone)]
pub struct Trace(Arc<TraceInner>);

struct TraceInner {
    tracer: Tracer,
    trace_id: [u8; 16],
    root_id: [u8; 8],
    /// The trusted proxy's span, parent of the root.
    remote_parent: Option<[u8; 8]>,
    /// The trusted proxy's `tracestate`, passed on unchanged.
    tracestate: String,
}

impl Trace {
    pub fn trace_id(&self) -> [u8; 16] {
        self.0.trace_id
    }

    /// The request's root span (server kind), started now; it is sent when dropped.
    pub fn root_span(&self, name: impl Into<String>) -> Span {
        let parent = self.0.remote_parent.map(|p| p.to_vec()).unwrap_or_default();
        let mut span = Span::new(self.clone(), self.0.root_id, parent, name, SpanKind::Server);
        if self.0.remote_parent.is_some() {
            // Bits 8 and 9: the parent is known, and remote.
            span.inner.flags |= 0x300;
        }
        span
    }

    /// Runs `f` with this trace as the task's current one.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// A span being recorded; sent to the exporter when dropped (so an early return still ends
/// it), with the time of the drop as its end.
pub struct Span {
    trace: Trace,
    inner: proto::Span,
}

impl Span {
    fn new(
        trace: Trace,
        span_id: [u8; 8],
        parent: Vec<u8>,
        name: impl Into<String>,
        kind: SpanKind,
    ) -> Self {
        let inner = proto::Span {
            trace_id: trace.0.trace_id.to_vec(),
            span_id: span_id.to_vec(),
            trace_state: trace.0.tracestate.clone(),
            parent_span_id: parent,
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: now_nanos(),
            flags: 1,
            ..Default::default()
        };
        Self { trace, inner }
    }

    pub fn set_name(&mut self, name: impl Into<String>) {
        self.inner.name = name.into();
    }

    pub fn set_str(&mut self, key: &'static str, value: impl Into<String>) {
        self.push(key, proto::any_value::Value::StringValue(value.into()));
    }

    pub fn set_int(&mut self, key: &'static str, value: i64) {
        self.push(key, proto::any_value::Value::IntValue(value));
    }

    fn push(&mut self, key: &'static str, value: proto::any_value::Value) {
        self.inner.attributes.push(proto::KeyValue {
            key: key.to_string(),
            value: Some(proto::AnyValue { value: Some(value) }),
        });
    }

    /// Marks the span failed, with a short description (never a secret).
    pub fn set_error(&mut self, message: impl Into<String>) {
        self.inner.status = Some(proto::Status {
            message: message.into(),
            code: SpanOutcome::Error as i32,
        });
    }

    /// The `traceparent` that makes this span the parent of the receiver's spans.
    pub fn traceparent(&self) -> HeaderValue {
        let id: [u8; 8] = self.inner.span_id.as_slice().try_into().unwrap_or([0; 8]);
        TraceParent::header(&self.trace.0.trace_id, &id)
    }

    /// The trace's `tracestate` (a trusted proxy's), empty when there is none.
    pub fn tracestate(&self) -> &str {
        &self.trace.0.tracestate
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.inner.end_time_unix_nano = now_nanos();
        let span = std::mem::take(&mut self.inner);
        self.trace.0.tracer.send(span);
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The root span of a request (server kind) with the HTTP semantic-convention attributes
/// known from its head: method, path (never the query), scheme, server address and port,
/// client and peer addresses, protocol version, user agent. `client` is the client's address
/// after `server.trusted_proxies`.
pub fn request_span<B>(
    trace: &Trace,
    req: &http::Request<B>,
    peer: crate::server::Peer,
    client: std::net::IpAddr,
) -> Span {
    let method = req.method().as_str();
    let mut span = trace.root_span(method);
    span.set_str("http.request.method", method);
    span.set_str("url.path", req.uri().path());
    span.set_str("url.scheme", if peer.tls { "https" } else { "http" });
    let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
    });
    if let Some(a) = authority.and_then(|a| a.parse::<http::uri::Authority>().ok()) {
        span.set_str("server.address", a.host());
        if let Some(port) = a.port_u16() {
            span.set_int("server.port", port.into());
        }
    }
    span.set_str("client.address", client.to_string());
    span.set_str("network.peer.address", peer.addr.ip().to_string());
    span.set_int("network.peer.port", peer.addr.port().into());
    let version = match req.version() {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    span.set_str("network.protocol.version", version);
    if let Some(ua) = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.set_str("user_agent.original", ua);
    }
    span
}

/// Ends a request's root span with what the response came to: its name becomes
/// `METHOD route`, `http.route` the route (a configured route's name, or `refresh`, `logout`,
/// `jwks`, `unmatched`), and a 5xx marks it failed.
pub fn end_request(mut span: Span, route: &str, status: http::StatusCode) {
    let method = span.inner.name.clone();
    span.set_name(format!("{method} {route}"));
    span.set_str("http.route", route);
    span.set_int("http.response.status_code", status.as_u16().into());
    if status.is_server_error() {
        span.set_error(status.to_string());
    }
}

/// A child of the current request's root span, started now; `None` (nothing allocated) when
/// the task has no sampled trace.
pub fn span(name: &'static str, kind: SpanKind) -> Option<Span> {
    CURRENT
        .try_with(|t| {
            let parent = t.0.root_id.to_vec();
            Span::new(t.clone(), nonzero_id(), parent, name, kind)
        })
        .ok()
}

/// `f`, carrying the current trace (if any) along, for work that runs on another task.
pub fn in_current<F>(f: F) -> impl Future<Output = F::Output>
where
    F: Future,
{
    let trace = CURRENT.try_with(|t| t.clone()).ok();
    async move {
        match trace {
            Some(t) => t.scope(f).await,
            None => f.await,
        }
    }
}

/// Sets the upstream request's trace headers: with `span` (the upstream call of a sampled
/// request) its `traceparent` and the trace's `tracestate`; without, and when the peer is not
/// a trusted proxy, the client's own are removed (never accepted, never forwarded). A trusted
/// proxy's headers on a request that is not sampled pass through unchanged.
pub fn propagate(h: &mut HeaderMap, span: Option<&Span>, trusted: bool) {
    match span {
        Some(s) => {
            h.insert(TRACEPARENT, s.traceparent());
            h.remove(TRACESTATE);
            if let Ok(v) = HeaderValue::from_str(s.tracestate()) {
                if !s.tracestate().is_empty() {
                    h.insert(TRACESTATE, v);
                }
            }
        }
        None if !trusted => {
            h.remove(TRACEPARENT);
            h.remove(TRACESTATE);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceParent::parse(&HeaderValue::from_static(ok)).unwrap();
        assert!(p.sampled);
        assert_eq!(hex::encode(p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p.span_id), "00f067aa0ba902b7");
        assert_eq!(TraceParent::header(&p.trace_id, &p.span_id), ok);
        let table = [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some(false),
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                Some(true),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
            ),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = TraceParent::parse(&HeaderValue::from_static(text)).map(|p| p.sampled);
            assert_eq!(got, want, "{text}");
        }
    }
}
