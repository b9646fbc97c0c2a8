//! The proxy path: route matching and path normalisation (`route.rs`, pure), header hygiene
//! (`headers.rs`, pure) and forwarding to upstreams (`forward.rs`).

pub mod forward;
pub mod headers;
pub mod route;
