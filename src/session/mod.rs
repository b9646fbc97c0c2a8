//! The pure session core: access tokens (`access.rs`), refresh tokens (`refresh.rs`), the
//! rotation rules (`rotation.rs`) and anti-CSRF (`csrf.rs`).
//!
//! Invariant: no tokio, no hyper, no SQL, no clock. Time comes in as `now` (epoch ms), keys
//! come in as a [`crate::keys::KeyRing`] value. This is where most unit tests and benches live.

pub mod access;
pub mod csrf;
pub mod refresh;
pub mod rotation;
