//! The raw configuration: exactly what the TOML file and the environment said, before any
//! rule is applied.
//!
//! Every field is optional (defaults are applied by [`super::validate`]) and every level
//! denies unknown keys, so a misspelt key is reported instead of silently ignored. Integers
//! are `i64` (what TOML holds) so that out-of-range values, negative ones included, reach the
//! validator and are reported with their allowed range rather than as a type error.
//! Keys with a fixed set of words are read straight into their enums (the spellings are the
//! enums' serde names); the loader reports any other word with the allowed ones.
//! This module must not apply defaults, enforce ranges or touch the filesystem.

use serde::de::value::StringDeserializer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::{
    AntiCsrfMode, AuthMode, LogFormat, PathParams, SameSite, SigningAlgorithm, TheftAction,
    TokenTransfer,
};

/// A configuration enum, read from a string only. Figment would also take an integer as a
/// variant index (`format = 1` as `json`) and a table as a variant with data; here both are
/// wrong types, as for any other string key, and an unknown word is an unknown variant.
fn word<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    T::deserialize(StringDeserializer::<D::Error>::new(text)).map(Some)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub store: Option<RawStore>,
    pub tokens: Option<RawTokens>,
    pub cookie: Option<RawCookie>,
    pub session: Option<RawSession>,
    pub identity: Option<RawIdentity>,
    pub cors: Option<RawCors>,
    pub admin: Option<RawAdmin>,
    pub logging: Option<RawLogging>,
    pub forward_auth: Option<RawForwardAuth>,
    pub tracing: Option<RawTracing>,
    pub routes: Option<Vec<RawRoute>>,
    pub events: Option<RawEvents>,
    pub rate_limits: Option<RawRateLimits>,
    pub legacy: Option<super::legacy::RawLegacy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    pub path: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub tls: Option<RawTls>,
    pub shutdown_grace_secs: Option<i64>,
    pub upstream_timeout_secs: Option<i64>,
    pub header_read_timeout_secs: Option<i64>,
    pub max_connections: Option<i64>,
    pub idle_timeout_secs: Option<i64>,
    pub body_read_timeout_secs: Option<i64>,
    pub max_connections_per_ip: Option<i64>,
    pub workers: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub public_origins: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<String>,
    pub connection_limit: Option<i64>,
    pub auto_migrate: Option<bool>,
    pub tables: Option<RawTables>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTables {
    pub signing_key: Option<String>,
    pub refresh_tokens: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub access_token: Option<RawAccessToken>,
    pub refresh_token: Option<RawRefreshToken>,
    pub enable_anti_csrf: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessToken {
    pub validity_secs: Option<i64>,
    pub blacklisting: Option<bool>,
    pub path: Option<String>,
    pub signing_key: Option<RawSigningKey>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigningKey {
    pub dynamic: Option<bool>,
    pub update_interval_hours: Option<i64>,
    pub secret_file: Option<String>,
    #[serde(default, deserialize_with = "word")]
    pub algorithm: Option<SigningAlgorithm>,
    /// The key held by `secret_file`, filled in by the loader (never from TOML).
    #[serde(skip)]
    pub secret_from_file: Option<Vec<u8>>,
}

impl std::fmt::Debug for RawSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSigningKey")
            .field("dynamic", &self.dynamic)
            .field("update_interval_hours", &self.update_interval_hours)
            .field("secret_file", &self.secret_file)
            .field("algorithm", &self.algorithm)
            .field(
                "secret_from_file",
                &self.secret_from_file.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefreshToken {
    pub validity_hours: Option<i64>,
    pub removal_cron: Option<String>,
    pub renew_path: Option<String>,
    pub reuse_grace_secs: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    pub domain: Option<String>,
    pub secure: Option<bool>,
    #[serde(default, deserialize_with = "word")]
    pub same_site: Option<SameSite>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub logout_path: Option<String>,
    pub expired_status: Option<i64>,
    #[serde(default, deserialize_with = "word")]
    pub theft_action: Option<TheftAction>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub user_id_header: Option<String>,
    pub session_handle_header: Option<String>,
    pub jwt_payload_header: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub api_key_file: Option<String>,
    pub api_key: Option<String>,
    /// The trimmed contents of `api_key_file`, filled in by the loader (never from TOML).
    #[serde(skip)]
    pub api_key_from_file: Option<String>,
}

impl std::fmt::Debug for RawAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAdmin")
            .field("api_key_file", &self.api_key_file)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field(
                "api_key_from_file",
                &self.api_key_from_file.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<String>,
    #[serde(default, deserialize_with = "word")]
    pub format: Option<LogFormat>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub path_prefix: Option<String>,
    pub host: Option<String>,
    pub upstream: Option<String>,
    #[serde(default, deserialize_with = "word")]
    pub auth: Option<AuthMode>,
    #[serde(default, deserialize_with = "word")]
    pub anti_csrf: Option<AntiCsrfMode>,
    pub session_control: Option<bool>,
    pub login_redirect: Option<String>,
    #[serde(default, deserialize_with = "word")]
    pub path_params: Option<PathParams>,
    pub case_insensitive: Option<bool>,
    /// Claim name → allowed values; checked by the validator (non-empty lists of scalars).
    pub require_claims: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "word")]
    pub token_transfer: Option<TokenTransfer>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub webhook_url: Option<String>,
    pub webhook_secret_file: Option<String>,
    pub queue_capacity: Option<i64>,
    pub max_retries: Option<i64>,
    pub retry_base_ms: Option<i64>,
    /// The key held by `webhook_secret_file`, filled in by the loader (never from TOML).
    #[serde(skip)]
    pub secret_from_file: Option<Vec<u8>>,
}

impl std::fmt::Debug for RawEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEvents")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_retries", &self.max_retries)
            .field("retry_base_ms", &self.retry_base_ms)
            .field(
                "secret_from_file",
                &self.secret_from_file.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub enabled: Option<bool>,
    pub max_addresses: Option<i64>,
    pub refresh: Option<RawBucket>,
    pub logout: Option<RawBucket>,
    pub session_create: Option<RawBucket>,
    pub forward_auth: Option<RawBucket>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub per_minute: Option<i64>,
    pub burst: Option<i64>,
}
