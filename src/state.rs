//! [`AppState`]: everything a request handler needs, built once from the config and shared by
//! cheap clones. No mutable globals; the only interior mutability is in the key cache, the
//! blacklist and the draining flag, none of which is locked across an `.await`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::blacklist::Blacklist;
use crate::clock::Clock;
use crate::config::Config;
use crate::http::cookies::CookieSettings;
use crate::metrics::Metrics;
use crate::proxy::forward::Upstream;
use crate::proxy::route::Router;
use crate::sessions::Sessions;
use crate::store::metered::Metered;
use crate::store::AnyStore;

/// The store as the running gateway sees it: the configured one, metered.
pub type Store = Metered<AnyStore>;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub cfg: Config,
    pub router: Router,
    pub sessions: Sessions<Store>,
    pub blacklist: Option<Arc<Blacklist>>,
    pub metrics: Metrics,
    pub cookies: CookieSettings,
    pub upstream: Upstream,
    pub clock: Clock,
    draining: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        cfg: Config,
        sessions: Sessions<Store>,
        blacklist: Option<Arc<Blacklist>>,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        let router = Router::new(cfg.routes.clone());
        let cookies = CookieSettings::from_config(
            &cfg.cookie,
            &cfg.tokens.access_token.path,
            &cfg.tokens.refresh_token.renew_path,
        );
        let upstream = Upstream::new(cfg.server.upstream_timeout);
        Self(Arc::new(Inner {
            cfg,
            router,
            sessions,
            blacklist,
            metrics,
            cookies,
            upstream,
            clock,
            draining: AtomicBool::new(false),
        }))
    }

    /// Marks the instance as shutting down (readiness turns 503).
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }
}
