//! Session storage: the store traits, split by use ([`SessionStore`], [`KeyStore`],
//! [`RevocationFeed`], [`Maintenance`]; [`FullStore`] names all four) and declared once in
//! `store_operations!`, which also generates [`AnyStore`] (the configured backend, pure
//! delegation) and [`Guarded`] (`guarded.rs`: the one decorator, time limit and metrics). The
//! two backends are MySQL (`mysql.rs`, mysql_async) and SQLite (`sqlite.rs`, rusqlite bundled);
//! `sql.rs` builds their SQL text once from the table names, `migrate.rs` lists the migrations
//! (SQL files under `migrations/`).
//!
//! All SQL in the project lives under this module and nowhere else. The rotation decision is
//! not made here: a refresh locks the row, asks the pure [`plan_refresh`] (built on
//! [`crate::session::rotation::decide`]) what to write, and writes exactly that in the same
//! transaction, so both backends apply every rule, theft included, the same way. No operation
//! holds one pooled connection while waiting for another.

use std::future::Future;

use crate::clock::Millis;
use crate::config::{StoreConfig, StoreUrl, TableNames, TheftAction};
use crate::session::rotation::{
    decide, Decision, Presented, RotationPolicy, RotationState, TokenHash, UnauthorisedReason,
};
/// The signing-key rows are the token core's data types; the store only persists them.
pub use sessiongate_core::keys::{KeyPurpose, StoredKey};

pub mod guarded;
pub mod legacy;
pub mod migrate;
pub mod mysql;
mod sql;
pub mod sqlite;

use guarded::Limit;
pub use guarded::{Guarded, OPERATION_TIMEOUT};

/// A failure of the store itself (unreachable, timed out, bad SQL). Business outcomes such as
/// "no such session" are values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store query failed: {0}")]
    Query(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A transaction lost a lock conflict (deadlock victim, lock wait timeout); the store
    /// retries these itself and reports `Unavailable` if they persist.
    #[error("store transaction conflict: {0}")]
    Conflict(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A session as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    pub handle: String,
    pub user_id: String,
    pub generation: u64,
    pub current_hash: TokenHash,
    pub previous_hash: Option<TokenHash>,
    pub rotated_at: Millis,
    pub session_data: serde_json::Value,
    pub jwt_payload: serde_json::Value,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// What `create_session` writes. Generation starts at 0 with no previous hash.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSession {
    pub handle: String,
    pub user_id: String,
    pub refresh_hash: TokenHash,
    pub session_data: serde_json::Value,
    pub jwt_payload: serde_json::Value,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// One refresh attempt with a MAC-checked token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRequest {
    pub handle: String,
    pub presented: Presented,
    /// Hash of the child the presented token derives; stored as current on rotation.
    pub child_hash: TokenHash,
    pub now: Millis,
    pub policy: RotationPolicy,
    pub theft_action: TheftAction,
}

/// What a refresh did. `session` is the row after the change (for rotate and grace replay).
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshOutcome {
    Rotated(SessionRecord),
    GraceReplay(SessionRecord),
    /// Token theft: the session (or all of the user's sessions) was revoked.
    Theft {
        handle: String,
        user_id: String,
        revoked: u64,
    },
    Unauthorised(crate::session::rotation::UnauthorisedReason),
}

/// One entry of the revocation feed that blacklisting instances poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Increasing position in the feed.
    pub id: u64,
    pub handle: String,
    pub revoked_at: Millis,
}

/// Declares the store traits from one list of operations and generates, from the same list,
/// the two implementations every operation needs besides the backends': [`AnyStore`]'s
/// delegation to the configured backend, and [`Guarded`]'s time limit and metrics. Each entry
/// ends with its metric label (`sessiongate_store_queries_total{op}`) and its [`Limit`]. A new
/// operation is one entry here plus its MySQL and SQLite bodies.
macro_rules! store_operations {
    ($(
        $(#[$trait_doc:meta])*
        pub trait $trait:ident {
            $(
                $(#[$doc:meta])*
                fn $op:ident $(<$g:ident: $gb:ident>)? (&self $(, $arg:ident: $ty:ty)* $(,)?)
                    -> $ok:ty => $label:literal, $limit:ident;
            )*
        }
    )*) => {$(
        $(#[$trait_doc])*
        pub trait $trait: Send + Sync + 'static {
            $(
                $(#[$doc])*
                fn $op $(<$g: $gb>)? (&self $(, $arg: $ty)*)
                    -> impl Future<Output = StoreResult<$ok>> + Send;
            )*
        }

        impl $trait for AnyStore {
            $(
                async fn $op $(<$g: $gb>)? (&self $(, $arg: $ty)*) -> StoreResult<$ok> {
                    match self {
                        AnyStore::Mysql(s) => s.$op($($arg),*).await,
                        AnyStore::Sqlite(s) => s.$op($($arg),*).await,
                    }
                }
            )*
        }

        impl<S: $trait> $trait for Guarded<S> {
            $(
                async fn $op $(<$g: $gb>)? (&self $(, $arg: $ty)*) -> StoreResult<$ok> {
                    self.guard($label, Limit::$limit, self.inner().$op($($arg),*)).await
                }
            )*
        }
    )*};
}

store_operations! {
    /// Session rows: what [`crate::sessions::Sessions`] needs. Expiry is checked on every
    /// read: an expired session is reported as absent even before the purge job deletes it.
    pub trait SessionStore {
        fn create_session(&self, new: NewSession) -> () => "create_session", Limited;
        /// The live session with this handle (absent if unknown or expired at `now`).
        fn session(&self, handle: &str, now: Millis) -> Option<SessionRecord>
            => "session", Limited;
        /// Locks the row, plans with [`plan_refresh`] (which asks
        /// [`crate::session::rotation::decide`]) and writes the plan, in one transaction.
        fn refresh(&self, req: RefreshRequest) -> RefreshOutcome => "refresh", Limited;
        /// Live session handles of a user, oldest first.
        fn user_sessions(&self, user_id: &str, now: Millis) -> Vec<String>
            => "user_sessions", Limited;
        /// Deletes the session and records it in the revocation feed; false if it did not
        /// exist.
        fn revoke_session(&self, handle: &str, now: Millis) -> bool
            => "revoke_session", Limited;
        /// Deletes all of a user's sessions in one statement (and feeds them); returns how
        /// many.
        fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> u64
            => "revoke_user_sessions", Limited;
        /// Replaces the session data of a live session; false if there is none.
        fn update_session_data(&self, handle: &str, data: serde_json::Value, now: Millis)
            -> bool => "update_session_data", Limited;
        /// Replaces the JWT payload of a live session; false if there is none.
        fn update_jwt_payload(&self, handle: &str, payload: serde_json::Value, now: Millis)
            -> bool => "update_jwt_payload", Limited;
    }

    /// The signing-key table: what [`crate::keys::KeyCache`] needs.
    pub trait KeyStore {
        /// All keys of the ring, any purpose, in `seq` order.
        fn keys(&self) -> Vec<StoredKey> => "keys", Limited;
        /// Inserts the key unless its `kid` exists; true if this call inserted it.
        fn insert_key(&self, key: StoredKey) -> bool => "insert_key", Limited;
        /// Deletes access keys created before `before`, never the newest access key.
        fn delete_access_keys_before(&self, before: Millis) -> u64
            => "delete_access_keys", Limited;
    }

    /// The revocation feed that blacklisting instances poll: what
    /// [`crate::blacklist::Blacklist`] needs.
    pub trait RevocationFeed {
        /// Revocations after feed position `after`, in order, at most `limit`.
        fn revocations_since(&self, after: u64, limit: u32) -> Vec<Revocation>
            => "revocations_since", Limited;
        /// The newest feed position (0 when empty), so a new instance starts at the head.
        fn revocation_head(&self) -> u64 => "revocation_head", Limited;
    }

    /// Schema, readiness and the jobs.
    pub trait Maintenance {
        /// Applies pending migrations in order; returns how many were applied.
        fn migrate(&self) -> usize => "migrate", Unlimited;
        /// A cheap round trip, for readiness.
        fn ping(&self) -> () => "ping", Limited;
        /// Deletes at most `batch` sessions expired at `now`, and revocation-feed entries
        /// older than `feed_before`; returns the number of sessions deleted.
        fn purge_expired(&self, now: Millis, feed_before: Millis, batch: u32) -> u64
            => "purge_expired", Limited;
        /// Runs `f` only if this instance wins the named cluster-wide lock (MySQL
        /// `GET_LOCK`; a no-op lock on SQLite); returns None when another instance holds it.
        fn with_job_lock<T: Send>(
            &self,
            name: &str,
            f: impl Future<Output = StoreResult<T>> + Send,
        ) -> Option<T> => "job_lock", Unlimited;
    }
}

/// Every operation, for the wiring and the conformance suite; both backends, [`AnyStore`] and
/// [`Guarded`] have it. Parts of the gateway take only the trait they use.
pub trait FullStore: SessionStore + KeyStore + RevocationFeed + Maintenance {}

impl<S: SessionStore + KeyStore + RevocationFeed + Maintenance> FullStore for S {}

/// A session row as read by either store, before its values are checked: handle, user id,
/// generation, current hash, previous hash, rotated at, session data, JWT payload, created at,
/// expires at.
pub(crate) type RawSession = (
    String,
    String,
    u64,
    Vec<u8>,
    Option<Vec<u8>>,
    Millis,
    String,
    String,
    Millis,
    Millis,
);

fn token_hash(v: Vec<u8>, what: &str) -> StoreResult<TokenHash> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// Checks a raw row into a [`SessionRecord`]; bad data is `Corrupt`, never a panic.
pub(crate) fn session_record(raw: RawSession) -> StoreResult<SessionRecord> {
    let (handle, user_id, generation, cur, prev, rotated_at, data, payload, created, expires) = raw;
    let json = |s: &str, what: &str| {
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    };
    Ok(SessionRecord {
        handle,
        user_id,
        generation,
        current_hash: token_hash(cur, "current_hash")?,
        previous_hash: prev.map(|p| token_hash(p, "previous_hash")).transpose()?,
        rotated_at,
        session_data: json(&data, "session_data")?,
        jwt_payload: json(&payload, "jwt_payload")?,
        created_at: created,
        expires_at: expires,
    })
}

/// The store chosen by `store.url`: delegates every operation to its backend and adds nothing
/// (the time limit and metrics are [`Guarded`]'s).
pub enum AnyStore {
    Mysql(mysql::MysqlStore),
    Sqlite(sqlite::SqliteStore),
}

impl AnyStore {
    /// Ends the store's connections at shutdown: the MySQL pool is disconnected (bounded by
    /// `within`); SQLite's connection closes when the store is dropped.
    pub async fn close(&self, within: std::time::Duration) {
        if let AnyStore::Mysql(m) = self {
            if tokio::time::timeout(within, m.close()).await.is_err() {
                tracing::warn!("the MySQL pool did not close in time");
            }
        }
    }
}

/// Opens the configured store (does not migrate).
pub async fn open(cfg: &StoreConfig) -> StoreResult<AnyStore> {
    match &cfg.url {
        StoreUrl::Mysql(url) => Ok(AnyStore::Mysql(mysql::MysqlStore::open(
            url,
            cfg.connection_limit,
            &cfg.tables,
        )?)),
        StoreUrl::Sqlite(path) => Ok(AnyStore::Sqlite(
            sqlite::SqliteStore::open(Some(path), &cfg.tables).await?,
        )),
        StoreUrl::SqliteMemory => Ok(AnyStore::Sqlite(
            sqlite::SqliteStore::open(None, &cfg.tables).await?,
        )),
    }
}

/// Creates the MySQL database the store URL names if it does not exist (`migrate
/// --create-database`); `Ok(None)` for SQLite, whose file is created when opened.
pub async fn create_database(cfg: &StoreConfig) -> StoreResult<Option<String>> {
    match &cfg.url {
        StoreUrl::Mysql(url) => mysql::create_database(url).await.map(Some),
        StoreUrl::Sqlite(_) | StoreUrl::SqliteMemory => Ok(None),
    }
}

/// Table names checked again here (config validation is the first line), so no SQL is ever
/// built from an unchecked name.
pub fn checked_tables(t: &TableNames) -> StoreResult<TableNames> {
    let ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if ok(&t.signing_key) && ok(&t.refresh_tokens) {
        Ok(t.clone())
    } else {
        Err(StoreError::Query(format!("invalid table names {t:?}")))
    }
}

/// A change to the sessions table and the revocation feed, applied by a backend inside one
/// transaction: what each refresh rule writes ([`RefreshPlan`]), and what the revocations
/// write, so theft and revocation share one effect.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionWrite {
    /// Rules 2, 4 and 5 (grace replay, refusals): nothing.
    Nothing,
    /// Rule 1: store the rotated row (generation, hashes, rotated at, expiry).
    UpdateRow(SessionRecord),
    /// Rule 3 with `theft_action = revoke_session`: delete this session and feed it.
    RevokeSession(String),
    /// Rule 3 with `revoke_all_user_sessions`: delete every session of this user and feed
    /// them.
    RevokeUserSessions(String),
}

/// A refresh decided on the locked row: what to write, and the answer once it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshPlan {
    pub write: SessionWrite,
    /// For theft, `revoked` is filled in by [`RefreshPlan::outcome`].
    answer: RefreshOutcome,
}

impl RefreshPlan {
    /// The refresh's outcome, given how many sessions the write revoked (only theft uses it).
    pub fn outcome(self, revoked: u64) -> RefreshOutcome {
        match self.answer {
            RefreshOutcome::Theft {
                handle, user_id, ..
            } => RefreshOutcome::Theft {
                handle,
                user_id,
                revoked,
            },
            answer => answer,
        }
    }
}

impl SessionRecord {
    /// What the rotation rules look at.
    fn rotation_state(&self) -> RotationState {
        RotationState {
            generation: self.generation,
            current_hash: self.current_hash,
            previous_hash: self.previous_hash,
            rotated_at: self.rotated_at,
            expires_at: self.expires_at,
        }
    }
}

/// Plans a refresh from the row read under lock (`None`: no such session): asks
/// [`decide`] and says what the decision writes. Pure; the backends call it inside their
/// row-locked transaction and execute the plan there, so the decision is made once, on the row
/// as locked, and each rule has one effect in both backends.
pub fn plan_refresh(row: Option<SessionRecord>, req: &RefreshRequest) -> RefreshPlan {
    let state = row.as_ref().map(SessionRecord::rotation_state);
    let decision = decide(state.as_ref(), &req.presented, req.now, req.policy);
    let (write, answer) = match (decision, row) {
        (Decision::Rotate { .. }, Some(row)) => {
            let new = rotated_record(&row, req, decision);
            (
                SessionWrite::UpdateRow(new.clone()),
                RefreshOutcome::Rotated(new),
            )
        }
        (Decision::GraceReplay, Some(row)) => {
            (SessionWrite::Nothing, RefreshOutcome::GraceReplay(row))
        }
        (Decision::Theft, Some(row)) => (
            match req.theft_action {
                TheftAction::RevokeSession => SessionWrite::RevokeSession(row.handle.clone()),
                TheftAction::RevokeAllUserSessions => {
                    SessionWrite::RevokeUserSessions(row.user_id.clone())
                }
            },
            RefreshOutcome::Theft {
                handle: row.handle,
                user_id: row.user_id,
                revoked: 0,
            },
        ),
        (Decision::Unauthorised(reason), _) => {
            (SessionWrite::Nothing, RefreshOutcome::Unauthorised(reason))
        }
        (_, None) => (
            SessionWrite::Nothing,
            RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownSession),
        ),
    };
    RefreshPlan { write, answer }
}

/// Applies a rotation decision to a locked row: the new row for `Rotate`, the same row for
/// `GraceReplay`.
fn rotated_record(row: &SessionRecord, req: &RefreshRequest, decision: Decision) -> SessionRecord {
    match decision {
        Decision::Rotate {
            new_generation,
            new_expires_at,
        } => SessionRecord {
            generation: new_generation,
            previous_hash: Some(row.current_hash),
            current_hash: req.child_hash,
            rotated_at: req.now,
            expires_at: new_expires_at,
            ..row.clone()
        },
        _ => row.clone(),
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    const NOW: Millis = 1_700_000_000_000;
    const POLICY: RotationPolicy = RotationPolicy {
        grace_ms: 30_000,
        validity_ms: 3_600_000,
    };

    fn hash(generation: u8) -> TokenHash {
        [generation; 32]
    }

    /// Generation 3, rotated 10 s ago, live for another hour.
    fn row() -> SessionRecord {
        SessionRecord {
            handle: "h1".into(),
            user_id: "alice".into(),
            generation: 3,
            current_hash: hash(3),
            previous_hash: Some(hash(2)),
            rotated_at: NOW - 10_000,
            session_data: serde_json::json!({"n": 1}),
            jwt_payload: serde_json::json!({}),
            created_at: NOW - 100_000,
            expires_at: NOW + 3_600_000,
        }
    }

    fn req(generation: u8, now: Millis, theft_action: TheftAction) -> RefreshRequest {
        RefreshRequest {
            handle: "h1".into(),
            presented: Presented {
                generation: generation.into(),
                hash: hash(generation),
            },
            child_hash: hash(generation + 1),
            now,
            policy: POLICY,
            theft_action,
        }
    }

    /// The plan for presenting `generation` at `now`, with the outcome for `revoked` sessions.
    fn check(
        row: Option<SessionRecord>,
        req: RefreshRequest,
        revoked: u64,
        write: SessionWrite,
        outcome: RefreshOutcome,
    ) {
        let plan = plan_refresh(row, &req);
        assert_eq!(plan.write, write, "{req:?}");
        assert_eq!(plan.outcome(revoked), outcome, "{req:?}");
    }

    #[test]
    fn rule_1_the_current_token_rotates_the_row() {
        let rotated = SessionRecord {
            generation: 4,
            current_hash: hash(4),
            previous_hash: Some(hash(3)),
            rotated_at: NOW,
            expires_at: NOW + POLICY.validity_ms,
            ..row()
        };
        check(
            Some(row()),
            req(3, NOW, TheftAction::RevokeSession),
            0,
            SessionWrite::UpdateRow(rotated.clone()),
            RefreshOutcome::Rotated(rotated),
        );
    }

    #[test]
    fn rule_2_the_previous_token_in_the_grace_window_writes_nothing() {
        check(
            Some(row()),
            req(2, NOW + 20_000, TheftAction::RevokeAllUserSessions),
            0,
            SessionWrite::Nothing,
            RefreshOutcome::GraceReplay(row()),
        );
    }

    #[test]
    fn rule_3_theft_revokes_what_the_theft_action_says() {
        let theft = |revoked| RefreshOutcome::Theft {
            handle: "h1".into(),
            user_id: "alice".into(),
            revoked,
        };
        // The previous token after the grace window.
        check(
            Some(row()),
            req(2, NOW + 20_001, TheftAction::RevokeSession),
            1,
            SessionWrite::RevokeSession("h1".into()),
            theft(1),
        );
        // An older genuine token, inside the grace window or not.
        check(
            Some(row()),
            req(1, NOW, TheftAction::RevokeAllUserSessions),
            5,
            SessionWrite::RevokeUserSessions("alice".into()),
            theft(5),
        );
    }

    #[test]
    fn rules_4_and_5_refuse_and_write_nothing() {
        let refused = |reason| RefreshOutcome::Unauthorised(reason);
        // A generation the session never issued.
        check(
            Some(row()),
            req(7, NOW, TheftAction::RevokeAllUserSessions),
            0,
            SessionWrite::Nothing,
            refused(UnauthorisedReason::UnknownToken),
        );
        // No such session.
        check(
            None,
            req(3, NOW, TheftAction::RevokeAllUserSessions),
            0,
            SessionWrite::Nothing,
            refused(UnauthorisedReason::UnknownSession),
        );
        // Expired, even with the current token, and even with a stolen one.
        for generation in [3, 1] {
            check(
                Some(row()),
                req(
                    generation,
                    NOW + 3_600_000,
                    TheftAction::RevokeAllUserSessions,
                ),
                0,
                SessionWrite::Nothing,
                refused(UnauthorisedReason::Expired),
            );
        }
    }
}
