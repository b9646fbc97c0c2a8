//! Signing keys as data: the stored key rows ([`StoredKey`], [`KeyPurpose`]) and the pure
//! [`KeyRing`] built from them (`ring.rs`). Keeping the ring in memory, reloading it from the
//! store and rotating it is the gateway's `keys::cache`.

pub mod ring;

pub use ring::{KeyError, KeyRing, RefreshKey, SigningAlgorithm, SigningKey};

use crate::Millis;

/// Which keys a stored key row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signs access tokens; rotated.
    Access,
    /// MACs refresh tokens; created once.
    Refresh,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::Refresh => "refresh",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(KeyPurpose::Access),
            "refresh" => Some(KeyPurpose::Refresh),
            _ => None,
        }
    }
}

/// A row of the signing-key table.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Unique; for access keys `k<seq>`, so concurrent rotations collide on the primary key.
    pub kid: String,
    pub purpose: KeyPurpose,
    /// Ordering of access keys; the newest is the signing key.
    pub seq: u64,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// HMAC secret, or the Ed25519 seed.
    pub secret: Vec<u8>,
    /// Ed25519 public key; empty for HMAC keys.
    pub public: Vec<u8>,
    pub created_at: Millis,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("seq", &self.seq)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}
