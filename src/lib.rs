//! sessiongate: a reverse-proxy authentication gateway.
//!
//! The library holds everything; `main.rs` only wires the CLI to [`cli::run`].
//! See ARCHITECTURE.md for the code map and the invariants each module keeps.
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
pub mod gateway;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod session;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod store;
