//! sessiongate: a reverse-proxy authentication gateway.
//!
//! The library holds everything; `main.rs` only wires the CLI to [`cli::run`].
//! See ARCHITECTURE.md for the code map and the invariants each module keeps.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod keys;
pub mod session;
pub mod sessions;
pub mod store;
