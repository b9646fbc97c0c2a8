//! [`AppState`]: everything a request handler needs, shared by cheap clones. No mutable
//! globals; the only interior mutability is in the key cache (a std `RwLock`), the
//! verified-token cache (quick_cache's sharded locks), the blacklist (std locks), the draining
//! flag, the metrics and the test clock's offset (atomics), and the store's own pool or
//! connection lock; no std lock is held across an `.await`.
//!
//! An `AppState` is one *generation*: the parts built from the config (`cfg`, `router`,
//! `cookies`, `upstream`) are fixed for its life, while the long-lived parts (`sessions` with
//! the store, key cache, verified-token cache and blacklist, `metrics`, `clock`, `tracer`, the
//! draining flag) are shared by every generation of the process. A config reload builds the next
//! generation with [`AppState::next_generation`]; [`Live`] holds the current one, and each
//! request loads it once (lock-free), so a request that started under the old config
//! finishes under it.
//!
//! Session operations are not here: they are [`Sessions`]'.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::cookies::CookieSettings;
use crate::metrics::Metrics;
use crate::otel::Tracer;
use crate::proxy::forward::Upstream;
use crate::proxy::route::Router;
use crate::ratelimit::RateLimits;
use crate::sessions::Sessions;
use crate::store::{AnyStore, Guarded};

/// The store as the running gateway sees it: the configured one, bounded and metered.
pub type Store = Guarded<AnyStore>;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub cfg: Config,
    pub router: Router,
    pub sessions: Sessions<Store>,
    pub metrics: Metrics,
    pub cookies: CookieSettings,
    pub upstream: Upstream,
    pub clock: Clock,
    /// Per-client-address buckets (`[rate_limits]`); shared by every generation.
    pub rate_limits: Arc<RateLimits>,
    /// The trace exporter's handle (`[tracing]`), shared by every generation; `None`: off.
    pub tracer: Option<Tracer>,
    /// `[legacy]`: the original library's sessions being taken over (process-scoped).
    pub legacy: Option<Arc<crate::legacy::Legacy>>,
    /// Shared by every generation.
    draining: Arc<AtomicBool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(cfg: Config, sessions: Sessions<Store>, metrics: Metrics, clock: Clock) -> Self {
        let router = Router::new(cfg.routes.clone());
        let cookies = CookieSettings::from_config(
            &cfg.cookie,
            &cfg.tokens.access_token.path,
            &cfg.tokens.refresh_token.renew_path,
        );
        let upstream = Upstream::new(cfg.server.upstream_timeout, cfg.server.cores());
        let rate_limits = Arc::new(RateLimits::new(&cfg.rate_limits, metrics.clone()));
        let tracer = Tracer::start(&cfg.tracing, metrics.clone());
        Self(Arc::new(Inner {
            cfg,
            router,
            sessions,
            metrics,
            cookies,
            upstream,
            clock,
            rate_limits,
            tracer,
            legacy: None,
            draining: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// The generation that follows this one: built from `cfg` (already stripped of
    /// restart-only changes, see `config::reload`), sharing this one's sessions (store, keys,
    /// blacklist), metrics, clock and draining flag. The upstream client (and its connection
    /// pool) is kept while `server.upstream_timeout_secs` is unchanged.
    pub fn next_generation(&self, cfg: Config) -> Self {
        let router = Router::new(cfg.routes.clone());
        let cookies = CookieSettings::from_config(
            &cfg.cookie,
            &cfg.tokens.access_token.path,
            &cfg.tokens.refresh_token.renew_path,
        );
        let upstream = if cfg.server.upstream_timeout == self.cfg.server.upstream_timeout {
            self.upstream.clone()
        } else {
            Upstream::new(cfg.server.upstream_timeout, cfg.server.cores())
        };
        Self(Arc::new(Inner {
            cfg,
            router,
            sessions: self.sessions.clone(),
            metrics: self.metrics.clone(),
            cookies,
            upstream,
            clock: self.clock.clone(),
            rate_limits: self.rate_limits.clone(),
            tracer: self.tracer.clone(),
            legacy: self.legacy.clone(),
            draining: self.draining.clone(),
        }))
    }

    /// The first generation with the `[legacy]` takeover (`app.rs`, before any clone).
    pub fn with_legacy(self, legacy: Option<Arc<crate::legacy::Legacy>>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.legacy = legacy;
                Self(Arc::new(inner))
            }
            Err(shared) => Self(shared),
        }
    }

    /// Marks the instance as shutting down (readiness turns 503).
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// Why access tokens cannot be checked yet, if they cannot: the signing keys have not been
    /// loaded (they live in the store, which has not been reachable since start), or, with
    /// blacklisting, the revocation feed has not been read (a revoked session would pass).
    /// `None` once the store has been brought into service (see `startup.rs`), and from the
    /// start with a static `secret_file` and no blacklisting.
    pub fn verification_blocker(&self) -> Option<&'static str> {
        if !self.sessions.keys().is_loaded() {
            return Some(
                "signing keys are not loaded: the store has not been reachable since start",
            );
        }
        match self.sessions.blacklist() {
            Some(bl) if !bl.is_synced() => Some(
                "the revocation feed has not been read: the store has not been reachable since start",
            ),
            _ => None,
        }
    }
}

/// The current generation of [`AppState`], replaceable while requests run.
#[derive(Clone)]
pub struct Live(Arc<ArcSwap<Inner>>);

impl Live {
    pub fn new(first: &AppState) -> Self {
        Self(Arc::new(ArcSwap::new(first.0.clone())))
    }

    /// The generation to serve one request with (a lock-free load).
    pub fn current(&self) -> AppState {
        AppState(self.0.load_full())
    }

    /// Makes `next` the generation new requests see.
    pub fn replace(&self, next: &AppState) {
        self.0.store(next.0.clone());
    }
}
