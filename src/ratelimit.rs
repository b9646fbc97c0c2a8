//! Per-client-address rate limits (`[rate_limits]`): one token bucket per address for each
//! limited endpoint (refresh, logout, session creation, forward-auth misses), with `governor`'s
//! keyed GCRA limiter. The address is the client's after `server.trusted_proxies` (the caller
//! resolves it); IPv6 addresses are keyed by their /64, the block one client usually holds.
//!
//! Memory is bounded under address spraying: when an endpoint tracks more than
//! `rate_limits.max_addresses` addresses, the ones whose bucket is full again are forgotten;
//! if more than half the bound are still busy, the endpoint's table starts afresh (a sprayer
//! that big could refill its buckets by spraying anyway). Each sweep happens at most once per
//! `max_addresses / 2` new addresses, so the cost stays amortised constant.
//!
//! Refusals are `Reject::RateLimited` (429 with `Retry-After`, chosen in `error.rs`), counted
//! in `rate_limited_total{endpoint}`. Off by default (`rate_limits.enabled`).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::{Bucket, RateLimitsConfig};
use crate::error::Reject;
use crate::metrics::Metrics;

/// The limited endpoints (their `rate_limited_total` label).
pub use crate::metrics::RateLimitedEndpoint as Endpoint;

/// The rate limits of one process (shared by every config generation).
pub struct RateLimits {
    /// One per [`Endpoint`], in `Endpoint::ALL` order; `None` when rate limiting is off.
    limiters: Option<[Limiter; 4]>,
    metrics: Metrics,
}

struct Limiter {
    quota: Quota,
    max_addresses: usize,
    table: ArcSwap<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limiter {
    fn new(bucket: Bucket, max_addresses: usize) -> Self {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(bucket.per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(bucket.burst).unwrap_or(one));
        Self {
            quota,
            max_addresses,
            table: ArcSwap::from_pointee(DefaultKeyedRateLimiter::keyed(quota)),
        }
    }

    /// `Err(seconds to wait)` when `key`'s bucket is empty.
    fn check(&self, key: IpAddr) -> Result<(), u64> {
        let table = self.table.load();
        let result = table.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Whole seconds, rounded up: waiting that long always finds a token.
            (wait.as_millis().div_ceil(1000) as u64).max(1)
        });
        if table.len() > self.max_addresses {
            self.sweep(&table);
        }
        result
    }

    /// Forgets idle addresses; starts afresh when that is not enough.
    fn sweep(&self, table: &DefaultKeyedRateLimiter<IpAddr>) {
        table.retain_recent();
        if table.len() > self.max_addresses / 2 {
            self.table
                .store(DefaultKeyedRateLimiter::keyed(self.quota).into());
            tracing::warn!(
                max_addresses = self.max_addresses,
                "rate limits: more busy client addresses than rate_limits.max_addresses; the table starts afresh"
            );
        } else {
            table.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.table.load().len()
    }
}

/// The key an address is limited under: IPv4 as is (also when IPv4-mapped), IPv6 by /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

impl RateLimits {
    pub fn new(cfg: &RateLimitsConfig, metrics: Metrics) -> Self {
        let max = cfg.max_addresses;
        let limiters = cfg.enabled.then(|| {
            [
                Limiter::new(cfg.refresh, max),
                Limiter::new(cfg.logout, max),
                Limiter::new(cfg.session_create, max),
                Limiter::new(cfg.forward_auth, max),
            ]
        });
        Self { limiters, metrics }
    }

    fn limiter(&self, endpoint: Endpoint) -> Option<&Limiter> {
        let limiters = self.limiters.as_ref()?;
        Some(match endpoint {
            Endpoint::Refresh => &limiters[0],
            Endpoint::Logout => &limiters[1],
            Endpoint::SessionCreate => &limiters[2],
            Endpoint::ForwardAuth => &limiters[3],
        })
    }

    /// Takes a token from `client`'s bucket for `endpoint`; an empty bucket is
    /// [`Reject::RateLimited`] (counted). Always `Ok` when rate limiting is off.
    pub fn check(&self, endpoint: Endpoint, client: IpAddr) -> Result<(), Reject> {
        let Some(limiter) = self.limiter(endpoint) else {
            return Ok(());
        };
        limiter.check(key_of(client)).map_err(|secs| {
            self.metrics.rate_limited(endpoint);
            Reject::RateLimited(secs)
        })
    }

    /// How many client addresses `endpoint` tracks now (0 when off).
    pub fn tracked(&self, endpoint: Endpoint) -> usize {
        self.limiter(endpoint).map_or(0, Limiter::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(per_minute: u32, burst: u32, max_addresses: usize) -> RateLimitsConfig {
        let bucket = Bucket { per_minute, burst };
        RateLimitsConfig {
            enabled: true,
            max_addresses,
            refresh: bucket,
            logout: bucket,
            session_create: bucket,
            forward_auth: bucket,
        }
    }

    fn limits(per_minute: u32, burst: u32, max_addresses: usize) -> RateLimits {
        RateLimits::new(&cfg(per_minute, burst, max_addresses), Metrics::new())
    }

    #[test]
    fn a_burst_is_cut_per_address_and_endpoint() {
        let l = limits(1, 3, 1000);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(Endpoint::Refresh, a).is_ok());
        }
        match l.check(Endpoint::Refresh, a) {
            Err(Reject::RateLimited(secs)) => assert!((1..=60).contains(&secs), "{secs}"),
            other => panic!("{other:?}"),
        }
        assert!(l.check(Endpoint::Refresh, b).is_ok(), "another address");
        assert!(l.check(Endpoint::Logout, a).is_ok(), "another endpoint");
    }

    #[test]
    fn off_limits_nothing() {
        let cfg = RateLimitsConfig {
            enabled: false,
            ..cfg(1, 1, 100)
        };
        let l = RateLimits::new(&cfg, Metrics::new());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(l.check(Endpoint::Refresh, a).is_ok());
        }
        assert_eq!(l.tracked(Endpoint::Refresh), 0);
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let l = limits(1, 1, 1000);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check(Endpoint::Refresh, a).is_ok());
        assert!(l.check(Endpoint::Refresh, b).is_err(), "same /64");
        assert!(l.check(Endpoint::Refresh, c).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.check(Endpoint::Refresh, mapped).is_ok());
        assert!(l.check(Endpoint::Refresh, v4).is_err(), "mapped is the v4");
    }

    /// 100k distinct addresses (each spending its whole burst, so none is idle) never make
    /// the table hold more than `max_addresses`.
    #[test]
    fn address_spraying_stays_bounded() {
        let max = 10_000;
        let l = limits(1, 1, max);
        let mut peak = 0;
        for i in 0..100_000u32 {
            let ip = IpAddr::V4((0x0a00_0000 + i).into());
            let _ = l.check(Endpoint::Refresh, ip);
            peak = peak.max(l.tracked(Endpoint::Refresh));
        }
        assert!(peak <= max + 1, "{peak}");
        assert!(l.tracked(Endpoint::Refresh) <= max);
    }
}
