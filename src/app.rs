//! Assembly: from a validated [`Config`] to a running gateway — store, key cache, blacklist,
//! state, bringing the store into service (`startup.rs`: migrations, keys; MySQL retried in the
//! background while the gateway serves), the public and admin listeners, the jobs — and the
//! orderly shutdown
//! (stop accepting, drain for `shutdown_grace_secs`, stop the jobs, close the store).
//!
//! [`start_on`] takes bound listeners and a [`Clock`], so tests run a real gateway on port 0
//! and move time forward without sleeping.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::blacklist::Blacklist;
use crate::clock::Clock;
use crate::config::Config;
use crate::jobs::Jobs;
use crate::keys::{KeyCache, KeyPolicy};
use crate::metrics::Metrics;
use crate::server::{self, Limits};
use crate::sessions::{SessionSettings, Sessions};
use crate::startup;
use crate::state::AppState;
use crate::store;
use crate::store::metered::Metered;

/// A running gateway.
pub struct Gateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Begins the shutdown sequence; [`Gateway::wait`] returns when it is over.
    pub fn shutdown(&self) {
        self.state.start_draining();
        let _ = self.stop.send(true);
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown();
        self.wait().await;
    }
}

/// Binds the configured addresses and starts.
pub async fn start(cfg: Config, clock: Clock) -> anyhow::Result<Gateway> {
    let public = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding server.listen {}", cfg.server.listen))?;
    let admin = TcpListener::bind(cfg.server.admin_listen)
        .await
        .with_context(|| format!("binding server.admin_listen {}", cfg.server.admin_listen))?;
    start_on(cfg, clock, public, admin).await
}

/// Builds the state and serves on the given listeners. The store is brought into service
/// (migrations, keys, revocation feed: `startup.rs`) before serving for SQLite, where a
/// failure is returned; for MySQL in the background, retried until it answers, waiting at most
/// [`startup::START_WAIT`] here.
pub async fn start_on(
    cfg: Config,
    clock: Clock,
    public: TcpListener,
    admin: TcpListener,
) -> anyhow::Result<Gateway> {
    let metrics = Metrics::new();
    // Opening does not connect for MySQL (the pool connects lazily); a SQLite file that cannot
    // be opened fails here, before serving.
    let raw = store::open(&cfg.store).await.context("opening the store")?;
    let is_sqlite = matches!(raw, store::AnyStore::Sqlite(_));
    let store = Arc::new(Metered::new(raw, metrics.clone()));
    let policy = KeyPolicy::from_config(&cfg.tokens)?;
    // Loaded now for a static secret; otherwise by `startup` once the store answers.
    let keys = Arc::new(KeyCache::new(store.clone(), policy, clock.clone())?);
    let sessions = Sessions::new(
        store.clone(),
        keys,
        SessionSettings::from_config(&cfg),
        clock.clone(),
    );
    let blacklist = cfg.tokens.access_token.blacklisting.then(|| {
        let retain = (cfg.tokens.access_token.validity_secs as i64) * 1000 + 60_000;
        Arc::new(Blacklist::new(retain))
    });
    let tls = match &cfg.server.tls {
        Some(t) => Some(server::tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let limits = Limits {
        max_connections: cfg.server.max_connections,
        max_connections_per_ip: cfg.server.max_connections_per_ip,
        header_read_timeout: cfg.server.header_read_timeout,
        idle_timeout: cfg.server.idle_timeout,
        grace: cfg.server.shutdown_grace,
    };
    let state = AppState::new(cfg, sessions, blacklist, metrics, clock);
    let (stop, stop_rx) = watch::channel(false);
    if is_sqlite {
        startup::attempt(&state).await?;
    } else {
        // Serve whether or not MySQL answers; wait for the first attempt (bounded) so that a
        // reachable store is in service before the first request.
        let (progress, mut progress_rx) = watch::channel(startup::Progress::FirstAttempt);
        tokio::spawn(startup::retry_until_ready(
            state.clone(),
            progress,
            stop_rx.clone(),
        ));
        let first_done = progress_rx.wait_for(|p| *p != startup::Progress::FirstAttempt);
        let _ = tokio::time::timeout(startup::START_WAIT, first_done).await;
    }
    let jobs = Jobs::start(state.clone()).await.context("starting jobs")?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let st = state.clone();
    let public_task = tokio::spawn(server::serve(
        public,
        tls,
        limits.clone(),
        Some(state.metrics.connections_closed_total.clone()),
        move |req, peer| crate::gateway::handle(st.clone(), req, peer),
        wait_stop(stop_rx.clone()),
    ));
    let st = state.clone();
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(server::serve(
        admin,
        None,
        Limits {
            max_connections: 256,
            max_connections_per_ip: 0,
            ..limits
        },
        None,
        move |req, _| crate::admin::handle(st.clone(), req),
        wait_stop(admin_stop_rx),
    ));
    let st = state.clone();
    let task = tokio::spawn(async move {
        let _ = public_task.await;
        // The admin listener outlives the public one so probes see "draining" until the end.
        let _ = admin_stop.send(true);
        let _ = admin_task.await;
        jobs.stop().await;
        st.sessions
            .store()
            .inner()
            .close(std::time::Duration::from_secs(5))
            .await;
        tracing::info!("stopped");
    });
    tracing::info!(public = %public_addr, admin = %admin_addr, "sessiongate listening");
    Ok(Gateway {
        public_addr,
        admin_addr,
        state,
        stop,
        task,
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives in between is not lost (nor does it
/// kill the process with the default action).
pub fn termination_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            let (Ok(mut term), Ok(mut int)) = handlers else {
                std::future::pending::<()>().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `sessiongate serve`: start, wait for a signal, shut down. The signal handlers are installed
/// before the listeners are bound, so a SIGTERM sent as soon as the gateway answers still
/// drains and exits 0.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let signalled = termination_signal();
    let gw = start(cfg, Clock::system()).await?;
    signalled.await;
    tracing::info!("termination signal received; draining");
    gw.stop().await;
    Ok(())
}
