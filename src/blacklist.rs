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
use crate::store::{RevocationFeed, StoreResult};

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
    pub async fn start<S: RevocationFeed>(
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
    pub async fn catch_up<S: RevocationFeed>(&self, store: &S, now: Millis) -> StoreResult<usize> {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::Revocation;

    const T0: Millis = 1_700_000_000_000;
    const RETAIN: Millis = 3_600_000;

    /// A revocation feed in memory: entries appear in any id order, as MySQL's auto-increment
    /// ids can become visible out of order. Records where each read started.
    #[derive(Default)]
    struct Feed {
        rows: Mutex<Vec<Revocation>>,
        reads: Mutex<Vec<u64>>,
    }

    impl Feed {
        fn commit(&self, id: u64, at: Millis) {
            let mut rows = self.rows.lock().unwrap();
            rows.push(Revocation {
                id,
                handle: format!("h{id}"),
                revoked_at: at,
            });
            rows.sort_by_key(|r| r.id);
        }

        /// Where the reads of the last catch-up started.
        fn take_reads(&self) -> Vec<u64> {
            std::mem::take(&mut self.reads.lock().unwrap())
        }
    }

    impl RevocationFeed for Feed {
        async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
            self.reads.lock().unwrap().push(after);
            let rows = self.rows.lock().unwrap();
            Ok(rows
                .iter()
                .filter(|r| r.id > after)
                .take(limit as usize)
                .cloned()
                .collect())
        }

        async fn revocation_head(&self) -> StoreResult<u64> {
            Ok(self.rows.lock().unwrap().last().map_or(0, |r| r.id))
        }
    }

    fn gaps(bl: &Blacklist) -> Vec<u64> {
        bl.position.lock().unwrap().gaps.keys().copied().collect()
    }

    /// How many handles the set holds.
    fn size(bl: &Blacklist) -> usize {
        bl.revoked.read().unwrap().len()
    }

    fn cursor(bl: &Blacklist) -> u64 {
        bl.position.lock().unwrap().cursor
    }

    #[tokio::test]
    async fn a_hole_filled_later_is_read_and_no_longer_watched() {
        let feed = Feed::default();
        for id in [1, 2, 4] {
            feed.commit(id, T0);
        }
        let bl = Blacklist::start(&feed, RETAIN, T0).await.unwrap();
        assert!(bl.is_synced());
        assert_eq!((gaps(&bl), cursor(&bl)), (vec![3], 4));
        assert!(!bl.is_revoked("h3"));
        // Id 3 commits late; the next poll re-reads from just below the hole.
        feed.commit(3, T0 + 5_000);
        feed.take_reads();
        assert_eq!(bl.catch_up(&feed, T0 + 10_000).await.unwrap(), 1);
        assert_eq!(feed.take_reads(), vec![2]);
        assert!(bl.is_revoked("h3"));
        assert_eq!((gaps(&bl), cursor(&bl)), (vec![], 4));
        // Nothing watched: polls start at the cursor again.
        bl.catch_up(&feed, T0 + 11_000).await.unwrap();
        assert_eq!(feed.take_reads(), vec![4]);
    }

    #[tokio::test]
    async fn a_hole_is_given_up_after_the_watch_window() {
        let feed = Feed::default();
        feed.commit(1, T0);
        feed.commit(3, T0);
        let bl = Blacklist::start(&feed, RETAIN, T0).await.unwrap();
        assert_eq!(gaps(&bl), vec![2]);
        // Still watched at the end of the window...
        feed.take_reads();
        bl.catch_up(&feed, T0 + GAP_WATCH_MS).await.unwrap();
        assert_eq!((feed.take_reads(), gaps(&bl)), (vec![1], vec![2]));
        // ...and taken as a rolled-back insert after it.
        bl.catch_up(&feed, T0 + GAP_WATCH_MS + 1).await.unwrap();
        assert_eq!((feed.take_reads(), gaps(&bl)), (vec![3], vec![]));
        // An entry that shows up in the abandoned hole is not read any more.
        feed.commit(2, T0 + GAP_WATCH_MS + 2);
        bl.catch_up(&feed, T0 + GAP_WATCH_MS + 3).await.unwrap();
        assert!(!bl.is_revoked("h2"));
    }

    #[tokio::test]
    async fn at_most_max_gaps_ids_are_watched_from_the_start_of_the_hole() {
        let feed = Feed::default();
        let max = MAX_GAPS as u64;
        feed.commit(1, T0);
        feed.commit(max + 10, T0);
        let bl = Blacklist::start(&feed, RETAIN, T0).await.unwrap();
        let watched = gaps(&bl);
        assert_eq!(watched.len(), MAX_GAPS);
        assert_eq!((watched[0], watched[MAX_GAPS - 1]), (2, max + 1));
        // A full watch list takes no new holes.
        feed.commit(max + 12, T0 + 1);
        bl.catch_up(&feed, T0 + 1).await.unwrap();
        assert_eq!(gaps(&bl).len(), MAX_GAPS);
        assert!(!gaps(&bl).contains(&(max + 11)));
        // Reads start below the oldest watched hole, so late entries above it are read too,
        // watched or not.
        feed.commit(2, T0 + 2);
        feed.commit(max + 5, T0 + 2);
        feed.commit(max + 11, T0 + 2);
        bl.catch_up(&feed, T0 + 3).await.unwrap();
        for h in ["h2", &format!("h{}", max + 5), &format!("h{}", max + 11)] {
            assert!(bl.is_revoked(h), "{h}");
        }
        assert_eq!(gaps(&bl).len(), MAX_GAPS - 1);
        assert_eq!(cursor(&bl), max + 12);
    }

    #[tokio::test]
    async fn entries_read_again_or_out_of_order_count_once() {
        let feed = Feed::default();
        for id in [1, 3, 4] {
            feed.commit(id, T0);
        }
        let bl = Blacklist::start(&feed, RETAIN, T0).await.unwrap();
        assert_eq!(size(&bl), 3);
        // The hole at 2 makes every poll read 3 and 4 again: nothing new.
        assert_eq!(bl.catch_up(&feed, T0 + 1).await.unwrap(), 0);
        assert_eq!(bl.catch_up(&feed, T0 + 2).await.unwrap(), 0);
        // A late id below the cursor is added and does not move the cursor back.
        feed.commit(2, T0 + 3);
        assert_eq!(bl.catch_up(&feed, T0 + 4).await.unwrap(), 1);
        assert_eq!((cursor(&bl), gaps(&bl)), (4, vec![]));
        // The same handle fed twice (a revocation racing a theft) is one entry.
        feed.rows.lock().unwrap().push(Revocation {
            id: 5,
            handle: "h1".into(),
            revoked_at: T0 + 5,
        });
        assert_eq!(bl.catch_up(&feed, T0 + 6).await.unwrap(), 0);
        assert_eq!((size(&bl), cursor(&bl)), (4, 5));
    }

    #[tokio::test]
    async fn the_first_read_watches_no_purged_history_and_keeps_only_recent_entries() {
        let feed = Feed::default();
        // Ids below 100 were purged long ago; 100 is older than the retention.
        feed.commit(100, T0 - RETAIN - 1);
        feed.commit(101, T0 - RETAIN);
        let bl = Blacklist::new(RETAIN);
        assert!(!bl.is_synced());
        assert_eq!(bl.catch_up(&feed, T0).await.unwrap(), 1);
        assert!(bl.is_synced());
        assert_eq!((gaps(&bl), cursor(&bl)), (vec![], 101));
        assert!(!bl.is_revoked("h100") && bl.is_revoked("h101"));
        // An entry inserted here drops out once it is older than the retention.
        bl.insert("local", T0);
        bl.catch_up(&feed, T0 + RETAIN + 1).await.unwrap();
        assert!(!bl.is_revoked("local"));
        assert_eq!(size(&bl), 0);
    }
}
