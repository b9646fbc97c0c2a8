//! Revoked-session set for `tokens.access_token.blacklisting`.
//!
//! Each instance keeps the handles revoked within the last access-token lifetime in memory and
//! polls the store's revocation feed (every [`POLL_INTERVAL`]) for revocations made by other
//! instances; a revocation made by this instance is inserted at once. Checking a token is a
//! hash-set lookup: no store query per request. Entries older than the longest access-token
//! lifetime are dropped, since every token they could refuse has expired by then. Holes in
//! the feed's ids are re-read for a minute, since MySQL can make id N+1 visible before id N.
//!
//! A blacklist made with [`Blacklist::new`] (the store was down at start) knows nothing until
//! its first successful [`Blacklist::catch_up`]; [`Blacklist::is_synced`] says whether that
//! happened, and until then no access token may be trusted (its session may have been revoked).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::clock::Millis;
use crate::store::{SessionStore, StoreResult};

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
const FEED_PAGE: u32 = 1000;
/// How long a hole in the feed's ids is watched for a late commit before it is taken as a
/// rolled-back insert. MySQL assigns auto-increment ids at insert, not at commit, so id N+1
/// can become visible before id N.
const GAP_WATCH_MS: Millis = 60_000;
/// Most missing ids remembered at once (a larger hole is watched from its start).
const MAX_GAPS: usize = 10_000;

#[derive(Default)]
struct FeedPosition {
    /// Highest id seen.
    cursor: u64,
    /// Ids below the cursor not seen yet → when the hole was noticed.
    gaps: BTreeMap<u64, Millis>,
}

pub struct Blacklist {
    /// handle → revoked at.
    revoked: RwLock<HashMap<String, Millis>>,
    position: Mutex<FeedPosition>,
    retain_ms: Millis,
    /// The feed has been read at least once.
    synced: AtomicBool,
}

impl Blacklist {
    /// Loads the revocations still within `retain_ms` (older ones can refuse no live token),
    /// so a restarted instance does not forget recent revocations, then follows the feed.
    pub async fn start<S: SessionStore>(
        store: &S,
        retain_ms: Millis,
        now: Millis,
    ) -> StoreResult<Self> {
        let bl = Self::new(retain_ms);
        bl.catch_up(store, now).await?;
        Ok(bl)
    }

    /// An empty blacklist that has not read the feed yet (no I/O).
    pub fn new(retain_ms: Millis) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            position: Mutex::new(FeedPosition::default()),
            retain_ms,
            synced: AtomicBool::new(false),
        }
    }

    /// Whether the feed has been read at least once, so the set holds every recent revocation.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
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

    /// Reads the feed past the cursor (and from the oldest hole still watched) and drops
    /// entries that no live token can need.
    pub async fn catch_up<S: SessionStore>(&self, store: &S, now: Millis) -> StoreResult<usize> {
        let mut added = 0;
        let mut from = {
            let mut pos = self.position.lock().unwrap_or_else(|e| e.into_inner());
            pos.gaps.retain(|_, noticed| now - *noticed <= GAP_WATCH_MS);
            pos.gaps
                .keys()
                .next()
                .map(|g| g - 1)
                .unwrap_or(pos.cursor)
                .min(pos.cursor)
        };
        loop {
            let page = store.revocations_since(from, FEED_PAGE).await?;
            let Some(last) = page.last().map(|r| r.id) else {
                break;
            };
            {
                let mut set = self.revoked.write().unwrap_or_else(|e| e.into_inner());
                let mut pos = self.position.lock().unwrap_or_else(|e| e.into_inner());
                for r in &page {
                    if now - r.revoked_at <= self.retain_ms
                        && set.insert(r.handle.clone(), r.revoked_at).is_none()
                    {
                        added += 1;
                    }
                    pos.gaps.remove(&r.id);
                    if r.id > pos.cursor {
                        // Before the first entry there is nothing to watch (purged history).
                        let first_missing = if pos.cursor == 0 {
                            r.id
                        } else {
                            pos.cursor + 1
                        };
                        for missing in first_missing..r.id {
                            if pos.gaps.len() >= MAX_GAPS {
                                break;
                            }
                            pos.gaps.insert(missing, now);
                        }
                        pos.cursor = r.id;
                    }
                }
            }
            from = last;
            if page.len() < FEED_PAGE as usize {
                break;
            }
        }
        let cutoff = now - self.retain_ms;
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| *at >= cutoff);
        self.synced.store(true, Ordering::Release);
        Ok(added)
    }
}
