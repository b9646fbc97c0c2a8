//! Security events (`[events]`): refresh-token theft, session revocations (by whom), signing
//! key rotations and admin API calls. Each is one structured log line (target
//! `sessiongate::events`, with a stable `event` field) and, with `events.webhook_url`, one
//! JSON `POST` to that URL.
//!
//! Emitting never waits: the event goes into a bounded queue with `try_send`; when the queue
//! is full it is dropped and counted (`events_dropped_total{reason}`). One worker task posts
//! the queue in order, signing each body with HMAC-SHA256 (`events.webhook_secret_file`) and
//! retrying a failure with exponential backoff (`events.max_retries`, from
//! `events.retry_base_ms`, doubling, at most 60 s apart); the outcome is counted in
//! `events_delivered_total` / `events_failed_total`.
//!
//! The request an event belongs to (client address after `trusted_proxies`, request id) is
//! given by the public and admin handlers with [`scope`]; events outside a request (the key
//! rotation job) carry neither. An event never holds a token or cookie value.
//!
//! This module must not pick HTTP statuses for the gateway's own answers, nor block a caller.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, HeaderValue, Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::body::{full, Body};
use crate::clock::Clock;
use crate::config::{EventsConfig, Webhook};
use crate::metrics::{EventDropReason, Metrics, RevokeReason};

/// The header carrying `sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "x-sessiongate-signature";
/// The header carrying the Unix time (seconds) the signature was made at.
pub const TIMESTAMP_HEADER: &str = "x-sessiongate-timestamp";
/// The header naming the event (`session.theft_detected`, …).
pub const EVENT_HEADER: &str = "x-sessiongate-event";
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// One attempt's limit (connect, send, response head).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One security event.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A refresh token was presented again after rotation (and outside the grace window).
    TheftDetected {
        session_handle: &'a str,
        user_id: &'a str,
        /// Sessions revoked for it (`session.theft_action`).
        revoked: u64,
    },
    /// Sessions ended: one by handle, or all of a user's.
    SessionRevoked {
        session_handle: Option<&'a str>,
        user_id: Option<&'a str>,
        reason: RevokeReason,
        revoked: u64,
    },
    /// A new signing key was created (`scheduled` by the rotation job, else forced).
    KeyRotated { kid: &'a str, scheduled: bool },
    /// A call of the `/v1` admin API, with the status it was answered.
    AdminCall {
        method: &'a str,
        path: &'a str,
        status: u16,
    },
}

impl Event<'_> {
    /// The stable `event` value.
    pub fn name(&self) -> &'static str {
        match self {
            Event::TheftDetected { .. } => "session.theft_detected",
            Event::SessionRevoked { .. } => "session.revoked",
            Event::KeyRotated { .. } => "key.rotated",
            Event::AdminCall { .. } => "admin.call",
        }
    }
}

/// The flat form of an event: the log line's fields and the webhook body.
#[derive(Serialize)]
struct Record<'a> {
    event: &'static str,
    /// Random, the same on every delivery attempt: receivers deduplicate retries with it.
    id: String,
    time_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_handle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl<'a> Record<'a> {
    fn new(event: &Event<'a>, now_ms: i64, origin: Option<Origin>) -> Self {
        let mut r = Record {
            event: event.name(),
            id: format!("{:032x}", rand::random::<u128>()),
            time_ms: now_ms,
            session_handle: None,
            user_id: None,
            reason: None,
            revoked: None,
            kid: None,
            scheduled: None,
            method: None,
            path: None,
            status: None,
            client_ip: origin.as_ref().map(|o| o.client_ip.to_string()),
            request_id: origin
                .and_then(|o| o.request_id)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        };
        match *event {
            Event::TheftDetected {
                session_handle,
                user_id,
                revoked,
            } => {
                r.session_handle = Some(session_handle);
                r.user_id = Some(user_id);
                r.reason = Some(RevokeReason::Theft.as_str());
                r.revoked = Some(revoked);
            }
            Event::SessionRevoked {
                session_handle,
                user_id,
                reason,
                revoked,
            } => {
                r.session_handle = session_handle;
                r.user_id = user_id;
                r.reason = Some(reason.as_str());
                r.revoked = Some(revoked);
            }
            Event::KeyRotated { kid, scheduled } => {
                r.kid = Some(kid);
                r.scheduled = Some(scheduled);
            }
            Event::AdminCall {
                method,
                path,
                status,
            } => {
                r.method = Some(method);
                r.path = Some(path);
                r.status = Some(status);
            }
        }
        r
    }

    fn log(&self) {
        macro_rules! line {
            ($level:ident, $message:literal) => {
                tracing::$level!(
                    target: "sessiongate::events",
                    event = self.event,
                    event_id = %self.id,
                    session_handle = self.session_handle,
                    user_id = self.user_id,
                    reason = self.reason,
                    revoked = self.revoked,
                    kid = self.kid,
                    scheduled = self.scheduled,
                    method = self.method,
                    path = self.path,
                    status = self.status,
                    client_ip = self.client_ip.as_deref(),
                    request_id = self.request_id.as_deref(),
                    $message
                )
            };
        }
        match self.event {
            "session.theft_detected" => {
                line!(warn, "refresh token theft detected; session revoked")
            }
            _ => line!(info, "security event"),
        }
    }
}

/// The request an event happens in.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The client's address after `server.trusted_proxies`.
    pub client_ip: IpAddr,
    /// The public listener's `X-Request-Id`; the admin listener has none.
    pub request_id: Option<HeaderValue>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `fut` (one request's handling) with `origin` as the origin of the events it emits.
pub async fn scope<F: Future>(origin: Origin, fut: F) -> F::Output {
    ORIGIN.scope(origin, fut).await
}

fn current_origin() -> Option<Origin> {
    ORIGIN.try_with(Origin::clone).ok()
}

/// Where events go: the log always, the webhook queue when configured. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    clock: Clock,
    queue: Option<Arc<Queue>>,
}

struct Queue {
    tx: mpsc::Sender<Bytes>,
    metrics: Metrics,
}

impl Events {
    /// Events that are only logged.
    pub fn log_only(clock: Clock) -> Self {
        Self { clock, queue: None }
    }

    /// Events as `cfg` says; with a webhook, starts its worker on the current runtime.
    pub fn start(cfg: &EventsConfig, metrics: Metrics, clock: Clock) -> Self {
        let Some(webhook) = cfg.webhook.clone() else {
            return Self::log_only(clock);
        };
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let worker = Worker {
            webhook,
            client: client(),
            max_retries: cfg.max_retries,
            retry_base: cfg.retry_base,
            metrics: metrics.clone(),
            clock: clock.clone(),
        };
        tokio::spawn(worker.run(rx));
        Self {
            clock,
            queue: Some(Arc::new(Queue { tx, metrics })),
        }
    }

    /// Logs `event` and queues it for the webhook, never waiting.
    pub fn emit(&self, event: Event<'_>) {
        let record = Record::new(&event, self.clock.now_ms(), current_origin());
        record.log();
        let Some(q) = &self.queue else { return };
        let body = match serde_json::to_vec(&record) {
            Ok(b) => Bytes::from(b),
            Err(_) => return,
        };
        match q.tx.try_send(body) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                q.metrics.event_dropped(EventDropReason::QueueFull);
                tracing::warn!(
                    target: "sessiongate::events",
                    event = record.event,
                    "webhook queue full: event dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                q.metrics.event_dropped(EventDropReason::Closed);
            }
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

fn client() -> Client<Connector, Body> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::proxy::forward::rustls_client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// `sha256=<hex>`: HMAC-SHA256 with `secret` over `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook worker: posts queued events in order, retrying each with backoff.
struct Worker {
    webhook: Webhook,
    client: Client<Connector, Body>,
    max_retries: u32,
    retry_base: Duration,
    metrics: Metrics,
    clock: Clock,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Bytes>) {
        while let Some(body) = rx.recv().await {
            let mut attempt = 0u32;
            loop {
                match self.post(&body).await {
                    Ok(()) => {
                        self.metrics.events_delivered_total.inc();
                        break;
                    }
                    Err(why) if attempt >= self.max_retries => {
                        self.metrics.events_failed_total.inc();
                        tracing::warn!(
                            target: "sessiongate::events",
                            attempts = attempt + 1,
                            error = %why,
                            "webhook delivery failed: event given up"
                        );
                        break;
                    }
                    Err(why) => {
                        let wait = self
                            .retry_base
                            .saturating_mul(1u32 << attempt.min(16))
                            .min(MAX_BACKOFF);
                        tracing::debug!(
                            target: "sessiongate::events",
                            attempt = attempt + 1,
                            error = %why,
                            retry_in_ms = wait.as_millis() as u64,
                            "webhook delivery failed; will retry"
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                }
            }
        }
    }

    async fn post(&self, body: &Bytes) -> Result<(), String> {
        let timestamp = self.clock.now_ms() / 1000;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.webhook.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "sessiongate-events")
            .header(TIMESTAMP_HEADER, timestamp);
        if let Some(name) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["event"]
                    .as_str()
                    .and_then(|s| HeaderValue::from_str(s).ok())
            })
        {
            req = req.header(EVENT_HEADER, name);
        }
        if let Some(secret) = &self.webhook.secret {
            req = req.header(SIGNATURE_HEADER, signature(&secret.key, timestamp, body));
        }
        let req = req.body(full(body.clone())).map_err(|e| e.to_string())?;
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(req)).await {
            Err(_) => Err("timed out".into()),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
            Ok(Ok(resp)) => Err(format!("answered {}", resp.status().as_u16())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let s = signature(b"0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(
            s,
            signature(b"0123456789abcdef", 1_700_000_001, b"{\"a\":1}")
        );
        assert_ne!(
            s,
            signature(b"0123456789abcdef", 1_700_000_000, b"{\"a\":2}")
        );
        assert_ne!(
            s,
            signature(b"0123456789abcdeg", 1_700_000_000, b"{\"a\":1}")
        );
    }

    #[test]
    fn records_hold_the_event_fields_and_no_more() {
        let origin = Origin {
            client_ip: "203.0.113.7".parse().unwrap(),
            request_id: Some(HeaderValue::from_static("r1")),
        };
        let e = Event::TheftDetected {
            session_handle: "h",
            user_id: "u",
            revoked: 1,
        };
        let v = serde_json::to_value(Record::new(&e, 5, Some(origin))).unwrap();
        assert_eq!(v["event"], "session.theft_detected");
        assert_eq!(v["reason"], "theft");
        assert_eq!(v["client_ip"], "203.0.113.7");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["time_ms"], 5);
        assert!(v.get("kid").is_none() && v.get("method").is_none());
        let e = Event::KeyRotated {
            kid: "k",
            scheduled: true,
        };
        let v = serde_json::to_value(Record::new(&e, 5, None)).unwrap();
        assert_eq!(v["event"], "key.rotated");
        assert!(v.get("client_ip").is_none());
    }
}
