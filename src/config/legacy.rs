//! The `[legacy]` section: taking over the sessions of a running deployment of the original
//! library (`supertokens-node-mysql-ref-jwt` 5.x, issue 14). Its raw form, its typed form and
//! its validation, kept apart from the other sections; `validate.rs` calls [`validate`].
//!
//! Rules: the section's presence turns it on (`enabled = false` keeps it written down but
//! off); the gateway's store must be MySQL, and the library's database must be on the same
//! server (`legacy.url`'s host and port equal `store.url`'s), because a session moves over in
//! one MySQL transaction; when both are the same database the gateway's own table names must
//! differ from the library's (the defaults are the same words). Pure: no I/O.

use serde::Deserialize;

use super::{ConfigProblem, StoreConfig, StoreUrl};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacy {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub refresh_token_table: Option<String>,
    pub signing_key_table: Option<String>,
    pub accept_until: Option<String>,
}

/// Where the original library's sessions are, and until when its tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyConfig {
    /// The library's MySQL database (`store.url` unless set; same server as the store).
    pub url: String,
    /// The database name `url` selects.
    pub database: String,
    pub refresh_token_table: String,
    pub signing_key_table: String,
    /// Epoch ms after which legacy tokens are refused like unknown tokens.
    pub accept_until_ms: Option<i64>,
}

fn host_port_db(url: &str) -> Option<(String, u16, String)> {
    let opts = crate::store::mysql::parse_url(url).ok()?.opts;
    Some((
        opts.ip_or_hostname().to_string(),
        opts.tcp_port(),
        opts.db_name().unwrap_or("").to_string(),
    ))
}

fn table_name(
    problems: &mut Vec<ConfigProblem>,
    key: &str,
    value: Option<String>,
    default: &str,
) -> String {
    let Some(s) = value else {
        return default.to_string();
    };
    if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        s
    } else {
        problems.push(ConfigProblem::new(
            key,
            "not a valid table name",
            format!("{s:?}"),
            "[A-Za-z0-9_]{1,64}",
        ));
        default.to_string()
    }
}

/// `[legacy]` checked against the store it must share a server with; `None` when absent or
/// disabled.
pub fn validate(
    raw: Option<RawLegacy>,
    store: &StoreConfig,
) -> (Option<LegacyConfig>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let Some(raw) = raw else {
        return (None, problems);
    };
    let refresh_token_table = table_name(
        &mut problems,
        "legacy.refresh_token_table",
        raw.refresh_token_table,
        "refresh_token",
    );
    let signing_key_table = table_name(
        &mut problems,
        "legacy.signing_key_table",
        raw.signing_key_table,
        "signing_key",
    );
    if refresh_token_table == signing_key_table {
        problems.push(ConfigProblem::new(
            "legacy.signing_key_table",
            "same table name as legacy.refresh_token_table",
            format!("{signing_key_table:?}"),
            "a name different from legacy.refresh_token_table",
        ));
    }
    let accept_until_ms =
        raw.accept_until
            .as_deref()
            .and_then(|s| match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.timestamp_millis()),
                Err(e) => {
                    problems.push(ConfigProblem::new(
                        "legacy.accept_until",
                        format!("not an RFC 3339 date and time: {e}"),
                        format!("{s:?}"),
                        "e.g. \"2027-01-31T00:00:00Z\"",
                    ));
                    None
                }
            });
    let StoreUrl::Mysql(store_url) = &store.url else {
        problems.push(ConfigProblem::new(
            "legacy",
            "needs a MySQL store: a session moves over in one MySQL transaction",
            store.url.masked(),
            "store.url = \"mysql://…\" on the library's MySQL server",
        ));
        return (None, problems);
    };
    let url = raw.url.unwrap_or_else(|| store_url.clone());
    let masked = super::mask_url_password(&url);
    let (Some(legacy_at), Some(store_at)) = (host_port_db(&url), host_port_db(store_url)) else {
        problems.push(ConfigProblem::new(
            "legacy.url",
            "not a MySQL URL naming a database",
            format!("{masked:?}"),
            "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE",
        ));
        return (None, problems);
    };
    if legacy_at.2.is_empty() {
        problems.push(ConfigProblem::new(
            "legacy.url",
            "the MySQL URL names no database",
            format!("{masked:?}"),
            "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE",
        ));
    }
    if (&legacy_at.0, legacy_at.1) != (&store_at.0, store_at.1) {
        problems.push(ConfigProblem::new(
            "legacy.url",
            "on another server than store.url: a session moves over in one transaction",
            format!("{masked:?}"),
            format!("a database on {}:{}", store_at.0, store_at.1),
        ));
    }
    if legacy_at.2 == store_at.2 {
        for (key, ours) in [
            ("store.tables.refresh_tokens", &store.tables.refresh_tokens),
            ("store.tables.signing_key", &store.tables.signing_key),
        ] {
            if ours == &refresh_token_table || ours == &signing_key_table {
                problems.push(ConfigProblem::new(
                    key,
                    "names one of the original library's tables in the same database",
                    format!("{ours:?}"),
                    format!(
                        "a name other than {refresh_token_table:?} and {signing_key_table:?} \
                         (e.g. \"sessiongate_{ours}\")"
                    ),
                ));
            }
        }
    }
    if raw.enabled == Some(false) {
        return (None, problems);
    }
    (
        Some(LegacyConfig {
            url,
            database: legacy_at.2,
            refresh_token_table,
            signing_key_table,
            accept_until_ms,
        }),
        problems,
    )
}
