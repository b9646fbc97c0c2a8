//! Session operations: create, refresh, verify, revoke, look up, list and update sessions.
//! [`Sessions`] is the only way the gateway and the admin API reach sessions (they make no
//! store calls), so every caller gets the same rules, metrics and blacklist updates: a
//! revocation is counted in `sessions_revoked_total{reason}` and refused on this instance at
//! once; a refresh is counted in `refresh_total` by [`RefreshResult::label`], and a theft is
//! revoked, counted and logged here.
//!
//! Glues the pure core (`session/`) to the store and the key cache. Reads the clock here and
//! passes `now` down. Knows nothing about HTTP: callers turn outcomes into responses (errors
//! through the `From<SessionError> for Reject` rescue in `error.rs`).
//!
//! Input rules live here so every caller gets them, as [`SessionError::InvalidInput`]: user ids
//! are 1..=255 bytes with no control characters and no edge whitespace; a JWT payload is a
//! JSON object whose `sAccessToken` cookie fits 4096 bytes (`MAX_ACCESS_COOKIE_BYTES`). A
//! `user_id` read from JSON ([`NewSessionRequest`]: upstream `sessiongate-create`, admin
//! `POST /v1/sessions`) may be a string or an integer; an integer becomes its decimal text.
//!
//! `verify` remembers verified access tokens in [`VerifiedTokens`], bounded to
//! [`VERIFIED_CACHE_BYTES`] (16 MiB) of estimated memory with gradual eviction; expiry is
//! checked on every hit.

use std::future::Future;
use std::sync::Arc;

use rand::RngCore;

use crate::blacklist::Blacklist;
use crate::clock::{Clock, Millis};
use crate::config::{Config, TheftAction};
use crate::events::{Event, Events};
use crate::keys::{KeyCache, KeyCacheError, KeyError};
use crate::metrics::{Metrics, RefreshLabel, RevokeReason};
use crate::session::access::{self, AccessClaims, AccessError};
use crate::session::refresh::{RefreshToken, RefreshTokenError, SessionHandle};
use crate::session::rotation::{RotationPolicy, UnauthorisedReason};
use crate::store::{
    KeyStore, NewSession, RefreshOutcome, RefreshRequest, SessionRecord, SessionStore, StoreError,
    StoreResult,
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

/// A session to create, as an upstream's `sessiongate-create` header and the admin API's
/// `POST /v1/sessions` body give it (both deserialize this): `user_id` a string or an integer,
/// `jwt_payload` and `session_data` default to `{}`; other fields are refused.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSessionRequest {
    #[serde(deserialize_with = "deserialize_user_id")]
    pub user_id: String,
    #[serde(default = "empty_object")]
    pub jwt_payload: serde_json::Value,
    #[serde(default = "empty_object")]
    pub session_data: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// What a refresh came to; [`RefreshResult::label`] is its `refresh_total` label. A theft has
/// been acted on (revoked per `theft_action`, counted, blacklisted, logged) by the time it is
/// returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshResult {
    Rotated(IssuedSession),
    /// The same answer again: the previous token was presented within the grace window.
    GraceReplay(IssuedSession),
    Theft,
    /// The caller found no refresh token to present.
    Missing,
    /// Not a refresh token at all.
    Malformed,
    /// A refresh token whose MAC is wrong (forged, or made with another key).
    Forged,
    /// Genuine, but the store refused it (unknown, expired or revoked session, unknown token).
    Refused(UnauthorisedReason),
}

impl RefreshResult {
    pub fn label(&self) -> RefreshLabel {
        match self {
            RefreshResult::Rotated(_) => RefreshLabel::Rotated,
            RefreshResult::GraceReplay(_) => RefreshLabel::GraceReplay,
            RefreshResult::Theft => RefreshLabel::Theft,
            RefreshResult::Missing
            | RefreshResult::Malformed
            | RefreshResult::Forged
            | RefreshResult::Refused(_) => RefreshLabel::Unauthorised,
        }
    }
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
const MAX_USER_ID_BYTES: usize = 255;

/// Largest `sAccessToken=<jwt>` (name, `=` and value) a session may need. Browsers drop a
/// bigger cookie, and the session then loops on refresh; RFC 6265 §6.1 asks them to keep at
/// least 4096 bytes.
const MAX_ACCESS_COOKIE_BYTES: usize = 4096;

/// Default bound of the verified-token cache, in estimated bytes (see [`VerifiedTokens`]).
pub const VERIFIED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Per-entry cost that does not depend on the token: the `Arc<AccessClaims>` allocation, the
/// cache's slot and hash-table entry, and allocator bookkeeping for the five allocations an
/// entry makes (key, `Arc`, `sub`, `sid`, `anti_csrf`). Calibrated against RSS (see
/// `benches/core.rs`).
const ENTRY_OVERHEAD: u64 = std::mem::size_of::<AccessClaims>() as u64 + 160;

/// Access tokens whose signature has been checked, so a browser sending the same token on
/// every request costs one hash lookup instead of a signature check. Keyed by the whole token
/// text; expiry is still checked against `now` on every hit, and a token only gets here after
/// a full verification against the ring. Revocation is not the cache's business: the caller
/// checks the blacklist after every `verify`, hit or miss.
///
/// Bounded in bytes, not entries: each entry weighs its token's length plus an estimate of
/// its claims' heap size (`claims_weight`), and the total stays under the bound given to
/// [`VerifiedTokens::new`] ([`VERIFIED_CACHE_BYTES`] for [`Sessions`]). Eviction is gradual
/// (quick_cache's S3-FIFO: a new token waits in a small probation queue and moves to the main
/// queue once it is used again), so a flood of one-off tokens pushes out other one-off tokens,
/// not the sessions that are in use, and the cache is never emptied at once.
pub struct VerifiedTokens {
    cache: quick_cache::sync::Cache<Box<str>, Verified, ByWeight>,
}

#[derive(Clone)]
struct Verified {
    claims: Arc<AccessClaims>,
    /// Computed once at insertion: the weigher runs during eviction and must be cheap.
    weight: u64,
}

#[derive(Clone, Copy)]
struct ByWeight;

impl quick_cache::Weighter<Box<str>, Verified> for ByWeight {
    fn weight(&self, _token: &Box<str>, v: &Verified) -> u64 {
        v.weight
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new(VERIFIED_CACHE_BYTES)
    }
}

/// Estimated heap bytes of a JSON value (serde_json's default `BTreeMap` objects: one node of
/// ~11 entries per 8 keys on average).
fn json_weight(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    const VALUE: u64 = std::mem::size_of::<Value>() as u64;
    const KEY: u64 = std::mem::size_of::<String>() as u64;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.len() as u64 * VALUE + a.iter().map(json_weight).sum::<u64>(),
        Value::Object(m) if m.is_empty() => 0,
        Value::Object(m) => {
            let nodes = (m.len() as u64).div_ceil(8);
            nodes * (11 * (KEY + VALUE) + 48)
                + m.iter()
                    .map(|(k, v)| k.len() as u64 + json_weight(v))
                    .sum::<u64>()
        }
    }
}

/// The estimated memory one cache entry holds: the token text (the key), the claims' strings
/// and payload, and a fixed [`ENTRY_OVERHEAD`].
fn claims_weight(token: &str, c: &AccessClaims) -> u64 {
    ENTRY_OVERHEAD
        + token.len() as u64
        + c.sub.len() as u64
        + c.sid.len() as u64
        + c.anti_csrf.as_ref().map_or(0, |a| a.len() as u64)
        + json_weight(&c.payload)
}

impl VerifiedTokens {
    /// A cache holding at most `max_bytes` of estimated weight.
    pub fn new(max_bytes: u64) -> Self {
        // A new token gets a tenth of the space to prove it is used again (quick_cache's
        // default is 3%, which a burst of logins would sweep before their second request).
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((max_bytes / 1024).max(64) as usize)
            .weight_capacity(max_bytes)
            .hot_allocation(0.9)
            .build()
            .expect("valid cache options");
        Self {
            cache: quick_cache::sync::Cache::with_options(
                options,
                ByWeight,
                Default::default(),
                Default::default(),
            ),
        }
    }

    /// The claims of `token` if it was verified before and has not expired at `now`.
    pub fn get(&self, token: &str, now: Millis) -> Option<Arc<AccessClaims>> {
        let hit = self.cache.get(token)?;
        if now < hit.claims.expires_at_ms() {
            return Some(hit.claims);
        }
        // Expired for good (the clock only moves on): free its space now.
        self.cache.remove(token);
        None
    }

    /// Remembers a token that has just been verified in full.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>) {
        let weight = claims_weight(token, &claims);
        self.cache.insert(token.into(), Verified { claims, weight });
    }

    /// The estimated bytes held now (never above [`VerifiedTokens::capacity`]).
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// The bound given to [`VerifiedTokens::new`].
    pub fn capacity(&self) -> u64 {
        self.cache.capacity()
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// The session operations. Cheap to clone (shared parts behind `Arc`s).
pub struct Sessions<S> {
    store: Arc<S>,
    keys: Arc<KeyCache<S>>,
    settings: SessionSettings,
    clock: Clock,
    verified: Arc<VerifiedTokens>,
    /// This instance's revoked-session set (`tokens.access_token.blacklisting`).
    blacklist: Option<Arc<Blacklist>>,
    metrics: Metrics,
    /// Where store operations asked for on a core thread run (`on_store`); `None`: in place.
    store_runtime: Option<tokio::runtime::Handle>,
    /// Security events (theft, revocations); logged only unless [`Sessions::with_events`].
    events: Events,
}

impl<S> Clone for Sessions<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            keys: self.keys.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            verified: self.verified.clone(),
            blacklist: self.blacklist.clone(),
            metrics: self.metrics.clone(),
            store_runtime: self.store_runtime.clone(),
            events: self.events.clone(),
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

/// Reads a JSON `user_id`: a string as is, or an integer (`i64`/`u64`, as most ORMs give)
/// as its decimal text, so `42` and `"42"` name the same user. Floats, booleans, null,
/// arrays and objects are refused with a message saying what was expected.
fn deserialize_user_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct UserId;
    impl serde::de::Visitor<'_> for UserId {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or an integer user_id")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(UserId)
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

impl<S: SessionStore + KeyStore + Send + Sync + 'static> Sessions<S> {
    pub fn new(
        store: Arc<S>,
        keys: Arc<KeyCache<S>>,
        settings: SessionSettings,
        clock: Clock,
        blacklist: Option<Arc<Blacklist>>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            keys,
            settings,
            verified: Arc::default(),
            blacklist,
            events: Events::log_only(clock.clone()),
            clock,
            metrics,
            store_runtime: None,
        }
    }

    /// The store, for maintenance (startup, jobs); session operations go through `Sessions`.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn keys(&self) -> &Arc<KeyCache<S>> {
        &self.keys
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// The revoked-session set, when blacklisting is on (startup and the feed poll fill it).
    pub fn blacklist(&self) -> Option<&Arc<Blacklist>> {
        self.blacklist.as_ref()
    }

    /// Whether this instance knows the session `handle` to be revoked (always `false` without
    /// blacklisting). A hash-set lookup.
    pub fn is_revoked(&self, handle: &str) -> bool {
        self.blacklist
            .as_ref()
            .is_some_and(|bl| bl.is_revoked(handle))
    }

    /// Creates a session and issues its first tokens (counted in `sessions_created_total`).
    pub async fn create(&self, new: NewSessionRequest) -> Result<IssuedSession, SessionError> {
        let NewSessionRequest {
            user_id,
            jwt_payload,
            session_data,
        } = new;
        check_user_id(&user_id)?;
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
            user_id,
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
        let new = NewSession {
            handle: record.handle.clone(),
            user_id: record.user_id.clone(),
            refresh_hash: record.current_hash,
            session_data: record.session_data.clone(),
            jwt_payload: record.jwt_payload.clone(),
            created_at: now,
            expires_at: record.expires_at,
        };
        self.on_store(move |s| async move { s.create_session(new).await })
            .await?;
        self.metrics.sessions_created_total.inc();
        Ok(issued)
    }

    /// Mints the tokens that go with `token` for the session in `record`. Deterministic in
    /// (`record`, `token`, signing key), so a grace replay repeats the first answer.
    pub(crate) fn issue(
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

    /// Applies the rotation rules to a presented refresh token (`None`: the caller found
    /// none) and counts the outcome in `refresh_total` (`store_unavailable` for an error).
    pub async fn refresh(&self, presented: Option<&str>) -> Result<RefreshResult, SessionError> {
        let result = match presented {
            Some(token) => self.rotate(token).await,
            None => Ok(RefreshResult::Missing),
        };
        self.metrics.refresh(match &result {
            Ok(r) => r.label(),
            Err(_) => RefreshLabel::StoreUnavailable,
        });
        result
    }

    async fn rotate(&self, presented: &str) -> Result<RefreshResult, SessionError> {
        let ring = self.keys.ring()?;
        let rk = ring.refresh_key();
        let token = match RefreshToken::parse(presented, rk) {
            Ok(t) => t,
            Err(RefreshTokenError::Malformed) => return Ok(RefreshResult::Malformed),
            Err(RefreshTokenError::BadMac) => {
                tracing::info!("refresh with a forged refresh token refused");
                return Ok(RefreshResult::Forged);
            }
        };
        let child = token.child(rk);
        let req = RefreshRequest {
            handle: token.handle_text(),
            presented: token.presented(),
            child_hash: child.hash(),
            now: self.clock.now_ms(),
            policy: RotationPolicy {
                grace_ms: self.settings.reuse_grace_ms,
                validity_ms: self.settings.refresh_validity_ms,
            },
            theft_action: self.settings.theft_action,
        };
        Ok(
            match self
                .on_store(move |s| async move { s.refresh(req).await })
                .await?
            {
                RefreshOutcome::Rotated(record) => {
                    RefreshResult::Rotated(self.issue(&record, &child)?)
                }
                RefreshOutcome::GraceReplay(record) => {
                    RefreshResult::GraceReplay(self.issue(&record, &child)?)
                }
                RefreshOutcome::Theft {
                    handle,
                    user_id,
                    revoked,
                } => {
                    self.metrics.token_theft_total.inc();
                    self.metrics.revoked(RevokeReason::Theft, revoked);
                    self.blacklist_now([handle.as_str()]);
                    self.events.emit(Event::TheftDetected {
                        session_handle: &handle,
                        user_id: &user_id,
                        revoked,
                    });
                    RefreshResult::Theft
                }
                RefreshOutcome::Unauthorised(r) => RefreshResult::Refused(r),
            },
        )
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
        let (sid, payload) = (claims.sid.clone(), new_claims.payload.clone());
        if !self
            .on_store(move |s| async move { s.update_jwt_payload(&sid, payload, now).await })
            .await?
        {
            return Ok(None);
        }
        Ok(Some((token, new_claims.expires_at_ms())))
    }

    /// Replaces the JWT payload of the live session `handle`; it takes effect at the next
    /// refresh. `Ok(false)` when there is no such live session. The payload must be an object
    /// whose access-token cookie fits `MAX_ACCESS_COOKIE_BYTES`, checked with a token
    /// minted for this session's user and handle (the anti-CSRF value, which only the refresh
    /// token yields, is stood in for by one of the same length).
    pub async fn set_jwt_payload(
        &self,
        handle: &str,
        payload: serde_json::Value,
    ) -> Result<bool, SessionError> {
        check_payload_object(&payload)?;
        let now = self.clock.now_ms();
        let Some(record) = self.session_at(handle, now).await? else {
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
        let (handle, payload) = (handle.to_string(), probe.payload);
        Ok(self
            .on_store(move |s| async move { s.update_jwt_payload(&handle, payload, now).await })
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

    /// The session handle a genuine refresh token names: its MAC is checked, nothing is looked
    /// up. `None` for a malformed or forged token, or before the keys are loaded. Only for
    /// learning which session to end (logout without an access token).
    pub fn refresh_token_handle(&self, token: &str) -> Option<String> {
        let ring = self.keys.ring().ok()?;
        let token = RefreshToken::parse(token, ring.refresh_key()).ok()?;
        Some(token.handle_text())
    }

    /// The live session `handle`, if there is one.
    pub async fn session(&self, handle: &str) -> Result<Option<SessionRecord>, SessionError> {
        self.session_at(handle, self.clock.now_ms()).await
    }

    async fn session_at(
        &self,
        handle: &str,
        now: Millis,
    ) -> Result<Option<SessionRecord>, SessionError> {
        let handle = handle.to_string();
        Ok(self
            .on_store(move |s| async move { s.session(&handle, now).await })
            .await?)
    }

    /// The handles of `user_id`'s live sessions.
    pub async fn user_sessions(&self, user_id: &str) -> Result<Vec<String>, SessionError> {
        self.user_sessions_at(user_id, self.clock.now_ms()).await
    }

    async fn user_sessions_at(
        &self,
        user_id: &str,
        now: Millis,
    ) -> Result<Vec<String>, SessionError> {
        let user_id = user_id.to_string();
        Ok(self
            .on_store(move |s| async move { s.user_sessions(&user_id, now).await })
            .await?)
    }

    /// Replaces the session data of the live session `handle`; `Ok(false)` when there is none.
    pub async fn update_session_data(
        &self,
        handle: &str,
        data: serde_json::Value,
    ) -> Result<bool, SessionError> {
        let (handle, now) = (handle.to_string(), self.clock.now_ms());
        Ok(self
            .on_store(move |s| async move { s.update_session_data(&handle, data, now).await })
            .await?)
    }

    /// Revokes one session: in the store, in `sessions_revoked_total{reason}` (when it was
    /// live), and in this instance's blacklist (other instances learn of it from the store's
    /// revocation feed). `Ok(false)`: no such live session.
    pub async fn revoke(&self, handle: &str, reason: RevokeReason) -> Result<bool, SessionError> {
        let (owned, now) = (handle.to_string(), self.clock.now_ms());
        let revoked = self
            .on_store(move |s| async move { s.revoke_session(&owned, now).await })
            .await?;
        if revoked {
            self.metrics.revoked(reason, 1);
            self.events.emit(Event::SessionRevoked {
                session_handle: Some(handle),
                user_id: None,
                reason,
                revoked: 1,
            });
        }
        self.blacklist_now([handle]);
        Ok(revoked)
    }

    /// Revokes all of a user's sessions (one statement in the store) like [`Sessions::revoke`];
    /// returns how many.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
    ) -> Result<u64, SessionError> {
        let now = self.clock.now_ms();
        // The handles are needed only to refuse them here at once.
        let handles = match &self.blacklist {
            Some(_) => self.user_sessions_at(user_id, now).await?,
            None => Vec::new(),
        };
        let owned = user_id.to_string();
        let n = self
            .on_store(move |s| async move { s.revoke_user_sessions(&owned, now).await })
            .await?;
        self.metrics.revoked(reason, n);
        if n > 0 {
            self.events.emit(Event::SessionRevoked {
                session_handle: None,
                user_id: Some(user_id),
                reason,
                revoked: n,
            });
        }
        self.blacklist_now(handles.iter().map(String::as_str));
        Ok(n)
    }

    /// Store operations asked for on a core thread (`server::Cores`) run on `runtime` (see
    /// `on_store`). For MySQL, whose sockets are driven by the runtime that opened them; SQLite
    /// runs its statements on blocking threads and needs no hop.
    pub fn with_store_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.store_runtime = Some(runtime);
        self
    }

    /// Security events go to `events` (its webhook, when configured) as well as the log.
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Where this process's security events go (the rotation job and the admin API emit too).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Runs a store operation on the store's runtime (the process's main runtime, set with
    /// [`Sessions::with_store_runtime`]) when called from a core thread (`server::Cores`). A
    /// MySQL connection's socket is driven by the runtime that opened it; run from the cores,
    /// connections would be opened by one core and used by another, each wait depending on a
    /// busy thread polling its reactor. Otherwise (SQLite, the main runtime, tests) the
    /// operation runs in place. Once started on the store's runtime, an operation runs to its
    /// end even if the request that asked for it goes away.
    async fn on_store<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<S>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = op(self.store.clone());
        match (&self.store_runtime, crate::server::core_index()) {
            // The request's trace goes along, so the operation's span joins it.
            (Some(rt), Some(_)) => rt
                .spawn(crate::otel::in_current(fut))
                .await
                .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("store task: {e}")))),
            _ => fut.await,
        }
    }

    /// Refuses these sessions on this instance at once. No-op without blacklisting.
    fn blacklist_now<'a>(&self, handles: impl IntoIterator<Item = &'a str>) {
        if let Some(bl) = &self.blacklist {
            let now = self.clock.now_ms();
            for h in handles {
                bl.insert(h, now);
            }
        }
    }
}

#[cfg(test)]
mod verified_tests {
    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn claims(i: usize, exp_secs: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            sub: format!("user-{i}"),
            sid: format!("handle-{i:016}"),
            iat: NOW / 1000,
            exp: exp_secs,
            anti_csrf: Some(format!("csrf-{i:032}")),
            payload: serde_json::json!({"role": "member", "n": i}),
        })
    }

    /// A distinct token of realistic length.
    fn token(i: usize) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.{i:043}", "p".repeat(240))
    }

    #[test]
    fn bounded_in_bytes_with_gradual_eviction() {
        let bound = 256 * 1024;
        let cache = VerifiedTokens::new(bound);
        let exp = NOW / 1000 + 3600;
        let per_entry = claims_weight(&token(0), &claims(0, exp));
        let fits = (bound / per_entry) as usize;
        // Tokens in use: verified once, then seen again on every "request".
        let active: Vec<usize> = (0..fits / 4).collect();
        for &i in &active {
            cache.insert(&token(i), claims(i, exp));
        }
        let mut most = 0;
        // Far more one-off tokens than the bound holds (the old cache cleared itself every
        // 10,000 entries).
        for i in 1_000_000..1_025_000 {
            cache.insert(&token(i), claims(i, exp));
            assert!(cache.weight() <= cache.capacity(), "over the bound at {i}");
            if i % 16 == 0 {
                for &a in &active {
                    assert!(
                        cache.get(&token(a), NOW).is_some(),
                        "active token {a} lost at {i}"
                    );
                }
            }
            // Gradual: never down to a fraction of what it held.
            most = most.max(cache.len());
            assert!(
                cache.len() * 2 >= most,
                "{} of {most} left at {i}",
                cache.len()
            );
            // The newest token is always there.
            assert!(cache.get(&token(i), NOW).is_some());
        }
        assert!(cache.capacity() >= bound && cache.capacity() < bound + 4096);
        assert!(
            cache.weight() > bound / 2,
            "the space is used: {}",
            cache.weight()
        );
        println!(
            "{} entries of ~{per_entry} B in {} of {} B",
            cache.len(),
            cache.weight(),
            cache.capacity()
        );
    }

    #[test]
    fn expiry_is_checked_on_every_hit() {
        let cache = VerifiedTokens::new(VERIFIED_CACHE_BYTES);
        let exp_secs = NOW / 1000 + 60;
        cache.insert(&token(1), claims(1, exp_secs));
        assert!(cache.get(&token(1), exp_secs * 1000 - 1).is_some());
        assert!(cache.get(&token(1), exp_secs * 1000).is_none());
        assert!(cache.is_empty(), "an expired token is dropped when seen");
        assert!(cache.get(&token(2), NOW).is_none());
    }

    #[test]
    fn weight_grows_with_token_and_payload() {
        let small = claims(1, 0);
        let mut big = (*small).clone();
        big.payload = serde_json::json!({"blob": "x".repeat(4000), "list": [1, 2, 3]});
        let t = token(1);
        let long = format!("{t}{}", "y".repeat(4000));
        assert!(claims_weight(&long, &small) >= claims_weight(&t, &small) + 4000);
        assert!(claims_weight(&t, &big) >= claims_weight(&t, &small) + 4000);
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(deserialize_with = "super::deserialize_user_id")]
        user_id: String,
    }

    fn check(json: &str, expected: Result<&str, &str>) {
        // Both paths the callers use: straight from bytes (admin) and through a `Value`
        // (session control).
        let direct = serde_json::from_str::<Body>(json).map(|b| b.user_id);
        let via_value = serde_json::from_str::<serde_json::Value>(json)
            .and_then(serde_json::from_value::<Body>)
            .map(|b| b.user_id);
        for got in [direct, via_value] {
            match (&got, expected) {
                (Ok(id), Ok(want)) => assert_eq!(id, want, "{json}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{json}: {e}"),
                _ => panic!("{json}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn user_id_is_a_string_or_an_integer() {
        check(r#"{"user_id": "alice"}"#, Ok("alice"));
        check(r#"{"user_id": "42"}"#, Ok("42"));
        check(r#"{"user_id": 42}"#, Ok("42"));
        check(r#"{"user_id": -7}"#, Ok("-7"));
        check(
            r#"{"user_id": 18446744073709551615}"#,
            Ok("18446744073709551615"),
        );
        check(
            r#"{"user_id": -9223372036854775808}"#,
            Ok("-9223372036854775808"),
        );
        let expected = "expected a string or an integer user_id";
        check(r#"{"user_id": 4.2}"#, Err(expected));
        check(r#"{"user_id": 1e3}"#, Err(expected));
        check(r#"{"user_id": 18446744073709551616}"#, Err(expected));
        check(r#"{"user_id": true}"#, Err(expected));
        check(r#"{"user_id": null}"#, Err(expected));
        check(r#"{"user_id": {"id": 1}}"#, Err(expected));
        check(r#"{"user_id": [1]}"#, Err(expected));
    }
}

#[cfg(test)]
mod service_tests {
    use super::*;
    use crate::config::{SigningAlgorithm, TableNames};
    use crate::keys::KeyPolicy;
    use crate::store::sqlite::SqliteStore;
    use crate::store::Maintenance;

    const GRACE_MS: Millis = 10_000;

    /// Sessions over a real in-memory SQLite store, with its own metrics.
    async fn sessions(blacklisting: bool) -> (Sessions<SqliteStore>, Metrics, Clock) {
        let store = SqliteStore::open(None, &TableNames::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store = Arc::new(store);
        let clock = Clock::system();
        let policy = KeyPolicy {
            dynamic: true,
            interval_ms: 86_400_000,
            algorithm: SigningAlgorithm::Hs256,
            max_validity_ms: 3_600_000,
            static_secret: None,
        };
        let keys = KeyCache::load(store.clone(), policy, clock.clone())
            .await
            .unwrap();
        let settings = SessionSettings {
            access_validity_secs: 3600,
            refresh_validity_ms: 86_400_000,
            reuse_grace_ms: GRACE_MS,
            anti_csrf: true,
            theft_action: TheftAction::RevokeSession,
        };
        let metrics = Metrics::new();
        let blacklist = blacklisting.then(|| Arc::new(Blacklist::new(3_660_000)));
        let s = Sessions::new(
            store,
            Arc::new(keys),
            settings,
            clock.clone(),
            blacklist,
            metrics.clone(),
        );
        (s, metrics, clock)
    }

    fn new_session(user: &str) -> NewSessionRequest {
        serde_json::from_value(serde_json::json!({ "user_id": user })).unwrap()
    }

    fn revoked(m: &Metrics, reason: RevokeReason) -> u64 {
        m.sessions_revoked_total
            .with_label_values(&[reason.as_str()])
            .get()
    }

    #[tokio::test]
    async fn revoke_counts_and_blacklists() {
        let (s, m, _) = sessions(true).await;
        let a = s.create(new_session("alice")).await.unwrap().handle;
        let b = s.create(new_session("alice")).await.unwrap().handle;
        assert_eq!(m.sessions_created_total.get(), 2);
        assert!(!s.is_revoked(&a));

        assert!(s.revoke(&a, RevokeReason::Logout).await.unwrap());
        assert!(s.is_revoked(&a), "refused here at once");
        assert!(!s.is_revoked(&b));
        assert_eq!(revoked(&m, RevokeReason::Logout), 1);
        assert!(s.session(&a).await.unwrap().is_none());
        // Already gone: not counted again.
        assert!(!s.revoke(&a, RevokeReason::Logout).await.unwrap());
        assert_eq!(revoked(&m, RevokeReason::Logout), 1);

        assert_eq!(s.user_sessions("alice").await.unwrap(), vec![b.clone()]);
        assert_eq!(
            s.revoke_user("alice", RevokeReason::Admin).await.unwrap(),
            1
        );
        assert!(s.is_revoked(&b));
        assert_eq!(revoked(&m, RevokeReason::Admin), 1);
        assert!(s.user_sessions("alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_blacklisting_nothing_is_refused_locally() {
        let (s, m, _) = sessions(false).await;
        let a = s.create(new_session("bob")).await.unwrap().handle;
        assert!(s.revoke(&a, RevokeReason::Upstream).await.unwrap());
        assert!(!s.is_revoked(&a));
        assert!(s.blacklist().is_none());
        assert_eq!(revoked(&m, RevokeReason::Upstream), 1);
    }

    #[tokio::test]
    async fn refresh_outcomes_and_their_labels() {
        let (s, m, clock) = sessions(true).await;
        let first = s.create(new_session("carol")).await.unwrap();
        let t0 = first.refresh_token.clone();
        let count = |l: RefreshLabel| m.refresh_total.with_label_values(&[l.as_str()]).get();

        assert_eq!(s.refresh(None).await.unwrap(), RefreshResult::Missing);
        assert_eq!(
            s.refresh(Some("not a token")).await.unwrap(),
            RefreshResult::Malformed
        );
        let RefreshResult::Rotated(second) = s.refresh(Some(&t0)).await.unwrap() else {
            panic!("expected a rotation");
        };
        // The previous token again within the grace window: the same answer.
        assert_eq!(
            s.refresh(Some(&t0)).await.unwrap(),
            RefreshResult::GraceReplay(second.clone())
        );
        clock.advance(std::time::Duration::from_millis(GRACE_MS as u64 + 1000));
        assert_eq!(s.refresh(Some(&t0)).await.unwrap(), RefreshResult::Theft);
        assert_eq!(m.token_theft_total.get(), 1);
        assert_eq!(revoked(&m, RevokeReason::Theft), 1);
        assert!(s.is_revoked(&first.handle));
        assert!(matches!(
            s.refresh(Some(&second.refresh_token)).await.unwrap(),
            RefreshResult::Refused(_)
        ));

        assert_eq!(count(RefreshLabel::Rotated), 1);
        assert_eq!(count(RefreshLabel::GraceReplay), 1);
        assert_eq!(count(RefreshLabel::Theft), 1);
        assert_eq!(count(RefreshLabel::Unauthorised), 3);
        assert_eq!(count(RefreshLabel::StoreUnavailable), 0);
    }

    #[test]
    fn refresh_labels() {
        let issued = IssuedSession {
            handle: String::new(),
            user_id: String::new(),
            access_token: String::new(),
            access_expires_at: 0,
            refresh_token: String::new(),
            session_expires_at: 0,
            id_refresh_token: String::new(),
            anti_csrf: None,
        };
        let check = |r: RefreshResult, want: &str| assert_eq!(r.label().as_str(), want, "{r:?}");
        check(RefreshResult::Rotated(issued.clone()), "rotated");
        check(RefreshResult::GraceReplay(issued), "grace_replay");
        check(RefreshResult::Theft, "theft");
        check(RefreshResult::Missing, "unauthorised");
        check(RefreshResult::Malformed, "unauthorised");
        check(RefreshResult::Forged, "unauthorised");
        check(
            RefreshResult::Refused(UnauthorisedReason::Expired),
            "unauthorised",
        );
    }

    #[tokio::test]
    async fn invalid_input_is_refused_before_anything_is_stored() {
        let (s, m, _) = sessions(false).await;
        let bad = |json| serde_json::from_value::<NewSessionRequest>(json).unwrap();
        for req in [
            bad(serde_json::json!({"user_id": ""})),
            bad(serde_json::json!({"user_id": " alice"})),
            bad(serde_json::json!({"user_id": "a", "jwt_payload": [1]})),
            bad(serde_json::json!({"user_id": "a", "jwt_payload": {"x": "y".repeat(5000)}})),
        ] {
            let e = s.create(req.clone()).await.unwrap_err();
            assert!(matches!(e, SessionError::InvalidInput(_)), "{req:?}: {e}");
        }
        assert_eq!(m.sessions_created_total.get(), 0);
        assert!(s.user_sessions("a").await.unwrap().is_empty());
    }
}
