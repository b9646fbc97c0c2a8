//! [`LegacyStore`]: the original library's tables (`[legacy]`, issue 14), read and emptied by
//! the takeover. Its keys (`signing_key`: `access_token_signing_key`, `refresh_token_key`),
//! its session rows (`refresh_token`), and the one conversion transaction: lock the library's
//! row, apply its parent/child rule (the pure `sessiongate_core::legacy::standing`), insert
//! the native session (the same columns the native store's `create_session` writes, with the
//! converted token as generation 0), record the conversion in
//! `sessiongate_legacy_conversions` (keyed by the SHA-256 of the library token, for the grace
//! replay and for theft), and delete the library's row — one MySQL transaction on one
//! connection, the library's tables and the gateway's qualified by their databases (config
//! requires one server).
//!
//! Its own small pool on `legacy.url`; every operation takes one connection, is bounded like
//! the native store's, and holds no second connection.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use serde_json::Value;
use sessiongate_core::legacy::{self as core, LegacyRefresh, LegacyStanding};
use sha2::Digest;

use super::mysql::{mysql_err, parse_url, ACQUIRE_TIMEOUT};
use super::sql::SESSION_COLS;
use super::{SessionRecord, StoreError, StoreResult, OPERATION_TIMEOUT};
use crate::clock::Millis;
use crate::config::legacy::LegacyConfig;
use crate::session::rotation::TokenHash;

/// The library's key texts, as stored (base64 text; used as text, library §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyKeys {
    pub access: Option<String>,
    pub refresh: Option<String>,
}

/// A genuine library refresh token to convert.
#[derive(Clone, Debug)]
pub struct ConvertRequest {
    /// The presented token text.
    pub token: String,
    pub content: LegacyRefresh,
    /// Hash of the native token the converted session starts with (generation 0).
    pub native_hash: TokenHash,
    pub now: Millis,
    pub validity_ms: Millis,
    pub grace_ms: Millis,
}

/// What a conversion came to.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvertOutcome {
    /// The native session now stands in for the library's row, which is gone.
    Converted(SessionRecord),
    /// This very token was converted `converted_at`, within the grace window: answer again.
    Replay { converted_at: Millis },
    /// A genuine token of a session already converted, but not the converting token within the
    /// grace window: the caller revokes the native session.
    ConvertedTheft { user_id: String },
    /// The library's own theft rule (neither the parent nor a child of it); its row is deleted.
    LegacyTheft { user_id: String },
    /// No such unexpired session, the user does not match, or its data is unreadable.
    Unauthorised(&'static str),
}

/// Counts for `sessiongate legacy status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyStatus {
    /// Library rows not yet expired.
    pub remaining: u64,
    /// The newest conversion, epoch ms.
    pub last_conversion: Option<Millis>,
}

struct Queries {
    keys: String,
    lock_row: String,
    delete_row: String,
    conversion: String,
    insert_conversion: String,
    insert_session: String,
    remaining: String,
    last_conversion: String,
}

pub struct LegacyStore {
    pool: Pool,
    q: Queries,
}

/// `` `db`.`table` `` for names config has checked (`[A-Za-z0-9_$-]`, no backtick).
fn qualified(db: &str, table: &str) -> String {
    format!("`{}`.`{}`", db.replace('`', ""), table.replace('`', ""))
}

async fn bounded<T>(fut: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    tokio::time::timeout(OPERATION_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "legacy store operation over {} s",
                OPERATION_TIMEOUT.as_secs()
            )))
        })
}

impl LegacyStore {
    /// The pool on `legacy.url` (connects lazily). `store_db` and `sessions_table` name the
    /// gateway's own database and sessions table, written in the same transaction.
    pub fn open(cfg: &LegacyConfig, store_db: &str, sessions_table: &str) -> StoreResult<Self> {
        let opts = parse_url(&cfg.url)
            .map_err(|e| StoreError::Unavailable(format!("invalid legacy.url: {e}")))?
            .opts;
        let constraints = PoolConstraints::new(0, 8).expect("valid pool constraints");
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let opts: Opts = OptsBuilder::from_opts(opts).pool_opts(pool_opts).into();
        let lr = qualified(&cfg.database, &cfg.refresh_token_table);
        let lk = qualified(&cfg.database, &cfg.signing_key_table);
        let conv = qualified(store_db, "sessiongate_legacy_conversions");
        let ns = qualified(store_db, sessions_table);
        Ok(Self {
            pool: Pool::new(opts),
            q: Queries {
                keys: format!(
                    "SELECT key_name, key_value FROM {lk} WHERE key_name IN ('{}', '{}')",
                    core::ACCESS_KEY_NAME,
                    core::REFRESH_KEY_NAME
                ),
                lock_row: format!(
                    "SELECT user_id, refresh_token_hash_2, session_info, expires_at, \
                     jwt_user_payload FROM {lr} WHERE session_handle = ? FOR UPDATE"
                ),
                delete_row: format!("DELETE FROM {lr} WHERE session_handle = ?"),
                conversion: format!(
                    "SELECT token_hash, user_id, converted_at_ms FROM {conv} \
                     WHERE session_handle = ? ORDER BY converted_at_ms DESC LIMIT 1"
                ),
                insert_conversion: format!(
                    "INSERT INTO {conv} (token_hash, session_handle, user_id, converted_at_ms) \
                     VALUES (?, ?, ?, ?)"
                ),
                insert_session: format!(
                    "INSERT INTO {ns} ({SESSION_COLS}) VALUES (?, ?, 0, ?, NULL, ?, ?, ?, ?, ?)"
                ),
                remaining: format!("SELECT COUNT(*) FROM {lr} WHERE expires_at >= ?"),
                last_conversion: format!("SELECT MAX(converted_at_ms) FROM {conv}"),
            },
        })
    }

    async fn conn(&self) -> StoreResult<Conn> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no legacy MySQL connection within {} s",
                ACQUIRE_TIMEOUT.as_secs()
            ))),
        }
    }

    pub async fn close(&self) {
        let _ = self.pool.clone().disconnect().await;
    }

    /// The library's current keys.
    pub async fn keys(&self) -> StoreResult<LegacyKeys> {
        bounded(async {
            let mut c = self.conn().await?;
            let rows: Vec<(String, Option<String>)> =
                c.query(self.q.keys.as_str()).await.map_err(mysql_err)?;
            let mut keys = LegacyKeys::default();
            for (name, value) in rows {
                match name.as_str() {
                    core::ACCESS_KEY_NAME => keys.access = value,
                    core::REFRESH_KEY_NAME => keys.refresh = value,
                    _ => {}
                }
            }
            Ok(keys)
        })
        .await
    }

    /// Remaining unexpired library sessions and the newest conversion.
    pub async fn status(&self, now: Millis) -> StoreResult<LegacyStatus> {
        bounded(async {
            let mut c = self.conn().await?;
            let remaining: Option<u64> = c
                .exec_first(self.q.remaining.as_str(), (now,))
                .await
                .map_err(mysql_err)?;
            let last: Option<Option<i64>> = c
                .query_first(self.q.last_conversion.as_str())
                .await
                .map_err(mysql_err)?;
            Ok(LegacyStatus {
                remaining: remaining.unwrap_or(0),
                last_conversion: last.flatten(),
            })
        })
        .await
    }

    /// Converts the session of a genuine library refresh token (see the module doc).
    pub async fn convert(&self, req: &ConvertRequest) -> StoreResult<ConvertOutcome> {
        bounded(async {
            let mut c = self.conn().await?;
            let mut opts = TxOpts::default();
            opts.with_isolation_level(mysql_async::IsolationLevel::ReadCommitted);
            let mut tx = c.start_transaction(opts).await.map_err(mysql_err)?;
            let handle = req.content.session_handle.as_str();
            type Row = (String, String, Option<String>, u64, Option<String>);
            let row: Option<Row> = tx
                .exec_first(self.q.lock_row.as_str(), (handle,))
                .await
                .map_err(mysql_err)?;
            let token_hash: [u8; 32] = sha2::Sha256::digest(req.token.as_bytes()).into();
            let outcome = match row {
                None => {
                    let conv: Option<(Vec<u8>, String, i64)> = tx
                        .exec_first(self.q.conversion.as_str(), (handle,))
                        .await
                        .map_err(mysql_err)?;
                    match conv {
                        None => ConvertOutcome::Unauthorised("no such library session"),
                        Some((hash, _, at))
                            if hash == token_hash && req.now - at <= req.grace_ms =>
                        {
                            ConvertOutcome::Replay { converted_at: at }
                        }
                        Some((_, user_id, _)) => ConvertOutcome::ConvertedTheft { user_id },
                    }
                }
                Some((user_id, hash2, info, expires_at, payload)) => {
                    self.convert_row(
                        &mut tx, req, token_hash, user_id, hash2, info, expires_at, payload,
                    )
                    .await?
                }
            };
            tx.commit().await.map_err(mysql_err)?;
            Ok(outcome)
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn convert_row(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        req: &ConvertRequest,
        token_hash: [u8; 32],
        user_id: String,
        hash2: String,
        info: Option<String>,
        expires_at: u64,
        payload: Option<String>,
    ) -> StoreResult<ConvertOutcome> {
        let handle = req.content.session_handle.as_str();
        if i64::try_from(expires_at).unwrap_or(i64::MAX) < req.now {
            return Ok(ConvertOutcome::Unauthorised("library session expired"));
        }
        if core::decode_user_id(&user_id) != req.content.user_id {
            return Ok(ConvertOutcome::Unauthorised("user id does not match"));
        }
        let user_text = core::user_id_text(&req.content.user_id);
        match core::standing(&req.token, &req.content, &hash2) {
            LegacyStanding::Theft => {
                tx.exec_drop(self.q.delete_row.as_str(), (handle,))
                    .await
                    .map_err(mysql_err)?;
                return Ok(ConvertOutcome::LegacyTheft { user_id: user_text });
            }
            LegacyStanding::Parent | LegacyStanding::ChildOfParent => {}
        }
        let column = |c: Option<String>| -> Option<Option<Value>> {
            core::decode_json_column(c.as_deref().unwrap_or("")).ok()
        };
        let (Some(data), Some(payload)) = (
            column(info).map(|v| v.unwrap_or_else(|| serde_json::json!({}))),
            column(payload).map(|v| v.unwrap_or_else(|| serde_json::json!({}))),
        ) else {
            return Ok(ConvertOutcome::Unauthorised(
                "library session data is not JSON",
            ));
        };
        let record = SessionRecord {
            handle: handle.to_string(),
            user_id: user_text,
            generation: 0,
            current_hash: req.native_hash,
            previous_hash: None,
            rotated_at: req.now,
            session_data: data,
            jwt_payload: payload,
            created_at: req.now,
            expires_at: req.now + req.validity_ms,
        };
        tx.exec_drop(
            self.q.insert_session.as_str(),
            (
                &record.handle,
                &record.user_id,
                record.current_hash.to_vec(),
                record.rotated_at,
                record.session_data.to_string(),
                record.jwt_payload.to_string(),
                record.created_at,
                record.expires_at,
            ),
        )
        .await
        .map_err(mysql_err)?;
        tx.exec_drop(
            self.q.insert_conversion.as_str(),
            (token_hash.to_vec(), handle, &record.user_id, req.now),
        )
        .await
        .map_err(mysql_err)?;
        tx.exec_drop(self.q.delete_row.as_str(), (handle,))
            .await
            .map_err(mysql_err)?;
        Ok(ConvertOutcome::Converted(record))
    }
}
