//! The typed `[events]` and `[rate_limits]` sections: security events (logged, optionally
//! posted to a webhook by `crate::events`) and per-client-address token buckets
//! (`crate::ratelimit`). Plain data, valid by construction (see `validate/security.rs`).

use std::time::Duration;

use super::SecretFile;

/// `[events]`: every security event is logged; with `webhook_url` it is also posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsConfig {
    pub webhook: Option<Webhook>,
    /// Events waiting for the webhook; one more is dropped (and counted).
    pub queue_capacity: usize,
    /// Further attempts after a failed delivery.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles with each further one (capped at 60 s).
    pub retry_base: Duration,
}

/// Where events are posted, and the key that signs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: http::Uri,
    /// `None`: the requests carry no signature.
    pub secret: Option<SecretFile>,
}

/// `[rate_limits]`: a token bucket per client address for each limited endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    /// Client addresses tracked per endpoint before the idle ones are forgotten.
    pub max_addresses: usize,
    pub refresh: Bucket,
    pub logout: Bucket,
    pub session_create: Bucket,
    pub forward_auth: Bucket,
}

/// One token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub per_minute: u32,
    pub burst: u32,
}
