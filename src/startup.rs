//! Bringing the store into service: migrations (when `store.auto_migrate`), the signing keys
//! and the first read of the revocation feed (with blacklisting). The gateway serves before
//! this is done; until it is, whatever needs the store or the keys answers 503
//! `store_unavailable` (see [`crate::state::AppState::verification_blocker`]).
//!
//! A MySQL store that cannot be reached at start is retried in the background with capped,
//! jittered exponential backoff ([`FIRST_RETRY`] doubling up to [`MAX_RETRY`]), so a database
//! that comes up after the gateway needs no restart. A SQLite store is brought up before the
//! gateway serves, and a failure there is final: a file that cannot be opened or migrated will
//! not fix itself.
//!
//! Does no SQL itself: it calls the store's `migrate`, `KeyCache::initialise` and
//! `Blacklist::catch_up`.

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use crate::state::AppState;
use crate::store::Maintenance;

/// The first wait after a failed attempt.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// Longest time start-up waits for the first attempt on a MySQL store before serving without
/// it (a refused connection ends the wait at once).
pub const START_WAIT: Duration = Duration::from_secs(3);

/// One attempt to bring the store into service. Each step is idempotent, so a failed attempt
/// is simply repeated.
pub async fn attempt(state: &AppState) -> anyhow::Result<()> {
    use anyhow::Context;
    if state.cfg.store.auto_migrate {
        let applied = state
            .sessions
            .store()
            .migrate()
            .await
            .context("applying migrations")?;
        if applied > 0 {
            tracing::info!(applied, "store migrations applied");
        }
    }
    state
        .sessions
        .keys()
        .initialise()
        .await
        .context("loading signing keys")?;
    if let Some(bl) = state.sessions.blacklist() {
        if !bl.is_synced() {
            bl.catch_up(state.sessions.store().as_ref(), state.clock.now_ms())
                .await
                .context("reading the revocation feed")?;
        }
    }
    Ok(())
}

/// The wait after `failures` failed attempts: [`FIRST_RETRY`] doubled per failure, at most
/// [`MAX_RETRY`], then a random part of its upper half taken off so that replicas started
/// together do not retry in step.
pub fn retry_delay(failures: u32) -> Duration {
    let full = FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY);
    let jitter = rand::thread_rng().gen_range(0.0..0.5);
    full.mul_f64(1.0 - jitter)
}

/// Where [`retry_until_ready`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The first attempt is running.
    FirstAttempt,
    /// An attempt failed; retrying.
    Retrying,
    /// The store is in service.
    Ready,
}

/// Repeats [`attempt`] until it succeeds or `stop` turns true, reporting on `progress`.
pub async fn retry_until_ready(
    state: AppState,
    progress: watch::Sender<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            r = attempt(&state) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match outcome {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(attempts = failures + 1, "store reachable; gateway ready");
                }
                let _ = progress.send(Progress::Ready);
                return;
            }
            Err(e) => {
                failures += 1;
                let _ = progress.send(Progress::Retrying);
                let wait = retry_delay(failures);
                tracing::warn!(
                    error = %format!("{e:#}"),
                    attempt = failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "store not in service yet; serving without it and retrying"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap_with_bounded_jitter() {
        let check = |failures: u32, full_ms: u64| {
            for _ in 0..50 {
                let d = retry_delay(failures).as_millis() as u64;
                assert!(
                    d <= full_ms && d >= full_ms / 2,
                    "{failures} failures: {d} ms, want {}..={full_ms}",
                    full_ms / 2
                );
            }
        };
        check(1, 500);
        check(2, 1000);
        check(3, 2000);
        check(7, 30_000);
        check(8, 30_000);
        check(u32::MAX, 30_000);
    }
}
