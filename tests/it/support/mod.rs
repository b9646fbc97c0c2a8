//! Support shared by every module of the integration test binary, one of each:
//!
//! - `db`: real databases (a fresh MySQL database per test, a throwaway `mariadbd` when none
//!   answers; SQLite in a temp dir);
//! - `upstream`: the echoing upstream app behind in-process gateways;
//! - `config`: the one gateway-config builder and `free_port` (shared with `benches/e2e.rs`);
//! - `gateway`: in-process gateways (`test_config`, `start_gateway`);
//! - `jar`: the one cookie jar (shared with `benches/e2e.rs`);
//! - `client`: the one HTTP client collecting a `Resp`, the cookie-jar `Browser` and the
//!   `AdminClient`;
//! - `process`: the real `sessiongate` binary as a child process;
//! - `wire`: raw HTTP/1.1 exchanges, head readers and h2c clients;
//! - `front`: real nginx and Caddy as front proxies (forward auth).
//! - `legacy`: the original library's app (`tests/legacy`, Node) on a test database.

pub mod client;
pub mod config;
pub mod db;
pub mod front;
pub mod gateway;
pub mod jar;
pub mod legacy;
pub mod process;
pub mod upstream;
pub mod wire;

pub use client::{Browser, Resp};
pub use gateway::{start_gateway, test_config};
pub use upstream::TestUpstream;
