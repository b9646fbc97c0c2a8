//! The command line (clap): parses arguments and runs one command, returning the process exit
//! code. `main.rs` only calls [`run`].
//!
//! Exit codes follow sysexits: 0 ok, 64 bad configuration or usage, 69 store unavailable (for
//! `serve`: only a SQLite file that cannot be opened or migrated, or a port that cannot be
//! bound; an unreachable MySQL is retried instead), 70 internal error. `health` is a probe for container health checks: 0 ready, 1 not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::keys::{KeyCache, KeyPolicy};
use crate::store::{self, AnyStore, Guarded, Maintenance};

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
    Migrate(MigrateArgs),
    /// Probe a running gateway's readiness (`GET /readyz` on the admin listener): exit 0 on
    /// 200, 1 otherwise. For container health checks in images without curl.
    Health(HealthArgs),
    /// Run the gateway in front of a built-in demo app on the embedded store.
    Demo(crate::demo::DemoArgs),
    /// Signing-key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The takeover of the original library's sessions (`[legacy]`).
    Legacy {
        #[command(subcommand)]
        command: LegacyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LegacyCommand {
    /// Print how many of the library's sessions remain unexpired and when the last one was
    /// converted (the `[legacy]` section can go once none remain).
    Status(ConfigArg),
}

#[derive(Debug, clap::Args, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// First create the MySQL database named in store.url if it does not exist
    /// (`CREATE DATABASE IF NOT EXISTS`; the user needs the CREATE privilege).
    #[arg(long)]
    pub create_database: bool,
}

#[derive(Debug, clap::Args, Clone)]
pub struct HealthArgs {
    /// The readiness URL to probe (plain http). Default: `/readyz` on the configuration's
    /// server.admin_listen (a wildcard address probed on loopback), else
    /// http://127.0.0.1:9090/readyz when no configuration is readable.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up (not ready) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// What `health` probes without `--url` and without a readable configuration.
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:9090/readyz";

impl Command {
    fn config_arg(&mut self) -> Option<&mut ConfigArg> {
        match self {
            Command::Serve(a) | Command::CheckConfig(a) => Some(a),
            Command::Migrate(m) => Some(&mut m.config),
            Command::Health(h) => Some(&mut h.config),
            Command::Keys {
                command: KeysCommand::Rotate(a),
            } => Some(a),
            Command::Legacy {
                command: LegacyCommand::Status(a),
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

async fn open_migrated(cfg: &Config, migrate: bool) -> Result<Arc<Guarded<AnyStore>>, ExitCode> {
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
    Ok(Arc::new(Guarded::unmetered(store)))
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
                let log = crate::logging::init_logging(&cfg.logging);
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
        Command::Health(args) => Ok(health(&args).await),
        Command::Migrate(MigrateArgs {
            config: arg,
            create_database,
        }) => {
            async {
                let cfg = load_config(&arg)?;
                if create_database {
                    match store::create_database(&cfg.store).await {
                        Ok(Some(name)) => eprintln!("database {name} exists"),
                        Ok(None) => eprintln!("SQLite: the database file is created when opened"),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return Err(ExitCode::from(EXIT_UNAVAILABLE));
                        }
                    }
                }
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
        Command::Legacy {
            command: LegacyCommand::Status(arg),
        } => {
            async {
                let cfg = load_config(&arg)?;
                let fail = |e: &dyn std::fmt::Display, code: u8| {
                    eprintln!("error: {e}");
                    ExitCode::from(code)
                };
                if cfg.legacy.is_none() {
                    return Err(fail(&"no [legacy] section is on", EXIT_CONFIG));
                }
                // The conversions table is the store's (migration 2).
                let store = open_migrated(&cfg, cfg.store.auto_migrate).await?;
                let legacy = crate::legacy::Legacy::open(
                    &cfg,
                    crate::metrics::Metrics::new(),
                    Clock::system(),
                )
                .map_err(|e| fail(&e, EXIT_CONFIG))?
                .ok_or_else(|| fail(&"no [legacy] section is on", EXIT_CONFIG))?;
                let status = legacy.status().await;
                legacy.close().await;
                store.inner().close(std::time::Duration::from_secs(5)).await;
                let status = status.map_err(|e| fail(&e, EXIT_UNAVAILABLE))?;
                println!("legacy sessions remaining: {}", status.remaining);
                match status
                    .last_conversion
                    .and_then(chrono::DateTime::from_timestamp_millis)
                {
                    Some(t) => println!("last legacy conversion: {}", t.to_rfc3339()),
                    None => println!("last legacy conversion: never"),
                }
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
    };
    result.unwrap_or_else(|code| code)
}

/// `sessiongate health`: one `GET` of the readiness URL over plain TCP (HTTP/1.1), bounded by
/// `--timeout-secs`. Prints the status and body; exit 0 on 200, 1 on anything else.
async fn health(args: &HealthArgs) -> ExitCode {
    let url = match &args.url {
        Some(u) => u.clone(),
        None => {
            let path = config::load::config_path(args.config.config.clone());
            match config::load(Some(&path)) {
                Ok(cfg) => readyz_url(cfg.server.admin_listen),
                Err(_) => DEFAULT_HEALTH_URL.to_string(),
            }
        }
    };
    let limit = std::time::Duration::from_secs(args.timeout_secs.max(1));
    match tokio::time::timeout(limit, probe(&url)).await {
        Ok(Ok((status, body))) if status == http::StatusCode::OK => {
            println!("{url}: {status} {body}");
            ExitCode::SUCCESS
        }
        Ok(Ok((status, body))) => {
            println!("{url}: not ready: {status} {body}");
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            println!("{url}: not ready: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            println!("{url}: not ready: no answer within {} s", limit.as_secs());
            ExitCode::from(1)
        }
    }
}

/// `http://<admin_listen>/readyz`, with a wildcard address replaced by loopback.
pub fn readyz_url(admin: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match admin.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/readyz",
        std::net::SocketAddr::new(ip, admin.port())
    )
}

/// One HTTP/1.1 `GET` (no TLS, no redirects); the status and up to 4 KiB of body as text.
async fn probe(url: &str) -> Result<(http::StatusCode, String), String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be probed".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "sessiongate-health")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 4096)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}
