//! The key ring: access-token signing keys (HS256 or EdDSA) by `kid`, and the refresh-token
//! MAC key. Pure: built from [`StoredKey`] rows or a static secret; decides when a rotation is
//! due and which old keys may be dropped. Does no I/O and draws no randomness: new key rows
//! take their secret bytes from the caller.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyPurpose, StoredKey};
use crate::Millis;

type HmacSha256 = Hmac<Sha256>;

/// How access tokens are signed (`tokens.access_token.signing_key.algorithm`; the serde names
/// are the config spellings and the JWT `alg` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[default]
    #[serde(rename = "HS256")]
    Hs256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "HS256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// The shortest static secret (`signing_key.secret_file`) accepted, in bytes.
pub const MIN_STATIC_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no refresh-token key in the key ring")]
    NoRefreshKey,
    #[error("no access-token signing key in the key ring")]
    NoSigningKey,
    #[error("key {kid} is invalid: {why}")]
    Invalid { kid: String, why: String },
}

/// One access-token key.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub seq: u64,
    pub created_at: Millis,
    /// Raw Ed25519 public key; empty for HS256.
    pub public: Vec<u8>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// The secret that MACs refresh tokens and derives their children.
#[derive(Clone)]
pub struct RefreshKey([u8; 32]);

impl RefreshKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Invalid {
            kid: "refresh".into(),
            why: format!("refresh key must be 32 bytes, has {}", bytes.len()),
        })?;
        Ok(Self(arr))
    }

    /// HMAC-SHA256 over the domain label and the parts.
    pub fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(label);
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of a MAC made by [`RefreshKey::mac`].
    pub fn verify(&self, label: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(label);
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
}

/// The keys one gateway instance verifies and signs with.
#[derive(Clone)]
pub struct KeyRing {
    /// Access keys in `seq` order; the last one signs.
    access: Vec<Arc<SigningKey>>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    refresh: RefreshKey,
    /// True when built from `secret_file`: never rotated, never stored.
    is_static: bool,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("access", &self.access)
            .field("is_static", &self.is_static)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): the fixed prefix, then the 32 bytes.
fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

impl SigningKey {
    /// Builds a usable key from a stored access-key row.
    pub fn from_stored(k: &StoredKey) -> Result<Self, KeyError> {
        let invalid = |why: &str| KeyError::Invalid {
            kid: k.kid.clone(),
            why: why.to_string(),
        };
        let (algorithm, encoding, decoding, public) = match k.algorithm.as_str() {
            "HS256" => {
                if k.secret.len() < 32 {
                    return Err(invalid("HS256 secret shorter than 32 bytes"));
                }
                (
                    SigningAlgorithm::Hs256,
                    EncodingKey::from_secret(&k.secret),
                    DecodingKey::from_secret(&k.secret),
                    Vec::new(),
                )
            }
            "EdDSA" => {
                let seed: [u8; 32] = k
                    .secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid("Ed25519 seed must be 32 bytes"))?;
                let public = ed25519_dalek::SigningKey::from_bytes(&seed)
                    .verifying_key()
                    .to_bytes();
                if !k.public.is_empty() && k.public != public {
                    return Err(invalid("stored public key does not match the seed"));
                }
                (
                    SigningAlgorithm::EdDsa,
                    EncodingKey::from_ed_der(&ed25519_pkcs8(&seed)),
                    DecodingKey::from_ed_der(&public),
                    public.to_vec(),
                )
            }
            other => return Err(invalid(&format!("unknown algorithm {other}"))),
        };
        Ok(SigningKey {
            kid: k.kid.clone(),
            algorithm,
            seq: k.seq,
            created_at: k.created_at,
            public,
            encoding,
            decoding,
        })
    }
}

impl KeyRing {
    /// Builds the ring from the store's rows. Invalid access keys are an error, not skipped:
    /// a ring that silently loses keys would log users out.
    pub fn from_stored(rows: &[StoredKey]) -> Result<Self, KeyError> {
        let refresh_row = rows
            .iter()
            .filter(|k| k.purpose == KeyPurpose::Refresh)
            .min_by_key(|k| k.seq)
            .ok_or(KeyError::NoRefreshKey)?;
        let refresh = RefreshKey::from_bytes(&refresh_row.secret)?;
        let mut access: Vec<Arc<SigningKey>> = rows
            .iter()
            .filter(|k| k.purpose == KeyPurpose::Access)
            .map(|k| SigningKey::from_stored(k).map(Arc::new))
            .collect::<Result<_, _>>()?;
        access.sort_by_key(|k| k.seq);
        Ok(Self::assemble(access, refresh, false))
    }

    /// A ring from an operator-managed secret (`signing_key.secret_file`): one HS256 key whose
    /// `kid` is derived from the secret, and a refresh key derived from it too, so no secret is
    /// written to the store.
    pub fn from_static_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_STATIC_SECRET_BYTES {
            return Err(KeyError::Invalid {
                kid: "static".into(),
                why: "secret_file must hold at least 32 bytes".into(),
            });
        }
        let digest = Sha256::digest(secret);
        let kid = format!("s-{}", hex::encode(&digest[..6]));
        let mut m = <HmacSha256 as Mac>::new_from_slice(secret).expect("any key length");
        m.update(b"sessiongate refresh-token key");
        let refresh = RefreshKey(m.finalize().into_bytes().into());
        let key = SigningKey {
            kid,
            algorithm: SigningAlgorithm::Hs256,
            seq: 0,
            created_at: 0,
            public: Vec::new(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        };
        Ok(Self::assemble(vec![Arc::new(key)], refresh, true))
    }

    fn assemble(access: Vec<Arc<SigningKey>>, refresh: RefreshKey, is_static: bool) -> Self {
        let by_kid = access.iter().map(|k| (k.kid.clone(), k.clone())).collect();
        Self {
            access,
            by_kid,
            refresh,
            is_static,
        }
    }

    /// The key new access tokens are signed with: the newest.
    pub fn signing_key(&self) -> Result<&SigningKey, KeyError> {
        self.access
            .last()
            .map(|k| k.as_ref())
            .ok_or(KeyError::NoSigningKey)
    }

    /// The key that verifies tokens with this `kid`, if the ring still has it.
    pub fn verifying_key(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|k| k.as_ref())
    }

    pub fn refresh_key(&self) -> &RefreshKey {
        &self.refresh
    }

    pub fn is_static(&self) -> bool {
        self.is_static
    }

    /// The `kid`s in the ring, oldest first.
    pub fn kids(&self) -> Vec<&str> {
        self.access.iter().map(|k| k.kid.as_str()).collect()
    }

    /// Whether a new access key should be created at `now`: none yet, the newest is at least
    /// `interval_ms` old, or it uses another algorithm than the configured one.
    pub fn rotation_due(&self, now: Millis, interval_ms: Millis, alg: SigningAlgorithm) -> bool {
        if self.is_static {
            return false;
        }
        match self.access.last() {
            None => true,
            Some(k) => k.algorithm != alg || now - k.created_at >= interval_ms,
        }
    }

    /// Keys created before the returned time can be deleted at `now`: every token they signed
    /// has expired, because a newer key took over signing more than `max_validity_ms` ago.
    /// Never names the newest key.
    pub fn prunable_before(&self, now: Millis, max_validity_ms: Millis) -> Option<Millis> {
        // The newest key that has been signing for longer than one validity period: every key
        // before it stopped signing at least that long ago.
        self.access
            .iter()
            .rev()
            .find(|k| k.created_at + max_validity_ms < now)
            .map(|k| k.created_at)
            .filter(|_| self.access.len() > 1)
    }

    /// The next access key row: `seq` one past the newest, `kid` = `k<seq>`, so two instances
    /// that rotate at once write the same primary key and only one insert wins. `secret` is
    /// fresh CSPRNG output the caller drew.
    pub fn next_access_key(
        &self,
        alg: SigningAlgorithm,
        now: Millis,
        secret: [u8; 32],
    ) -> StoredKey {
        let seq = self.access.last().map(|k| k.seq + 1).unwrap_or(1);
        new_access_key(seq, alg, now, secret)
    }

    /// Public keys for `/.well-known/jwks.json` (EdDSA keys only; HMAC secrets are never
    /// published).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .access
            .iter()
            .filter(|k| k.algorithm == SigningAlgorithm::EdDsa)
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": B64URL.encode(&k.public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// A new access key row. `secret` (the HMAC secret, or the Ed25519 seed) must be fresh CSPRNG
/// output: the caller draws it, this crate has no randomness source.
pub fn new_access_key(seq: u64, alg: SigningAlgorithm, now: Millis, secret: [u8; 32]) -> StoredKey {
    let public = match alg {
        SigningAlgorithm::Hs256 => Vec::new(),
        SigningAlgorithm::EdDsa => ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes()
            .to_vec(),
    };
    StoredKey {
        kid: format!("k{seq}"),
        purpose: KeyPurpose::Access,
        seq,
        algorithm: alg.as_str().to_string(),
        secret: secret.to_vec(),
        public,
        created_at: now,
    }
}

/// The refresh-token MAC key row; created once per database (`kid` `r1`, insert-if-absent).
/// `secret` must be fresh CSPRNG output, drawn by the caller.
pub fn new_refresh_key(now: Millis, secret: [u8; 32]) -> StoredKey {
    StoredKey {
        kid: "r1".into(),
        purpose: KeyPurpose::Refresh,
        seq: 0,
        algorithm: "HMAC-SHA256".into(),
        secret: secret.to_vec(),
        public: Vec::new(),
        created_at: now,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Key material for tests: distinct on every call (so two rings never share a key), but
    /// drawn from no randomness source; this crate has none.
    pub(crate) fn test_secret() -> [u8; 32] {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Sha256::digest(n.to_be_bytes()).into()
    }

    /// A ring with a refresh key and access keys created at the given times.
    pub(crate) fn ring_with(
        alg: SigningAlgorithm,
        created: &[Millis],
    ) -> (KeyRing, Vec<StoredKey>) {
        let mut rows = vec![new_refresh_key(0, test_secret())];
        for (i, t) in created.iter().enumerate() {
            rows.push(new_access_key(i as u64 + 1, alg, *t, test_secret()));
        }
        (KeyRing::from_stored(&rows).unwrap(), rows)
    }

    #[test]
    fn newest_key_signs_and_all_verify() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 100, 200]);
        assert_eq!(ring.signing_key().unwrap().kid, "k3");
        assert_eq!(ring.kids(), vec!["k1", "k2", "k3"]);
        assert!(ring.verifying_key("k1").is_some());
        assert!(ring.verifying_key("k9").is_none());
    }

    #[test]
    fn rotation_due_rules() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[1000]);
        assert!(!ring.rotation_due(1999, 1000, SigningAlgorithm::Hs256));
        assert!(ring.rotation_due(2000, 1000, SigningAlgorithm::Hs256));
        assert!(ring.rotation_due(1001, 1000, SigningAlgorithm::EdDsa));
        let (empty, _) = ring_with(SigningAlgorithm::Hs256, &[]);
        assert!(empty.rotation_due(0, 1000, SigningAlgorithm::Hs256));
        assert!(empty.signing_key().is_err());
        let st = KeyRing::from_static_secret(&[7u8; 40]).unwrap();
        assert!(!st.rotation_due(i64::MAX, 1, SigningAlgorithm::Hs256));
    }

    #[test]
    fn next_key_sequence() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 10]);
        let k = ring.next_access_key(SigningAlgorithm::EdDsa, 20, test_secret());
        assert_eq!((k.kid.as_str(), k.seq, k.public.len()), ("k3", 3, 32));
    }

    #[test]
    fn pruning_keeps_keys_whose_tokens_may_live() {
        // Keys at 0, 1000, 2000; tokens live 500 ms.
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 1000, 2000]);
        // At 1400, k1's tokens (signed until 1000) may live until 1500: keep everything.
        assert_eq!(ring.prunable_before(1400, 500), Some(0));
        // At 1501, k2 has signed for > 500 ms: k1 (before 1000) can go.
        assert_eq!(ring.prunable_before(1501, 500), Some(1000));
        // At 2501: k1 and k2 can go, k3 stays.
        assert_eq!(ring.prunable_before(2501, 500), Some(2000));
        let (single, _) = ring_with(SigningAlgorithm::Hs256, &[0]);
        assert_eq!(single.prunable_before(i64::MAX / 2, 500), None);
    }

    #[test]
    fn invalid_rows_are_errors() {
        let mut rows = vec![
            new_refresh_key(0, test_secret()),
            new_access_key(1, SigningAlgorithm::Hs256, 0, test_secret()),
        ];
        rows[1].secret.truncate(5);
        assert!(matches!(
            KeyRing::from_stored(&rows),
            Err(KeyError::Invalid { .. })
        ));
        let rows = vec![new_access_key(1, SigningAlgorithm::Hs256, 0, test_secret())];
        assert_eq!(
            KeyRing::from_stored(&rows).unwrap_err(),
            KeyError::NoRefreshKey
        );
        let mut rows = vec![
            new_refresh_key(0, test_secret()),
            new_access_key(1, SigningAlgorithm::EdDsa, 0, test_secret()),
        ];
        rows[1].public[0] ^= 1;
        assert!(matches!(
            KeyRing::from_stored(&rows),
            Err(KeyError::Invalid { .. })
        ));
    }

    #[test]
    fn jwks_lists_only_public_keys() {
        let (ring, _) = ring_with(SigningAlgorithm::EdDsa, &[0]);
        let j = ring.jwks();
        assert_eq!(j["keys"][0]["kid"], "k1");
        assert_eq!(j["keys"][0]["crv"], "Ed25519");
        let (hs, _) = ring_with(SigningAlgorithm::Hs256, &[0]);
        assert_eq!(hs.jwks()["keys"].as_array().unwrap().len(), 0);
    }
}
