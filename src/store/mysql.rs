//! MySQL / MariaDB store (mysql_async): the production store, shared by many gateway
//! instances.
//!
//! Every operation takes one pooled connection, does its work (a refresh is one transaction
//! with the row locked by `SELECT … FOR UPDATE`), and returns it: no operation waits for a
//! second connection while holding one, so no pool size can deadlock. Getting a connection
//! is bounded by [`ACQUIRE_TIMEOUT`]; an unreachable server is `StoreError::Unavailable`, not a
//! hang. `with_job_lock` uses `GET_LOCK` on a dedicated connection.

use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};

use super::migrate;
use super::*;
use crate::config::TableNames;
use crate::session::rotation::{decide, RotationState, UnauthorisedReason};

/// Longest wait for a pooled connection (including connecting).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a transaction that InnoDB chose as a deadlock victim is run again.
const DEADLOCK_RETRIES: u32 = 8;

pub struct MysqlStore {
    pool: Pool,
    /// For the job lock's connection, which lives outside the pool.
    opts: Opts,
    t: TableNames,
    /// `GET_LOCK` names are server-wide; they are prefixed with the database name so
    /// gateways on other databases of the same server do not exclude each other.
    lock_prefix: String,
}

fn err(e: mysql_async::Error) -> StoreError {
    match e {
        mysql_async::Error::Server(ref s) if matches!(s.code, 1205 | 1213) => {
            StoreError::Conflict(e.to_string())
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            StoreError::Unavailable(e.to_string())
        }
        mysql_async::Error::Server(ref s)
            if matches!(s.code, 1040 | 1053 | 1205 | 1213 | 2006 | 2013) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Query(other.to_string()),
    }
}

/// `CREATE DATABASE IF NOT EXISTS` for the database `url` names, on a connection that selects
/// no database (`sessiongate migrate --create-database`). Returns the database's name.
pub async fn create_database(url: &str) -> StoreResult<String> {
    let masked = crate::config::mask_url_password(url);
    let opts = Opts::from_url(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid MySQL URL {masked}: {e}")))?;
    let name = opts.db_name().unwrap_or("").to_string();
    // Quoted below, but kept to the characters an unquoted name may have so no SQL is built
    // from anything unusual.
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-';
    if name.is_empty() || name.len() > 64 || !name.bytes().all(plain) {
        return Err(StoreError::Query(format!(
            "the MySQL URL {masked} names no database, or one that is not \
             [A-Za-z0-9_$-]{{1,64}}; create it by hand"
        )));
    }
    let opts: Opts = OptsBuilder::from_opts(opts).db_name(None::<String>).into();
    let mut conn = match tokio::time::timeout(ACQUIRE_TIMEOUT, Conn::new(opts)).await {
        Ok(c) => c.map_err(err)?,
        Err(_) => {
            return Err(StoreError::Unavailable(format!(
                "no MySQL connection within {} s",
                ACQUIRE_TIMEOUT.as_secs()
            )))
        }
    };
    let created = conn
        .query_drop(format!("CREATE DATABASE IF NOT EXISTS `{name}`"))
        .await
        .map_err(err);
    let _ = conn.disconnect().await;
    created.map(|()| name)
}

/// kid, purpose, seq, algorithm, secret, public key, created at.
type KeyRow = (String, String, u64, String, Vec<u8>, Vec<u8>, i64);

fn row_to_raw(row: mysql_async::Row) -> StoreResult<RawSession> {
    mysql_async::from_row_opt(row).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl MysqlStore {
    /// Creates the pool (connections are made lazily; `ping` or `migrate` proves the server).
    pub fn open(url: &str, connection_limit: u32, tables: &TableNames) -> StoreResult<Self> {
        let t = checked_tables(tables)?;
        let opts = Opts::from_url(url).map_err(|e| {
            StoreError::Unavailable(format!(
                "invalid MySQL URL {}: {e}",
                crate::config::mask_url_password(url)
            ))
        })?;
        let max = connection_limit.max(1) as usize;
        let constraints = PoolConstraints::new(max.min(2), max)
            .ok_or_else(|| StoreError::Unavailable("invalid pool constraints".into()))?;
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_reset_connection(false)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let lock_prefix = opts.db_name().unwrap_or("").to_string();
        let opts: Opts = OptsBuilder::from_opts(opts)
            .pool_opts(pool_opts)
            .tcp_nodelay(true)
            .stmt_cache_size(64)
            .into();
        Ok(Self {
            pool: Pool::new(opts.clone()),
            opts,
            t,
            lock_prefix,
        })
    }

    /// A server-wide lock name scoped to this database (at most 64 characters).
    fn lock_name(&self, name: &str) -> String {
        let full = format!("{}.{name}", self.lock_prefix);
        if full.len() <= 64 {
            full
        } else {
            use sha2::Digest;
            format!(
                "sg.{}",
                hex::encode(&sha2::Sha256::digest(full.as_bytes())[..24])
            )
        }
    }

    /// Runs a transaction again when InnoDB picked it as a deadlock victim (or a lock wait
    /// timed out), after a short random pause; other errors return at once.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(StoreError::Conflict(m)) if attempt < DEADLOCK_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %m, "retrying a MySQL transaction");
                    let pause = 5 + rand::random::<u64>() % (10 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(StoreError::Conflict(m)) => return Err(StoreError::Unavailable(m)),
                other => return other,
            }
        }
    }

    async fn conn(&self) -> StoreResult<Conn> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no MySQL connection within {} s",
                ACQUIRE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        let _ = self.pool.clone().disconnect().await;
    }

    fn tx_opts() -> TxOpts {
        let mut o = TxOpts::default();
        o.with_isolation_level(mysql_async::IsolationLevel::ReadCommitted);
        o
    }
}

async fn feed<Q: Queryable>(c: &mut Q, handles: &[String], now: Millis) -> StoreResult<()> {
    if handles.is_empty() {
        return Ok(());
    }
    c.exec_batch(
        "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) VALUES (?, ?)",
        handles.iter().map(|h| (h.as_str(), now)),
    )
    .await
    .map_err(err)
}

impl SessionStore for MysqlStore {
    async fn migrate(&self) -> StoreResult<usize> {
        let mut c = self.conn().await?;
        let lock = self.lock_name("sessiongate_migrate");
        let got: Option<Option<i64>> = c
            .exec_first("SELECT GET_LOCK(?, 30)", (lock.as_str(),))
            .await
            .map_err(err)?;
        if got.flatten() != Some(1) {
            return Err(StoreError::Migration(
                "another instance held the migration lock for 30 s".into(),
            ));
        }
        let result = async {
            c.query_drop(migrate::MIGRATIONS_TABLE_DDL).await.map_err(err)?;
            let mut applied = 0;
            for m in migrate::MYSQL {
                let done: Option<u32> = c
                    .exec_first(
                        "SELECT version FROM sessiongate_migrations WHERE version = ?",
                        (m.version,),
                    )
                    .await
                    .map_err(err)?;
                if done.is_some() {
                    continue;
                }
                // MySQL DDL commits implicitly; each statement is idempotent (IF NOT EXISTS)
                // so a migration interrupted half-way can simply run again.
                for stmt in m.statements(&self.t) {
                    c.query_drop(&stmt).await.map_err(|e| {
                        StoreError::Migration(format!("{} ({}): {e}", m.version, m.name))
                    })?;
                }
                c.exec_drop(
                    "INSERT INTO sessiongate_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
                    (m.version, m.name, crate::clock::Clock::system().now_ms()),
                )
                .await
                .map_err(err)?;
                applied += 1;
            }
            Ok(applied)
        }
        .await;
        let _ = c.exec_drop("DO RELEASE_LOCK(?)", (lock.as_str(),)).await;
        result
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn().await?;
        c.ping().await.map_err(err)
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        let mut c = self.conn().await?;
        c.exec_drop(
            format!(
                "INSERT INTO `{}` ({SESSION_COLS}) VALUES (?, ?, 0, ?, NULL, ?, ?, ?, ?, ?)",
                self.t.refresh_tokens
            ),
            (
                new.handle,
                new.user_id,
                new.refresh_hash.to_vec(),
                new.created_at,
                new.session_data.to_string(),
                new.jwt_payload.to_string(),
                new.created_at,
                new.expires_at,
            ),
        )
        .await
        .map_err(err)
    }

    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        let mut c = self.conn().await?;
        let row: Option<mysql_async::Row> = c
            .exec_first(
                format!(
                    "SELECT {SESSION_COLS} FROM `{}` WHERE session_handle = ? AND expires_at_ms > ?",
                    self.t.refresh_tokens
                ),
                (handle, now),
            )
            .await
            .map_err(err)?;
        row.map(|r| row_to_raw(r).and_then(session_record))
            .transpose()
    }

    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.retrying(|| self.refresh_once(&req)).await
    }

    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        let mut c = self.conn().await?;
        c.exec(
            format!(
                "SELECT session_handle FROM `{}` WHERE user_id = ? AND expires_at_ms > ? \
                 ORDER BY created_at_ms, session_handle",
                self.t.refresh_tokens
            ),
            (user_id, now),
        )
        .await
        .map_err(err)
    }

    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        self.retrying(|| self.revoke_session_once(handle, now))
            .await
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        self.retrying(|| self.revoke_user_once(user_id, now)).await
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
        let mut c = self.conn().await?;
        c.exec_drop(
            format!(
                "DELETE FROM `{}` WHERE expires_at_ms <= ? ORDER BY expires_at_ms LIMIT {batch}",
                self.t.refresh_tokens
            ),
            (now,),
        )
        .await
        .map_err(err)?;
        let n = c.affected_rows();
        c.exec_drop(
            "DELETE FROM sessiongate_revocation WHERE revoked_at_ms < ?",
            (feed_before,),
        )
        .await
        .map_err(err)?;
        Ok(n)
    }

    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut c = self.conn().await?;
        let rows: Vec<KeyRow> = c
            .query(format!(
                "SELECT kid, purpose, seq, algorithm, secret, public_key, created_at_ms FROM `{}` ORDER BY seq, kid",
                self.t.signing_key
            ))
            .await
            .map_err(err)?;
        rows.into_iter()
            .map(
                |(kid, purpose, seq, algorithm, secret, public, created_at)| {
                    Ok(StoredKey {
                        purpose: KeyPurpose::parse(&purpose).ok_or_else(|| {
                            StoreError::Corrupt(format!("key {kid}: purpose {purpose}"))
                        })?,
                        kid,
                        seq,
                        algorithm,
                        secret,
                        public,
                        created_at,
                    })
                },
            )
            .collect()
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        c.exec_drop(
            format!(
                "INSERT IGNORE INTO `{}` (kid, purpose, seq, algorithm, secret, public_key, created_at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                self.t.signing_key
            ),
            (
                key.kid,
                key.purpose.as_str(),
                key.seq,
                key.algorithm,
                key.secret,
                key.public,
                key.created_at,
            ),
        )
        .await
        .map_err(err)?;
        Ok(c.affected_rows() > 0)
    }

    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let newest: Option<Option<u64>> = c
            .query_first(format!(
                "SELECT MAX(seq) FROM `{}` WHERE purpose = 'access'",
                self.t.signing_key
            ))
            .await
            .map_err(err)?;
        let Some(newest) = newest.flatten() else {
            return Ok(0);
        };
        c.exec_drop(
            format!(
                "DELETE FROM `{}` WHERE purpose = 'access' AND created_at_ms < ? AND seq < ?",
                self.t.signing_key
            ),
            (before, newest),
        )
        .await
        .map_err(err)?;
        Ok(c.affected_rows())
    }

    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        let mut c = self.conn().await?;
        let rows: Vec<(u64, String, i64)> = c
            .exec(
                format!(
                    "SELECT id, session_handle, revoked_at_ms FROM sessiongate_revocation \
                     WHERE id > ? ORDER BY id LIMIT {limit}"
                ),
                (after,),
            )
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(id, handle, revoked_at)| Revocation {
                id,
                handle,
                revoked_at,
            })
            .collect())
    }

    async fn revocation_head(&self) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let v: Option<Option<u64>> = c
            .query_first("SELECT MAX(id) FROM sessiongate_revocation")
            .await
            .map_err(err)?;
        Ok(v.flatten().unwrap_or(0))
    }

    async fn with_job_lock<T: Send>(
        &self,
        name: &str,
        f: impl Future<Output = StoreResult<T>> + Send,
    ) -> StoreResult<Option<T>> {
        // The lock lives on a connection of its own, outside the pool, so `f` can use every
        // pooled connection (even with connection_limit = 1) and nothing holds a pooled
        // connection while waiting for another.
        let name = self.lock_name(name);
        let mut c = match tokio::time::timeout(ACQUIRE_TIMEOUT, Conn::new(self.opts.clone())).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "no MySQL connection for the job lock".into(),
                ))
            }
        };
        let got: Option<Option<i64>> = c
            .exec_first("SELECT GET_LOCK(?, 0)", (name.as_str(),))
            .await
            .map_err(err)?;
        if got.flatten() != Some(1) {
            let _ = c.disconnect().await;
            return Ok(None);
        }
        let result = f.await;
        let _ = c.exec_drop("DO RELEASE_LOCK(?)", (name.as_str(),)).await;
        let _ = c.disconnect().await;
        result.map(Some)
    }
}

impl MysqlStore {
    async fn refresh_once(&self, req: &RefreshRequest) -> StoreResult<RefreshOutcome> {
        let mut c = self.conn().await?;
        let mut tx = c.start_transaction(Self::tx_opts()).await.map_err(err)?;
        let row: Option<mysql_async::Row> = tx
            .exec_first(
                format!(
                    "SELECT {SESSION_COLS} FROM `{}` WHERE session_handle = ? FOR UPDATE",
                    self.t.refresh_tokens
                ),
                (req.handle.as_str(),),
            )
            .await
            .map_err(err)?;
        let row = row
            .map(|r| row_to_raw(r).and_then(session_record))
            .transpose()?;
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
                let new = rotated_record(&row, req, decision);
                tx.exec_drop(
                    format!(
                        "UPDATE `{}` SET generation = ?, current_hash = ?, previous_hash = ?, \
                         rotated_at_ms = ?, expires_at_ms = ? WHERE session_handle = ?",
                        self.t.refresh_tokens
                    ),
                    (
                        new.generation,
                        new.current_hash.to_vec(),
                        new.previous_hash.map(|h| h.to_vec()),
                        new.rotated_at,
                        new.expires_at,
                        new.handle.as_str(),
                    ),
                )
                .await
                .map_err(err)?;
                RefreshOutcome::Rotated(new)
            }
            (Decision::GraceReplay, Some(row)) => RefreshOutcome::GraceReplay(row),
            (Decision::Theft, Some(row)) => {
                let revoked = match req.theft_action {
                    TheftAction::RevokeSession => {
                        feed(&mut tx, std::slice::from_ref(&row.handle), req.now).await?;
                        tx.exec_drop(
                            format!(
                                "DELETE FROM `{}` WHERE session_handle = ?",
                                self.t.refresh_tokens
                            ),
                            (row.handle.as_str(),),
                        )
                        .await
                        .map_err(err)?;
                        tx.affected_rows()
                    }
                    TheftAction::RevokeAllUserSessions => {
                        tx.exec_drop(
                            format!(
                                "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) \
                                 SELECT session_handle, ? FROM `{}` WHERE user_id = ? FOR UPDATE",
                                self.t.refresh_tokens
                            ),
                            (req.now, row.user_id.as_str()),
                        )
                        .await
                        .map_err(err)?;
                        tx.exec_drop(
                            format!("DELETE FROM `{}` WHERE user_id = ?", self.t.refresh_tokens),
                            (row.user_id.as_str(),),
                        )
                        .await
                        .map_err(err)?;
                        tx.affected_rows()
                    }
                };
                RefreshOutcome::Theft {
                    handle: row.handle,
                    user_id: row.user_id,
                    revoked,
                }
            }
            (Decision::Unauthorised(r), _) => RefreshOutcome::Unauthorised(r),
            (_, None) => RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownSession),
        };
        tx.commit().await.map_err(err)?;
        Ok(outcome)
    }

    async fn revoke_session_once(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let mut tx = c.start_transaction(Self::tx_opts()).await.map_err(err)?;
        tx.exec_drop(
            format!(
                "DELETE FROM `{}` WHERE session_handle = ?",
                self.t.refresh_tokens
            ),
            (handle,),
        )
        .await
        .map_err(err)?;
        let deleted = tx.affected_rows() > 0;
        if deleted {
            feed(&mut tx, &[handle.to_string()], now).await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(deleted)
    }

    async fn revoke_user_once(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let mut tx = c.start_transaction(Self::tx_opts()).await.map_err(err)?;
        tx.exec_drop(
            format!(
                "INSERT INTO sessiongate_revocation (session_handle, revoked_at_ms) \
                 SELECT session_handle, ? FROM `{}` WHERE user_id = ? FOR UPDATE",
                self.t.refresh_tokens
            ),
            (now, user_id),
        )
        .await
        .map_err(err)?;
        tx.exec_drop(
            format!("DELETE FROM `{}` WHERE user_id = ?", self.t.refresh_tokens),
            (user_id,),
        )
        .await
        .map_err(err)?;
        let n = tx.affected_rows();
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    /// Replaces one JSON column of a live session; false if there is none.
    async fn update_json(
        &self,
        handle: &str,
        column: JsonColumn,
        value: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        c.exec_drop(
            format!(
                "UPDATE `{}` SET {} = ? WHERE session_handle = ? AND expires_at_ms > ?",
                self.t.refresh_tokens,
                column.name()
            ),
            (value.to_string(), handle, now),
        )
        .await
        .map_err(err)?;
        Ok(c.affected_rows() > 0 || self.exists(&mut c, handle, now).await?)
    }

    /// Whether a live row exists (an UPDATE that sets the same value reports 0 affected rows).
    async fn exists(&self, c: &mut Conn, handle: &str, now: Millis) -> StoreResult<bool> {
        let v: Option<u8> = c
            .exec_first(
                format!(
                    "SELECT 1 FROM `{}` WHERE session_handle = ? AND expires_at_ms > ?",
                    self.t.refresh_tokens
                ),
                (handle, now),
            )
            .await
            .map_err(err)?;
        Ok(v.is_some())
    }
}
