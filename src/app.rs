//! Assembly: from a validated [`Config`] to a running gateway — store, key cache, blacklist,
//! state, bringing the store into service (`startup.rs`: migrations, keys; MySQL retried in the
//! background while the gateway serves), the public and admin listeners, the jobs — and the
//! orderly shutdown
//! (stop accepting, drain for `shutdown_grace_secs`, stop the jobs, close the store).
//!
//! [`start_on`] takes bound listeners and a [`Clock`], so tests run a real gateway on port 0
//! and move time forward without sleeping.
//!
//! Reload: the handlers serve each request with the generation of [`AppState`] current when
//! it arrived ([`Live`]). [`Reloader::apply`] (SIGHUP in [`serve`]) turns a newly loaded
//! config into the next generation: restart-only keys keep their running value with one
//! error line each (`config::reload` lists them and says why), an invalid file changes
//! nothing and is logged one problem per line, and the result is counted in
//! `sessiongate_config_reloads_total{result}`. The TLS certificate and key are read again on
//! every reload and whenever their contents change (polled every [`TLS_POLL`], or
//! `$SG_TLS_POLL_MS` milliseconds, a knob for tests); new connections get the new certificate.
//! The jobs keep the first generation: they read only the store, keys, blacklist, metrics,
//! clock and `tokens.*`, all restart-only or shared.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::blacklist::Blacklist;
use crate::clock::Clock;
use crate::config::{self, Config, ConfigError};
use crate::events::Events;
use crate::jobs::Jobs;
use crate::keys::{KeyCache, KeyPolicy};
use crate::logging::LogLevel;
use crate::metrics::{Listener, Metrics, ReloadResult};
use crate::server::{self, Limits, TlsSwap};
use crate::sessions::{SessionSettings, Sessions};
use crate::startup;
use crate::state::{AppState, Live};
use crate::store;
use crate::store::Guarded;

/// How often the TLS certificate and key files are checked for changes.
pub const TLS_POLL: Duration = Duration::from_secs(5);

/// A running gateway.
pub struct Gateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The first generation (its shared parts — sessions, metrics, clock… — are every
    /// generation's); [`Gateway::current`] is the one serving now.
    pub state: AppState,
    reloader: Reloader,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// The generation new requests are served with.
    pub fn current(&self) -> AppState {
        self.reloader.live.current()
    }

    /// A handle that applies new configurations to this gateway.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

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
    let store = Arc::new(Guarded::new(raw, metrics.clone()));
    let policy = KeyPolicy::from_config(&cfg.tokens)?;
    // Loaded now for a static secret; otherwise by `startup` once the store answers.
    let keys = Arc::new(KeyCache::new(store.clone(), policy, clock.clone())?);
    let blacklist = cfg.tokens.access_token.blacklisting.then(|| {
        let retain = (cfg.tokens.access_token.validity_secs as i64) * 1000 + 60_000;
        Arc::new(Blacklist::new(retain))
    });
    let sessions = Sessions::new(
        store.clone(),
        keys,
        SessionSettings::from_config(&cfg),
        clock.clone(),
        blacklist,
        metrics.clone(),
    );
    let sessions = match is_sqlite {
        true => sessions,
        false => sessions.with_store_runtime(tokio::runtime::Handle::current()),
    };
    let sessions = sessions.with_events(Events::start(&cfg.events, metrics.clone(), clock.clone()));
    let tls = match &cfg.server.tls {
        Some(t) => Some(TlsSwap::load(&t.cert, &t.key)?),
        None => None,
    };
    let limits = Limits {
        max_connections: cfg.server.max_connections,
        max_connections_per_ip: cfg.server.max_connections_per_ip,
        header_read_timeout: cfg.server.header_read_timeout,
        idle_timeout: cfg.server.idle_timeout,
        grace: cfg.server.shutdown_grace,
    };
    let legacy = crate::legacy::Legacy::open(&cfg, metrics.clone(), clock.clone())?
        .map(|l| Arc::new(l.with_store_runtime(tokio::runtime::Handle::current())));
    let state = AppState::new(cfg, sessions, metrics, clock).with_legacy(legacy);
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
    let live = Live::new(&state);
    let reloader = Reloader {
        live: live.clone(),
        tls: tls.clone(),
    };
    if let (Some(swap), Some(files)) = (&tls, &state.cfg.server.tls) {
        let seen = tls_fingerprint(&files.cert, &files.key).await;
        tokio::spawn(watch_tls_files(
            live.clone(),
            swap.clone(),
            seen,
            tls_poll_interval(),
            stop_rx.clone(),
        ));
    }

    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let cores = Arc::new(
        server::Cores::start(state.cfg.server.cores()).context("starting the core threads")?,
    );
    let workers = cores.len();
    let lv = live.clone();
    let public_task = tokio::spawn(server::serve(
        public,
        tls,
        limits.clone(),
        Some(state.metrics.listener(Listener::Public)),
        Some(cores),
        move |req, peer| crate::gateway::handle(lv.current(), req, peer),
        wait_stop(stop_rx.clone()),
    ));
    let lv = live.clone();
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(server::serve(
        admin,
        None,
        Limits {
            max_connections: 256,
            max_connections_per_ip: 0,
            ..limits
        },
        Some(state.metrics.listener(Listener::Admin)),
        None,
        move |req, peer| crate::admin::handle_from(lv.current(), req, peer),
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
    tracing::info!(public = %public_addr, admin = %admin_addr, workers, "sessiongate listening");
    Ok(Gateway {
        public_addr,
        admin_addr,
        state,
        reloader,
        stop,
        task,
    })
}

/// Applies new configurations to a running gateway (see the module doc).
#[derive(Clone)]
pub struct Reloader {
    live: Live,
    tls: Option<TlsSwap>,
}

impl Reloader {
    /// Applies the result of loading the configuration again from `origin` (a file path, for
    /// the log). Returns whether it was applied; `log` gets the new `logging.level`.
    pub fn apply(&self, loaded: Result<Config, ConfigError>, origin: &str, log: &LogLevel) -> bool {
        let current = self.live.current();
        let metrics = &current.metrics;
        let new = match loaded {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!(
                    file = origin,
                    "configuration reload refused, nothing changed; invalid configuration:"
                );
                for p in &e.problems {
                    tracing::error!("{p}");
                }
                metrics.config_reload(ReloadResult::Error);
                return false;
            }
        };
        let (next, kept) = config::reload::apply_live(&current.cfg, new);
        // The certificate first: one that cannot be used refuses the whole reload.
        if let (Some(swap), Some(files)) = (&self.tls, &next.server.tls) {
            if let Err(e) = swap.reload(&files.cert, &files.key) {
                tracing::error!(
                    file = origin,
                    "configuration reload refused, nothing changed; invalid configuration:"
                );
                tracing::error!("server.tls: {e:#}");
                metrics.config_reload(ReloadResult::Error);
                return false;
            }
        }
        for key in &kept {
            tracing::error!(key = *key, "{key} changed; restart to apply");
        }
        let level = next.logging.level.clone();
        self.live.replace(&current.next_generation(next));
        metrics.config_reload(ReloadResult::Ok);
        tracing::info!(
            file = origin,
            restart_only_changes = kept.len(),
            "configuration reloaded"
        );
        if let Err(e) = log.set(&level) {
            tracing::error!(error = %e, "logging.level not applied");
        }
        true
    }
}

/// `$SG_TLS_POLL_MS` milliseconds if set to a positive number, else [`TLS_POLL`].
fn tls_poll_interval() -> Duration {
    std::env::var("SG_TLS_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(TLS_POLL)
}

/// A digest of the certificate and key files' contents (`None` if one cannot be read).
async fn tls_fingerprint(cert: &std::path::Path, key: &std::path::Path) -> Option<[u8; 32]> {
    use sha2::Digest;
    let cert = tokio::fs::read(cert).await.ok()?;
    let key = tokio::fs::read(key).await.ok()?;
    let mut h = sha2::Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(&cert);
    h.update(&key);
    Some(h.finalize().into())
}

/// Reloads the TLS certificate and key when their contents change (cert-manager and similar
/// rewrite the files in place or swap a symlink; no signal needed). The paths are the current
/// generation's. A pair that does not load (say, the certificate written but not yet the key)
/// is logged and retried when the files change again.
async fn watch_tls_files(
    live: Live,
    swap: TlsSwap,
    mut seen: Option<[u8; 32]>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Some(files) = live.current().cfg.server.tls.clone() else {
            continue;
        };
        let now = tls_fingerprint(&files.cert, &files.key).await;
        if now == seen || now.is_none() {
            continue;
        }
        seen = now;
        match swap.reload(&files.cert, &files.key) {
            Ok(()) => tracing::info!(
                cert = %files.cert.display(),
                "TLS certificate files changed; new connections use the new certificate"
            ),
            Err(e) => tracing::error!(
                cert = %files.cert.display(),
                error = %format!("{e:#}"),
                "TLS certificate files changed but cannot be used; keeping the current certificate"
            ),
        }
    }
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

/// What `serve` reloads from on SIGHUP.
pub struct Reloading {
    /// The configuration file, read again with the same environment overrides.
    pub path: PathBuf,
    /// Where `logging.level` goes.
    pub log: LogLevel,
}

/// Calls `on_hangup` for every SIGHUP, from when this is called (so an early SIGHUP does not
/// kill the process with the default action). Never resolves.
fn hangups(on_hangup: impl Fn() + Send + 'static) -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        async move {
            let Ok(mut hup) = hup else {
                tracing::warn!("cannot listen for SIGHUP; reload disabled");
                return std::future::pending().await;
            };
            while hup.recv().await.is_some() {
                on_hangup();
            }
            std::future::pending().await
        }
    }
    #[cfg(not(unix))]
    {
        let _ = on_hangup;
        std::future::pending()
    }
}

/// `sessiongate serve`: start, reload on SIGHUP, wait for SIGTERM/SIGINT, shut down. The
/// signal handlers are installed before the listeners are bound, so a SIGTERM sent as soon as
/// the gateway answers still drains and exits 0, and an early SIGHUP does not kill it.
pub async fn serve(cfg: Config, reload: Reloading) -> anyhow::Result<()> {
    let signalled = termination_signal();
    let (hup_tx, mut hup_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let hup_task = tokio::spawn(hangups(move || {
        let _ = hup_tx.send(());
    }));
    let gw = start(cfg, Clock::system()).await?;
    let reloader = gw.reloader();
    let reload_task = tokio::spawn(async move {
        while hup_rx.recv().await.is_some() {
            tracing::info!(file = %reload.path.display(), "SIGHUP received; reloading the configuration");
            let path = reload.path.clone();
            let loaded = tokio::task::spawn_blocking(move || config::load(Some(&path)))
                .await
                .unwrap_or_else(|e| {
                    Err(ConfigError {
                        problems: vec![config::ConfigProblem::bare(
                            reload.path.display().to_string(),
                            format!("loading failed: {e}"),
                        )],
                    })
                });
            reloader.apply(loaded, &reload.path.display().to_string(), &reload.log);
        }
    });
    signalled.await;
    hup_task.abort();
    reload_task.abort();
    tracing::info!("termination signal received; draining");
    gw.stop().await;
    Ok(())
}
