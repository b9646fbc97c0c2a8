//! The SQL text of every store operation, built once when a store opens ([`Queries::new`])
//! from the checked table names, so no statement is formatted per call.
//!
//! Both servers accept `?` placeholders and backtick-quoted names, so one text serves both
//! backends; where the dialects differ, [`Dialect`] names the difference. Statements on the
//! fixed-name tables (revocation feed, migrations) are constants.

use crate::config::TableNames;

/// Which SQL dialect a store speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Mysql,
    Sqlite,
}

impl Dialect {
    /// Appended to a SELECT whose rows the transaction goes on to change. MySQL locks the rows
    /// read; SQLite's `BEGIN IMMEDIATE` has already locked the whole database.
    fn lock_suffix(self) -> &'static str {
        match self {
            Dialect::Mysql => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// An INSERT that does nothing when the primary key exists.
    fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Mysql => "INSERT IGNORE",
            Dialect::Sqlite => "INSERT OR IGNORE",
        }
    }

    /// Deletes at most `?` sessions expired at `?` (parameters: now, batch). MariaDB has no
    /// LIMIT in an IN subquery; SQLite has no DELETE … LIMIT without a compile option.
    fn purge_limited(self, sessions: &str) -> String {
        match self {
            Dialect::Mysql => format!(
                "DELETE FROM {sessions} WHERE expires_at_ms <= ? ORDER BY expires_at_ms LIMIT ?"
            ),
            Dialect::Sqlite => format!(
                "DELETE FROM {sessions} WHERE session_handle IN \
                 (SELECT session_handle FROM {sessions} WHERE expires_at_ms <= ? LIMIT ?)"
            ),
        }
    }
}

/// The session columns, in the order [`super::RawSession`] lists them (same in both schemas).
pub(crate) const SESSION_COLS: &str = "session_handle, user_id, generation, current_hash, \
     previous_hash, rotated_at_ms, session_data, jwt_payload, created_at_ms, expires_at_ms";

/// The statements on the configured tables, with their parameters in order.
#[derive(Debug)]
pub(crate) struct Queries {
    /// handle, user id, hash, created at (as rotated at), data, payload, created at, expires at.
    pub insert_session: String,
    /// handle, now → a live session row.
    pub live_session: String,
    /// handle → the session row, locked for the rest of the transaction (live or not).
    pub lock_session: String,
    /// generation, current hash, previous hash, rotated at, expires at, handle.
    pub update_rotation: String,
    /// user id, now → live handles, oldest first.
    pub user_sessions: String,
    /// handle.
    pub delete_session: String,
    /// now, user id: records every session of the user in the feed (rows locked).
    pub feed_user_sessions: String,
    /// user id.
    pub delete_user_sessions: String,
    /// data, handle, now.
    pub update_session_data: String,
    /// payload, handle, now.
    pub update_jwt_payload: String,
    /// handle, now → 1 if a live session exists.
    pub session_exists: String,
    /// now, batch.
    pub purge_sessions: String,
    /// → kid, purpose, seq, algorithm, secret, public key, created at; in `seq` order.
    pub keys: String,
    /// kid, purpose, seq, algorithm, secret, public key, created at.
    pub insert_key: String,
    /// → the newest access key's seq (NULL without access keys).
    pub newest_access_seq: String,
    /// created before, newest seq.
    pub delete_access_keys: String,
}

impl Queries {
    /// The statements for `tables`, which must have passed [`super::checked_tables`].
    pub fn new(dialect: Dialect, tables: &TableNames) -> Self {
        let sessions = format!("`{}`", tables.refresh_tokens);
        let keys = format!("`{}`", tables.signing_key);
        let lock = dialect.lock_suffix();
        Self {
            insert_session: format!(
                "INSERT INTO {sessions} ({SESSION_COLS}) VALUES (?, ?, 0, ?, NULL, ?, ?, ?, ?, ?)"
            ),
            live_session: format!(
                "SELECT {SESSION_COLS} FROM {sessions} WHERE session_handle = ? AND expires_at_ms > ?"
            ),
            lock_session: format!(
                "SELECT {SESSION_COLS} FROM {sessions} WHERE session_handle = ?{lock}"
            ),
            update_rotation: format!(
                "UPDATE {sessions} SET generation = ?, current_hash = ?, previous_hash = ?, \
                 rotated_at_ms = ?, expires_at_ms = ? WHERE session_handle = ?"
            ),
            user_sessions: format!(
                "SELECT session_handle FROM {sessions} WHERE user_id = ? AND expires_at_ms > ? \
                 ORDER BY created_at_ms, session_handle"
            ),
            delete_session: format!("DELETE FROM {sessions} WHERE session_handle = ?"),
            feed_user_sessions: format!(
                "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) \
                 SELECT session_handle, ? FROM {sessions} WHERE user_id = ?{lock}"
            ),
            delete_user_sessions: format!("DELETE FROM {sessions} WHERE user_id = ?"),
            update_session_data: format!(
                "UPDATE {sessions} SET session_data = ? WHERE session_handle = ? AND expires_at_ms > ?"
            ),
            update_jwt_payload: format!(
                "UPDATE {sessions} SET jwt_payload = ? WHERE session_handle = ? AND expires_at_ms > ?"
            ),
            session_exists: format!(
                "SELECT 1 FROM {sessions} WHERE session_handle = ? AND expires_at_ms > ?"
            ),
            purge_sessions: dialect.purge_limited(&sessions),
            keys: format!(
                "SELECT kid, purpose, seq, algorithm, secret, public_key, created_at_ms \
                 FROM {keys} ORDER BY seq, kid"
            ),
            insert_key: format!(
                "{} INTO {keys} (kid, purpose, seq, algorithm, secret, public_key, created_at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                dialect.insert_ignore()
            ),
            newest_access_seq: format!("SELECT MAX(seq) FROM {keys} WHERE purpose = 'access'"),
            delete_access_keys: format!(
                "DELETE FROM {keys} WHERE purpose = 'access' AND created_at_ms < ? AND seq < ?"
            ),
        }
    }
}

/// Run once on every new MySQL connection: the isolation level of every transaction the store
/// starts on it (a session default instead of a `SET TRANSACTION` round trip per transaction).
pub(crate) const MYSQL_SESSION_INIT: &str =
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// handle, revoked at.
pub(crate) const FEED_INSERT: &str =
    "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) VALUES (?, ?)";
/// revoked before.
pub(crate) const FEED_PURGE: &str = "DELETE FROM sessiongate_revocation WHERE revoked_at_ms < ?";
/// after, limit → id, handle, revoked at.
pub(crate) const FEED_SINCE: &str = "SELECT id, session_handle, revoked_at_ms \
     FROM sessiongate_revocation WHERE id > ? ORDER BY id LIMIT ?";
/// → the newest id (NULL when empty).
pub(crate) const FEED_HEAD: &str = "SELECT MAX(id) FROM sessiongate_revocation";
/// → the applied versions.
pub(crate) const MIGRATIONS_APPLIED: &str = "SELECT version FROM sessiongate_migrations";
/// version, name, applied at.
pub(crate) const MIGRATION_RECORD: &str =
    "INSERT INTO sessiongate_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_differ_only_where_named() {
        let t = TableNames {
            signing_key: "keys_x".into(),
            refresh_tokens: "sess_y".into(),
        };
        let (m, s) = (
            Queries::new(Dialect::Mysql, &t),
            Queries::new(Dialect::Sqlite, &t),
        );
        assert!(m.lock_session.ends_with("session_handle = ? FOR UPDATE"));
        assert!(s.lock_session.ends_with("session_handle = ?"));
        assert!(m.insert_key.starts_with("INSERT IGNORE INTO `keys_x`"));
        assert!(s.insert_key.starts_with("INSERT OR IGNORE INTO `keys_x`"));
        assert_ne!(m.purge_sessions, s.purge_sessions);
        assert_eq!(m.insert_session, s.insert_session);
        assert_eq!(m.update_rotation, s.update_rotation);
        assert!(m.live_session.contains("FROM `sess_y`"));
        let params = |q: &str| q.matches('?').count();
        assert_eq!(params(&m.insert_session), 8);
        assert_eq!(params(&m.update_rotation), 6);
        assert_eq!(params(&m.feed_user_sessions), 2);
    }
}
