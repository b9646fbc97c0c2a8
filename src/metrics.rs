//! Prometheus metrics (prefix `sessiongate_`), all of SPEC §11 plus process metrics, in one
//! registry owned by [`Metrics`]. The `route` label is always a configured route name (or one
//! of the fixed names `refresh`, `logout`, `unmatched`), never a raw path, so cardinality is
//! bounded by the config. Every other label value is one of the typed enums below (each
//! with `as_str`), so a call site cannot misspell one.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Declares a metric-label enum and its `as_str` (the exported label value).
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value as exported.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

label_enum! {
    /// `auth_decisions_total{outcome}`: what checking a request's access token decided.
    AuthOutcome {
        /// No `sIdRefreshToken`: the browser has no session.
        NoSession => "no_session",
        /// Tokens cannot be checked yet (no keys, or the revocation feed not read).
        Unavailable => "unavailable",
        MissingAccessToken => "missing_access_token",
        Expired => "expired",
        UnknownKey => "unknown_key",
        Invalid => "invalid",
        AntiCsrfFailed => "anti_csrf_failed",
        Revoked => "revoked",
        Valid => "valid",
        /// A valid session that does not meet the route's `require_claims` (403).
        Forbidden => "forbidden",
    }
}

label_enum! {
    /// `refresh_total{outcome}`: what a refresh attempt came to.
    RefreshLabel {
        Rotated => "rotated",
        GraceReplay => "grace_replay",
        Theft => "theft",
        /// Missing, malformed, forged, unknown or expired: nothing issued, nothing revoked.
        Unauthorised => "unauthorised",
        /// The store (or the keys) could not answer.
        StoreUnavailable => "store_unavailable",
    }
}

label_enum! {
    /// `sessions_revoked_total{reason}`: who ended the sessions.
    RevokeReason {
        /// The browser's logout request.
        Logout => "logout",
        /// An upstream's `sessiongate-revoke`.
        Upstream => "upstream",
        /// The admin API.
        Admin => "admin",
        /// Refresh-token theft (`session.theft_action`).
        Theft => "theft",
    }
}

label_enum! {
    /// `legacy_conversions_total{outcome}`: what a refresh with the original library's token
    /// came to (`[legacy]`).
    LegacyConversion {
        /// The library's session became a native one.
        Converted => "converted",
        /// The converting token again within the grace window: the same answer.
        GraceReplay => "grace_replay",
        /// A stale token of a converted session, or the library's own theft rule.
        Theft => "theft",
        /// Unknown, expired or revoked session, user mismatch, or past `accept_until`.
        Unauthorised => "unauthorised",
        /// Does not decrypt under the library's key: nothing is revoked.
        Forged => "forged",
        StoreUnavailable => "store_unavailable",
    }
}

label_enum! {
    /// `config_reloads_total{result}`.
    ReloadResult {
        Ok => "ok",
        Error => "error",
    }
}

label_enum! {
    /// `job_runs_total{job}` and `job_duration_seconds{job}`.
    JobName {
        Purge => "purge",
        KeyRotation => "key_rotation",
    }
}

label_enum! {
    /// `job_runs_total{outcome}`.
    JobOutcome {
        Ok => "ok",
        Error => "error",
    }
}

label_enum! {
    /// `forward_auth_total{route, decision}`: what the forward-auth endpoint answered a
    /// front proxy (the access-token check itself is also counted in `auth_decisions_total`).
    ForwardAuthDecision {
        /// 200: the request may go on (with identity headers when there is a session).
        Allowed => "allowed",
        /// 401 (or `session.expired_status`): no usable session, or a login redirect.
        Unauthenticated => "unauthenticated",
        /// 403: the session does not meet the route's `require_claims`.
        Forbidden => "forbidden",
        /// Anything else: an untrusted peer, a bad forwarded URI, no route, store unavailable.
        Refused => "refused",
    }
}

label_enum! {
    /// `connections_closed_total{reason}`: why the public listener closed a connection itself.
    CloseReason {
        HeaderTimeout => "header_timeout",
        IdleTimeout => "idle_timeout",
        PerIpLimit => "per_ip_limit",
    }
}

label_enum! {
    /// `rate_limited_total{endpoint}`: which client-address bucket refused a request.
    RateLimitedEndpoint {
        Refresh => "refresh",
        Logout => "logout",
        SessionCreate => "session_create",
        ForwardAuth => "forward_auth",
    }
}

label_enum! {
    /// `connections_open{listener}` and `connections_accepted_total{listener}`.
    Listener {
        Public => "public",
        Admin => "admin",
    }
}

label_enum! {
    /// `events_dropped_total{reason}`: why a security event never reached the webhook queue.
    EventDropReason {
        /// The queue (`events.queue_capacity`) was full.
        QueueFull => "queue_full",
        /// The webhook worker had stopped (shutdown).
        Closed => "closed",
    }
}

label_enum! {
    /// `tls_handshake_failures_total{reason}`: why a TLS handshake on the public listener
    /// did not complete.
    TlsFailure {
        /// Not finished within `server.header_read_timeout_secs`.
        Timeout => "timeout",
        /// The peer sent something that is not an acceptable handshake, or went away.
        Error => "error",
    }
}

label_enum! {
    /// `trace_spans_dropped_total{reason}`: spans the OTLP exporter did not deliver.
    SpanDrop {
        /// The exporter's bounded queue was full.
        QueueFull => "queue_full",
        /// The collector refused the batch or could not be reached.
        ExportFailed => "export_failed",
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub upstream_duration_seconds: HistogramVec,
    pub auth_decisions_total: IntCounterVec,
    pub refresh_total: IntCounterVec,
    pub sessions_created_total: IntCounter,
    pub sessions_revoked_total: IntCounterVec,
    pub key_rotations_total: IntCounter,
    pub store_queries_total: IntCounterVec,
    pub store_errors_total: IntCounter,
    pub store_query_duration_seconds: HistogramVec,
    /// 1 while the store answers, 0 while it does not: set by the health probe
    /// (`jobs::STORE_PROBE_INTERVAL`) and by the outcome of every store operation.
    pub store_up: IntGauge,
    pub purged_sessions_total: IntCounter,
    pub job_runs_total: IntCounterVec,
    pub job_duration_seconds: HistogramVec,
    pub token_theft_total: IntCounter,
    /// Requests and refreshes that carried an original-library token (`[legacy]`).
    pub legacy_requests_total: IntCounter,
    pub legacy_conversions_total: IntCounterVec,
    /// Connections the public listener closed on its own: `header_timeout`, `idle_timeout`,
    /// `per_ip_limit`.
    pub connections_closed_total: IntCounterVec,
    /// Configuration reloads (SIGHUP) by result: `ok` (applied, restart-only changes
    /// excepted) or `error` (the new file was refused; nothing changed).
    pub config_reloads_total: IntCounterVec,
    /// Forward-auth answers by route (`unmatched` before a route is known) and decision.
    pub forward_auth_total: IntCounterVec,
    /// Requests refused by a `[rate_limits]` bucket, by endpoint.
    pub rate_limited_total: IntCounterVec,
    /// Security events not queued for the webhook, by reason.
    pub events_dropped_total: IntCounterVec,
    /// Security events the webhook accepted (2xx).
    pub events_delivered_total: IntCounter,
    /// Security events given up on after `events.max_retries` retries.
    pub events_failed_total: IntCounter,
    /// Connections open now, by listener (a WebSocket tunnel counts while it lasts).
    pub connections_open: IntGaugeVec,
    /// Connections accepted, by listener (per-IP refusals included).
    pub connections_accepted_total: IntCounterVec,
    /// Times the public listener had `server.max_connections` connections open and stopped
    /// accepting until one closed (the waiting ones stay in the kernel's accept queue).
    pub connection_limit_waits_total: IntCounter,
    /// TLS handshakes on the public listener that did not complete, by reason.
    pub tls_handshake_failures_total: IntCounterVec,
    /// Seconds since the current signing key was created (set when `/metrics` is read; 0
    /// for a static `secret_file` key or before keys are loaded).
    pub signing_key_age_seconds: IntGauge,
    /// Trace spans exported to the OTLP collector (`[tracing]`).
    pub trace_spans_exported_total: IntCounter,
    /// Trace spans not delivered, by reason.
    pub trace_spans_dropped_total: IntCounterVec,
}

/// One listener's connection metrics, with the label values resolved once: what
/// `server::serve` updates.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub open: IntGauge,
    pub accepted: IntCounter,
    /// `None` on the admin listener: `connections_closed_total`, `connection_limit_waits_total`
    /// and `tls_handshake_failures_total` are the public listener's.
    public: Option<Metrics>,
}

impl ListenerMetrics {
    pub fn closed(&self, reason: CloseReason) {
        if let Some(m) = &self.public {
            m.connections_closed_total
                .with_label_values(&[reason.as_str()])
                .inc();
        }
    }

    pub fn tls_failed(&self, reason: TlsFailure) {
        if let Some(m) = &self.public {
            m.tls_handshake_failures_total
                .with_label_values(&[reason.as_str()])
                .inc();
        }
    }

    pub fn limit_wait(&self) {
        if let Some(m) = &self.public {
            m.connection_limit_waits_total.inc();
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("sessiongate"), labels)
        .expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help).namespace("sessiongate")).expect("valid");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("sessiongate")).expect("valid");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("sessiongate"), labels)
        .expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace("sessiongate")
            .buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "sessiongate",
            );
            let _ = r.register(Box::new(pc));
        }
        let m = Self {
            requests_total: counter_vec(
                &r,
                "requests_total",
                "Requests answered, by route and status code",
                &["route", "code"],
            ),
            request_duration_seconds: histogram_vec(
                &r,
                "request_duration_seconds",
                "Time to response headers, by route",
                &["route"],
            ),
            upstream_duration_seconds: histogram_vec(
                &r,
                "upstream_duration_seconds",
                "Upstream time to response headers, by route",
                &["route"],
            ),
            forward_auth_total: counter_vec(
                &r,
                "forward_auth_total",
                "Forward-auth answers to front proxies, by route and decision",
                &["route", "decision"],
            ),
            auth_decisions_total: counter_vec(
                &r,
                "auth_decisions_total",
                "Access-token checks by outcome",
                &["outcome"],
            ),
            refresh_total: counter_vec(
                &r,
                "refresh_total",
                "Refresh attempts by outcome",
                &["outcome"],
            ),
            sessions_created_total: counter(&r, "sessions_created_total", "Sessions created"),
            sessions_revoked_total: counter_vec(
                &r,
                "sessions_revoked_total",
                "Sessions revoked, by reason",
                &["reason"],
            ),
            key_rotations_total: counter(
                &r,
                "key_rotations_total",
                "Signing keys created by this instance",
            ),
            store_queries_total: counter_vec(
                &r,
                "store_queries_total",
                "Store operations, by operation",
                &["op"],
            ),
            store_errors_total: counter(&r, "store_errors_total", "Store operations that failed"),
            store_query_duration_seconds: histogram_vec(
                &r,
                "store_query_duration_seconds",
                "Store operation latency, by operation",
                &["op"],
            ),
            store_up: gauge(
                &r,
                "store_up",
                "1 while the session store answers, 0 while it does not",
            ),
            purged_sessions_total: counter(
                &r,
                "purged_sessions_total",
                "Expired sessions deleted by the purge job",
            ),
            job_runs_total: counter_vec(
                &r,
                "job_runs_total",
                "Job runs by job and outcome",
                &["job", "outcome"],
            ),
            job_duration_seconds: histogram_vec(
                &r,
                "job_duration_seconds",
                "Job run time, by job",
                &["job"],
            ),
            token_theft_total: counter(&r, "token_theft_total", "Refresh-token thefts detected"),
            legacy_requests_total: counter(
                &r,
                "legacy_requests_total",
                "Requests carrying an original-library access or refresh token",
            ),
            legacy_conversions_total: counter_vec(
                &r,
                "legacy_conversions_total",
                "Refreshes with an original-library refresh token, by outcome",
                &["outcome"],
            ),
            connections_closed_total: counter_vec(
                &r,
                "connections_closed_total",
                "Public-listener connections closed by the gateway, by reason",
                &["reason"],
            ),
            config_reloads_total: counter_vec(
                &r,
                "config_reloads_total",
                "Configuration reloads, by result (ok, error)",
                &["result"],
            ),
            rate_limited_total: counter_vec(
                &r,
                "rate_limited_total",
                "Requests refused with 429 by a per-client-address rate limit, by endpoint",
                &["endpoint"],
            ),
            events_dropped_total: counter_vec(
                &r,
                "events_dropped_total",
                "Security events not queued for the webhook, by reason",
                &["reason"],
            ),
            events_delivered_total: counter(
                &r,
                "events_delivered_total",
                "Security events delivered to the webhook",
            ),
            events_failed_total: counter(
                &r,
                "events_failed_total",
                "Security events the webhook did not accept after every retry",
            ),
            connections_open: gauge_vec(
                &r,
                "connections_open",
                "Connections open now, by listener",
                &["listener"],
            ),
            connections_accepted_total: counter_vec(
                &r,
                "connections_accepted_total",
                "Connections accepted, by listener",
                &["listener"],
            ),
            connection_limit_waits_total: counter(
                &r,
                "connection_limit_waits_total",
                "Times the public listener reached server.max_connections and paused accepting",
            ),
            tls_handshake_failures_total: counter_vec(
                &r,
                "tls_handshake_failures_total",
                "TLS handshakes on the public listener that failed, by reason",
                &["reason"],
            ),
            signing_key_age_seconds: gauge(
                &r,
                "signing_key_age_seconds",
                "Seconds since the current signing key was created (0: static key or none)",
            ),
            trace_spans_exported_total: counter(
                &r,
                "trace_spans_exported_total",
                "Trace spans delivered to the OTLP collector",
            ),
            trace_spans_dropped_total: counter_vec(
                &r,
                "trace_spans_dropped_total",
                "Trace spans not delivered, by reason",
                &["reason"],
            ),
            registry: r,
        };
        // Every value of these labels is exported from the start, at 0.
        for result in ReloadResult::ALL {
            m.config_reloads_total.with_label_values(&[result.as_str()]);
        }
        for reason in CloseReason::ALL {
            m.connections_closed_total
                .with_label_values(&[reason.as_str()]);
        }
        for reason in TlsFailure::ALL {
            m.tls_handshake_failures_total
                .with_label_values(&[reason.as_str()]);
        }
        for listener in Listener::ALL {
            m.connections_open.with_label_values(&[listener.as_str()]);
            m.connections_accepted_total
                .with_label_values(&[listener.as_str()]);
        }
        m
    }

    /// The metrics `listener`'s accept loop keeps.
    pub fn listener(&self, listener: Listener) -> ListenerMetrics {
        ListenerMetrics {
            open: self
                .connections_open
                .with_label_values(&[listener.as_str()]),
            accepted: self
                .connections_accepted_total
                .with_label_values(&[listener.as_str()]),
            public: (listener == Listener::Public).then(|| self.clone()),
        }
    }

    pub fn legacy_conversion(&self, outcome: LegacyConversion) {
        self.legacy_conversions_total
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Times a store operation and counts it (and its failure).
    pub fn store_op<T, E>(&self, op: &str, started: std::time::Instant, result: &Result<T, E>) {
        self.store_queries_total.with_label_values(&[op]).inc();
        self.store_query_duration_seconds
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.store_errors_total.inc();
        }
    }

    pub fn auth_decision(&self, outcome: AuthOutcome) {
        self.auth_decisions_total
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    pub fn forward_auth(&self, route: &str, decision: ForwardAuthDecision) {
        self.forward_auth_total
            .with_label_values(&[route, decision.as_str()])
            .inc();
    }

    pub fn refresh(&self, outcome: RefreshLabel) {
        self.refresh_total
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Counts `n` sessions revoked for `reason`.
    pub fn revoked(&self, reason: RevokeReason, n: u64) {
        self.sessions_revoked_total
            .with_label_values(&[reason.as_str()])
            .inc_by(n);
    }

    pub fn config_reload(&self, result: ReloadResult) {
        self.config_reloads_total
            .with_label_values(&[result.as_str()])
            .inc();
    }

    pub fn rate_limited(&self, endpoint: RateLimitedEndpoint) {
        self.rate_limited_total
            .with_label_values(&[endpoint.as_str()])
            .inc();
    }

    pub fn event_dropped(&self, reason: EventDropReason) {
        self.events_dropped_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts and times one run of `job`.
    pub fn job_run(&self, job: JobName, outcome: JobOutcome, started: std::time::Instant) {
        self.job_runs_total
            .with_label_values(&[job.as_str(), outcome.as_str()])
            .inc();
        self.job_duration_seconds
            .with_label_values(&[job.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exported label values are a contract (dashboards, `tests/it/metrics_flow.rs`).
    #[test]
    fn label_values() {
        let check = |got: Vec<&str>, want: &[&str]| assert_eq!(got, want);
        check(
            AuthOutcome::ALL.iter().map(|o| o.as_str()).collect(),
            &[
                "no_session",
                "unavailable",
                "missing_access_token",
                "expired",
                "unknown_key",
                "invalid",
                "anti_csrf_failed",
                "revoked",
                "valid",
                "forbidden",
            ],
        );
        check(
            RefreshLabel::ALL.iter().map(|o| o.as_str()).collect(),
            &[
                "rotated",
                "grace_replay",
                "theft",
                "unauthorised",
                "store_unavailable",
            ],
        );
        check(
            RevokeReason::ALL.iter().map(|o| o.as_str()).collect(),
            &["logout", "upstream", "admin", "theft"],
        );
        check(
            ReloadResult::ALL.iter().map(|o| o.as_str()).collect(),
            &["ok", "error"],
        );
        check(
            JobName::ALL.iter().map(|o| o.as_str()).collect(),
            &["purge", "key_rotation"],
        );
        check(
            JobOutcome::ALL.iter().map(|o| o.as_str()).collect(),
            &["ok", "error"],
        );
        check(
            CloseReason::ALL.iter().map(|o| o.as_str()).collect(),
            &["header_timeout", "idle_timeout", "per_ip_limit"],
        );
        check(
            ForwardAuthDecision::ALL
                .iter()
                .map(|o| o.as_str())
                .collect(),
            &["allowed", "unauthenticated", "forbidden", "refused"],
        );
        check(
            RateLimitedEndpoint::ALL
                .iter()
                .map(|o| o.as_str())
                .collect(),
            &["refresh", "logout", "session_create", "forward_auth"],
        );
        check(
            EventDropReason::ALL.iter().map(|o| o.as_str()).collect(),
            &["queue_full", "closed"],
        );
        check(
            Listener::ALL.iter().map(|o| o.as_str()).collect(),
            &["public", "admin"],
        );
        check(
            TlsFailure::ALL.iter().map(|o| o.as_str()).collect(),
            &["timeout", "error"],
        );
        check(
            SpanDrop::ALL.iter().map(|o| o.as_str()).collect(),
            &["queue_full", "export_failed"],
        );
        check(
            LegacyConversion::ALL.iter().map(|o| o.as_str()).collect(),
            &[
                "converted",
                "grace_replay",
                "theft",
                "unauthorised",
                "forged",
                "store_unavailable",
            ],
        );
    }
}
