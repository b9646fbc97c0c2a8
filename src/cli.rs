//! The command line (clap): parses arguments and runs one command, returning the process exit
//! code. `main.rs` only calls [`run`].
//!
//! Exit codes follow sysexits: 0 ok, 64 bad configuration or usage, 69 store unavailable (for
//! `serve`: only a SQLite file that cannot be opened or migrated, or a port that cannot be
//! bound; an unreachable MySQL is retried instead), 70 internal error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::keys::{KeyCache, KeyPolicy};
use crate::store::{self, SessionStore};

pub const EXIT_CONFIG: u8 = 64;
pub const EXIT_UNAVAILABLE: u8 = 69;
pub const EXIT_SOFTWARE: u8 = 70;

#[derive(Debug, Parser)]
#[command(
    name = "sessiongate",
    version,
    about = "Reverse-proxy authentication gateway"
)]
pub struct Cli {
    /// Configuration file, also accepted before the subcommand (`sessiongate --config f serve`).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command, with a `--config` given before the subcommand moved into it. Given on
    /// both sides it must name the same file; `demo` reads no configuration file.
    pub fn into_command(self) -> Result<Command, String> {
        let mut command = self.command;
        let Some(path) = self.config else {
            return Ok(command);
        };
        match command.config_arg() {
            None => return Err("--config does not apply to this command".into()),
            Some(ConfigArg {
                config: Some(other),
            }) if *other != path => {
                return Err(format!(
                    "--config is given twice ({} and {})",
                    path.display(),
                    other.display()
                ))
            }
            Some(arg) => arg.config = Some(path),
        }
        Ok(command)
    }
}

#[derive(Debug, clap::Args, Clone)]
pub struct ConfigArg {
    /// Configuration file (default: $SESSIONGATE_CONFIG, else ./gateway.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (applies pending migrations unless store.auto_migrate = false; a MySQL
    /// store that is down at start is retried in the background while the gateway serves).
    Serve(ConfigArg),
    /// Validate the configuration and print the effective values (secrets masked).
    CheckConfig(ConfigArg),
    /// Apply pending store migrations (idempotent).
    Migrate(ConfigArg),
    /// Run the gateway in front of a built-in demo app on the embedded store.
    Demo(crate::demo::DemoArgs),
    /// Signing-key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

impl Command {
    fn config_arg(&mut self) -> Option<&mut ConfigArg> {
        match self {
            Command::Serve(a) | Command::CheckConfig(a) | Command::Migrate(a) => Some(a),
            Command::Keys {
                command: KeysCommand::Rotate(a),
            } => Some(a),
            Command::Demo(_) => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new access-token signing key now.
    Rotate(ConfigArg),
}

/// Parses `std::env::args` and runs the command.
pub fn run() -> ExitCode {
    let command = match Cli::parse().into_command() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    runtime.block_on(dispatch(command))
}

fn load_config(arg: &ConfigArg) -> Result<Config, ExitCode> {
    let path = config::load::config_path(arg.config.clone());
    config::load(Some(&path)).map_err(|e| {
        eprintln!("{}: invalid configuration:", path.display());
        for p in &e.problems {
            eprintln!("{p}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn open_migrated(cfg: &Config, migrate: bool) -> Result<Arc<store::AnyStore>, ExitCode> {
    let store = store::open(&cfg.store).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_UNAVAILABLE)
    })?;
    if migrate {
        match store.migrate().await {
            Ok(n) => eprintln!("migrations applied: {n}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(EXIT_UNAVAILABLE));
            }
        }
    }
    Ok(Arc::new(store))
}

async fn dispatch(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Demo(args) => crate::demo::run(args)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_UNAVAILABLE)
            }),
        Command::Serve(arg) => {
            async {
                let cfg = load_config(&arg)?;
                let log = init_logging(&cfg.logging);
                let reload = crate::app::Reloading {
                    path: config::load::config_path(arg.config.clone()),
                    log,
                };
                crate::app::serve(cfg, reload).await.map_err(|e| {
                    tracing::error!(error = %format!("{e:#}"), "sessiongate failed");
                    eprintln!("error: {e:#}");
                    ExitCode::from(EXIT_UNAVAILABLE)
                })?;
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
        Command::CheckConfig(arg) => load_config(&arg).map(|cfg| {
            print!("{}", config::render_masked(&cfg));
            ExitCode::SUCCESS
        }),
        Command::Migrate(arg) => {
            async {
                let cfg = load_config(&arg)?;
                open_migrated(&cfg, true).await?;
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
        Command::Keys {
            command: KeysCommand::Rotate(arg),
        } => {
            async {
                let cfg = load_config(&arg)?;
                let store = open_migrated(&cfg, cfg.store.auto_migrate).await?;
                let fail = |e: &dyn std::fmt::Display, code: u8| {
                    eprintln!("error: {e}");
                    ExitCode::from(code)
                };
                let policy =
                    KeyPolicy::from_config(&cfg.tokens).map_err(|e| fail(&e, EXIT_CONFIG))?;
                let cache = KeyCache::load(store, policy, Clock::system())
                    .await
                    .map_err(|e| fail(&e, EXIT_UNAVAILABLE))?;
                let kid = cache
                    .force_rotate()
                    .await
                    .map_err(|e| fail(&e, EXIT_UNAVAILABLE))?;
                println!("signing key is now {kid}");
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
    };
    result.unwrap_or_else(|code| code)
}

/// Installs the tracing subscriber: `logging.level` as the filter (`RUST_LOG` wins when set),
/// `logging.format` pretty or JSON lines. Returns the handle a config reload changes the level
/// with.
pub fn init_logging(cfg: &crate::config::LoggingConfig) -> LogLevel {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let from_env = EnvFilter::try_from_default_env().ok();
    let pinned = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (json, pretty) = match cfg.format {
        crate::config::LogFormat::Json => (
            Some(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        crate::config::LogFormat::Pretty => (None, Some(fmt::layer().with_writer(std::io::stderr))),
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
