//! Configuration: the typed, validated [`Config`] every other module reads.
//!
//! Loading (`load.rs`) reads the TOML file (through figment), puts the `SESSIONGATE_…`
//! environment overrides on top with its own layer, and deserializes the result into a raw,
//! all-optional form, reading the key files it names; validation (`validate.rs`) is pure,
//! applies the defaults and turns that into [`Config`], collecting every problem with its key
//! path and allowed range. Nothing here binds a port or opens the store.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod legacy;
pub mod load;
mod problem;
pub mod raw;
pub mod reload;
mod render;
pub mod validate;

pub use security::{Bucket, EventsConfig, RateLimitsConfig, Webhook};
mod security;

pub use load::{
    config_path, load, load_from_str, load_with_env, read_secret_file, ConfigError, ConfigProblem,
    ConfigSource,
};
pub use render::render_masked;
/// The domain enums are the token core's; configuration only chooses among them.
pub use sessiongate_core::{AntiCsrfMode, SigningAlgorithm, TheftAction};
pub use validate::validate;

/// The effective configuration, valid by construction.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub tokens: TokensConfig,
    pub cookie: CookieConfig,
    pub session: SessionConfig,
    pub identity: IdentityConfig,
    pub cors: CorsConfig,
    pub admin: AdminConfig,
    pub logging: LoggingConfig,
    pub forward_auth: ForwardAuthConfig,
    pub tracing: TracingConfig,
    pub routes: Vec<Route>,
    pub events: EventsConfig,
    pub rate_limits: RateLimitsConfig,
    /// `[legacy]`: the original library's sessions to take over (issue 14); `None` when off.
    pub legacy: Option<legacy::LegacyConfig>,
}

/// `[forward_auth]`: the endpoint front proxies (nginx `auth_request`, Caddy `forward_auth`,
/// Traefik `forwardAuth`, Envoy `ext_authz`) ask about a request (`gateway::forward_auth`).
#[derive(Clone, Debug, Default)]
pub struct ForwardAuthConfig {
    /// The endpoint's path on the public listener; `None`: no endpoint.
    pub path: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub shutdown_grace: Duration,
    pub upstream_timeout: Duration,
    /// Time a client has to send complete request headers.
    pub header_read_timeout: Duration,
    /// Connections served at once on the public listener; more wait in the accept queue.
    pub max_connections: usize,
    /// Time a keep-alive HTTP/1 connection, an HTTP/2 connection with no open stream, or a
    /// WebSocket tunnel may stay idle before the gateway closes it.
    pub idle_timeout: Duration,
    /// Longest wait for the next piece of a client's request body.
    pub body_read_timeout: Duration,
    /// Connections one peer address may have open at once; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Threads serving the public listener (`server::Cores`); 0: one per core.
    pub workers: usize,
    pub trusted_proxies: Vec<Cidr>,
    /// Origins (`scheme://host[:port]`, lower case, default port removed) that are always the
    /// gateway's own, whoever the peer is: what browsers see behind a proxy or load balancer.
    pub public_origins: Vec<String>,
}

impl ServerConfig {
    /// How many core threads serve the public listener: `workers`, or one per core when 0.
    pub fn cores(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An address range such as `10.0.0.0/8` or a single address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` lies in this range (IPv4-mapped IPv6 addresses match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: StoreUrl,
    pub connection_limit: u32,
    pub auto_migrate: bool,
    pub tables: TableNames,
}

/// Where sessions live.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `mysql://user:pass@host:port/db` (kept whole; handed to mysql_async).
    Mysql(String),
    /// `sqlite://PATH`
    Sqlite(PathBuf),
    /// `sqlite::memory:`
    SqliteMemory,
}

impl StoreUrl {
    /// The URL with any password replaced by `***`, for printing and logs.
    pub fn masked(&self) -> String {
        match self {
            StoreUrl::Mysql(url) => mask_url_password(url),
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::SqliteMemory => "sqlite::memory:".to_string(),
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub signing_key: String,
    pub refresh_tokens: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            signing_key: "signing_key".into(),
            refresh_tokens: "refresh_token".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokensConfig {
    pub access_token: AccessTokenConfig,
    pub refresh_token: RefreshTokenConfig,
    pub enable_anti_csrf: bool,
}

#[derive(Clone, Debug)]
pub struct AccessTokenConfig {
    pub validity_secs: u64,
    pub blacklisting: bool,
    pub path: String,
    pub signing_key: SigningKeyConfig,
}

#[derive(Clone, Debug)]
pub struct SigningKeyConfig {
    pub dynamic: bool,
    pub update_interval_hours: u32,
    /// A static key the operator manages; when set, dynamic keys are off.
    pub secret_file: Option<SecretFile>,
    pub algorithm: SigningAlgorithm,
}

/// `signing_key.secret_file`: its path and the key it held when the configuration was loaded
/// (read once, by the loader, with [`read_secret_file`](load::read_secret_file)).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub path: PathBuf,
    /// The file's exact bytes minus one trailing newline: at least 32 of them.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .field("key", &"***")
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct RefreshTokenConfig {
    pub validity_hours: u32,
    /// 6-field cron expression (seconds first), evaluated in UTC.
    pub removal_cron: String,
    pub renew_path: String,
    pub reuse_grace_secs: u32,
}

#[derive(Clone, Debug)]
pub struct CookieConfig {
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    Strict,
    #[default]
    Lax,
    None,
}

impl SameSite {
    /// The attribute value as it is written in `Set-Cookie`.
    pub fn as_attr(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub logout_path: Option<String>,
    /// The status of session-expiry refusals: 401 or 440.
    pub expired_status: http::StatusCode,
    pub theft_action: TheftAction,
}

#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Lower-case header names.
    pub user_id_header: String,
    pub session_handle_header: String,
    pub jwt_payload_header: String,
}

#[derive(Clone, Debug, Default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
}

#[derive(Clone, Default)]
pub struct AdminConfig {
    /// The bearer key of the `/v1` admin API (read from `api_key_file` or `api_key`).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct LoggingConfig {
    /// A tracing filter directive such as `info` or `sessiongate=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

/// `[tracing]`: OpenTelemetry trace export (see `otel`); off without an endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: Option<http::Uri>,
    /// Share of requests without a trusted parent that are traced, 0.0..=1.0.
    pub sample_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// One `[[routes]]` entry.
#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    pub host: Option<String>,
    /// `None` only for a route used by the forward-auth endpoint alone (`forward_auth.path`
    /// set); the proxy path answers such a route 404.
    pub upstream: Option<http::Uri>,
    pub auth: AuthMode,
    pub anti_csrf: AntiCsrfMode,
    pub session_control: bool,
    pub login_redirect: Option<String>,
    /// What a request whose path carries `;` parameters gets on this route.
    pub path_params: PathParams,
    /// Match `path_prefix` regardless of ASCII case (for upstreams that do the same).
    pub case_insensitive: bool,
    /// `require_claims`: every rule must hold for the session's JWT payload (empty: none).
    pub require_claims: Vec<ClaimRule>,
    /// How this route's clients carry their tokens: cookies, headers, or either.
    pub token_transfer: TokenTransfer,
}

/// One `routes[].require_claims` entry: the payload claim `claim` must equal one of
/// `allowed` (a scalar claim) or share a value with it (an array claim). `allowed` holds
/// non-empty JSON scalars only (strings, numbers, booleans), checked by the validator.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRule {
    pub claim: String,
    pub allowed: Vec<serde_json::Value>,
}

/// `routes[].path_params`: the route is chosen on the path with every segment's `;…` removed;
/// this says whether such a request is refused or forwarded with that stripped path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathParams {
    /// 400: the path carries `;` parameters.
    #[default]
    Reject,
    /// Forward the path with the parameters removed (the path that was routed).
    Strip,
}

/// `routes[].token_transfer` (see `gateway::header_mode`): whether the route reads the
/// gateway's token from `Authorization: Bearer` and issues tokens in response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTransfer {
    /// Cookies, or headers for a request that sends `st-auth-mode: header` or authenticates
    /// with a gateway token in `Authorization: Bearer`.
    #[default]
    Any,
    /// Cookies only: `Authorization` belongs to the application and is never read or removed.
    Cookie,
    /// Like `any`, but sessions created here are issued in headers even without
    /// `st-auth-mode: header`.
    Header,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Required,
    Optional,
    Public,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let check = |net: &str, len: u8, ip: &str, want: bool| {
            let c = Cidr {
                addr: net.parse().unwrap(),
                prefix_len: len,
            };
            assert_eq!(c.contains(ip.parse().unwrap()), want, "{net}/{len} ∋ {ip}");
        };
        check("10.0.0.0", 8, "10.1.2.3", true);
        check("10.0.0.0", 8, "11.1.2.3", false);
        check("127.0.0.1", 32, "127.0.0.1", true);
        check("127.0.0.1", 32, "::ffff:127.0.0.1", true);
        check("0.0.0.0", 0, "8.8.8.8", true);
        check("::1", 128, "::1", true);
        check("fd00::", 8, "fd12::1", true);
        check("fd00::", 8, "10.0.0.1", false);
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url_password("mysql://u:p@db:3306/x"),
            "mysql://u:***@db:3306/x"
        );
        assert_eq!(mask_url_password("mysql://u@db/x"), "mysql://u@db/x");
        assert_eq!(mask_url_password("mysql://db/x"), "mysql://db/x");
    }
}

#[cfg(test)]
mod tests_load;
