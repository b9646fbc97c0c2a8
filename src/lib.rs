//! sessiongate: a reverse-proxy authentication gateway.
//!
//! The library holds everything but the pure token core, which is its own crate
//! (`crates/core`, `sessiongate_core`: no I/O, no clock, no randomness source, enforced by its
//! dependencies) and is re-exported here under its old paths ([`session`], [`keys::ring`],
//! [`clock::Millis`], the stored-key rows in [`store`] and the domain enums in [`config`]).
//! `main.rs` only wires the CLI to [`cli::run`]. See ARCHITECTURE.md for the code map and
//! the invariants each module keeps, and the tests or compile-time boundary enforcing each.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod blacklist;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod legacy;
pub mod logging;
pub mod metrics;
pub mod otel;
pub mod proxy;
pub mod ratelimit;
pub mod server;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod store;

pub use sessiongate_core::session;
