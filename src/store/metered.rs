//! A [`SessionStore`] wrapper that counts and times every operation in [`Metrics`]
//! (`store_queries_total`, `store_query_duration_seconds`, `store_errors_total`). The gateway
//! always talks to its store through this, so the counters are the truth about store traffic.
//! The outcome of each operation also keeps `store_up` current: a success sets it to 1, an
//! [`StoreError::Unavailable`] to 0 (other failures say nothing about reachability).

use std::future::Future;
use std::time::Instant;

use super::*;
use crate::metrics::Metrics;

pub struct Metered<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Metered<S> {
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Updates `store_up` from an operation's outcome.
    pub fn observe_reachability<T>(&self, result: &StoreResult<T>) {
        match result {
            Ok(_) => self.metrics.store_up.set(1),
            Err(StoreError::Unavailable(_)) => self.metrics.store_up.set(0),
            Err(_) => {}
        }
    }
}

macro_rules! timed {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.metrics.store_op($op, started, &result);
        $self.observe_reachability(&result);
        result
    }};
}

impl<S: SessionStore> SessionStore for Metered<S> {
    async fn migrate(&self) -> StoreResult<usize> {
        timed!(self, "migrate", self.inner.migrate())
    }
    async fn ping(&self) -> StoreResult<()> {
        timed!(self, "ping", self.inner.ping())
    }
    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        timed!(self, "create_session", self.inner.create_session(new))
    }
    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        timed!(self, "session", self.inner.session(handle, now))
    }
    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        timed!(self, "refresh", self.inner.refresh(req))
    }
    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        timed!(
            self,
            "user_sessions",
            self.inner.user_sessions(user_id, now)
        )
    }
    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        timed!(
            self,
            "revoke_session",
            self.inner.revoke_session(handle, now)
        )
    }
    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        timed!(
            self,
            "revoke_user_sessions",
            self.inner.revoke_user_sessions(user_id, now)
        )
    }
    async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        timed!(
            self,
            "update_session_data",
            self.inner.update_session_data(handle, data, now)
        )
    }
    async fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        timed!(
            self,
            "update_jwt_payload",
            self.inner.update_jwt_payload(handle, payload, now)
        )
    }
    async fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> StoreResult<u64> {
        timed!(
            self,
            "purge_expired",
            self.inner.purge_expired(now, feed_before, batch)
        )
    }
    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        timed!(self, "keys", self.inner.keys())
    }
    async fn insert_key(&self, key: StoredKey) -> StoreResult<bool> {
        timed!(self, "insert_key", self.inner.insert_key(key))
    }
    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        timed!(
            self,
            "delete_access_keys",
            self.inner.delete_access_keys_before(before)
        )
    }
    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        timed!(
            self,
            "revocations_since",
            self.inner.revocations_since(after, limit)
        )
    }
    async fn revocation_head(&self) -> StoreResult<u64> {
        timed!(self, "revocation_head", self.inner.revocation_head())
    }
    async fn with_job_lock<T: Send>(
        &self,
        name: &str,
        f: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<Option<T>> {
        timed!(self, "job_lock", self.inner.with_job_lock(name, f))
    }
}
