//! Taking over a running deployment of the original library (`[legacy]`, issue 14): its
//! access tokens authorise requests until they expire, and its refresh token at `renew_path`
//! converts the session into a native one, after which the browser holds native tokens only.
//!
//! [`Legacy`] glues the pure rules (`sessiongate_core::legacy`) to the library's tables
//! (`store::legacy::LegacyStore`) and to [`Sessions`] (which issues the native tokens and
//! revokes on theft). Process-scoped, built once at start (`[legacy]` is restart-only).
//!
//! - Access tokens: verified in memory with the library's key, cached here; the key is read
//!   from the library's table when first needed and again after a token fails its signature
//!   check, at most once per second (the library rotates that key; its Node processes reload
//!   the same way). A child token (`prt`, issued by a refresh the browser has not used yet)
//!   answers `try_refresh_token`: its refresh token converts. No store query otherwise.
//! - Refresh: decrypted with the library's refresh key; a token that does not decrypt is
//!   forged and revokes nothing. The conversion's native token is derived from the library
//!   token (`RefreshToken::converted`), so a replay within `reuse_grace_secs` answers the
//!   same tokens; a later replay, or another genuine token of a converted session, is theft
//!   and revokes the converted session per `session.theft_action`.
//! - After `accept_until`, legacy tokens are refused like unknown tokens.
//!
//! Knows nothing about HTTP; the gateway turns the outcomes into responses.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use sessiongate_core::legacy as core;

use crate::clock::{Clock, Millis};
use crate::config::{Config, StoreUrl, TheftAction};
use crate::metrics::{LegacyConversion, Metrics, RevokeReason};
use crate::session::access::{AccessClaims, AccessError};
use crate::session::refresh::RefreshToken;
use crate::session::rotation::UnauthorisedReason;
use crate::sessions::{RefreshResult, SessionError, Sessions};
use crate::state::Store;
use crate::store::legacy::{ConvertOutcome, ConvertRequest, LegacyKeys, LegacyStatus, LegacyStore};
use crate::store::{StoreError, StoreResult};

/// Least time between two reads of the library's keys forced by tokens.
const KEY_RELOAD_INTERVAL_MS: Millis = 1000;

pub struct Legacy {
    store: Arc<LegacyStore>,
    keys: ArcSwap<LegacyKeys>,
    last_reload: AtomicI64,
    accept_until_ms: Option<Millis>,
    anti_csrf: bool,
    access_validity_secs: i64,
    metrics: Metrics,
    clock: Clock,
    store_runtime: Option<tokio::runtime::Handle>,
}

impl Legacy {
    /// The takeover for `cfg`, when `[legacy]` is on (its pool connects lazily).
    pub fn open(cfg: &Config, metrics: Metrics, clock: Clock) -> anyhow::Result<Option<Self>> {
        let Some(l) = &cfg.legacy else {
            return Ok(None);
        };
        let StoreUrl::Mysql(url) = &cfg.store.url else {
            anyhow::bail!("[legacy] needs a MySQL store");
        };
        let store_db = crate::store::mysql::parse_url(url)
            .map_err(|e| anyhow::anyhow!("store.url: {e}"))?
            .opts
            .db_name()
            .unwrap_or("")
            .to_string();
        let store = LegacyStore::open(l, &store_db, &cfg.store.tables.refresh_tokens)?;
        Ok(Some(Self {
            store: Arc::new(store),
            keys: ArcSwap::from_pointee(LegacyKeys::default()),
            last_reload: AtomicI64::new(i64::MIN / 2),
            accept_until_ms: l.accept_until_ms,
            anti_csrf: cfg.tokens.enable_anti_csrf,
            access_validity_secs: cfg.tokens.access_token.validity_secs as i64,
            metrics,
            clock,
            store_runtime: None,
        }))
    }

    /// Store operations asked for on a core thread run on `runtime` (see `Sessions`).
    pub fn with_store_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.store_runtime = Some(runtime);
        self
    }

    /// Closes the library pool's connections.
    pub async fn close(&self) {
        self.store.close().await;
    }

    async fn on_store<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<LegacyStore>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = op(self.store.clone());
        match (&self.store_runtime, crate::server::core_index()) {
            (Some(rt), Some(_)) => rt
                .spawn(fut)
                .await
                .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("store task: {e}")))),
            _ => fut.await,
        }
    }

    fn accepting(&self, now: Millis) -> bool {
        self.accept_until_ms.is_none_or(|until| now <= until)
    }

    /// Reads the library's keys again unless that happened within the last second. Returns
    /// whether the keys changed.
    async fn reload_keys(&self) -> bool {
        let now = self.clock.now_ms();
        let last = self.last_reload.load(Ordering::Relaxed);
        if now - last < KEY_RELOAD_INTERVAL_MS
            || self
                .last_reload
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        match self.on_store(|s| async move { s.keys().await }).await {
            Ok(keys) if keys != **self.keys.load() => {
                self.keys.store(Arc::new(keys));
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the original library's keys");
                false
            }
        }
    }

    /// `None` when `token` is not in the library's format; otherwise the verdict on it, as the
    /// claims the rest of the gateway reads (user id as text, the library's session handle,
    /// its payload or `{}`).
    pub async fn verify(&self, token: &str) -> Option<Result<Arc<AccessClaims>, AccessError>> {
        if !core::is_legacy_access_token(token) {
            return None;
        }
        self.metrics.legacy_requests_total.inc();
        Some(self.verify_legacy(token).await)
    }

    async fn verify_legacy(&self, token: &str) -> Result<Arc<AccessClaims>, AccessError> {
        let now = self.clock.now_ms();
        if !self.accepting(now) {
            return Err(AccessError::UnknownKey);
        }
        let check = |keys: &LegacyKeys| match &keys.access {
            Some(key) => core::verify_access(token, key, now, self.anti_csrf),
            None => Err(core::LegacyAccessError::BadSignature),
        };
        let verdict = match check(&self.keys.load()) {
            Err(core::LegacyAccessError::BadSignature) if self.reload_keys().await => {
                check(&self.keys.load())
            }
            other => other,
        };
        let claims = verdict.map_err(|e| match e {
            core::LegacyAccessError::Expired => AccessError::Expired,
            core::LegacyAccessError::BadSignature => AccessError::BadSignature,
            _ => AccessError::Malformed,
        })?;
        if claims.prt.is_some() {
            // A child token: the library would promote it with a row write; its refresh token
            // converts the session instead.
            return Err(AccessError::Expired);
        }
        let exp = claims.expiry_ms.div_euclid(1000);
        Ok(Arc::new(AccessClaims {
            sub: core::user_id_text(&claims.user_id),
            sid: claims.session_handle,
            iat: exp - self.access_validity_secs,
            exp,
            anti_csrf: claims.anti_csrf,
            payload: claims.user_payload.unwrap_or_else(|| serde_json::json!({})),
        }))
    }

    /// `None` when `token` is not in the library's refresh-token format; otherwise the
    /// conversion's result, counted in `legacy_conversions_total{outcome}`.
    pub async fn refresh(
        &self,
        sessions: &Sessions<Store>,
        token: &str,
    ) -> Option<Result<RefreshResult, SessionError>> {
        if !core::is_legacy_refresh_token(token) {
            return None;
        }
        self.metrics.legacy_requests_total.inc();
        let result = self.convert(sessions, token).await;
        self.metrics.legacy_conversion(match &result {
            Ok((_, outcome)) => *outcome,
            Err(_) => LegacyConversion::StoreUnavailable,
        });
        Some(result.map(|(r, _)| r))
    }

    async fn convert(
        &self,
        sessions: &Sessions<Store>,
        token: &str,
    ) -> Result<(RefreshResult, LegacyConversion), SessionError> {
        use LegacyConversion as C;
        let refused = |r| Ok((RefreshResult::Refused(r), C::Unauthorised));
        let now = self.clock.now_ms();
        if !self.accepting(now) {
            return Ok((RefreshResult::Malformed, C::Unauthorised));
        }
        if self.keys.load().refresh.is_none() {
            self.reload_keys().await;
        }
        let keys = self.keys.load();
        let content = match keys
            .refresh
            .as_deref()
            .map(|k| core::decrypt_refresh(token, k))
        {
            Some(Ok(c)) => c,
            None => {
                return Err(
                    StoreError::Unavailable("the library's keys are not loaded".into()).into(),
                )
            }
            Some(Err(_)) => {
                tracing::info!("refresh with a forged original-library refresh token refused");
                return Ok((RefreshResult::Forged, C::Forged));
            }
        };
        let Some(uuid) = core::uuid_bytes(&content.session_handle) else {
            tracing::warn!(session_handle = %content.session_handle, "original-library session handle is not a UUID; not converted");
            return refused(UnauthorisedReason::UnknownSession);
        };
        let ring = sessions.keys().ring()?;
        let native = RefreshToken::converted(ring.refresh_key(), uuid, token);
        let validity_ms = sessions.settings().refresh_validity_ms;
        let req = ConvertRequest {
            token: token.to_string(),
            content: content.clone(),
            native_hash: native.hash(),
            now,
            validity_ms,
            grace_ms: sessions.settings().reuse_grace_ms,
        };
        let handle = content.session_handle;
        match self
            .on_store(move |s| async move { s.convert(&req).await })
            .await?
        {
            ConvertOutcome::Converted(record) => {
                tracing::info!(session_handle = %handle, user_id = %record.user_id, "original-library session converted");
                Ok((
                    RefreshResult::Rotated(sessions.issue(&record, &native)?),
                    C::Converted,
                ))
            }
            ConvertOutcome::Replay { converted_at } => match sessions.session(&handle).await? {
                Some(mut record) => {
                    record.rotated_at = converted_at;
                    record.expires_at = converted_at + validity_ms;
                    Ok((
                        RefreshResult::GraceReplay(sessions.issue(&record, &native)?),
                        C::GraceReplay,
                    ))
                }
                None => refused(UnauthorisedReason::UnknownSession),
            },
            ConvertOutcome::ConvertedTheft { user_id } => {
                self.theft(sessions, &handle, &user_id).await?;
                Ok((RefreshResult::Theft, C::Theft))
            }
            ConvertOutcome::LegacyTheft { user_id } => {
                self.theft(sessions, &handle, &user_id).await?;
                Ok((RefreshResult::Theft, C::Theft))
            }
            ConvertOutcome::Unauthorised(why) => {
                tracing::info!(session_handle = %handle, why, "original-library refresh refused");
                refused(UnauthorisedReason::UnknownSession)
            }
        }
    }

    /// Revokes per `theft_action` (the native session the library's was converted into, or all
    /// of the user's native sessions), counted like a native theft.
    async fn theft(
        &self,
        sessions: &Sessions<Store>,
        handle: &str,
        user_id: &str,
    ) -> Result<(), SessionError> {
        let revoked = match sessions.settings().theft_action {
            TheftAction::RevokeSession => {
                u64::from(sessions.revoke(handle, RevokeReason::Theft).await?)
            }
            TheftAction::RevokeAllUserSessions => {
                sessions.revoke_user(user_id, RevokeReason::Theft).await?
            }
        };
        self.metrics.token_theft_total.inc();
        tracing::warn!(session_handle = %handle, user_id = %user_id, revoked, "original-library refresh token theft detected; session revoked");
        Ok(())
    }

    /// For `sessiongate legacy status`.
    pub async fn status(&self) -> StoreResult<LegacyStatus> {
        let now = self.clock.now_ms();
        self.on_store(move |s| async move { s.status(now).await })
            .await
    }
}
