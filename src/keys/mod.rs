//! Signing keys: the pure [`KeyRing`] (`ring.rs`) built from stored key rows or a static
//! secret, and the [`KeyCache`] (`cache.rs`) that keeps the current ring in memory, reloads it
//! from the store and rotates keys when due.
//!
//! Invariant: request handling reads the ring from memory only; the store is touched by
//! reloads (periodic, or on an unknown `kid` at most once a second) and rotations.

pub mod cache;
pub mod ring;

pub use cache::{KeyCache, KeyCacheError, KeyPolicy};
pub use ring::{KeyError, KeyRing, RefreshKey, SigningKey};
