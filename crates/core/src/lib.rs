//! sessiongate's pure token core: access tokens (JWT mint and verify), refresh tokens (format,
//! MAC, child derivation), the rotation and theft rules, anti-CSRF, and the key ring (built
//! from stored key rows or a static secret, rotation due, pruning, JWKS).
//!
//! What this crate must not do, and cannot, because its Cargo.toml does not name the crates
//! that would allow it: no I/O (no tokio, no hyper, no SQL driver, no files, no sockets), no
//! clock (time comes in as `now`, epoch milliseconds: [`Millis`]) and no randomness source
//! (fresh key material and root-token secrets come in as bytes the caller drew). Everything
//! here is a function of its arguments, which is what makes it unit-testable and benchable
//! without a runtime. The gateway (the `sessiongate` crate) re-exports these modules under
//! their old paths (`sessiongate::session`, `sessiongate::keys::ring`).
//!
//! The domain enums configuration chooses from live here, next to the rule that reads them
//! ([`SigningAlgorithm`], [`AntiCsrfMode`], [`TheftAction`]); their serde names are the
//! configuration spellings, and `sessiongate::config` imports them.
#![forbid(unsafe_code)]

pub mod keys;
pub mod legacy;
pub mod session;

pub use keys::ring::SigningAlgorithm;
pub use session::csrf::AntiCsrfMode;
pub use session::rotation::TheftAction;

/// Milliseconds since the Unix epoch: the one time type of the core.
pub type Millis = i64;
