//! Session operations shared by the gateway, the admin API and the CLI: create, refresh,
//! verify, revoke, update. One code path for every caller.
//!
//! Glues the pure core (`session/`) to the store and the key cache. Reads the clock here and
//! passes `now` down. Knows nothing about HTTP: callers turn outcomes into responses.
//!
//! Input rules live here so every caller gets them, as [`SessionError::InvalidInput`]: user ids
//! are 1..=255 bytes with no control characters and no edge whitespace; a JWT payload is a
//! JSON object whose `sAccessToken` cookie fits [`MAX_ACCESS_COOKIE_BYTES`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;

use crate::clock::{Clock, Millis};
use crate::config::{Config, TheftAction};
use crate::keys::{KeyCache, KeyCacheError, KeyError};
use crate::session::access::{self, AccessClaims, AccessError};
use crate::session::refresh::{RefreshToken, RefreshTokenError, SessionHandle};
use crate::session::rotation::{RotationPolicy, UnauthorisedReason};
use crate::store::{
    NewSession, RefreshOutcome, RefreshRequest, SessionRecord, SessionStore, StoreError,
};

/// Token lifetimes and rules, from config.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub access_validity_secs: i64,
    pub refresh_validity_ms: Millis,
    pub reuse_grace_ms: Millis,
    pub anti_csrf: bool,
    pub theft_action: TheftAction,
}

impl SessionSettings {
    pub fn from_config(cfg: &Config) -> Self {
        let t = &cfg.tokens;
        Self {
            access_validity_secs: t.access_token.validity_secs as i64,
            refresh_validity_ms: i64::from(t.refresh_token.validity_hours) * 3_600_000,
            reuse_grace_ms: i64::from(t.refresh_token.reuse_grace_secs) * 1000,
            anti_csrf: t.enable_anti_csrf,
            theft_action: cfg.session.theft_action,
        }
    }
}

/// Everything a client receives when a session is created or refreshed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedSession {
    pub handle: String,
    pub user_id: String,
    pub access_token: String,
    pub access_expires_at: Millis,
    pub refresh_token: String,
    pub session_expires_at: Millis,
    pub id_refresh_token: String,
    pub anti_csrf: Option<String>,
}

/// The outcome of a refresh that the store answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshResult {
    /// Rotated (`grace_replay = false`) or replayed within the grace window (`true`).
    Issued {
        session: IssuedSession,
        grace_replay: bool,
    },
    /// Token theft: revoked per `theft_action`.
    Theft {
        handle: String,
        user_id: String,
        revoked: u64,
    },
    /// Missing, forged, garbled, unknown or expired: nothing revoked.
    Unauthorised(UnauthorisedWhy),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthorisedWhy {
    Malformed,
    BadMac,
    Session(UnauthorisedReason),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyCacheError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("could not sign: {0}")]
    Sign(String),
}

impl From<KeyError> for SessionError {
    fn from(e: KeyError) -> Self {
        SessionError::Keys(KeyCacheError::Key(e))
    }
}

/// Longest user id the stores accept (VARCHAR(255)).
pub const MAX_USER_ID_BYTES: usize = 255;

/// Largest `sAccessToken=<jwt>` (name, `=` and value) a session may need. Browsers drop a
/// bigger cookie, and the session then loops on refresh; RFC 6265 §6.1 asks them to keep at
/// least 4096 bytes.
pub const MAX_ACCESS_COOKIE_BYTES: usize = 4096;

/// Most verified tokens remembered; the cache is emptied when it is full.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Access tokens whose signature has been checked, so a browser sending the same token on
/// every request costs one hash lookup instead of a signature check. Keyed by the whole token
/// text; expiry is still checked against `now` on every hit, and a token only gets here after
/// a full verification against the ring.
#[derive(Default)]
struct VerifiedTokens(RwLock<HashMap<Box<str>, Arc<AccessClaims>>>);

impl VerifiedTokens {
    fn get(&self, token: &str, now: Millis) -> Option<Arc<AccessClaims>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(token).filter(|c| now < c.expires_at_ms()).cloned()
    }

    fn insert(&self, token: &str, claims: Arc<AccessClaims>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_CACHE_MAX {
            map.clear();
        }
        map.insert(token.into(), claims);
    }
}

pub struct Sessions<S> {
    store: Arc<S>,
    keys: Arc<KeyCache<S>>,
    settings: SessionSettings,
    clock: Clock,
    verified: Arc<VerifiedTokens>,
}

impl<S> Clone for Sessions<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            keys: self.keys.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            verified: self.verified.clone(),
        }
    }
}

fn check_payload_object(payload: &serde_json::Value) -> Result<(), SessionError> {
    if payload.is_object() {
        Ok(())
    } else {
        Err(SessionError::InvalidInput(
            "jwt_payload must be a JSON object".into(),
        ))
    }
}

/// Refuses an access token whose `sAccessToken` cookie would exceed
/// [`MAX_ACCESS_COOKIE_BYTES`].
fn check_access_cookie(token: &str) -> Result<(), SessionError> {
    let size = crate::http::cookies::ACCESS.len() + 1 + token.len();
    if size > MAX_ACCESS_COOKIE_BYTES {
        return Err(SessionError::InvalidInput(format!(
            "jwt_payload too large: the access-token cookie would be {size} bytes, over the \
             {MAX_ACCESS_COOKIE_BYTES}-byte limit browsers keep"
        )));
    }
    Ok(())
}

fn check_user_id(user_id: &str) -> Result<(), SessionError> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_BYTES {
        return Err(SessionError::InvalidInput(format!(
            "user_id must be 1 to {MAX_USER_ID_BYTES} bytes"
        )));
    }
    if user_id.chars().any(char::is_control) {
        return Err(SessionError::InvalidInput(
            "user_id must not contain control characters".into(),
        ));
    }
    // HTTP strips a header value's edge whitespace, so " alice" would reach upstreams as
    // `x-user-id: alice` — another user's identity.
    if user_id.starts_with(char::is_whitespace) || user_id.ends_with(char::is_whitespace) {
        return Err(SessionError::InvalidInput(
            "user_id must not start or end with whitespace".into(),
        ));
    }
    Ok(())
}

impl<S: SessionStore> Sessions<S> {
    pub fn new(
        store: Arc<S>,
        keys: Arc<KeyCache<S>>,
        settings: SessionSettings,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            keys,
            settings,
            clock,
            verified: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn keys(&self) -> &Arc<KeyCache<S>> {
        &self.keys
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Creates a session for `user_id` and issues its first tokens.
    pub async fn create(
        &self,
        user_id: &str,
        jwt_payload: serde_json::Value,
        session_data: serde_json::Value,
    ) -> Result<IssuedSession, SessionError> {
        check_user_id(user_id)?;
        check_payload_object(&jwt_payload)?;
        let now = self.clock.now_ms();
        let ring = self.keys.ring()?;
        let mut handle = [0u8; 16];
        let mut secret = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut handle);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let handle = SessionHandle(handle);
        let token = RefreshToken::root(ring.refresh_key(), handle, secret);
        let record = SessionRecord {
            handle: handle.to_text(),
            user_id: user_id.to_string(),
            generation: 0,
            current_hash: token.hash(),
            previous_hash: None,
            rotated_at: now,
            session_data,
            jwt_payload,
            created_at: now,
            expires_at: now + self.settings.refresh_validity_ms,
        };
        // Minted before anything is stored, so a payload too big for the cookie creates nothing.
        let issued = self.issue(&record, &token)?;
        check_access_cookie(&issued.access_token)?;
        self.store
            .create_session(NewSession {
                handle: record.handle.clone(),
                user_id: record.user_id.clone(),
                refresh_hash: record.current_hash,
                session_data: record.session_data.clone(),
                jwt_payload: record.jwt_payload.clone(),
                created_at: now,
                expires_at: record.expires_at,
            })
            .await?;
        Ok(issued)
    }

    /// Mints the tokens that go with `token` for the session in `record`. Deterministic in
    /// (`record`, `token`, signing key), so a grace replay repeats the first answer.
    fn issue(
        &self,
        record: &SessionRecord,
        token: &RefreshToken,
    ) -> Result<IssuedSession, SessionError> {
        let ring = self.keys.ring()?;
        let rk = ring.refresh_key();
        let anti_csrf = self.settings.anti_csrf.then(|| token.anti_csrf(rk));
        let iat = record.rotated_at / 1000;
        let claims = AccessClaims {
            sub: record.user_id.clone(),
            sid: record.handle.clone(),
            iat,
            exp: iat + self.settings.access_validity_secs,
            anti_csrf: anti_csrf.clone(),
            payload: record.jwt_payload.clone(),
        };
        let access_token = access::mint(&claims, ring.signing_key()?)
            .map_err(|e| SessionError::Sign(e.to_string()))?;
        Ok(IssuedSession {
            handle: record.handle.clone(),
            user_id: record.user_id.clone(),
            access_token,
            access_expires_at: claims.expires_at_ms(),
            refresh_token: token.to_text(),
            session_expires_at: record.expires_at,
            id_refresh_token: token.id_refresh(rk),
            anti_csrf,
        })
    }

    /// Applies the rotation rules to a presented refresh token.
    pub async fn refresh(&self, presented: &str) -> Result<RefreshResult, SessionError> {
        let ring = self.keys.ring()?;
        let rk = ring.refresh_key();
        let token = match RefreshToken::parse(presented, rk) {
            Ok(t) => t,
            Err(RefreshTokenError::Malformed) => {
                return Ok(RefreshResult::Unauthorised(UnauthorisedWhy::Malformed))
            }
            Err(RefreshTokenError::BadMac) => {
                return Ok(RefreshResult::Unauthorised(UnauthorisedWhy::BadMac))
            }
        };
        let child = token.child(rk);
        let req = RefreshRequest {
            handle: token.handle.to_text(),
            presented: token.presented(),
            child_hash: child.hash(),
            now: self.clock.now_ms(),
            policy: RotationPolicy {
                grace_ms: self.settings.reuse_grace_ms,
                validity_ms: self.settings.refresh_validity_ms,
            },
            theft_action: self.settings.theft_action,
        };
        Ok(match self.store.refresh(req).await? {
            RefreshOutcome::Rotated(record) => RefreshResult::Issued {
                session: self.issue(&record, &child)?,
                grace_replay: false,
            },
            RefreshOutcome::GraceReplay(record) => RefreshResult::Issued {
                session: self.issue(&record, &child)?,
                grace_replay: true,
            },
            RefreshOutcome::Theft {
                handle,
                user_id,
                revoked,
            } => RefreshResult::Theft {
                handle,
                user_id,
                revoked,
            },
            RefreshOutcome::Unauthorised(r) => {
                RefreshResult::Unauthorised(UnauthorisedWhy::Session(r))
            }
        })
    }

    /// Verifies an access token against the in-memory ring; on an unknown `kid` reloads the
    /// ring (rate-limited) and tries once more. No store query otherwise.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, AccessError> {
        let now = self.clock.now_ms();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        // Without a ring no key is known (callers that must tell this apart from a token
        // signed by an unknown key ask `keys().is_loaded()` first).
        let ring = self.keys.ring().map_err(|_| AccessError::UnknownKey)?;
        let claims = match access::verify(token, &ring, now) {
            Err(AccessError::UnknownKey) if self.keys.reload_for_unknown_kid().await => {
                let ring = self.keys.ring().map_err(|_| AccessError::UnknownKey)?;
                access::verify(token, &ring, now)
            }
            other => other,
        }
        .map(Arc::new)?;
        self.verified.insert(token, claims.clone());
        Ok(claims)
    }

    /// Re-issues the access token of a verified session with a new payload, keeping its
    /// anti-CSRF token. The token is minted (and its cookie size checked) before the new
    /// payload is stored; nothing is stored if it does not fit.
    pub async fn update_payload(
        &self,
        claims: &AccessClaims,
        payload: serde_json::Value,
    ) -> Result<Option<(String, Millis)>, SessionError> {
        check_payload_object(&payload)?;
        let now = self.clock.now_ms();
        let ring = self.keys.ring()?;
        let iat = now / 1000;
        let new_claims = AccessClaims {
            iat,
            exp: iat + self.settings.access_validity_secs,
            payload,
            ..claims.clone()
        };
        let token = access::mint(&new_claims, ring.signing_key()?)
            .map_err(|e| SessionError::Sign(e.to_string()))?;
        check_access_cookie(&token)?;
        if !self
            .store
            .update_jwt_payload(&claims.sid, new_claims.payload.clone(), now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some((token, new_claims.expires_at_ms())))
    }

    /// Replaces the JWT payload of the live session `handle`; it takes effect at the next
    /// refresh. `Ok(false)` when there is no such live session. The payload must be an object
    /// whose access-token cookie fits [`MAX_ACCESS_COOKIE_BYTES`], checked with a token
    /// minted for this session's user and handle (the anti-CSRF value, which only the refresh
    /// token yields, is stood in for by one of the same length).
    pub async fn set_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
    ) -> Result<bool, SessionError> {
        check_payload_object(&payload)?;
        let now = self.clock.now_ms();
        let Some(record) = self.store.session(handle, now).await? else {
            return Ok(false);
        };
        let ring = self.keys.ring()?;
        let anti_csrf = self.settings.anti_csrf.then(|| {
            let probe = RefreshToken::root(ring.refresh_key(), SessionHandle([0; 16]), [0; 16]);
            "x".repeat(probe.anti_csrf(ring.refresh_key()).len())
        });
        let iat = now / 1000;
        let probe = AccessClaims {
            sub: record.user_id,
            sid: record.handle,
            iat,
            exp: iat + self.settings.access_validity_secs,
            anti_csrf,
            payload,
        };
        let token = access::mint(&probe, ring.signing_key()?)
            .map_err(|e| SessionError::Sign(e.to_string()))?;
        check_access_cookie(&token)?;
        Ok(self
            .store
            .update_jwt_payload(handle, probe.payload, now)
            .await?)
    }

    /// The claims of a genuine access token even if it has expired (see
    /// [`access::verify_ignoring_expiry`]), reloading the ring once for an unknown `kid` like
    /// [`Sessions::verify`]. Bypasses the verified-token cache. Only for learning which session
    /// to end; never for authorising a request.
    pub async fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, AccessError> {
        let ring = self.keys.ring().map_err(|_| AccessError::UnknownKey)?;
        match access::verify_ignoring_expiry(token, &ring) {
            Err(AccessError::UnknownKey) if self.keys.reload_for_unknown_kid().await => {
                let ring = self.keys.ring().map_err(|_| AccessError::UnknownKey)?;
                access::verify_ignoring_expiry(token, &ring)
            }
            other => other,
        }
    }

    pub async fn revoke(&self, handle: &str) -> Result<bool, SessionError> {
        Ok(self
            .store
            .revoke_session(handle, self.clock.now_ms())
            .await?)
    }

    pub async fn revoke_user(&self, user_id: &str) -> Result<u64, SessionError> {
        Ok(self
            .store
            .revoke_user_sessions(user_id, self.clock.now_ms())
            .await?)
    }
}
