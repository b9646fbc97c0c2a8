//! The integration test binary: every suite that goes through real sockets, a real upstream,
//! real MariaDB and SQLite, or the real `sessiongate` binary, one module per suite, with the
//! shared support in `support/`. One binary means the support is compiled once and linked
//! once, and every test name is `suite::test` (`cargo test --test it gateway_flows::`).
//!
//! All modules run in one process, in parallel: a test must not depend on process-wide state
//! (environment variables, a global tracing subscriber, the current directory). Tests that
//! measure a child process's memory or time a deadline take their numbers from the child or
//! from their own sockets, never from this process.

mod support;

mod admin_api;
mod browser;
mod claim_policies;
mod cli;
mod config_parity;
mod connection_metrics;
mod connections;
mod deploy_files;
mod deployment_edge;
mod docs;
mod events;
mod forward_auth;
mod fuzz_core;
mod gateway_flows;
mod header_props;
mod header_security;
mod header_tokens;
mod idle_memory;
mod keys;
mod layering;
mod legacy;
mod logs;
mod metrics_flow;
mod multi_instance;
mod mysql_tls;
mod path_props;
mod path_security;
mod rate_limits;
mod reload;
mod session_security;
mod startup;
mod store_conformance;
mod store_outage;
mod tracing_otlp;
mod transport;
