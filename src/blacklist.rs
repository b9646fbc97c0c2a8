//! Revoked-session set for `tokens.access_token.blacklisting`.
//!
//! Each instance keeps the handles revoked within the last access-token lifetime in memory and
//! polls the store's revocation feed (every [`POLL_INTERVAL`]) for revocations made by other
//! instances; a revocation made by this instance is inserted at once. Checking a token is a
//! hash-set lookup: no store query per request. Entries older than the longest access-token
//! lifetime are dropped, since every token they could refuse has expired by then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use crate::clock::Millis;
use crate::store::{SessionStore, StoreResult};

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
const FEED_PAGE: u32 = 1000;

pub struct Blacklist {
    /// handle → revoked at.
    revoked: RwLock<HashMap<String, Millis>>,
    cursor: AtomicU64,
    retain_ms: Millis,
}

impl Blacklist {
    /// Starts at the feed's current head: revocations older than this instance are covered by
    /// the session rows being gone (the next refresh fails), and by access-token expiry.
    pub async fn start<S: SessionStore>(
        store: &S,
        retain_ms: Millis,
        now: Millis,
    ) -> StoreResult<Self> {
        let bl = Self {
            revoked: RwLock::new(HashMap::new()),
            cursor: AtomicU64::new(0),
            retain_ms,
        };
        // Load the recent past too, so a restart does not forget revocations whose tokens may
        // still be alive.
        bl.catch_up(store, now).await?;
        Ok(bl)
    }

    pub fn is_revoked(&self, handle: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(handle)
    }

    /// Records a revocation made by this instance (immediate effect here).
    pub fn insert(&self, handle: &str, now: Millis) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.to_string(), now);
    }

    /// Reads the feed past the cursor and drops entries that no live token can need.
    pub async fn catch_up<S: SessionStore>(&self, store: &S, now: Millis) -> StoreResult<usize> {
        let mut added = 0;
        loop {
            let after = self.cursor.load(Ordering::Acquire);
            let page = store.revocations_since(after, FEED_PAGE).await?;
            let Some(last) = page.last().map(|r| r.id) else {
                break;
            };
            {
                let mut set = self.revoked.write().unwrap_or_else(|e| e.into_inner());
                for r in &page {
                    if now - r.revoked_at <= self.retain_ms {
                        set.insert(r.handle.clone(), r.revoked_at);
                        added += 1;
                    }
                }
            }
            self.cursor.store(last, Ordering::Release);
            if page.len() < FEED_PAGE as usize {
                break;
            }
        }
        let cutoff = now - self.retain_ms;
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| *at >= cutoff);
        Ok(added)
    }

    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
