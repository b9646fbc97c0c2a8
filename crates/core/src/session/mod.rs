//! The pure session core: access tokens (`access.rs`), refresh tokens (`refresh.rs`), the
//! rotation rules (`rotation.rs`) and anti-CSRF (`csrf.rs`).
//!
//! Invariant (enforced by this crate's dependencies): no tokio, no hyper, no SQL, no clock, no
//! randomness source. Time comes in as `now` (epoch ms), keys come in as a
//! [`crate::keys::KeyRing`] value, a root token's secret as bytes. This is where most unit
//! tests and benches live.

pub mod access;
pub mod csrf;
pub mod refresh;
pub mod rotation;
