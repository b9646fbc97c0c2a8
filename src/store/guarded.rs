//! [`Guarded`]: the one decorator around a store. Every operation through it is bounded by
//! [`OPERATION_TIMEOUT`] (except `migrate` and `with_job_lock`, which may legitimately run
//! long) and, when it has [`Metrics`], counted and timed (`store_queries_total`,
//! `store_query_duration_seconds`, `store_errors_total`). The gateway always talks to its store
//! through this, so the counters are the truth about store traffic. The outcome of each
//! operation also keeps `store_up` current: a success sets it to 1, an
//! [`StoreError::Unavailable`] (a timeout included) to 0; other failures say nothing about
//! reachability.
//!
//! When the task handling a request has a sampled trace (`otel`), each operation is also a
//! child span of it, named after the operation (the operation's name and, on failure, the
//! kind of error only: never a value).
//!
//! The trait implementations are generated in `store/mod.rs` from the list of operations,
//! with the metric label and time limit each one has there; this file holds what they share.

use std::future::Future;
use std::time::Instant;

use super::{StoreError, StoreResult};
use crate::metrics::Metrics;

/// Longest time one store operation may take before it is reported as unavailable, so a
/// database that accepts connections but stops answering cannot hang requests.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether an operation is bounded by [`OPERATION_TIMEOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Limited,
    Unlimited,
}

pub struct Guarded<S> {
    inner: S,
    metrics: Option<Metrics>,
}

impl<S> Guarded<S> {
    /// The gateway's store: bounded and metered.
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self {
            inner,
            metrics: Some(metrics),
        }
    }

    /// Bounded but not metered (the CLI, which exposes no metrics).
    pub fn unmetered(inner: S) -> Self {
        Self {
            inner,
            metrics: None,
        }
    }

    /// The store below the decorator: no time limit, not counted.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs one operation of the inner store under its limit and records it as `op`.
    pub(super) async fn guard<T>(
        &self,
        op: &'static str,
        limit: Limit,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        // A child span of the request's trace, when it is traced (`otel`).
        let mut span = crate::otel::span(op, crate::otel::SpanKind::Client);
        if let Some(s) = span.as_mut() {
            s.set_str("db.operation.name", op);
        }
        let result = match limit {
            Limit::Unlimited => call.await,
            Limit::Limited => tokio::time::timeout(OPERATION_TIMEOUT, call)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(format!(
                        "store operation took longer than {} s",
                        OPERATION_TIMEOUT.as_secs()
                    )))
                }),
        };
        if let Some(metrics) = &self.metrics {
            metrics.store_op(op, started, &result);
            match &result {
                Ok(_) => metrics.store_up.set(1),
                Err(StoreError::Unavailable(_)) => metrics.store_up.set(0),
                Err(_) => {}
            }
        }
        if let (Some(s), Err(e)) = (span.as_mut(), &result) {
            s.set_error(match e {
                StoreError::Unavailable(_) => "store unavailable",
                StoreError::Query(_) => "store query failed",
                StoreError::Corrupt(_) => "stored data is corrupt",
                StoreError::Migration(_) => "migration failed",
                StoreError::Conflict(_) => "store transaction conflict",
            });
        }
        drop(span);
        result
    }
}
