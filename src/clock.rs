//! The wall clock, read in one place. The token core (`sessiongate_core`, re-exported as
//! `session` and `keys::ring`) takes `now` as a parameter and has no clock; only the edges
//! (stores, jobs, the HTTP layer) call [`Clock::now_ms`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch (the token core's time type).
pub use sessiongate_core::Millis;

/// A clock that is either the system clock or a test clock that can be moved forward.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Current time in epoch milliseconds (system time plus any test offset).
    pub fn now_ms(&self) -> Millis {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        sys + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Move this clock (and every clone of it) forward; for tests that must pass token expiry
    /// without sleeping.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
