//! SQLite store (rusqlite, bundled): the embedded default for one gateway instance.
//!
//! One connection behind a std `Mutex`, used only inside `spawn_blocking`, so the async runtime
//! never blocks on SQLite and the lock is never held across an `.await`. WAL journal, a busy
//! timeout, `BEGIN IMMEDIATE` for read-modify-write transactions. `with_job_lock` is a plain
//! call: there is only one instance.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::sql::{self, Dialect, Queries};
use super::*;
use crate::clock::Clock;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// For the migrations.
    t: TableNames,
    q: Arc<Queries>,
}

/// Busy and locked databases, and files that cannot be opened or read, are unavailability;
/// the rest are query errors.
fn sqlite_err(e: rusqlite::Error) -> StoreError {
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

fn immediate(c: &mut Connection) -> StoreResult<Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_err)
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
                None => Connection::open_in_memory().map_err(sqlite_err)?,
            };
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(sqlite_err)?;
            if path.is_some() {
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(sqlite_err)?;
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(sqlite_err)?;
            }
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            q: Arc::new(Queries::new(Dialect::Sqlite, &t)),
            t,
        })
    }

    /// Runs `f` on the connection in the blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Queries) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let q = self.q.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard, &q)
        })
        .await
        .map_err(|e| StoreError::Query(format!("sqlite task failed: {e}")))?
    }

    /// Applies one write in a transaction of its own (the revocations outside a refresh).
    async fn write_once(&self, write: SessionWrite, now: Millis) -> StoreResult<u64> {
        self.run(move |c, q| {
            let tx = immediate(c)?;
            let n = write_in(&tx, q, &write, now)?;
            tx.commit().map_err(sqlite_err)?;
            Ok(n)
        })
        .await
    }

    /// Replaces one JSON column of a live session (`update` picks that column's statement);
    /// false if there is none.
    async fn update_json(
        &self,
        update: fn(&Queries) -> &str,
        handle: &str,
        value: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        let handle = handle.to_string();
        self.run(move |c, q| {
            let n = c
                .prepare_cached(update(q))
                .map_err(sqlite_err)?
                .execute(params![value.to_string(), handle, now])
                .map_err(sqlite_err)?;
            Ok(n > 0)
        })
        .await
    }
}

/// Applies a write inside `tx`; returns how many sessions it revoked. A revoked session is
/// deleted and recorded in the feed at `now`.
fn write_in(
    tx: &Transaction<'_>,
    q: &Queries,
    write: &SessionWrite,
    now: Millis,
) -> StoreResult<u64> {
    let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> StoreResult<u64> {
        let n = tx
            .prepare_cached(sql)
            .map_err(sqlite_err)?
            .execute(p)
            .map_err(sqlite_err)?;
        Ok(n as u64)
    };
    match write {
        SessionWrite::Nothing => Ok(0),
        SessionWrite::UpdateRow(new) => {
            exec(
                &q.update_rotation,
                params![
                    new.generation as i64,
                    new.current_hash.as_slice(),
                    new.previous_hash.as_ref().map(|h| h.as_slice()),
                    new.rotated_at,
                    new.expires_at,
                    new.handle
                ],
            )?;
            Ok(0)
        }
        SessionWrite::RevokeSession(handle) => {
            let deleted = exec(&q.delete_session, params![handle])?;
            if deleted > 0 {
                exec(sql::FEED_INSERT, params![handle, now])?;
            }
            Ok(deleted)
        }
        SessionWrite::RevokeUserSessions(user_id) => {
            exec(&q.feed_user_sessions, params![now, user_id])?;
            exec(&q.delete_user_sessions, params![user_id])
        }
    }
}

impl SessionStore for SqliteStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        self.run(move |c, q| {
            c.prepare_cached(&q.insert_session)
                .map_err(sqlite_err)?
                .execute(params![
                    new.handle,
                    new.user_id,
                    new.refresh_hash.as_slice(),
                    new.created_at,
                    new.session_data.to_string(),
                    new.jwt_payload.to_string(),
                    new.created_at,
                    new.expires_at
                ])
                .map_err(sqlite_err)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        let handle = handle.to_string();
        self.run(move |c, q| {
            let raw = c
                .prepare_cached(&q.live_session)
                .map_err(sqlite_err)?
                .query_row(params![handle, now], raw_row)
                .optional()
                .map_err(sqlite_err)?;
            raw.map(record).transpose()
        })
        .await
    }

    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.run(move |c, q| {
            let tx = immediate(c)?;
            let raw = tx
                .prepare_cached(&q.lock_session)
                .map_err(sqlite_err)?
                .query_row(params![req.handle], raw_row)
                .optional()
                .map_err(sqlite_err)?;
            let plan = plan_refresh(raw.map(record).transpose()?, &req);
            let revoked = write_in(&tx, q, &plan.write, req.now)?;
            tx.commit().map_err(sqlite_err)?;
            Ok(plan.outcome(revoked))
        })
        .await
    }

    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        let user_id = user_id.to_string();
        self.run(move |c, q| {
            let mut stmt = c.prepare_cached(&q.user_sessions).map_err(sqlite_err)?;
            let rows = stmt
                .query_map(params![user_id, now], |r| r.get::<_, String>(0))
                .map_err(sqlite_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_err)
        })
        .await
    }

    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        let write = SessionWrite::RevokeSession(handle.to_string());
        Ok(self.write_once(write, now).await? > 0)
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        let write = SessionWrite::RevokeUserSessions(user_id.to_string());
        self.write_once(write, now).await
    }

    async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(|q| &q.update_session_data, handle, data, now)
            .await
    }

    async fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(|q| &q.update_jwt_payload, handle, payload, now)
            .await
    }
}

impl KeyStore for SqliteStore {
    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.run(|c, q| {
            let mut stmt = c.prepare_cached(&q.keys).map_err(sqlite_err)?;
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
                .map_err(sqlite_err)?;
            let mut keys = Vec::new();
            for row in rows {
                let (kid, purpose, seq, algorithm, secret, public, created_at) =
                    row.map_err(sqlite_err)?;
                keys.push(StoredKey {
                    purpose: KeyPurpose::parse(&purpose).ok_or_else(|| {
                        StoreError::Corrupt(format!("key {kid}: purpose {purpose}"))
                    })?,
                    seq: u64::try_from(seq)
                        .map_err(|_| StoreError::Corrupt(format!("key {kid}: seq")))?,
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
        self.run(move |c, q| {
            let n = c
                .prepare_cached(&q.insert_key)
                .map_err(sqlite_err)?
                .execute(params![
                    key.kid,
                    key.purpose.as_str(),
                    key.seq as i64,
                    key.algorithm,
                    key.secret,
                    key.public,
                    key.created_at
                ])
                .map_err(sqlite_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        self.run(move |c, q| {
            // The same two statements as MySQL's; the connection is this process's only one.
            let newest: Option<i64> = c
                .query_row(&q.newest_access_seq, [], |r| r.get(0))
                .map_err(sqlite_err)?;
            let Some(newest) = newest else {
                return Ok(0);
            };
            let n = c
                .execute(&q.delete_access_keys, params![before, newest])
                .map_err(sqlite_err)?;
            Ok(n as u64)
        })
        .await
    }
}

impl RevocationFeed for SqliteStore {
    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        self.run(move |c, _| {
            let mut stmt = c.prepare_cached(sql::FEED_SINCE).map_err(sqlite_err)?;
            let rows = stmt
                .query_map(params![after as i64, limit], |r| {
                    Ok(Revocation {
                        id: r.get::<_, i64>(0)? as u64,
                        handle: r.get(1)?,
                        revoked_at: r.get(2)?,
                    })
                })
                .map_err(sqlite_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_err)
        })
        .await
    }

    async fn revocation_head(&self) -> StoreResult<u64> {
        self.run(|c, _| {
            c.query_row(sql::FEED_HEAD, [], |r| r.get::<_, Option<i64>>(0))
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(sqlite_err)
        })
        .await
    }
}

impl Maintenance for SqliteStore {
    async fn migrate(&self) -> StoreResult<usize> {
        let t = self.t.clone();
        self.run(move |c, _| {
            c.execute(migrate::MIGRATIONS_TABLE_DDL, [])
                .map_err(sqlite_err)?;
            // One immediate transaction: SQLite DDL is transactional, so a failed migration
            // leaves nothing behind and two processes cannot apply one twice.
            let tx = immediate(c)?;
            let applied = tx
                .prepare(sql::MIGRATIONS_APPLIED)
                .map_err(sqlite_err)?
                .query_map([], |r| r.get::<_, u32>(0))
                .map_err(sqlite_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite_err)?;
            let pending = migrate::pending(migrate::SQLITE, &applied);
            for m in &pending {
                for stmt in m.statements(&t) {
                    tx.execute(&stmt, []).map_err(|e| m.failed(e))?;
                }
                let (version, name, at) = m.record(Clock::system().now_ms());
                tx.execute(sql::MIGRATION_RECORD, params![version, name, at])
                    .map_err(sqlite_err)?;
            }
            tx.commit().map_err(sqlite_err)?;
            Ok(pending.len())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sqlite_err))
            .await
    }

    async fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> StoreResult<u64> {
        self.run(move |c, q| {
            let n = c
                .execute(&q.purge_sessions, params![now, batch])
                .map_err(sqlite_err)?;
            c.execute(sql::FEED_PURGE, params![feed_before])
                .map_err(sqlite_err)?;
            Ok(n as u64)
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
