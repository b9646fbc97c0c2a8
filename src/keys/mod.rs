//! Signing keys: the pure [`KeyRing`] (`ring`, from the token core `sessiongate_core::keys`)
//! built from stored key rows or a static secret, and the [`KeyCache`] (`cache.rs`) that keeps
//! the current ring in memory, reloads it from the store and rotates keys when due. Fresh key
//! material is drawn here ([`fresh_secret`], the OS CSPRNG), never in the core.
//!
//! Invariant: request handling reads the ring from memory only; the store is touched by
//! reloads (periodic, or on an unknown `kid` at most once a second) and rotations.

pub mod cache;

pub use cache::{KeyCache, KeyCacheError, KeyPolicy};
pub use ring::{KeyError, KeyRing, RefreshKey, SigningKey};
pub use sessiongate_core::keys::ring;

/// 32 bytes from the OS CSPRNG: the secret of a new access key or of the refresh key.
pub fn fresh_secret() -> [u8; 32] {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}
