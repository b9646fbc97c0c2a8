//! SQLite store (rusqlite, bundled): the embedded default for one gateway instance.
//!
//! One connection behind a std `Mutex`, used only inside `spawn_blocking`, so the async runtime
//! never blocks on SQLite and the lock is never held across an `.await`. WAL journal, a busy
//! timeout, `BEGIN IMMEDIATE` for read-modify-write transactions. `with_job_lock` is a plain
//! call: there is only one instance.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::migrate;
use super::*;
use crate::config::TableNames;
use crate::session::rotation::{decide, RotationState};

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    t: TableNames,
}

fn q(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Query(other.to_string()),
    }
}

/// Reads a session row; a negative generation is corrupt data, not a panic.
fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RawSession, StoreError>> {
    let generation: i64 = r.get(2)?;
    let Ok(generation) = u64::try_from(generation) else {
        return Ok(Err(StoreError::Corrupt("negative generation".into())));
    };
    Ok(Ok((
        r.get(0)?,
        r.get(1)?,
        generation,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    )))
}

fn record(raw: Result<RawSession, StoreError>) -> StoreResult<SessionRecord> {
    session_record(raw?)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for `None`.
    pub async fn open(path: Option<&Path>, tables: &TableNames) -> StoreResult<Self> {
        let t = checked_tables(tables)?;
        let path = path.map(Path::to_path_buf);
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let conn = match &path {
                Some(p) => {
                    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Unavailable(format!("creating {}: {e}", dir.display()))
                        })?;
                    }
                    Connection::open(p).map_err(|e| {
                        StoreError::Unavailable(format!("opening {}: {e}", p.display()))
                    })?
                }
                None => Connection::open_in_memory().map_err(q)?,
            };
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(q)?;
            if path.is_some() {
                conn.pragma_update(None, "journal_mode", "WAL").map_err(q)?;
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(q)?;
            }
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            t,
        })
    }

    /// Replaces one JSON column of a live session; false if there is none.
    async fn update_json(
        &self,
        handle: &str,
        column: JsonColumn,
        value: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        let handle = handle.to_string();
        self.run(move |c, t| {
            let n = c
                .execute(
                    &format!(
                        "UPDATE {} SET {} = ?1 WHERE session_handle = ?2 AND expires_at_ms > ?3",
                        t.refresh_tokens,
                        column.name()
                    ),
                    params![value.to_string(), handle, now],
                )
                .map_err(q)?;
            Ok(n > 0)
        })
        .await
    }

    /// Runs `f` on the connection in the blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &TableNames) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let t = self.t.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard, &t)
        })
        .await
        .map_err(|e| StoreError::Query(format!("sqlite task failed: {e}")))?
    }
}

/// Records the handles in the revocation feed.
fn feed(tx: &rusqlite::Transaction<'_>, handles: &[String], now: Millis) -> StoreResult<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) VALUES (?1, ?2)",
        )
        .map_err(q)?;
    for h in handles {
        stmt.execute(params![h, now]).map_err(q)?;
    }
    Ok(())
}

fn user_handles(
    tx: &rusqlite::Transaction<'_>,
    t: &TableNames,
    user_id: &str,
) -> StoreResult<Vec<String>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT session_handle FROM {} WHERE user_id = ?1",
            t.refresh_tokens
        ))
        .map_err(q)?;
    let rows = stmt
        .query_map(params![user_id], |r| r.get::<_, String>(0))
        .map_err(q)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(q)
}

impl SessionStore for SqliteStore {
    async fn migrate(&self) -> StoreResult<usize> {
        self.run(|c, t| {
            c.execute(migrate::MIGRATIONS_TABLE_DDL, []).map_err(q)?;
            let mut applied = 0;
            for m in migrate::SQLITE {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(q)?;
                let done: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM sessiongate_migrations WHERE version = ?1",
                        params![m.version],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(q)?;
                if done.is_some() {
                    continue;
                }
                for stmt in m.statements(t) {
                    tx.execute(&stmt, [])
                        .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
                }
                tx.execute(
                    "INSERT INTO sessiongate_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                    params![m.version, m.name, crate::clock::Clock::system().now_ms()],
                )
                .map_err(q)?;
                tx.commit().map_err(q)?;
                applied += 1;
            }
            Ok(applied)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(q))
            .await
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        self.run(move |c, t| {
            c.prepare_cached(&format!(
                "INSERT INTO {} ({SESSION_COLS}) VALUES (?1, ?2, 0, ?3, NULL, ?4, ?5, ?6, ?4, ?7)",
                t.refresh_tokens
            ))
            .map_err(q)?
            .execute(params![
                new.handle,
                new.user_id,
                new.refresh_hash.as_slice(),
                new.created_at,
                new.session_data.to_string(),
                new.jwt_payload.to_string(),
                new.expires_at
            ])
            .map_err(q)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        let handle = handle.to_string();
        self.run(move |c, t| {
            let raw = c
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLS} FROM {} WHERE session_handle = ?1 AND expires_at_ms > ?2",
                    t.refresh_tokens
                ))
                .map_err(q)?
                .query_row(params![handle, now], raw_row)
                .optional()
                .map_err(q)?;
            raw.map(record).transpose()
        })
        .await
    }

    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.run(move |c, t| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(q)?;
            let raw = tx
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLS} FROM {} WHERE session_handle = ?1",
                    t.refresh_tokens
                ))
                .map_err(q)?
                .query_row(params![req.handle], raw_row)
                .optional()
                .map_err(q)?;
            let row = raw.map(record).transpose()?;
            let state = row.as_ref().map(|r| RotationState {
                generation: r.generation,
                current_hash: r.current_hash,
                previous_hash: r.previous_hash,
                rotated_at: r.rotated_at,
                expires_at: r.expires_at,
            });
            let decision = decide(state.as_ref(), &req.presented, req.now, req.policy);
            let outcome = match (decision, row) {
                (Decision::Rotate { .. }, Some(row)) => {
                    let new = rotated_record(&row, &req, decision);
                    tx.prepare_cached(&format!(
                        "UPDATE {} SET generation = ?1, current_hash = ?2, previous_hash = ?3, \
                         rotated_at_ms = ?4, expires_at_ms = ?5 WHERE session_handle = ?6",
                        t.refresh_tokens
                    ))
                    .map_err(q)?
                    .execute(params![
                        new.generation as i64,
                        new.current_hash.as_slice(),
                        new.previous_hash.as_ref().map(|h| h.as_slice()),
                        new.rotated_at,
                        new.expires_at,
                        new.handle
                    ])
                    .map_err(q)?;
                    RefreshOutcome::Rotated(new)
                }
                (Decision::GraceReplay, Some(row)) => RefreshOutcome::GraceReplay(row),
                (Decision::Theft, Some(row)) => {
                    let handles = match req.theft_action {
                        TheftAction::RevokeSession => vec![row.handle.clone()],
                        TheftAction::RevokeAllUserSessions => user_handles(&tx, t, &row.user_id)?,
                    };
                    feed(&tx, &handles, req.now)?;
                    let revoked = match req.theft_action {
                        TheftAction::RevokeSession => tx.execute(
                            &format!("DELETE FROM {} WHERE session_handle = ?1", t.refresh_tokens),
                            params![row.handle],
                        ),
                        TheftAction::RevokeAllUserSessions => tx.execute(
                            &format!("DELETE FROM {} WHERE user_id = ?1", t.refresh_tokens),
                            params![row.user_id],
                        ),
                    }
                    .map_err(q)?;
                    RefreshOutcome::Theft {
                        handle: row.handle,
                        user_id: row.user_id,
                        revoked: revoked as u64,
                    }
                }
                (Decision::Unauthorised(r), _) => RefreshOutcome::Unauthorised(r),
                (_, None) => RefreshOutcome::Unauthorised(
                    crate::session::rotation::UnauthorisedReason::UnknownSession,
                ),
            };
            tx.commit().map_err(q)?;
            Ok(outcome)
        })
        .await
    }

    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        let user_id = user_id.to_string();
        self.run(move |c, t| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT session_handle FROM {} WHERE user_id = ?1 AND expires_at_ms > ?2 \
                     ORDER BY created_at_ms, session_handle",
                    t.refresh_tokens
                ))
                .map_err(q)?;
            let rows = stmt
                .query_map(params![user_id, now], |r| r.get::<_, String>(0))
                .map_err(q)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(q)
        })
        .await
    }

    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        let handle = handle.to_string();
        self.run(move |c, t| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(q)?;
            let n = tx
                .execute(
                    &format!("DELETE FROM {} WHERE session_handle = ?1", t.refresh_tokens),
                    params![handle],
                )
                .map_err(q)?;
            if n > 0 {
                feed(&tx, std::slice::from_ref(&handle), now)?;
            }
            tx.commit().map_err(q)?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        self.run(move |c, t| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(q)?;
            tx.execute(
                &format!(
                    "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) \
                     SELECT session_handle, ?2 FROM {} WHERE user_id = ?1",
                    t.refresh_tokens
                ),
                params![user_id, now],
            )
            .map_err(q)?;
            let n = tx
                .execute(
                    &format!("DELETE FROM {} WHERE user_id = ?1", t.refresh_tokens),
                    params![user_id],
                )
                .map_err(q)?;
            tx.commit().map_err(q)?;
            Ok(n as u64)
        })
        .await
    }

    async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(handle, JsonColumn::SessionData, data, now)
            .await
    }

    async fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(handle, JsonColumn::JwtPayload, payload, now)
            .await
    }

    async fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> StoreResult<u64> {
        self.run(move |c, t| {
            let n = c
                .execute(
                    &format!(
                        "DELETE FROM {0} WHERE session_handle IN \
                         (SELECT session_handle FROM {0} WHERE expires_at_ms <= ?1 LIMIT ?2)",
                        t.refresh_tokens
                    ),
                    params![now, batch],
                )
                .map_err(q)?;
            c.execute(
                "DELETE FROM sessiongate_revocation WHERE revoked_at_ms < ?1",
                params![feed_before],
            )
            .map_err(q)?;
            Ok(n as u64)
        })
        .await
    }

    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.run(|c, t| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT kid, purpose, seq, algorithm, secret, public_key, created_at_ms FROM {} ORDER BY seq, kid",
                    t.signing_key
                ))
                .map_err(q)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(q)?;
            let mut keys = Vec::new();
            for row in rows {
                let (kid, purpose, seq, algorithm, secret, public, created_at) = row.map_err(q)?;
                keys.push(StoredKey {
                    purpose: KeyPurpose::parse(&purpose)
                        .ok_or_else(|| StoreError::Corrupt(format!("key {kid}: purpose {purpose}")))?,
                    seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("key {kid}: seq")))?,
                    kid,
                    algorithm,
                    secret,
                    public,
                    created_at,
                });
            }
            Ok(keys)
        })
        .await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<bool> {
        self.run(move |c, t| {
            let n = c
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO {} (kid, purpose, seq, algorithm, secret, public_key, created_at_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        t.signing_key
                    ),
                    params![
                        key.kid,
                        key.purpose.as_str(),
                        key.seq as i64,
                        key.algorithm,
                        key.secret,
                        key.public,
                        key.created_at
                    ],
                )
                .map_err(q)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        self.run(move |c, t| {
            let n = c
                .execute(
                    &format!(
                        "DELETE FROM {0} WHERE purpose = 'access' AND created_at_ms < ?1 \
                         AND seq < (SELECT MAX(seq) FROM {0} WHERE purpose = 'access')",
                        t.signing_key
                    ),
                    params![before],
                )
                .map_err(q)?;
            Ok(n as u64)
        })
        .await
    }

    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        self.run(move |c, _| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, session_handle, revoked_at_ms FROM sessiongate_revocation \
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(q)?;
            let rows = stmt
                .query_map(params![after as i64, limit], |r| {
                    Ok(Revocation {
                        id: r.get::<_, i64>(0)? as u64,
                        handle: r.get(1)?,
                        revoked_at: r.get(2)?,
                    })
                })
                .map_err(q)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(q)
        })
        .await
    }

    async fn revocation_head(&self) -> StoreResult<u64> {
        self.run(|c, _| {
            c.query_row(
                "SELECT COALESCE(MAX(id), 0) FROM sessiongate_revocation",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(q)
        })
        .await
    }

    async fn with_job_lock<T: Send>(
        &self,
        _name: &str,
        f: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<Option<T>> {
        f.await.map(Some)
    }
}
