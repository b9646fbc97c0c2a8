//! MySQL / MariaDB store (mysql_async): the production store, shared by many gateway
//! instances.
//!
//! Every operation takes one pooled connection, does its work (a refresh is one transaction
//! with the row locked by `SELECT … FOR UPDATE`), and returns it: no operation waits for a
//! second connection while holding one, so no pool size can deadlock. Getting a connection
//! is bounded by [`ACQUIRE_TIMEOUT`]; an unreachable server is `StoreError::Unavailable`, not a
//! hang. `with_job_lock` uses `GET_LOCK` on a dedicated connection.
//!
//! TLS (rustls, ring) is asked for in the URL: mysql_async's `require_ssl`, `verify_ca`,
//! `verify_identity` and `built_in_roots`, plus sessiongate's own `ssl_ca=PATH` (a PEM file of
//! CA certificates to trust, which implies `require_ssl=true`); [`parse_url`] is the one reader
//! of those parameters, used by config validation and by [`MysqlStore::open`] alike.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{
    Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts, Transaction, TxOpts,
};

use super::sql::{self, Dialect, Queries};
use super::*;
use crate::clock::Clock;

/// Longest wait for a pooled connection (including connecting).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a transaction that InnoDB chose as a deadlock victim is run again.
const DEADLOCK_RETRIES: u32 = 8;

pub struct MysqlStore {
    pool: Pool,
    /// For the job lock's connection, which lives outside the pool.
    opts: Opts,
    /// For the migrations.
    t: TableNames,
    q: Box<Queries>,
    /// `GET_LOCK` names are server-wide; they are prefixed with the database name so
    /// gateways on other databases of the same server do not exclude each other.
    lock_prefix: String,
}

/// Lock wait timeout (1205) and deadlock (1213) are conflicts the store retries; lost or
/// refused connections are unavailability; the rest are query errors.
pub(super) fn mysql_err(e: mysql_async::Error) -> StoreError {
    match e {
        mysql_async::Error::Server(ref s) if matches!(s.code, 1205 | 1213) => {
            StoreError::Conflict(e.to_string())
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            StoreError::Unavailable(e.to_string())
        }
        mysql_async::Error::Server(ref s) if matches!(s.code, 1040 | 1053 | 2006 | 2013) => {
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
        Ok(c) => c.map_err(mysql_err)?,
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
        .map_err(mysql_err);
    let _ = conn.disconnect().await;
    created.map(|()| name)
}

/// kid, purpose, seq, algorithm, secret, public key, created at.
type KeyRow = (String, String, u64, String, Vec<u8>, Vec<u8>, i64);

fn row_to_raw(row: mysql_async::Row) -> StoreResult<RawSession> {
    mysql_async::from_row_opt(row).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// sessiongate's own URL parameter: a PEM file of CA certificates the server's certificate
/// must chain to. mysql_async 0.36 has no URL parameter for it.
pub const CA_FILE_PARAM: &str = "ssl_ca";

/// A MySQL URL read: the driver's options and the CA file named by `ssl_ca`, if any.
#[derive(Debug)]
pub struct ParsedUrl {
    pub opts: Opts,
    pub ca_file: Option<PathBuf>,
}

/// Reads a `mysql://` URL. `ssl_ca=PATH` (percent-encoded like any query value) is taken out
/// before the rest goes to mysql_async, and turns TLS on unless the URL says
/// `require_ssl=false`, which contradicts it and is refused. Pure: the CA file is not read.
pub fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut ca_file = None;
    let mut require_ssl: Option<&str> = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == CA_FILE_PARAM {
            if ca_file.is_some() {
                return Err(format!("{CA_FILE_PARAM} is given twice"));
            }
            let path = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| format!("{CA_FILE_PARAM} is not UTF-8 once percent-decoded"))?;
            if path.is_empty() {
                return Err(format!("{CA_FILE_PARAM} names no file"));
            }
            ca_file = Some(PathBuf::from(path.into_owned()));
            continue;
        }
        if k == "require_ssl" {
            require_ssl = Some(v);
        }
        if !pair.is_empty() {
            kept.push(pair);
        }
    }
    if ca_file.is_some() {
        match require_ssl {
            None => kept.push("require_ssl=true"),
            Some("false") => {
                return Err(format!(
                    "{CA_FILE_PARAM} needs TLS but the URL says require_ssl=false"
                ))
            }
            Some(_) => {}
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let opts = Opts::from_url(&rebuilt).map_err(|e| e.to_string())?;
    let trusts_nothing = opts.ssl_opts().is_some_and(|ssl| {
        ssl.disable_built_in_roots() && !ssl.accept_invalid_certs() && ca_file.is_none()
    });
    if trusts_nothing {
        return Err(format!(
            "built_in_roots=false without {CA_FILE_PARAM} trusts no CA: no connection could succeed"
        ));
    }
    Ok(ParsedUrl { opts, ca_file })
}

/// The CA certificates of an `ssl_ca` file: its bytes, refused unless they hold at least one
/// PEM certificate (so a wrong path or file fails at start, not at every connection).
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(bytes)
}

impl MysqlStore {
    /// Creates the pool (connections are made lazily; `ping` or `migrate` proves the server).
    /// The `ssl_ca` file, if any, is read here, once.
    pub fn open(url: &str, connection_limit: u32, tables: &TableNames) -> StoreResult<Self> {
        let t = checked_tables(tables)?;
        let invalid = |e: String| {
            StoreError::Unavailable(format!(
                "invalid MySQL URL {}: {e}",
                crate::config::mask_url_password(url)
            ))
        };
        let ParsedUrl { opts, ca_file } = parse_url(url).map_err(invalid)?;
        let opts = match ca_file {
            None => opts,
            Some(path) => {
                let pem = read_ca_file(&path).map_err(invalid)?;
                let ssl = opts
                    .ssl_opts()
                    .cloned()
                    .unwrap_or_else(SslOpts::default)
                    .with_root_certs(vec![pem.into()]);
                OptsBuilder::from_opts(opts).ssl_opts(ssl).into()
            }
        };
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
            .init(vec![sql::MYSQL_SESSION_INIT])
            .stmt_cache_size(64)
            .into();
        Ok(Self {
            pool: Pool::new(opts.clone()),
            opts,
            q: Box::new(Queries::new(Dialect::Mysql, &t)),
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

    /// A plain `START TRANSACTION`: READ COMMITTED is the session's level, set once when each
    /// connection opens ([`sql::MYSQL_SESSION_INIT`]), so a transaction does not spend a round trip on
    /// `SET TRANSACTION ISOLATION LEVEL` (a refresh is 4 round trips, not 5).
    fn tx_opts() -> TxOpts {
        TxOpts::default()
    }
}

impl SessionStore for MysqlStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        let mut c = self.conn().await?;
        c.exec_drop(
            self.q.insert_session.as_str(),
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
        .map_err(mysql_err)
    }

    async fn session(&self, handle: &str, now: Millis) -> StoreResult<Option<SessionRecord>> {
        let mut c = self.conn().await?;
        let row: Option<mysql_async::Row> = c
            .exec_first(self.q.live_session.as_str(), (handle, now))
            .await
            .map_err(mysql_err)?;
        row.map(|r| row_to_raw(r).and_then(session_record))
            .transpose()
    }

    async fn refresh(&self, req: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.retrying(|| self.refresh_once(&req)).await
    }

    async fn user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<Vec<String>> {
        let mut c = self.conn().await?;
        c.exec(self.q.user_sessions.as_str(), (user_id, now))
            .await
            .map_err(mysql_err)
    }

    async fn revoke_session(&self, handle: &str, now: Millis) -> StoreResult<bool> {
        let write = SessionWrite::RevokeSession(handle.to_string());
        let revoked = self.retrying(|| self.write_once(&write, now)).await?;
        Ok(revoked > 0)
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: Millis) -> StoreResult<u64> {
        let write = SessionWrite::RevokeUserSessions(user_id.to_string());
        self.retrying(|| self.write_once(&write, now)).await
    }

    async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(&self.q.update_session_data, handle, data, now)
            .await
    }

    async fn update_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        self.update_json(&self.q.update_jwt_payload, handle, payload, now)
            .await
    }
}

impl KeyStore for MysqlStore {
    async fn keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut c = self.conn().await?;
        let rows: Vec<KeyRow> = c.query(self.q.keys.as_str()).await.map_err(mysql_err)?;
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
            self.q.insert_key.as_str(),
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
        .map_err(mysql_err)?;
        Ok(c.affected_rows() > 0)
    }

    async fn delete_access_keys_before(&self, before: Millis) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        // Two statements: MySQL cannot DELETE from a table its own subquery reads.
        let newest: Option<Option<u64>> = c
            .query_first(self.q.newest_access_seq.as_str())
            .await
            .map_err(mysql_err)?;
        let Some(newest) = newest.flatten() else {
            return Ok(0);
        };
        c.exec_drop(self.q.delete_access_keys.as_str(), (before, newest))
            .await
            .map_err(mysql_err)?;
        Ok(c.affected_rows())
    }
}

impl RevocationFeed for MysqlStore {
    async fn revocations_since(&self, after: u64, limit: u32) -> StoreResult<Vec<Revocation>> {
        let mut c = self.conn().await?;
        let rows: Vec<(u64, String, i64)> = c
            .exec(sql::FEED_SINCE, (after, limit))
            .await
            .map_err(mysql_err)?;
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
        let v: Option<Option<u64>> = c.query_first(sql::FEED_HEAD).await.map_err(mysql_err)?;
        Ok(v.flatten().unwrap_or(0))
    }
}

impl Maintenance for MysqlStore {
    async fn migrate(&self) -> StoreResult<usize> {
        let mut c = self.conn().await?;
        let lock = self.lock_name("sessiongate_migrate");
        let got: Option<Option<i64>> = c
            .exec_first("SELECT GET_LOCK(?, 30)", (lock.as_str(),))
            .await
            .map_err(mysql_err)?;
        if got.flatten() != Some(1) {
            return Err(StoreError::Migration(
                "another instance held the migration lock for 30 s".into(),
            ));
        }
        let result = async {
            c.query_drop(migrate::MIGRATIONS_TABLE_DDL)
                .await
                .map_err(mysql_err)?;
            let applied: Vec<u32> = c.query(sql::MIGRATIONS_APPLIED).await.map_err(mysql_err)?;
            let pending = migrate::pending(migrate::MYSQL, &applied);
            for m in &pending {
                // MySQL DDL commits implicitly; each statement is idempotent (IF NOT EXISTS)
                // so a migration interrupted half-way can simply run again.
                for stmt in m.statements(&self.t) {
                    c.query_drop(&stmt).await.map_err(|e| m.failed(e))?;
                }
                c.exec_drop(sql::MIGRATION_RECORD, m.record(Clock::system().now_ms()))
                    .await
                    .map_err(mysql_err)?;
            }
            Ok(pending.len())
        }
        .await;
        let _ = c.exec_drop("DO RELEASE_LOCK(?)", (lock.as_str(),)).await;
        result
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn().await?;
        c.ping().await.map_err(mysql_err)
    }

    async fn purge_expired(
        &self,
        now: Millis,
        feed_before: Millis,
        batch: u32,
    ) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        c.exec_drop(self.q.purge_sessions.as_str(), (now, batch))
            .await
            .map_err(mysql_err)?;
        let n = c.affected_rows();
        c.exec_drop(sql::FEED_PURGE, (feed_before,))
            .await
            .map_err(mysql_err)?;
        Ok(n)
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
            Ok(Err(e)) => return Err(mysql_err(e)),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "no MySQL connection for the job lock".into(),
                ))
            }
        };
        let got: Option<Option<i64>> = c
            .exec_first("SELECT GET_LOCK(?, 0)", (name.as_str(),))
            .await
            .map_err(mysql_err)?;
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
    /// One refresh transaction: lock the row, plan, write the plan, commit.
    async fn refresh_once(&self, req: &RefreshRequest) -> StoreResult<RefreshOutcome> {
        let mut c = self.conn().await?;
        let mut tx = c
            .start_transaction(Self::tx_opts())
            .await
            .map_err(mysql_err)?;
        let row: Option<mysql_async::Row> = tx
            .exec_first(self.q.lock_session.as_str(), (req.handle.as_str(),))
            .await
            .map_err(mysql_err)?;
        let row = row
            .map(|r| row_to_raw(r).and_then(session_record))
            .transpose()?;
        let plan = plan_refresh(row, req);
        let revoked = self.write(&mut tx, &plan.write, req.now).await?;
        tx.commit().await.map_err(mysql_err)?;
        Ok(plan.outcome(revoked))
    }

    /// Applies one write in a transaction of its own (the revocations outside a refresh).
    async fn write_once(&self, write: &SessionWrite, now: Millis) -> StoreResult<u64> {
        let mut c = self.conn().await?;
        let mut tx = c
            .start_transaction(Self::tx_opts())
            .await
            .map_err(mysql_err)?;
        let n = self.write(&mut tx, write, now).await?;
        tx.commit().await.map_err(mysql_err)?;
        Ok(n)
    }

    /// Applies a write inside `tx`; returns how many sessions it revoked. A revoked session is
    /// deleted and recorded in the feed at `now`; revoking a user's sessions locks them first.
    async fn write(
        &self,
        tx: &mut Transaction<'_>,
        write: &SessionWrite,
        now: Millis,
    ) -> StoreResult<u64> {
        match write {
            SessionWrite::Nothing => Ok(0),
            SessionWrite::UpdateRow(new) => {
                tx.exec_drop(
                    self.q.update_rotation.as_str(),
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
                .map_err(mysql_err)?;
                Ok(0)
            }
            SessionWrite::RevokeSession(handle) => {
                tx.exec_drop(self.q.delete_session.as_str(), (handle,))
                    .await
                    .map_err(mysql_err)?;
                let deleted = tx.affected_rows();
                if deleted > 0 {
                    tx.exec_drop(sql::FEED_INSERT, (handle, now))
                        .await
                        .map_err(mysql_err)?;
                }
                Ok(deleted)
            }
            SessionWrite::RevokeUserSessions(user_id) => {
                tx.exec_drop(self.q.feed_user_sessions.as_str(), (now, user_id))
                    .await
                    .map_err(mysql_err)?;
                tx.exec_drop(self.q.delete_user_sessions.as_str(), (user_id,))
                    .await
                    .map_err(mysql_err)?;
                Ok(tx.affected_rows())
            }
        }
    }

    /// Replaces one JSON column of a live session (`update` is that column's statement);
    /// false if there is none.
    async fn update_json(
        &self,
        update: &str,
        handle: &str,
        value: serde_json::Value,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        c.exec_drop(update, (value.to_string(), handle, now))
            .await
            .map_err(mysql_err)?;
        if c.affected_rows() > 0 {
            return Ok(true);
        }
        // An UPDATE that sets the same value reports 0 affected rows: ask whether the row
        // exists.
        let live: Option<u8> = c
            .exec_first(self.q.session_exists.as_str(), (handle, now))
            .await
            .map_err(mysql_err)?;
        Ok(live.is_some())
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn ssl_ca_is_taken_out_and_turns_tls_on() {
        let p =
            parse_url("mysql://u:p@db:3306/x?ssl_ca=/etc/ca%20dir/ca.pem&verify_identity=false")
                .unwrap();
        assert_eq!(p.ca_file, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        let ssl = p.opts.ssl_opts().expect("TLS on");
        assert!(ssl.skip_domain_validation());
        assert!(!ssl.accept_invalid_certs());
        assert_eq!(p.opts.db_name(), Some("x"));
        assert_eq!(p.opts.pass(), Some("p"));
    }

    #[test]
    fn driver_parameters_pass_through() {
        let check = |url: &str, tls: bool| {
            let p = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(p.opts.ssl_opts().is_some(), tls, "{url}");
            assert_eq!(p.ca_file, None);
        };
        check("mysql://u@db/x", false);
        check("mysql://u@db/x?require_ssl=true", true);
        check("mysql://u@db/x?require_ssl=true&verify_ca=false", true);
        check(
            "mysql://u@db/x?require_ssl=true&built_in_roots=false&verify_ca=false",
            true,
        );
        check("mysql://u@db/x?require_ssl=false", false);
    }

    #[test]
    fn bad_tls_parameters_are_refused() {
        for url in [
            "mysql://u@db/x?ssl_ca=/a.pem&require_ssl=false",
            "mysql://u@db/x?ssl_ca=",
            "mysql://u@db/x?ssl_ca=/a.pem&ssl_ca=/b.pem",
            "mysql://u@db/x?require_ssl=yes",
            "mysql://u@db/x?require_ssl=true&built_in_roots=false",
            "mysql://u@db/x?sslmode=require",
        ] {
            assert!(parse_url(url).is_err(), "{url}");
        }
    }
}
