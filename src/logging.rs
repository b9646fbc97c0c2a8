//! Process logging: installs the tracing subscriber from `[logging]` and hands back the
//! [`LogLevel`] handle a config reload changes the level with. Used by `cli` (`serve`) and by
//! `demo`, which must not call into `cli`.

use crate::config::{LogFormat, LoggingConfig};

/// Installs the tracing subscriber: `logging.level` as the filter (`RUST_LOG` wins when set),
/// `logging.format` pretty or JSON lines. Returns the handle a config reload changes the level
/// with.
pub fn init_logging(cfg: &LoggingConfig) -> LogLevel {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let from_env = EnvFilter::try_from_default_env().ok();
    let pinned = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (json, pretty) = match cfg.format {
        LogFormat::Json => (
            Some(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Pretty => (None, Some(fmt::layer().with_writer(std::io::stderr))),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(pretty)
        .try_init()
        .is_ok();
    LogLevel {
        handle: (installed && !pinned).then_some(handle),
    }
}

/// Changes the running process's log filter (`logging.level`, on a config reload). Inert
/// when `RUST_LOG` chose the filter or another subscriber was already installed.
#[derive(Clone)]
pub struct LogLevel {
    handle: Option<
        tracing_subscriber::reload::Handle<
            tracing_subscriber::EnvFilter,
            tracing_subscriber::Registry,
        >,
    >,
}

impl LogLevel {
    /// A handle that changes nothing.
    pub fn inert() -> Self {
        Self { handle: None }
    }

    /// Sets the filter to `level` (a tracing directive); `Ok(false)` when inert.
    pub fn set(&self, level: &str) -> Result<bool, String> {
        let Some(handle) = &self.handle else {
            return Ok(false);
        };
        let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())?;
        Ok(true)
    }
}
