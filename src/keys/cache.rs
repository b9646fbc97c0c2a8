//! The in-memory key ring of one gateway instance, refreshed from the store.
//!
//! Readers take an `Arc<KeyRing>` snapshot without waiting on I/O (a std `RwLock` held only to
//! clone the `Arc`, never across `.await`). The store is read at start, by the rotation job,
//! and when a token names a `kid` this instance has not seen (another instance rotated),
//! at most once per [`UNKNOWN_KID_RELOAD_INTERVAL_MS`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::clock::{Clock, Millis};
use crate::config::{SigningAlgorithm, TokensConfig};
use crate::keys::ring::{new_refresh_key, KeyError, KeyRing};
use crate::store::{SessionStore, StoreError};

/// Minimum time between two reloads triggered by unknown `kid`s, so forged tokens cannot
/// turn into a query per request.
pub const UNKNOWN_KID_RELOAD_INTERVAL_MS: Millis = 1000;

#[derive(Debug, thiserror::Error)]
pub enum KeyCacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read signing_key.secret_file {path}: {why}")]
    SecretFile { path: String, why: String },
    #[error("the signing key is static (signing_key.secret_file); rotate it by replacing the file and restarting")]
    StaticKey,
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
    /// Reads the policy from config, including the static secret file when one is set.
    pub fn from_config(t: &TokensConfig) -> Result<Self, KeyCacheError> {
        let sk = &t.access_token.signing_key;
        // Config validation refuses this first; kept so no other caller can build it.
        if sk.secret_file.is_some() && sk.algorithm == SigningAlgorithm::EdDsa {
            return Err(KeyCacheError::StaticSecretAlgorithm);
        }
        let static_secret = match &sk.secret_file {
            None => None,
            Some(path) => {
                let bytes = crate::config::read_secret_file(path).map_err(|e| {
                    KeyCacheError::SecretFile {
                        path: path.display().to_string(),
                        why: e.to_string(),
                    }
                })?;
                Some(bytes)
            }
        };
        Ok(Self {
            dynamic: sk.dynamic,
            interval_ms: i64::from(sk.update_interval_hours) * 3_600_000,
            algorithm: sk.algorithm,
            max_validity_ms: (t.access_token.validity_secs as i64).saturating_mul(1000),
            static_secret,
        })
    }
}

pub struct KeyCache<S> {
    store: Arc<S>,
    policy: KeyPolicy,
    clock: Clock,
    ring: RwLock<Arc<KeyRing>>,
    /// When the last reload triggered by an unknown `kid` happened. Only those reloads are
    /// rate-limited: a scheduled reload (start, rotation job) must not block picking up a key
    /// another instance created just after it, or that instance's fresh tokens get refused.
    last_unknown_kid_reload: AtomicI64,
}

impl<S: SessionStore> KeyCache<S> {
    /// Loads the ring, creating the refresh key and a first access key when the store has
    /// none (insert-if-absent, so instances starting together agree on one key).
    pub async fn load(
        store: Arc<S>,
        policy: KeyPolicy,
        clock: Clock,
    ) -> Result<Self, KeyCacheError> {
        let now = clock.now_ms();
        let ring = match &policy.static_secret {
            Some(secret) => KeyRing::from_static_secret(secret)?,
            None => {
                store.insert_key(new_refresh_key(now)).await?;
                let ring = KeyRing::from_stored(&store.keys().await?)?;
                let needs_key = ring.signing_key().is_err()
                    || (policy.dynamic
                        && ring.rotation_due(now, policy.interval_ms, policy.algorithm));
                if needs_key {
                    store
                        .insert_key(ring.next_access_key(policy.algorithm, now))
                        .await?;
                    KeyRing::from_stored(&store.keys().await?)?
                } else {
                    ring
                }
            }
        };
        Ok(Self {
            store,
            policy,
            clock,
            ring: RwLock::new(Arc::new(ring)),
            last_unknown_kid_reload: AtomicI64::new(0),
        })
    }

    /// The current ring (cheap: clones an `Arc`).
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn install(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
    }

    /// Reads the key table again.
    pub async fn reload(&self) -> Result<(), KeyCacheError> {
        if self.policy.static_secret.is_some() {
            return Ok(());
        }
        let ring = KeyRing::from_stored(&self.store.keys().await?)?;
        self.install(ring);
        Ok(())
    }

    /// Reloads after a token named an unknown `kid`, unless a reload happened within the last
    /// [`UNKNOWN_KID_RELOAD_INTERVAL_MS`]. Returns whether it reloaded.
    pub async fn reload_for_unknown_kid(&self) -> bool {
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
        if self.policy.static_secret.is_some() {
            return Ok(None);
        }
        self.reload().await?;
        let now = self.clock.now_ms();
        let ring = self.ring();
        let mut created = None;
        let mut changed = false;
        if self.policy.dynamic
            && ring.rotation_due(now, self.policy.interval_ms, self.policy.algorithm)
        {
            let key = ring.next_access_key(self.policy.algorithm, now);
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
        let key = self
            .ring()
            .next_access_key(self.policy.algorithm, self.clock.now_ms());
        self.store.insert_key(key).await?;
        self.reload().await?;
        Ok(self.ring().signing_key()?.kid.clone())
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
