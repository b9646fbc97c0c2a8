//! The in-memory key ring of one gateway instance, refreshed from the store.
//!
//! Readers take an `Arc<KeyRing>` snapshot without waiting on I/O (a std `RwLock` held only to
//! clone the `Arc`, never across `.await`). The store is read at start, by the rotation job,
//! and when a token names a `kid` this instance has not seen (another instance rotated),
//! at most once per [`UNKNOWN_KID_RELOAD_INTERVAL_MS`].
//!
//! A cache can exist before its keys do: [`KeyCache::new`] does no I/O, holds the ring at once
//! for a static `secret_file`, and otherwise has no ring ([`KeyCacheError::NotLoaded`]) until
//! [`KeyCache::initialise`] succeeds (the gateway retries that while the store is down). Only
//! `initialise` turns an empty cache into a loaded one; reloads and rotations need a loaded
//! cache, so a cache without keys never queries the store on behalf of a request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::clock::{Clock, Millis};
use crate::config::{SigningAlgorithm, TokensConfig};
use crate::keys::fresh_secret;
use crate::keys::ring::{new_refresh_key, KeyError, KeyRing};
use crate::store::{KeyStore, StoreError};

/// Minimum time between two reloads triggered by unknown `kid`s, so forged tokens cannot
/// turn into a query per request.
pub const UNKNOWN_KID_RELOAD_INTERVAL_MS: Millis = 1000;

#[derive(Debug, thiserror::Error)]
pub enum KeyCacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the signing key is static (signing_key.secret_file); rotate it by replacing the file and restarting")]
    StaticKey,
    /// The keys live in the store and have not been read yet (the store has been unreachable
    /// since start).
    #[error("signing keys are not loaded yet: the store has not been reachable since start")]
    NotLoaded,
    #[error("signing_key.algorithm = \"EdDSA\" cannot use signing_key.secret_file (a static secret signs with HS256)")]
    StaticSecretAlgorithm,
}

/// How this instance manages keys (from `tokens.access_token`).
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub dynamic: bool,
    pub interval_ms: Millis,
    pub algorithm: SigningAlgorithm,
    /// Longest access-token lifetime; old keys verify at least this long after they stop
    /// signing.
    pub max_validity_ms: Millis,
    pub static_secret: Option<Vec<u8>>,
}

impl KeyPolicy {
    /// The policy `t` states, with the static secret the loader read from `secret_file`.
    pub fn from_config(t: &TokensConfig) -> Result<Self, KeyCacheError> {
        let sk = &t.access_token.signing_key;
        // Config validation refuses this first; kept so no other caller can build it.
        if sk.secret_file.is_some() && sk.algorithm == SigningAlgorithm::EdDsa {
            return Err(KeyCacheError::StaticSecretAlgorithm);
        }
        Ok(Self {
            dynamic: sk.dynamic,
            interval_ms: i64::from(sk.update_interval_hours) * 3_600_000,
            algorithm: sk.algorithm,
            max_validity_ms: (t.access_token.validity_secs as i64).saturating_mul(1000),
            static_secret: sk.secret_file.as_ref().map(|f| f.key.clone()),
        })
    }
}

pub struct KeyCache<S> {
    store: Arc<S>,
    policy: KeyPolicy,
    clock: Clock,
    /// `None` until the keys are first loaded (dynamic keys whose store is not reachable yet).
    ring: RwLock<Option<Arc<KeyRing>>>,
    /// When the last reload triggered by an unknown `kid` happened. Only those reloads are
    /// rate-limited: a scheduled reload (start, rotation job) must not block picking up a key
    /// another instance created just after it, or that instance's fresh tokens get refused.
    last_unknown_kid_reload: AtomicI64,
}

impl<S: KeyStore> KeyCache<S> {
    /// A cache without I/O: loaded at once for a static secret, empty for keys that live in
    /// the store (see [`KeyCache::initialise`]).
    pub fn new(store: Arc<S>, policy: KeyPolicy, clock: Clock) -> Result<Self, KeyCacheError> {
        let ring = match &policy.static_secret {
            Some(secret) => Some(Arc::new(KeyRing::from_static_secret(secret)?)),
            None => None,
        };
        Ok(Self {
            store,
            policy,
            clock,
            ring: RwLock::new(ring),
            last_unknown_kid_reload: AtomicI64::new(0),
        })
    }

    /// [`KeyCache::new`] and [`KeyCache::initialise`]: a cache whose keys are loaded.
    pub async fn load(
        store: Arc<S>,
        policy: KeyPolicy,
        clock: Clock,
    ) -> Result<Self, KeyCacheError> {
        let cache = Self::new(store, policy, clock)?;
        cache.initialise().await?;
        Ok(cache)
    }

    /// Loads the ring from the store, creating the refresh key and a first access key when
    /// the store has none (insert-if-absent, so instances starting together agree on one key).
    /// A no-op when the ring is already loaded (always, for a static secret).
    pub async fn initialise(&self) -> Result<(), KeyCacheError> {
        if self.is_loaded() {
            return Ok(());
        }
        let store = &self.store;
        let now = self.clock.now_ms();
        store
            .insert_key(new_refresh_key(now, fresh_secret()))
            .await?;
        let ring = KeyRing::from_stored(&store.keys().await?)?;
        let needs_key = ring.signing_key().is_err()
            || (self.policy.dynamic
                && ring.rotation_due(now, self.policy.interval_ms, self.policy.algorithm));
        let ring = if needs_key {
            store
                .insert_key(ring.next_access_key(self.policy.algorithm, now, fresh_secret()))
                .await?;
            KeyRing::from_stored(&store.keys().await?)?
        } else {
            ring
        };
        self.install(ring);
        Ok(())
    }

    /// Whether the ring is loaded (it never becomes unloaded again).
    pub fn is_loaded(&self) -> bool {
        self.ring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The current ring (cheap: clones an `Arc`); [`KeyCacheError::NotLoaded`] before the
    /// keys were first loaded.
    pub fn ring(&self) -> Result<Arc<KeyRing>, KeyCacheError> {
        self.ring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(KeyCacheError::NotLoaded)
    }

    fn install(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ring));
    }

    /// Reads the key table again (only once the ring is loaded: the first load is
    /// [`KeyCache::initialise`]'s, which also creates missing keys).
    pub async fn reload(&self) -> Result<(), KeyCacheError> {
        if self.policy.static_secret.is_some() {
            return Ok(());
        }
        if !self.is_loaded() {
            return Err(KeyCacheError::NotLoaded);
        }
        let ring = KeyRing::from_stored(&self.store.keys().await?)?;
        self.install(ring);
        Ok(())
    }

    /// Reloads after a token named an unknown `kid`, unless a reload happened within the last
    /// [`UNKNOWN_KID_RELOAD_INTERVAL_MS`]. Returns whether it reloaded.
    pub async fn reload_for_unknown_kid(&self) -> bool {
        if !self.is_loaded() {
            return false;
        }
        let now = self.clock.now_ms();
        let last = self.last_unknown_kid_reload.load(Ordering::Relaxed);
        if now - last < UNKNOWN_KID_RELOAD_INTERVAL_MS
            || self
                .last_unknown_kid_reload
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.reload().await.is_ok()
    }

    /// The rotation job's tick: reload, rotate when due (dynamic keys only), drop keys whose
    /// tokens have all expired. Returns the new `kid` when this call created one.
    pub async fn rotate_if_due(&self) -> Result<Option<String>, KeyCacheError> {
        if self.policy.static_secret.is_some() || !self.is_loaded() {
            return Ok(None);
        }
        self.reload().await?;
        let now = self.clock.now_ms();
        let ring = self.ring()?;
        let mut created = None;
        let mut changed = false;
        if self.policy.dynamic
            && ring.rotation_due(now, self.policy.interval_ms, self.policy.algorithm)
        {
            let key = ring.next_access_key(self.policy.algorithm, now, fresh_secret());
            let kid = key.kid.clone();
            // Won or lost, the table has a new key now (another instance may have won).
            changed = true;
            if self.store.insert_key(key).await? {
                created = Some(kid);
            }
        }
        // Keep a margin of one minute past the longest token lifetime for clock skew.
        if let Some(before) = ring.prunable_before(now, self.policy.max_validity_ms + 60_000) {
            changed |= self.store.delete_access_keys_before(before).await? > 0;
        }
        // The ring read at the top is still current unless the table changed since.
        if changed {
            self.reload().await?;
        }
        Ok(created)
    }

    /// Creates a new signing key now (`sessiongate keys rotate`, `POST /v1/keys/rotate`).
    /// Returns the `kid` that signs after the call. Two calls that read the same ring insert
    /// the same `kid` and only one row results; a call that starts after another's insert
    /// adds one more key (each forced rotation is honoured). Scheduled rotations
    /// ([`KeyCache::rotate_if_due`]) never double up: a fresh key makes them not due.
    pub async fn force_rotate(&self) -> Result<String, KeyCacheError> {
        if self.policy.static_secret.is_some() {
            return Err(KeyCacheError::StaticKey);
        }
        self.reload().await?;
        let key = self.ring()?.next_access_key(
            self.policy.algorithm,
            self.clock.now_ms(),
            fresh_secret(),
        );
        self.store.insert_key(key).await?;
        self.reload().await?;
        Ok(self.ring()?.signing_key()?.kid.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation refuses EdDSA with a static secret; a config built around it is refused
    /// here too, before any key is made.
    #[test]
    fn static_secret_only_with_hs256() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jwt-secret");
        std::fs::write(&secret, [7u8; 40]).unwrap();
        let cfg = crate::config::load_from_str(&format!(
            "tokens.refresh_token.renew_path = \"/auth/refresh\"\n\
             tokens.access_token.signing_key.secret_file = \"{}\"\n\
             [[routes]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n",
            secret.display()
        ))
        .unwrap();
        // The loader read the file; the policy takes the key from the configuration.
        std::fs::remove_file(&secret).unwrap();
        let mut tokens = cfg.tokens;
        let policy = KeyPolicy::from_config(&tokens).unwrap();
        assert_eq!(policy.static_secret.as_deref(), Some(&[7u8; 40][..]));
        tokens.access_token.signing_key.algorithm = SigningAlgorithm::EdDsa;
        assert!(matches!(
            KeyPolicy::from_config(&tokens),
            Err(KeyCacheError::StaticSecretAlgorithm)
        ));
    }
}
