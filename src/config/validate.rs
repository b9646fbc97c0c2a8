//! Validation: the pure step from [`RawConfig`] to the typed [`Config`].
//!
//! Owns every rule of SPEC §3 (defaults, ranges, formats, cross-key constraints) and reports
//! all broken rules at once, each naming its key path, the offending value and the allowed
//! range. It must not do I/O: no filesystem, no environment, no network. Checks that need a
//! file (secret files, the admin key file, TLS files) live in `load.rs`, and so does the
//! report of a word that is not one of an enum's spellings (the enums deserialize directly).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::problem::{ConfigError, ConfigProblem};
use super::raw::*;
use super::*;

mod security;

/// Default values of the keys that are not integers (those are in [`int_keys`]).
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
    pub const STORE_URL: &str = "sqlite://sessiongate.db";
    pub const ACCESS_PATH: &str = "/";
    pub const REMOVAL_CRON: &str = "0 0 0 1-31/7 * *";
    pub const EXPIRED_STATUS: i64 = 401;
    pub const USER_ID_HEADER: &str = "x-user-id";
    pub const SESSION_HANDLE_HEADER: &str = "x-session-handle";
    pub const JWT_PAYLOAD_HEADER: &str = "x-jwt-payload";
    pub const LOG_LEVEL: &str = "info";
    pub const SAMPLE_RATIO: f64 = 1.0;
    pub const SERVICE_NAME: &str = "sessiongate";
}

/// The unit of an integer key's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Hours,
    /// A number of things (connections).
    Count,
}

/// An integer key's metadata, stated once: the validator enforces it, the renderer names the
/// key by it, and `tests/it/docs.rs` holds the README's Default and rule columns to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntKey {
    /// The full key path, e.g. `server.shutdown_grace_secs`.
    pub path: &'static str,
    pub default: i64,
    /// The smallest value allowed.
    pub lo: i64,
    /// The largest value allowed.
    pub hi: i64,
    pub unit: Unit,
}

impl IntKey {
    /// The key's name in its table: `server.shutdown_grace_secs` → `shutdown_grace_secs`.
    pub fn name(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }

    /// The allowed range as reports and the README write it: `0..=3600`.
    pub fn range(&self) -> String {
        format!("{}..={}", self.lo, self.hi)
    }
}

/// Every integer key with a range (`session.expired_status`, a set of two values, is not one),
/// in the README's order. A row per key: path, default, lowest and highest value, unit.
#[rustfmt::skip]
pub mod int_keys {
    use super::{IntKey, Unit::*};

    const fn key(path: &'static str, default: i64, lo: i64, hi: i64, unit: super::Unit) -> IntKey {
        IntKey { path, default, lo, hi, unit }
    }

    pub const SHUTDOWN_GRACE_SECS: IntKey = key("server.shutdown_grace_secs", 30, 0, 3600, Seconds);
    pub const UPSTREAM_TIMEOUT_SECS: IntKey = key("server.upstream_timeout_secs", 30, 1, 3600, Seconds);
    pub const HEADER_READ_TIMEOUT_SECS: IntKey = key("server.header_read_timeout_secs", 10, 1, 300, Seconds);
    pub const MAX_CONNECTIONS: IntKey = key("server.max_connections", 10_000, 1, 1_000_000, Count);
    pub const MAX_CONNECTIONS_PER_IP: IntKey = key("server.max_connections_per_ip", 0, 0, 1_000_000, Count);
    pub const WORKERS: IntKey = key("server.workers", 0, 0, 1024, Count);
    pub const IDLE_TIMEOUT_SECS: IntKey = key("server.idle_timeout_secs", 60, 1, 3600, Seconds);
    pub const BODY_READ_TIMEOUT_SECS: IntKey = key("server.body_read_timeout_secs", 30, 1, 3600, Seconds);
    pub const CONNECTION_LIMIT: IntKey = key("store.connection_limit", 50, 1, 10_000, Count);
    pub const ACCESS_VALIDITY_SECS: IntKey = key("tokens.access_token.validity_secs", 3600, 10, 86_400_000, Seconds);
    pub const UPDATE_INTERVAL_HOURS: IntKey = key("tokens.access_token.signing_key.update_interval_hours", 24, 1, 720, Hours);
    pub const REFRESH_VALIDITY_HOURS: IntKey = key("tokens.refresh_token.validity_hours", 2400, 1, 8760, Hours);
    pub const REUSE_GRACE_SECS: IntKey = key("tokens.refresh_token.reuse_grace_secs", 30, 0, 300, Seconds);
    pub const EVENTS_QUEUE_CAPACITY: IntKey = key("events.queue_capacity", 1024, 1, 1_000_000, Count);
    pub const EVENTS_MAX_RETRIES: IntKey = key("events.max_retries", 5, 0, 20, Count);
    pub const EVENTS_RETRY_BASE_MS: IntKey = key("events.retry_base_ms", 500, 10, 60_000, Count);
    pub const RATE_LIMITS_MAX_ADDRESSES: IntKey = key("rate_limits.max_addresses", 100_000, 100, 10_000_000, Count);
    pub const REFRESH_PER_MINUTE: IntKey = key("rate_limits.refresh.per_minute", 60, 1, 1_000_000, Count);
    pub const REFRESH_BURST: IntKey = key("rate_limits.refresh.burst", 60, 1, 1_000_000, Count);
    pub const LOGOUT_PER_MINUTE: IntKey = key("rate_limits.logout.per_minute", 30, 1, 1_000_000, Count);
    pub const LOGOUT_BURST: IntKey = key("rate_limits.logout.burst", 30, 1, 1_000_000, Count);
    pub const SESSION_CREATE_PER_MINUTE: IntKey = key("rate_limits.session_create.per_minute", 30, 1, 1_000_000, Count);
    pub const SESSION_CREATE_BURST: IntKey = key("rate_limits.session_create.burst", 30, 1, 1_000_000, Count);
    pub const FORWARD_AUTH_PER_MINUTE: IntKey = key("rate_limits.forward_auth.per_minute", 600, 1, 1_000_000, Count);
    pub const FORWARD_AUTH_BURST: IntKey = key("rate_limits.forward_auth.burst", 600, 1, 1_000_000, Count);

    /// The whole table.
    pub const ALL: &[IntKey] = &[
        SHUTDOWN_GRACE_SECS,
        UPSTREAM_TIMEOUT_SECS,
        HEADER_READ_TIMEOUT_SECS,
        MAX_CONNECTIONS,
        MAX_CONNECTIONS_PER_IP,
        WORKERS,
        IDLE_TIMEOUT_SECS,
        BODY_READ_TIMEOUT_SECS,
        CONNECTION_LIMIT,
        ACCESS_VALIDITY_SECS,
        UPDATE_INTERVAL_HOURS,
        REFRESH_VALIDITY_HOURS,
        REUSE_GRACE_SECS,
        EVENTS_QUEUE_CAPACITY,
        EVENTS_MAX_RETRIES,
        EVENTS_RETRY_BASE_MS,
        RATE_LIMITS_MAX_ADDRESSES,
        REFRESH_PER_MINUTE,
        REFRESH_BURST,
        LOGOUT_PER_MINUTE,
        LOGOUT_BURST,
        SESSION_CREATE_PER_MINUTE,
        SESSION_CREATE_BURST,
        FORWARD_AUTH_PER_MINUTE,
        FORWARD_AUTH_BURST,
    ];
}

/// The shortest admin API key accepted.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

/// Secrets shipped as examples in `deploy/` (`admin_key.example`, `compose.yaml`,
/// `kubernetes/sessiongate.yaml`), the shipped `gateway.toml` and the README. A configuration
/// holding one was copied without being filled in, and anyone who read the repository knows
/// it, so it is refused. Any secret containing `change-me` is refused the same way.
pub const SHIPPED_PLACEHOLDERS: &[&str] = &[
    "example-admin-key-change-me-0123456789",
    "change-me-to-a-long-random-string",
    "change-me",
    "password",
];

/// Whether `secret` is (or plainly is an edit of) a placeholder this project ships.
pub fn is_shipped_placeholder(secret: &str) -> bool {
    let s = secret.trim();
    SHIPPED_PLACEHOLDERS.contains(&s) || s.to_ascii_lowercase().contains("change-me")
}

const PLACEHOLDER_MESSAGE: &str =
    "is the shipped placeholder (from deploy/, gateway.toml or the README), known to anyone who read them";

/// Headers the gateway must never let an identity header collide with: hop-by-hop and
/// framing headers (RFC 9110 §7.6.1, RFC 9112 §6), and the ones carrying credentials.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "cookie",
    "set-cookie",
    "authorization",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Turns the raw configuration into a [`Config`], or reports every broken rule.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut v = Validator::default();
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: v.problems,
        })
    }
}

/// Whether `expr` is a cron expression the job scheduler (tokio-cron-scheduler 0.15) accepts:
/// the same parser with the same options.
pub fn check_cron(expr: &str) -> Result<(), String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl Validator {
    fn push(
        &mut self,
        key: &str,
        message: &str,
        got: impl Into<String>,
        allowed: impl Into<String>,
    ) {
        self.problems
            .push(ConfigProblem::new(key, message, got, allowed));
    }

    /// The key's value when in its range, else its default (reporting a problem).
    fn int(&mut self, key: &IntKey, value: Option<i64>) -> i64 {
        match value {
            None => key.default,
            Some(n) if (key.lo..=key.hi).contains(&n) => n,
            Some(n) => {
                self.push(key.path, "out of range", n.to_string(), key.range());
                key.default
            }
        }
    }

    /// [`int`](Self::int) for a key in [`Unit::Seconds`].
    fn secs(&mut self, key: &IntKey, value: Option<i64>) -> Duration {
        debug_assert_eq!(key.unit, Unit::Seconds, "{}", key.path);
        Duration::from_secs(u64::try_from(self.int(key, value)).unwrap_or(0))
    }

    fn socket(&mut self, key: &str, value: Option<String>, default: &str) -> SocketAddr {
        let fallback = default
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let Some(s) = value else { return fallback };
        match s.trim().parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.push(
                    key,
                    "not a socket address",
                    quoted(&s),
                    "IP:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 (no host names)",
                );
                fallback
            }
        }
    }

    /// An absolute URL path: starts with `/`, no `//`, no query, fragment, whitespace or
    /// dot segments (the form requests are normalised to before matching).
    fn url_path(
        &mut self,
        key: &str,
        value: Option<String>,
        default: Option<&str>,
    ) -> Option<String> {
        let s = match value {
            Some(s) => s,
            None => return default.map(str::to_string),
        };
        if let Err(why) = check_path(&s) {
            self.push(key, why, quoted(&s), PATH_RULE);
            return default.map(str::to_string);
        }
        Some(s)
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let server = self.server(raw.server.unwrap_or_default());
        let store = self.store(raw.store.unwrap_or_default());
        let tokens = self.tokens(raw.tokens.unwrap_or_default());
        let cookie = self.cookie(raw.cookie.unwrap_or_default());
        let session = self.session(raw.session.unwrap_or_default());
        let identity = self.identity(raw.identity.unwrap_or_default());
        let cors = self.cors(raw.cors.unwrap_or_default());
        let admin = self.admin(raw.admin.unwrap_or_default());
        let logging = self.logging(raw.logging.unwrap_or_default());
        let tracing = self.tracing(raw.tracing.unwrap_or_default());
        let forward_auth = self.forward_auth(
            raw.forward_auth.unwrap_or_default(),
            &server,
            &tokens,
            &session,
        );
        let routes = self.routes(raw.routes, forward_auth.path.is_some());
        let events = self.events(raw.events.unwrap_or_default());
        let rate_limits = self.rate_limits(raw.rate_limits.unwrap_or_default());
        let (legacy, problems) = super::legacy::validate(raw.legacy, &store);
        self.problems.extend(problems);

        if let Some(logout) = &session.logout_path {
            if *logout == tokens.refresh_token.renew_path {
                self.push(
                    "session.logout_path",
                    "equals tokens.refresh_token.renew_path",
                    quoted(logout),
                    "a path different from the renew path",
                );
            }
        }

        Config {
            server,
            store,
            tokens,
            cookie,
            session,
            identity,
            cors,
            admin,
            logging,
            forward_auth,
            tracing,
            routes,
            events,
            rate_limits,
            legacy,
        }
    }

    /// `[forward_auth]`: a URL path, different from the gateway's other own paths.
    fn forward_auth(
        &mut self,
        raw: RawForwardAuth,
        server: &ServerConfig,
        tokens: &TokensConfig,
        session: &SessionConfig,
    ) -> ForwardAuthConfig {
        let key = "forward_auth.path";
        let path = raw.path.and_then(|p| self.url_path(key, Some(p), None));
        let taken = |p: &str| {
            p == tokens.refresh_token.renew_path || session.logout_path.as_deref() == Some(p)
        };
        if let Some(p) = path.as_deref().filter(|p| taken(p)) {
            self.push(
                key,
                "is already the renew or logout path",
                quoted(p),
                "a path of its own, e.g. /.sessiongate/verify",
            );
            return ForwardAuthConfig::default();
        }
        // The endpoint answers only the front proxy; without one it could answer nobody.
        if let Some(p) = path
            .as_deref()
            .filter(|_| server.trusted_proxies.is_empty())
        {
            self.push(
                key,
                "is set but server.trusted_proxies is empty (the endpoint answers only trusted front proxies)",
                quoted(p),
                "forward_auth.path together with server.trusted_proxies naming the front proxy",
            );
        }
        ForwardAuthConfig { path }
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
        let listen = self.socket("server.listen", raw.listen, defaults::LISTEN);
        let admin_listen = self.socket(
            "server.admin_listen",
            raw.admin_listen,
            defaults::ADMIN_LISTEN,
        );
        if listen == admin_listen && listen.port() != 0 {
            self.push(
                "server.admin_listen",
                "same address as server.listen",
                admin_listen.to_string(),
                "an address different from server.listen",
            );
        }
        let tls = raw.tls.and_then(|t| self.tls(t));
        let shutdown_grace = self.secs(&int_keys::SHUTDOWN_GRACE_SECS, raw.shutdown_grace_secs);
        let upstream_timeout =
            self.secs(&int_keys::UPSTREAM_TIMEOUT_SECS, raw.upstream_timeout_secs);
        let header_read_timeout = self.secs(
            &int_keys::HEADER_READ_TIMEOUT_SECS,
            raw.header_read_timeout_secs,
        );
        let max_connections = self.int(&int_keys::MAX_CONNECTIONS, raw.max_connections);
        let idle_timeout = self.secs(&int_keys::IDLE_TIMEOUT_SECS, raw.idle_timeout_secs);
        let body_read_timeout = self.secs(
            &int_keys::BODY_READ_TIMEOUT_SECS,
            raw.body_read_timeout_secs,
        );
        let max_connections_per_ip = self.int(
            &int_keys::MAX_CONNECTIONS_PER_IP,
            raw.max_connections_per_ip,
        );
        let workers = self.int(&int_keys::WORKERS, raw.workers);
        let mut trusted_proxies = Vec::new();
        for (i, s) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
            match parse_cidr(s) {
                Ok(c) => trusted_proxies.push(c),
                Err(why) => self.push(
                    &format!("server.trusted_proxies[{i}]"),
                    why,
                    quoted(s),
                    "an IP address (10.0.0.1, ::1) or CIDR range (10.0.0.0/8, fd00::/8)",
                ),
            }
        }
        let mut public_origins: Vec<String> = Vec::new();
        for (i, s) in raw.public_origins.unwrap_or_default().iter().enumerate() {
            let key = format!("server.public_origins[{i}]");
            match parse_origin(s).map(|o| without_default_port(&o)) {
                Ok(o) if public_origins.contains(&o) => {
                    self.push(&key, "listed twice", quoted(s), "each origin once")
                }
                Ok(o) => public_origins.push(o),
                Err(why) => self.push(
                    &key,
                    why,
                    quoted(s),
                    "an origin: http:// or https://, a host and an optional port, no path",
                ),
            }
        }
        ServerConfig {
            listen,
            admin_listen,
            tls,
            shutdown_grace,
            upstream_timeout,
            header_read_timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(1),
            idle_timeout,
            body_read_timeout,
            max_connections_per_ip: usize::try_from(max_connections_per_ip).unwrap_or(0),
            workers: usize::try_from(workers).unwrap_or(0),
            trusted_proxies,
            public_origins,
        }
    }

    fn tls(&mut self, raw: RawTls) -> Option<TlsConfig> {
        const RULE: &str = "both server.tls.cert and server.tls.key (PEM files), or neither";
        let cert = raw.cert.filter(|s| !s.is_empty());
        let key = raw.key.filter(|s| !s.is_empty());
        match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                self.problems.push(
                    ConfigProblem::bare("server.tls.key", "missing while server.tls.cert is set")
                        .allowing(RULE),
                );
                None
            }
            (None, Some(_)) => {
                self.problems.push(
                    ConfigProblem::bare("server.tls.cert", "missing while server.tls.key is set")
                        .allowing(RULE),
                );
                None
            }
        }
    }

    fn store(&mut self, raw: RawStore) -> StoreConfig {
        let url = raw.url.unwrap_or_else(|| defaults::STORE_URL.to_string());
        let url = match parse_store_url(&url) {
            Ok(u) => u,
            Err(why) => {
                self.push(
                    "store.url",
                    &why,
                    quoted(&mask_url_password(&url)),
                    "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?require_ssl=true&ssl_ca=PATH&…], sqlite://PATH or sqlite::memory:",
                );
                StoreUrl::SqliteMemory
            }
        };
        if let StoreUrl::Mysql(u) = &url {
            let pass = crate::store::mysql::parse_url(u)
                .ok()
                .and_then(|p| p.opts.pass().map(|p| p.to_string()));
            if pass.as_deref().is_some_and(is_shipped_placeholder) {
                self.push(
                    "store.url",
                    &format!("the database password {PLACEHOLDER_MESSAGE}"),
                    quoted(&mask_url_password(u)),
                    "a database password of your own",
                );
            }
        }
        let connection_limit = self.int(&int_keys::CONNECTION_LIMIT, raw.connection_limit);
        let raw_tables = raw.tables.unwrap_or_default();
        let default_tables = TableNames::default();
        let signing_key = self.table_name(
            "store.tables.signing_key",
            raw_tables.signing_key,
            default_tables.signing_key,
        );
        let refresh_tokens = self.table_name(
            "store.tables.refresh_tokens",
            raw_tables.refresh_tokens,
            default_tables.refresh_tokens,
        );
        if signing_key == refresh_tokens {
            self.push(
                "store.tables.refresh_tokens",
                "same table name as store.tables.signing_key",
                quoted(&refresh_tokens),
                "a name different from store.tables.signing_key",
            );
        }
        StoreConfig {
            url,
            connection_limit: u32::try_from(connection_limit).unwrap_or(1),
            auto_migrate: raw.auto_migrate.unwrap_or(true),
            tables: TableNames {
                signing_key,
                refresh_tokens,
            },
        }
    }

    fn table_name(&mut self, key: &str, value: Option<String>, default: String) -> String {
        let Some(s) = value else { return default };
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            s
        } else {
            self.push(
                key,
                "not a valid table name",
                quoted(&s),
                "[A-Za-z0-9_]{1,64}",
            );
            default
        }
    }

    fn tokens(&mut self, raw: RawTokens) -> TokensConfig {
        let at = raw.access_token.unwrap_or_default();
        let validity_secs = self.int(&int_keys::ACCESS_VALIDITY_SECS, at.validity_secs);
        let path = self
            .url_path(
                "tokens.access_token.path",
                at.path,
                Some(defaults::ACCESS_PATH),
            )
            .unwrap_or_else(|| defaults::ACCESS_PATH.to_string());
        let signing_key = self.signing_key(at.signing_key.unwrap_or_default());

        let rt = raw.refresh_token.unwrap_or_default();
        let validity_hours = self.int(&int_keys::REFRESH_VALIDITY_HOURS, rt.validity_hours);
        let removal_cron = match rt.removal_cron {
            None => defaults::REMOVAL_CRON.to_string(),
            Some(expr) => match check_cron(&expr) {
                Ok(()) => expr,
                Err(why) => {
                    self.push(
                        "tokens.refresh_token.removal_cron",
                        &format!("not a valid cron expression: {why}"),
                        quoted(&expr),
                        "6 fields, seconds first, UTC, e.g. \"0 0 0 1-31/7 * *\"",
                    );
                    defaults::REMOVAL_CRON.to_string()
                }
            },
        };
        let renew_path = match rt.renew_path {
            Some(_) => self
                .url_path("tokens.refresh_token.renew_path", rt.renew_path, None)
                .unwrap_or_default(),
            None => {
                self.problems.push(
                    ConfigProblem::bare("tokens.refresh_token.renew_path", "required but not set")
                        .allowing(PATH_RULE),
                );
                String::new()
            }
        };
        let reuse_grace_secs = self.int(&int_keys::REUSE_GRACE_SECS, rt.reuse_grace_secs);
        TokensConfig {
            access_token: AccessTokenConfig {
                validity_secs: u64::try_from(validity_secs).unwrap_or(0),
                blacklisting: at.blacklisting.unwrap_or(false),
                path,
                signing_key,
            },
            refresh_token: RefreshTokenConfig {
                validity_hours: u32::try_from(validity_hours).unwrap_or(1),
                removal_cron,
                renew_path,
                reuse_grace_secs: u32::try_from(reuse_grace_secs).unwrap_or(0),
            },
            enable_anti_csrf: raw.enable_anti_csrf.unwrap_or(true),
        }
    }

    fn signing_key(&mut self, raw: RawSigningKey) -> SigningKeyConfig {
        let update_interval_hours =
            self.int(&int_keys::UPDATE_INTERVAL_HOURS, raw.update_interval_hours);
        let algorithm = raw.algorithm.unwrap_or_default();
        const SECRET_FILE: &str = "tokens.access_token.signing_key.secret_file";
        let path = match raw.secret_file {
            Some(s) if s.trim().is_empty() => {
                self.push(
                    SECRET_FILE,
                    "empty path",
                    quoted(&s),
                    "the path of a readable, non-empty key file, or leave unset",
                );
                None
            }
            path => path,
        };
        // A static secret is an HMAC key: it has no EdDSA meaning.
        if algorithm == SigningAlgorithm::EdDsa && path.is_some() {
            self.push(
                "tokens.access_token.signing_key.algorithm",
                "EdDSA conflicts with secret_file (a static secret signs with HS256)",
                "\"EdDSA\"",
                "\"HS256\" or unset when secret_file is set, or EdDSA without secret_file",
            );
        }
        // A static key the operator manages replaces rotating keys.
        let dynamic = match (raw.dynamic, &path) {
            (Some(true), Some(_)) => {
                self.push(
                    "tokens.access_token.signing_key.dynamic",
                    "true conflicts with secret_file (a static key disables rotation)",
                    "true",
                    "false or unset when secret_file is set",
                );
                false
            }
            (_, Some(_)) => false,
            (d, None) => d.unwrap_or(true),
        };
        // The loader reads the file (and reports one it cannot use).
        let secret_file = path.and_then(|path| match raw.secret_from_file {
            Some(key) => Some(SecretFile {
                path: PathBuf::from(path),
                key,
            }),
            None => {
                self.push(
                    SECRET_FILE,
                    "not read (validate was called without the loader)",
                    quoted(&path),
                    "a readable key file",
                );
                None
            }
        });
        SigningKeyConfig {
            dynamic,
            update_interval_hours: u32::try_from(update_interval_hours).unwrap_or(1),
            secret_file,
            algorithm,
        }
    }

    fn cookie(&mut self, raw: RawCookie) -> CookieConfig {
        let domain = raw.domain.and_then(|d| match check_cookie_domain(&d) {
            Ok(()) => Some(d.to_ascii_lowercase()),
            Err(why) => {
                self.push(
                    "cookie.domain",
                    why,
                    quoted(&d),
                    "a bare domain such as example.com or .example.com (no scheme, port or path), or unset for host-only cookies",
                );
                None
            }
        });
        let secure = raw.secure.unwrap_or(true);
        let same_site = raw.same_site.unwrap_or_default();
        if same_site == SameSite::None && !secure {
            self.push(
                "cookie.secure",
                "must be true when cookie.same_site = \"none\" (browsers drop such cookies)",
                "false",
                "true, or same_site \"lax\" / \"strict\"",
            );
        }
        CookieConfig {
            domain,
            secure,
            same_site,
        }
    }

    fn session(&mut self, raw: RawSession) -> SessionConfig {
        let logout_path = raw
            .logout_path
            .and_then(|p| self.url_path("session.logout_path", Some(p), None));
        let expired_status = match raw.expired_status {
            None => http::StatusCode::UNAUTHORIZED,
            Some(n @ (401 | 440)) => {
                http::StatusCode::from_u16(n as u16).expect("401 and 440 are valid")
            }
            Some(n) => {
                self.push(
                    "session.expired_status",
                    "not an allowed status",
                    n.to_string(),
                    "401 or 440",
                );
                http::StatusCode::UNAUTHORIZED
            }
        };
        let theft_action = raw.theft_action.unwrap_or_default();
        SessionConfig {
            logout_path,
            expired_status,
            theft_action,
        }
    }

    fn header(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        let Some(s) = value else {
            return default.to_string();
        };
        let lower = s.to_ascii_lowercase();
        if lower.is_empty() || http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            self.push(
                key,
                "not a valid HTTP header name",
                quoted(&s),
                "an RFC 9110 token such as x-user-id",
            );
            return default.to_string();
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            self.push(
                key,
                "a reserved header the gateway manages itself",
                quoted(&s),
                "a header name of your own such as x-user-id",
            );
            return default.to_string();
        }
        // Many upstream stacks (CGI, PHP, WSGI) read `_` and `-` alike, so a name with `_`
        // could not be told apart from a client's copy spelled with `-`.
        if lower.contains('_') {
            self.push(
                key,
                "contains `_`, which upstream servers may read as `-`",
                quoted(&s),
                "letters, digits and `-`, e.g. x-user-id",
            );
            return default.to_string();
        }
        lower
    }

    fn identity(&mut self, raw: RawIdentity) -> IdentityConfig {
        let user_id_header = self.header(
            "identity.user_id_header",
            raw.user_id_header,
            defaults::USER_ID_HEADER,
        );
        let session_handle_header = self.header(
            "identity.session_handle_header",
            raw.session_handle_header,
            defaults::SESSION_HANDLE_HEADER,
        );
        let jwt_payload_header = self.header(
            "identity.jwt_payload_header",
            raw.jwt_payload_header,
            defaults::JWT_PAYLOAD_HEADER,
        );
        if session_handle_header == user_id_header {
            self.push(
                "identity.session_handle_header",
                "same header as identity.user_id_header",
                quoted(&session_handle_header),
                "three different header names",
            );
        }
        if jwt_payload_header == user_id_header || jwt_payload_header == session_handle_header {
            self.push(
                "identity.jwt_payload_header",
                "same header as another identity header",
                quoted(&jwt_payload_header),
                "three different header names",
            );
        }
        IdentityConfig {
            user_id_header,
            session_handle_header,
            jwt_payload_header,
        }
    }

    fn cors(&mut self, raw: RawCors) -> CorsConfig {
        let mut allowed_origins: Vec<String> = Vec::new();
        for (i, s) in raw.allowed_origins.unwrap_or_default().iter().enumerate() {
            let key = format!("cors.allowed_origins[{i}]");
            match parse_origin(s) {
                Ok(o) if allowed_origins.contains(&o) => {
                    self.push(&key, "listed twice", quoted(s), "each origin once")
                }
                Ok(o) => allowed_origins.push(o),
                Err(why) => self.push(
                    &key,
                    why,
                    quoted(s),
                    "an exact origin scheme://host[:port] with scheme http or https, e.g. https://app.example.com (no path, no *)",
                ),
            }
        }
        CorsConfig { allowed_origins }
    }

    fn admin(&mut self, raw: RawAdmin) -> AdminConfig {
        const RULE: &str = "admin.api_key_file or admin.api_key, not both";
        let (key_name, key) = match (raw.api_key_file, raw.api_key) {
            (Some(file), Some(_)) => {
                self.push(
                    "admin.api_key",
                    "set together with admin.api_key_file",
                    format!("api_key_file = {}", quoted(&file)),
                    RULE,
                );
                return AdminConfig::default();
            }
            (None, None) => return AdminConfig::default(),
            (None, Some(key)) => ("admin.api_key", key),
            (Some(file), None) => match raw.api_key_from_file {
                Some(key) => ("admin.api_key_file", key),
                None => {
                    self.push(
                        "admin.api_key_file",
                        "not read (validate was called without the loader)",
                        quoted(&file),
                        "a readable file holding the key",
                    );
                    return AdminConfig::default();
                }
            },
        };
        let key = key.trim().to_string();
        let chars = key.chars().count();
        if chars < MIN_ADMIN_KEY_LEN {
            self.push(
                key_name,
                "admin API key too short",
                format!("*** ({chars} characters)"),
                format!("at least {MIN_ADMIN_KEY_LEN} characters"),
            );
            return AdminConfig::default();
        }
        if is_shipped_placeholder(&key) {
            self.push(
                key_name,
                &format!("admin API key {PLACEHOLDER_MESSAGE}"),
                "***",
                "a key of your own, e.g. from `openssl rand -hex 32`",
            );
            return AdminConfig::default();
        }
        if key.chars().any(|c| c.is_control() || c == ' ') {
            self.push(
                key_name,
                "admin API key contains spaces or control characters",
                "***",
                "printable characters without spaces (it travels in an Authorization header)",
            );
            return AdminConfig::default();
        }
        AdminConfig { api_key: Some(key) }
    }

    fn logging(&mut self, raw: RawLogging) -> LoggingConfig {
        let level = match raw.level {
            None => defaults::LOG_LEVEL.to_string(),
            Some(s) if s.trim().is_empty() => {
                self.push("logging.level", "empty", quoted(&s), LOG_LEVEL_RULE);
                defaults::LOG_LEVEL.to_string()
            }
            Some(s) => match check_log_filter(&s) {
                Ok(()) => s,
                Err(why) => {
                    self.push("logging.level", &why, quoted(&s), LOG_LEVEL_RULE);
                    defaults::LOG_LEVEL.to_string()
                }
            },
        };
        LoggingConfig {
            level,
            format: raw.format.unwrap_or_default(),
        }
    }

    fn tracing(&mut self, raw: RawTracing) -> TracingConfig {
        let endpoint = raw.endpoint.and_then(|e| match parse_http_url(&e) {
            Ok(uri) => Some(uri),
            Err(why) => {
                self.push(
                    "tracing.endpoint",
                    why,
                    quoted(&e),
                    "the collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces",
                );
                None
            }
        });
        let sample_ratio = match raw.sample_ratio {
            None => defaults::SAMPLE_RATIO,
            Some(r) if (0.0..=1.0).contains(&r) => r,
            Some(r) => {
                self.push(
                    "tracing.sample_ratio",
                    "out of range",
                    r.to_string(),
                    "0.0..=1.0",
                );
                defaults::SAMPLE_RATIO
            }
        };
        let service_name = match raw.service_name {
            None => defaults::SERVICE_NAME.to_string(),
            Some(s) if !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control) => s,
            Some(s) => {
                self.push(
                    "tracing.service_name",
                    "empty, too long or with control characters",
                    quoted(&s),
                    "1 to 255 printable characters",
                );
                defaults::SERVICE_NAME.to_string()
            }
        };
        TracingConfig {
            endpoint,
            sample_ratio,
            service_name,
        }
    }

    /// `forward_auth`: the forward-auth endpoint is on, so a route may omit `upstream`.
    fn routes(&mut self, raw: Option<Vec<RawRoute>>, forward_auth: bool) -> Vec<Route> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.problems.push(
                ConfigProblem::bare("routes", "no route configured")
                    .allowing("at least one [[routes]] entry with a name and an upstream"),
            );
            return Vec::new();
        }
        let mut routes = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut matches: HashMap<(Option<String>, String), usize> = HashMap::new();
        for (i, r) in raw.into_iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            let name = match r.name {
                None => {
                    self.problems.push(
                        ConfigProblem::bare(key("name"), "required but not set")
                            .allowing("[A-Za-z0-9_.-]{1,64}, unique"),
                    );
                    String::new()
                }
                Some(n) => {
                    let ok = (1..=64).contains(&n.len())
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                    if !ok {
                        self.push(
                            &key("name"),
                            "not a valid route name",
                            quoted(&n),
                            "[A-Za-z0-9_.-]{1,64}",
                        );
                    } else if let Some(first) = names.get(&n) {
                        self.push(
                            &key("name"),
                            &format!("same name as routes[{first}]"),
                            quoted(&n),
                            "a name unique among routes",
                        );
                    } else {
                        names.insert(n.clone(), i);
                    }
                    n
                }
            };
            let path_prefix = self
                .url_path(&key("path_prefix"), r.path_prefix, Some("/"))
                .unwrap_or_else(|| "/".to_string());
            // Requests are routed on their normalised path, so a prefix in any other form
            // (`;`, `%61`, lower-case escapes) could never match.
            let path_prefix = match crate::proxy::route::normalise_path(&path_prefix) {
                Ok(n) if n.path == path_prefix => path_prefix,
                Ok(n) => {
                    self.push(
                        &key("path_prefix"),
                        "not in the normalised form requests are matched in (it would never match)",
                        quoted(&path_prefix),
                        format!(
                            "{PATH_RULE}, without ; and with only non-unreserved characters %-escaped in upper case, e.g. {}",
                            quoted(&n.path)
                        ),
                    );
                    "/".to_string()
                }
                Err(e) => {
                    self.push(
                        &key("path_prefix"),
                        &e.to_string(),
                        quoted(&path_prefix),
                        PATH_RULE,
                    );
                    "/".to_string()
                }
            };
            let host = r.host.and_then(|h| match check_route_host(&h) {
                Ok(()) => Some(h.to_ascii_lowercase()),
                Err(why) => {
                    self.push(
                        &key("host"),
                        why,
                        quoted(&h),
                        "a host name without a port, e.g. app.example.com (it matches that host on every port)",
                    );
                    None
                }
            });
            let upstream = match r.upstream {
                // A route only the forward-auth endpoint uses has no upstream to forward to.
                None if forward_auth => Some(None),
                None => {
                    self.problems.push(
                        ConfigProblem::bare(key("upstream"), "required but not set")
                            .allowing("an absolute http:// or https:// URL (optional only when forward_auth.path is set)"),
                    );
                    None
                }
                Some(u) => match parse_upstream(&u) {
                    Ok(uri) => Some(Some(uri)),
                    Err(why) => {
                        self.push(
                            &key("upstream"),
                            why,
                            quoted(&u),
                            "an absolute http:// or https:// URL with a host and no query, e.g. http://127.0.0.1:3000",
                        );
                        None
                    }
                },
            };
            let login_redirect = r
                .login_redirect
                .and_then(|l| match check_login_redirect(&l) {
                    Ok(()) => Some(l),
                    Err(why) => {
                        self.push(
                            &key("login_redirect"),
                            why,
                            quoted(&l),
                            "a path starting with / (not //) or an absolute http(s) URL",
                        );
                        None
                    }
                });
            let auth = r.auth.unwrap_or_default();
            let require_claims =
                self.require_claims(&key("require_claims"), r.require_claims, auth);
            let match_key = (host.clone(), path_prefix.clone());
            if let Some(first) = matches.get(&match_key) {
                self.push(
                    &key("path_prefix"),
                    &format!("same host and path_prefix as routes[{first}]"),
                    quoted(&path_prefix),
                    "a (host, path_prefix) pair unique among routes",
                );
            } else {
                matches.insert(match_key, i);
            }
            if let Some(upstream) = upstream {
                routes.push(Route {
                    name,
                    path_prefix,
                    host,
                    upstream,
                    auth,
                    anti_csrf: r.anti_csrf.unwrap_or_default(),
                    session_control: r.session_control.unwrap_or(false),
                    login_redirect,
                    path_params: r.path_params.unwrap_or_default(),
                    case_insensitive: r.case_insensitive.unwrap_or(false),
                    require_claims,
                    token_transfer: r.token_transfer.unwrap_or_default(),
                });
            }
        }
        routes
    }

    /// `routes[N].require_claims`: each claim names a non-empty list of JSON scalars, and
    /// only on a route that requires a session (a policy cannot be met without one).
    fn require_claims(
        &mut self,
        key: &str,
        raw: Option<std::collections::BTreeMap<String, serde_json::Value>>,
        auth: AuthMode,
    ) -> Vec<ClaimRule> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        if auth != AuthMode::Required && !raw.is_empty() {
            self.push(
                key,
                "needs a session, but the route does not require one",
                format!(
                    "auth = \"{}\"",
                    if auth == AuthMode::Public {
                        "public"
                    } else {
                        "optional"
                    }
                ),
                "require_claims only on routes with auth = \"required\" (the default)",
            );
            return Vec::new();
        }
        let mut rules = Vec::new();
        for (claim, value) in raw {
            let key = format!("{key}.{claim}");
            const ALLOWED: &str =
                "a non-empty list of strings, numbers or booleans, e.g. [\"admin\", \"owner\"]";
            let allowed = match value {
                serde_json::Value::Array(values) if values.is_empty() => {
                    self.push(
                        &key,
                        "is an empty list (nothing could match)",
                        "[]",
                        ALLOWED,
                    );
                    continue;
                }
                serde_json::Value::Array(values) => values,
                other => {
                    self.push(&key, "is not a list", other.to_string(), ALLOWED);
                    continue;
                }
            };
            if let Some(bad) = allowed
                .iter()
                .find(|v| v.is_array() || v.is_object() || v.is_null())
            {
                self.push(
                    &key,
                    "holds a value that is not a scalar",
                    bad.to_string(),
                    ALLOWED,
                );
                continue;
            }
            if claim.is_empty() {
                self.push(
                    &key,
                    "has an empty claim name",
                    "\"\"",
                    "a claim name of the JWT payload",
                );
                continue;
            }
            rules.push(ClaimRule { claim, allowed });
        }
        rules
    }
}

const PATH_RULE: &str =
    "an absolute path starting with / without //, dot segments, query, fragment or spaces";

/// The rule for configured URL paths (renew, logout, cookie path, route prefixes).
fn check_path(s: &str) -> Result<(), &'static str> {
    if !s.starts_with('/') {
        return Err("does not start with /");
    }
    if s.contains("//") {
        return Err("contains //");
    }
    if s.contains(['?', '#']) {
        return Err("contains a query or fragment");
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err("contains whitespace, control characters or \\");
    }
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("contains a . or .. segment");
    }
    Ok(())
}

fn parse_cidr(s: &str) -> Result<Cidr, &'static str> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "not an IP address or CIDR range")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err("prefix length out of range (IPv4 0..=32, IPv6 0..=128)"),
        },
    };
    Ok(Cidr { addr, prefix_len })
}

fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
    if s == "sqlite::memory:" {
        return Ok(StoreUrl::SqliteMemory);
    }
    if let Some(path) = s.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("sqlite:// needs a file path".into());
        }
        if path == ":memory:" {
            return Ok(StoreUrl::SqliteMemory);
        }
        return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
    }
    if s.starts_with("mysql://") {
        let opts = crate::store::mysql::parse_url(s)
            .map_err(|e| format!("not a MySQL URL: {e}"))?
            .opts;
        if opts.db_name().is_none_or(str::is_empty) {
            return Err("the MySQL URL names no database".into());
        }
        return Ok(StoreUrl::Mysql(s.to_string()));
    }
    Err("unsupported store URL scheme".into())
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_cookie_domain(d: &str) -> Result<(), &'static str> {
    if d.contains("://") {
        return Err("has a scheme");
    }
    if d.contains('/') {
        return Err("has a path");
    }
    if d.contains(':') {
        return Err("has a port");
    }
    let bare = d.strip_prefix('.').unwrap_or(d);
    if !is_dns_name(bare) {
        return Err("not a domain name");
    }
    Ok(())
}

/// What `logging.level` accepts.
const LOG_LEVEL_RULE: &str = "trace, debug, info, warn, error or off, or tracing directives \
     such as \"sessiongate=debug,info\" (each a level or TARGET=LEVEL)";

/// A `logging.level` value: a tracing `EnvFilter` whose every directive is a level name or
/// names its level (`target=level`, `target[span]=level`). A bare word that is not a level,
/// such as `warning`, is a valid filter for a *target* of that name, so nothing would ever be
/// logged: refused.
fn check_log_filter(s: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map_err(|e| format!("not a valid tracing filter: {e}"))?;
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !d.contains('=')
            && !d.contains('[')
            && !LEVELS.contains(&d.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "{d:?} is not a level (as a tracing directive it would select a target named \
                 {d:?} and log nothing else)"
            ));
        }
    }
    Ok(())
}

/// A route's host: a DNS name without port. The router compares the request's host without
/// its port (`proxy::route`), so a port here could never match: refused rather than ignored.
fn check_route_host(h: &str) -> Result<(), &'static str> {
    if h.contains("://") {
        return Err("has a scheme");
    }
    if h.contains('/') {
        return Err("has a path");
    }
    if h.contains(':') {
        return Err("has a port (routes match the host of a request on any port)");
    }
    let name = h;
    if !is_dns_name(name) {
        return Err("not a host name");
    }
    Ok(())
}

fn parse_upstream(s: &str) -> Result<http::Uri, &'static str> {
    let uri = parse_http_url(s)?;
    if uri.query().is_some() {
        return Err("has a query");
    }
    Ok(uri)
}

/// An absolute `http`/`https` URL with a host, no user info and no fragment.
fn parse_http_url(s: &str) -> Result<http::Uri, &'static str> {
    if s.contains('#') {
        return Err("has a fragment");
    }
    let uri: http::Uri = s.parse().map_err(|_| "not a URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err("scheme is not http or https"),
        None => return Err("not an absolute URL"),
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host");
    };
    if authority.as_str().contains('@') {
        return Err("has user info (credentials do not belong in the upstream URL)");
    }
    if authority.host().is_empty() {
        return Err("has no host");
    }
    Ok(uri)
}

/// `scheme://host[:port]`, returned lower-cased as browsers send it.
fn parse_origin(s: &str) -> Result<String, &'static str> {
    if s.trim() == "*" {
        return Err("wildcards are not allowed");
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("not an origin (no scheme)");
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("scheme is not http or https");
    }
    if rest.contains('/') || rest.contains(['?', '#']) {
        return Err("has a path (an origin ends after the host and port; drop any trailing /)");
    }
    if rest.contains('@') {
        return Err("has user info");
    }
    if rest.contains('*') {
        return Err("wildcards are not allowed");
    }
    let authority: http::uri::Authority = rest.parse().map_err(|_| "not a valid host[:port]")?;
    if authority.host().is_empty() {
        return Err("has no host");
    }
    if rest.ends_with(':') {
        return Err("has an empty port");
    }
    Ok(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

/// An origin from [`parse_origin`] without its scheme's default port (`:443` for https,
/// `:80` for http), the way browsers write `Origin`.
fn without_default_port(origin: &str) -> String {
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if origin.starts_with(scheme) {
            if let Some(rest) = origin.strip_suffix(port) {
                return rest.to_string();
            }
        }
    }
    origin.to_string()
}

fn check_login_redirect(s: &str) -> Result<(), &'static str> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    if s.starts_with('/') {
        if s.starts_with("//") || s.starts_with("/\\") {
            return Err("starts with // (a protocol-relative URL to another site)");
        }
        return Ok(());
    }
    parse_http_url(s).map(|_| ()).map_err(|why| match why {
        "not an absolute URL" | "not a URL" => "neither a path starting with / nor an absolute URL",
        other => other,
    })
}
