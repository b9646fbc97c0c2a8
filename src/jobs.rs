//! Sidecar jobs run by tokio-cron-scheduler inside the process, in UTC: the signing-key
//! rotation check (every minute) and the purge of expired sessions (`removal_cron`, batched,
//! one instance at a time through the store's job lock). Each run is counted and timed in
//! `job_runs_total{job,outcome}` / `job_duration_seconds{job}`.
//!
//! The blacklist feed poll is not a cron job (it runs several times a second); it is a plain
//! interval task started next to the scheduler and stopped with it. So is the store probe: one
//! ping every [`STORE_PROBE_INTERVAL`] (bounded by [`STORE_PROBE_TIMEOUT`]) keeps the
//! `store_up` gauge current when no other store traffic does. The probe talks to the store
//! below the metering wrapper, so `store_queries_total` counts only real work.
//!
//! The jobs start with the gateway and tolerate a store that is down or not in service yet:
//! a failed run is counted and logged, and the rotation check does nothing until the keys
//! have been loaded (`startup.rs` loads them).

use std::sync::Arc;
use std::time::Instant;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::metrics::{JobName, JobOutcome};
use crate::state::AppState;
use crate::store::Maintenance;

/// Time between two store probes.
pub const STORE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest a probe may take before the store counts as down.
pub const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One store probe: sets `store_up` to 1 if the store answers a ping within
/// [`STORE_PROBE_TIMEOUT`], else 0.
pub async fn probe_store_once(state: &AppState) {
    let store = state.sessions.store();
    let ping = tokio::time::timeout(STORE_PROBE_TIMEOUT, store.inner().ping()).await;
    let up = matches!(ping, Ok(Ok(())));
    state.metrics.store_up.set(i64::from(up));
}

/// Rows deleted per purge statement.
pub const PURGE_BATCH: u32 = 1000;

/// One purge run: batches until fewer than a batch remain. Returns the rows deleted, or None
/// when another instance holds the purge lock.
pub async fn purge_once(state: &AppState) -> Result<Option<u64>, crate::store::StoreError> {
    let store = state.sessions.store().clone();
    let now = state.clock.now_ms();
    // Feed entries are needed only while an access token they refuse can still be alive.
    let feed_before = now - (state.cfg.tokens.access_token.validity_secs as i64) * 1000 - 60_000;
    let inner = store.clone();
    store
        .with_job_lock("sessiongate_purge", async move {
            let mut total = 0;
            loop {
                let n = inner.purge_expired(now, feed_before, PURGE_BATCH).await?;
                total += n;
                if n < u64::from(PURGE_BATCH) {
                    return Ok(total);
                }
            }
        })
        .await
}

fn record(state: &AppState, job: JobName, started: Instant, ok: bool) {
    let outcome = if ok {
        JobOutcome::Ok
    } else {
        JobOutcome::Error
    };
    state.metrics.job_run(job, outcome, started);
}

/// One run of the rotation check.
pub async fn rotate_keys_once(state: &AppState) {
    let started = Instant::now();
    match state.sessions.keys().rotate_if_due().await {
        Ok(created) => {
            if let Some(kid) = created {
                state.metrics.key_rotations_total.inc();
                state
                    .sessions
                    .events()
                    .emit(crate::events::Event::KeyRotated {
                        kid: &kid,
                        scheduled: true,
                    });
            }
            record(state, JobName::KeyRotation, started, true);
        }
        Err(e) => {
            tracing::warn!(error = %e, "key rotation check failed");
            record(state, JobName::KeyRotation, started, false);
        }
    }
}

/// One run of the purge job, counted and timed like a scheduled run. Returns what
/// [`purge_once`] returned (`Ok(None)`: skipped, another instance holds the lock).
pub async fn purge_job_once(state: &AppState) -> Result<Option<u64>, crate::store::StoreError> {
    let started = Instant::now();
    let result = purge_once(state).await;
    match &result {
        Ok(Some(n)) => {
            state.metrics.purged_sessions_total.inc_by(*n);
            tracing::info!(deleted = n, "purged expired sessions");
            record(state, JobName::Purge, started, true);
        }
        Ok(None) => {
            tracing::debug!("purge skipped: another instance holds the lock");
            record(state, JobName::Purge, started, true);
        }
        Err(e) => {
            tracing::warn!(error = %e, "purge failed");
            record(state, JobName::Purge, started, false);
        }
    }
    result
}

/// The running jobs; [`Jobs::stop`] ends them.
pub struct Jobs {
    scheduler: JobScheduler,
    feed: Option<tokio::task::JoinHandle<()>>,
    probe: tokio::task::JoinHandle<()>,
}

impl Jobs {
    pub async fn start(state: AppState) -> anyhow::Result<Self> {
        let scheduler = JobScheduler::new().await?;
        let st = state.clone();
        scheduler
            .add(Job::new_async("0 * * * * *", move |_, _| {
                let st = st.clone();
                Box::pin(async move { rotate_keys_once(&st).await })
            })?)
            .await?;
        let st = state.clone();
        scheduler
            .add(Job::new_async(
                state.cfg.tokens.refresh_token.removal_cron.as_str(),
                move |_, _| {
                    let st = st.clone();
                    Box::pin(async move {
                        let _ = purge_job_once(&st).await;
                    })
                },
            )?)
            .await?;
        scheduler.start().await?;
        let feed = state.sessions.blacklist().cloned().map(|bl| {
            let st = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::blacklist::POLL_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let store: &Arc<_> = st.sessions.store();
                    if let Err(e) = bl.catch_up(store.as_ref(), st.clock.now_ms()).await {
                        tracing::debug!(error = %e, "revocation feed poll failed");
                    }
                }
            })
        });
        let st = state.clone();
        let probe = tokio::spawn(async move {
            let mut tick = tokio::time::interval(STORE_PROBE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                probe_store_once(&st).await;
            }
        });
        Ok(Self {
            scheduler,
            feed,
            probe,
        })
    }

    pub async fn stop(mut self) {
        self.probe.abort();
        if let Some(f) = self.feed.take() {
            f.abort();
        }
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "job scheduler did not stop cleanly");
        }
    }
}
