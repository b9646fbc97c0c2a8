//! Session storage: the [`SessionStore`] trait and its two implementations, MySQL
//! (`mysql.rs`, mysql_async) and SQLite (`sqlite.rs`, rusqlite bundled), plus migrations
//! (`migrate.rs`, SQL files under `migrations/`).
//!
//! All SQL in the project lives under this module and nowhere else. The rotation decision is
//! not made here: a refresh locks the row, asks [`crate::session::rotation::decide`], and applies
//! the answer in the same transaction. No operation holds one pooled connection while waiting
//! for another.

use std::future::Future;

use crate::clock::Millis;
use crate::config::{StoreConfig, StoreUrl, TableNames, TheftAction};
use crate::session::rotation::{Decision, Presented, RotationPolicy, TokenHash};

pub mod metered;
pub mod migrate;
pub mod mysql;
pub mod sqlite;

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

/// Which keys a stored key row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signs access tokens; rotated.
    Access,
    /// MACs refresh tokens; created once.
    Refresh,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::Refresh => "refresh",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(KeyPurpose::Access),
            "refresh" => Some(KeyPurpose::Refresh),
            _ => None,
        }
    }
}

/// A row of the signing-key table.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Unique; for access keys `k<seq>`, so concurrent rotations collide on the primary key.
    pub kid: String,
    pub purpose: KeyPurpose,
    /// Ordering of access keys; the newest is the signing key.
    pub seq: u64,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// HMAC secret, or the Ed25519 seed.
    pub secret: Vec<u8>,
    /// Ed25519 public key; empty for HMAC keys.
    pub public: Vec<u8>,
    pub created_at: Millis,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("seq", &self.seq)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// One entry of the revocation feed that blacklisting instances poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Increasing position in the feed.
    pub id: u64,
    pub handle: String,
    pub revoked_at: Millis,
}

/// The operations every store offers; both implementations pass `tests/store_conformance.rs`.
///
/// Expiry is checked on every read: an expired session is reported as absent even before the
/// purge job deletes it.
pub trait SessionStore: Send + Sync + 'static {
    /// Applies pending migrations in order; returns how many were applied.
    fn migrate(&self) -> impl Future<Output = StoreResult<usize>> + Send;
    /// A cheap round trip, for readiness.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    fn create_session(&self, new: NewSession) -> impl Future<Output = StoreResult<()>> + Send;
    /// The live session with this handle (absent if unknown or expired at `now`).
    fn session(
        &self,
        handle: &str,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Option<SessionRecord>>> + Send;
    /// Locks the row, decides with [`crate::session::rotation::decide`], applies the decision.
    fn refresh(
        &self,
        req: RefreshRequest,
    ) -> impl Future<Output = StoreResult<RefreshOutcome>> + Send;
    /// Live session handles of a user, oldest first.
    fn user_sessions(
        &self,
        user_id: &str,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Deletes the session and records it in the revocation feed; false if it did not exist.
    fn revoke_session(
        &self,
        handle: &str,
        now: Millis,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes all of a user's sessions in one statement; returns how many.
    fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: Millis,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Replaces the session data of a live session; false if there is none.
    fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replaces the JWT payload of a live session; false if there is none.
    fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes at most `batch` sessions expired at `now`, and revocation-feed entries older
    /// than `feed_before`; returns the number of sessions deleted.
    fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// All keys of the ring, any purpose, in `seq` order.
    fn keys(&self) -> impl Future<Output = StoreResult<Vec<StoredKey>>> + Send;
    /// Inserts the key unless its `kid` exists; true if this call inserted it.
    fn insert_key(&self, key: StoredKey) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes access keys created before `before`, never the newest access key.
    fn delete_access_keys_before(
        &self,
        before: Millis,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Revocations after feed position `after`, in order, at most `limit`.
    fn revocations_since(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Revocation>>> + Send;
    /// The newest feed position (0 when empty), so a new instance starts at the head.
    fn revocation_head(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Runs `f` only if this instance wins the named cluster-wide lock (MySQL `GET_LOCK`; a
    /// no-op lock on SQLite); returns None when another instance holds it.
    fn with_job_lock<T: Send>(
        &self,
        name: &str,
        f: impl Future<Output = StoreResult<T>> + Send,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send;
}

/// The JSON columns of the sessions table that can be replaced.
#[derive(Clone, Copy, Debug)]
pub(crate) enum JsonColumn {
    SessionData,
    JwtPayload,
}

impl JsonColumn {
    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonColumn::SessionData => "session_data",
            JsonColumn::JwtPayload => "jwt_payload",
        }
    }
}

/// The session columns, in the order [`RawSession`] lists them (same in both schemas).
pub(crate) const SESSION_COLS: &str = "session_handle, user_id, generation, current_hash, \
     previous_hash, rotated_at_ms, session_data, jwt_payload, created_at_ms, expires_at_ms";

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

/// The store chosen by `store.url`.
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

/// Longest time one store operation may take before it is reported as unavailable, so a
/// database that accepts connections but stops answering cannot hang requests.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match tokio::time::timeout(OPERATION_TIMEOUT, async {
            match $self {
                AnyStore::Mysql($s) => $e,
                AnyStore::Sqlite($s) => $e,
            }
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "store operation took longer than {} s",
                OPERATION_TIMEOUT.as_secs()
            ))),
        }
    };
}

/// Delegation without the timeout, for operations that may legitimately run long
/// (migrations, job bodies under a lock).
macro_rules! delegate_untimed {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Mysql($s) => $e,
            AnyStore::Sqlite($s) => $e,
        }
    };
}

impl SessionStore for AnyStore {
    async fn migrate(&self) -> StoreResult<usize> {
        delegate_untimed!(self, s => s.migrate().await)
    }
    async fn ping(&self) -> StoreResult<()> {
        delegate!(self, s => s.ping().await)
    }
    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        delegate!(self, s => s.create_session(new).await)
    }
    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        delegate!(self, s => s.session(handle, now).await)
    }
    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        delegate!(self, s => s.refresh(req).await)
    }
    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        delegate!(self, s => s.user_sessions(user_id, now).await)
    }
    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        delegate!(self, s => s.revoke_session(handle, now).await)
    }
    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        delegate!(self, s => s.revoke_user_sessions(user_id, now).await)
    }
    async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        delegate!(self, s => s.update_session_data(handle, data, now).await)
    }
    async fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        delegate!(self, s => s.update_jwt_payload(handle, payload, now).await)
    }
    async fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> StoreResult<u64> {
        delegate!(self, s => s.purge_expired(now, feed_before, batch).await)
    }
    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        delegate!(self, s => s.keys().await)
    }
    async fn insert_key(&self, key: StoredKey) -> StoreResult<bool> {
        delegate!(self, s => s.insert_key(key).await)
    }
    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        delegate!(self, s => s.delete_access_keys_before(before).await)
    }
    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        delegate!(self, s => s.revocations_since(after, limit).await)
    }
    async fn revocation_head(&self) -> StoreResult<u64> {
        delegate!(self, s => s.revocation_head().await)
    }
    async fn with_job_lock<T: Send>(
        &self,
        name: &str,
        f: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<Option<T>> {
        delegate_untimed!(self, s => s.with_job_lock(name, f).await)
    }
}

/// Applies a rotation decision to a locked row: the new row for `Rotate`, the same row for
/// `GraceReplay`. Shared by both stores so the effect of each rule is written once.
pub fn rotated_record(
    row: &SessionRecord,
    req: &RefreshRequest,
    decision: Decision,
) -> SessionRecord {
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
