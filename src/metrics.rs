//! Prometheus metrics (prefix `sessiongate_`), all of SPEC §11 plus process metrics, in one
//! registry owned by [`Metrics`]. The `route` label is always a configured route name (or one
//! of the fixed names `refresh`, `logout`, `unmatched`), never a raw path, so cardinality is
//! bounded by the config.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

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
    /// Connections the public listener closed on its own: `header_timeout`, `idle_timeout`,
    /// `per_ip_limit`.
    pub connections_closed_total: IntCounterVec,
    /// Configuration reloads (SIGHUP) by result: `ok` (applied, restart-only changes
    /// excepted) or `error` (the new file was refused; nothing changed).
    pub config_reloads_total: IntCounterVec,
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
            registry: r,
        };
        // Both results are exported from the start, at 0.
        for result in ["ok", "error"] {
            m.config_reloads_total.with_label_values(&[result]);
        }
        m
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

    pub fn histogram(&self, h: &HistogramVec, label: &str) -> Histogram {
        h.with_label_values(&[label])
    }
}
