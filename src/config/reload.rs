//! What a configuration reload (SIGHUP) may change in a running gateway: [`apply_live`]
//! takes the running and the newly loaded [`Config`] and returns the config the next
//! generation runs with, in which every restart-only key keeps its running value, plus the
//! key paths that changed but need a restart. Pure: no I/O, no logging.
//!
//! **Live** (everything not listed below): routes and their upstreams (and their
//! `require_claims`), `forward_auth.path`, `cors`, `cookie`,
//! `server.trusted_proxies`, `server.upstream_timeout_secs`, `server.body_read_timeout_secs`,
//! `session.logout_path`, `session.expired_status`, `admin` (the API key), `logging.level`,
//! and the TLS certificate and key (`server.tls.cert`/`key` paths and file contents). Keys
//! added later are live unless added here.
//!
//! **Restart-only**, and why:
//! - `server.listen`, `server.admin_listen`: the sockets are bound once.
//! - `server.tls` being set or not: whether the public listener speaks TLS is part of how it
//!   was started (the peer's scheme, the handshake deadline); its certificate and key are live.
//! - `server.max_connections`, `server.max_connections_per_ip`, `server.workers`,
//!   `server.header_read_timeout_secs`, `server.idle_timeout_secs`,
//!   `server.shutdown_grace_secs`: the accept loop's limits, held by every open connection's
//!   slot and watchdog.
//! - `store.*` (URL, pool size, migrations, table names): the store and its pool are opened
//!   once and shared by everything, jobs included.
//! - `tokens.*` (validities, blacklisting, cookie paths, signing keys, refresh rules,
//!   anti-CSRF) and `session.theft_action`: the session engine, key cache, blacklist and
//!   purge job are built from them once, and sessions already issued carry them (cookie
//!   paths, expiries, the blacklist's retention).
//! - `identity.*`: renaming identity headers live would open a window in which an upstream
//!   still trusts the old name while the gateway no longer strips it from clients.
//! - `logging.format`: the log writer is installed once (the level is live).
//! - `events.*`: the event queue and its webhook worker are started once, with the process.
//! - `rate_limits.*`: the buckets are process-scoped (a reload must not refill them).
//! - `tracing.*`: the exporter task and its tracer are started once, with the sampling ratio
//!   and service name (`otel::Tracer`).
//! - `legacy.*`: the legacy key cache and the takeover's pool are built once, at start.

use super::Config;

/// The restart-only keys whose value differs between `old` and `new`, in a fixed order.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (os, ns) = (&old.server, &new.server);
    let (ot, nt) = (&old.tokens, &new.tokens);
    let (oa, na) = (&ot.access_token, &nt.access_token);
    let (ok, nk) = (&oa.signing_key, &na.signing_key);
    let (or, nr) = (&ot.refresh_token, &nt.refresh_token);
    let (oi, ni) = (&old.identity, &new.identity);
    let checks: [(&'static str, bool); 31] = [
        ("server.listen", os.listen != ns.listen),
        ("server.admin_listen", os.admin_listen != ns.admin_listen),
        ("server.tls", os.tls.is_some() != ns.tls.is_some()),
        (
            "server.max_connections",
            os.max_connections != ns.max_connections,
        ),
        (
            "server.max_connections_per_ip",
            os.max_connections_per_ip != ns.max_connections_per_ip,
        ),
        ("server.workers", os.workers != ns.workers),
        (
            "server.header_read_timeout_secs",
            os.header_read_timeout != ns.header_read_timeout,
        ),
        (
            "server.idle_timeout_secs",
            os.idle_timeout != ns.idle_timeout,
        ),
        (
            "server.shutdown_grace_secs",
            os.shutdown_grace != ns.shutdown_grace,
        ),
        ("store.url", old.store.url != new.store.url),
        (
            "store.connection_limit",
            old.store.connection_limit != new.store.connection_limit,
        ),
        (
            "store.auto_migrate",
            old.store.auto_migrate != new.store.auto_migrate,
        ),
        (
            "store.tables.signing_key",
            old.store.tables.signing_key != new.store.tables.signing_key,
        ),
        (
            "store.tables.refresh_tokens",
            old.store.tables.refresh_tokens != new.store.tables.refresh_tokens,
        ),
        (
            "tokens.access_token.validity_secs",
            oa.validity_secs != na.validity_secs,
        ),
        (
            "tokens.access_token.blacklisting",
            oa.blacklisting != na.blacklisting,
        ),
        ("tokens.access_token.path", oa.path != na.path),
        (
            "tokens.access_token.signing_key.dynamic",
            ok.dynamic != nk.dynamic,
        ),
        (
            "tokens.access_token.signing_key.update_interval_hours",
            ok.update_interval_hours != nk.update_interval_hours,
        ),
        (
            "tokens.access_token.signing_key.secret_file",
            ok.secret_file.as_ref().map(|f| &f.path) != nk.secret_file.as_ref().map(|f| &f.path),
        ),
        (
            "tokens.access_token.signing_key.algorithm",
            ok.algorithm != nk.algorithm,
        ),
        (
            "tokens.refresh_token.validity_hours",
            or.validity_hours != nr.validity_hours,
        ),
        (
            "tokens.refresh_token.removal_cron",
            or.removal_cron != nr.removal_cron,
        ),
        (
            "tokens.refresh_token.renew_path",
            or.renew_path != nr.renew_path,
        ),
        (
            "tokens.refresh_token.reuse_grace_secs",
            or.reuse_grace_secs != nr.reuse_grace_secs,
        ),
        (
            "tokens.enable_anti_csrf",
            ot.enable_anti_csrf != nt.enable_anti_csrf,
        ),
        (
            "session.theft_action",
            old.session.theft_action != new.session.theft_action,
        ),
        (
            "identity.user_id_header",
            oi.user_id_header != ni.user_id_header,
        ),
        (
            "identity.session_handle_header",
            oi.session_handle_header != ni.session_handle_header,
        ),
        (
            "identity.jwt_payload_header",
            oi.jwt_payload_header != ni.jwt_payload_header,
        ),
        ("legacy", old.legacy != new.legacy),
    ];
    let mut changed: Vec<&'static str> = checks
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect();
    if old.logging.format != new.logging.format {
        changed.push("logging.format");
    }
    if old.events != new.events {
        changed.push("events");
    }
    if old.rate_limits != new.rate_limits {
        changed.push("rate_limits");
    }
    if old.tracing.endpoint != new.tracing.endpoint {
        changed.push("tracing.endpoint");
    }
    if old.tracing.sample_ratio != new.tracing.sample_ratio {
        changed.push("tracing.sample_ratio");
    }
    if old.tracing.service_name != new.tracing.service_name {
        changed.push("tracing.service_name");
    }
    changed
}

/// The config the next generation runs with: `new`, with every restart-only key set back to
/// its value in `old`; and the restart-only keys that `new` tried to change.
pub fn apply_live(old: &Config, new: Config) -> (Config, Vec<&'static str>) {
    let changed = restart_only_changes(old, &new);
    let mut next = new;
    let (s, o) = (&mut next.server, &old.server);
    s.listen = o.listen;
    s.admin_listen = o.admin_listen;
    if s.tls.is_some() != o.tls.is_some() {
        s.tls = o.tls.clone();
    }
    s.max_connections = o.max_connections;
    s.max_connections_per_ip = o.max_connections_per_ip;
    s.workers = o.workers;
    s.header_read_timeout = o.header_read_timeout;
    s.idle_timeout = o.idle_timeout;
    s.shutdown_grace = o.shutdown_grace;
    next.store = old.store.clone();
    next.tokens = old.tokens.clone();
    next.session.theft_action = old.session.theft_action;
    next.identity = old.identity.clone();
    next.logging.format = old.logging.format;
    next.events = old.events.clone();
    next.rate_limits = old.rate_limits.clone();
    next.tracing = old.tracing.clone();
    next.legacy = old.legacy.clone();
    (next, changed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        load_from_str, Cidr, LogFormat, SecretFile, ServerConfig, SigningAlgorithm, StoreUrl,
        TheftAction, TlsConfig,
    };

    fn base() -> Config {
        load_from_str(
            r#"
server.listen = "127.0.0.1:8080"
store.url = "sqlite::memory:"
tokens.refresh_token.renew_path = "/auth/refresh"
[[routes]]
name = "a"
path_prefix = "/a"
upstream = "http://127.0.0.1:9000"
"#,
        )
        .unwrap()
    }

    /// `edit` applied to the running config gives a new one that changes exactly `want`.
    fn check(edit: impl Fn(&mut Config), want: &[&str]) {
        let old = base();
        let mut new = base();
        edit(&mut new);
        let (next, changed) = apply_live(&old, new);
        assert_eq!(changed, want);
        // Every restart-only key is back to its running value.
        assert!(restart_only_changes(&old, &next).is_empty(), "{want:?}");
    }

    #[test]
    fn restart_only_keys_are_named_and_kept() {
        let tls = Some(TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        });
        check(|_| {}, &[]);
        check(
            |c| c.server.listen = "127.0.0.1:9090".parse().unwrap(),
            &["server.listen"],
        );
        check(
            |c| c.server.admin_listen = "127.0.0.1:9999".parse().unwrap(),
            &["server.admin_listen"],
        );
        check(|c| c.server.tls = tls.clone(), &["server.tls"]);
        check(
            |c| c.server.max_connections = 7,
            &["server.max_connections"],
        );
        check(
            |c| c.server.max_connections_per_ip = 7,
            &["server.max_connections_per_ip"],
        );
        check(|c| c.server.workers = 3, &["server.workers"]);
        check(
            |c| c.server.header_read_timeout = Duration::from_secs(99),
            &["server.header_read_timeout_secs"],
        );
        check(
            |c| c.server.idle_timeout = Duration::from_secs(99),
            &["server.idle_timeout_secs"],
        );
        check(
            |c| c.server.shutdown_grace = Duration::from_secs(99),
            &["server.shutdown_grace_secs"],
        );
        check(
            |c| c.store.url = StoreUrl::Sqlite("/tmp/x.db".into()),
            &["store.url"],
        );
        check(
            |c| c.store.connection_limit = 3,
            &["store.connection_limit"],
        );
        check(|c| c.store.auto_migrate ^= true, &["store.auto_migrate"]);
        check(
            |c| c.store.tables.signing_key = "k2".into(),
            &["store.tables.signing_key"],
        );
        check(
            |c| c.store.tables.refresh_tokens = "r2".into(),
            &["store.tables.refresh_tokens"],
        );
        check(
            |c| c.tokens.access_token.validity_secs += 1,
            &["tokens.access_token.validity_secs"],
        );
        check(
            |c| c.tokens.access_token.blacklisting ^= true,
            &["tokens.access_token.blacklisting"],
        );
        check(
            |c| c.tokens.access_token.path = "/x".into(),
            &["tokens.access_token.path"],
        );
        check(
            |c| c.tokens.access_token.signing_key.dynamic ^= true,
            &["tokens.access_token.signing_key.dynamic"],
        );
        check(
            |c| c.tokens.access_token.signing_key.update_interval_hours += 1,
            &["tokens.access_token.signing_key.update_interval_hours"],
        );
        check(
            |c| {
                c.tokens.access_token.signing_key.secret_file = Some(SecretFile {
                    path: "s".into(),
                    key: vec![7; 32],
                })
            },
            &["tokens.access_token.signing_key.secret_file"],
        );
        check(
            |c| {
                c.legacy = Some(crate::config::legacy::LegacyConfig {
                    url: "mysql://root@127.0.0.1/db".into(),
                    database: "db".into(),
                    refresh_token_table: "refresh_token".into(),
                    signing_key_table: "signing_key".into(),
                    accept_until_ms: None,
                })
            },
            &["legacy"],
        );
        check(
            |c| c.tokens.access_token.signing_key.algorithm = SigningAlgorithm::EdDsa,
            &["tokens.access_token.signing_key.algorithm"],
        );
        check(
            |c| c.tokens.refresh_token.validity_hours += 1,
            &["tokens.refresh_token.validity_hours"],
        );
        check(
            |c| c.tokens.refresh_token.removal_cron = "0 0 * * * *".into(),
            &["tokens.refresh_token.removal_cron"],
        );
        check(
            |c| c.tokens.refresh_token.renew_path = "/r2".into(),
            &["tokens.refresh_token.renew_path"],
        );
        check(
            |c| c.tokens.refresh_token.reuse_grace_secs += 1,
            &["tokens.refresh_token.reuse_grace_secs"],
        );
        check(
            |c| c.tokens.enable_anti_csrf ^= true,
            &["tokens.enable_anti_csrf"],
        );
        check(
            |c| c.session.theft_action = TheftAction::RevokeAllUserSessions,
            &["session.theft_action"],
        );
        check(
            |c| c.identity.user_id_header = "x-uid".into(),
            &["identity.user_id_header"],
        );
        check(
            |c| c.identity.session_handle_header = "x-sh".into(),
            &["identity.session_handle_header"],
        );
        check(
            |c| c.identity.jwt_payload_header = "x-jp".into(),
            &["identity.jwt_payload_header"],
        );
        check(
            |c| {
                c.logging.format = match c.logging.format {
                    LogFormat::Json => LogFormat::Pretty,
                    LogFormat::Pretty => LogFormat::Json,
                }
            },
            &["logging.format"],
        );
        check(|c| c.events.max_retries += 1, &["events"]);
        check(|c| c.rate_limits.enabled ^= true, &["rate_limits"]);
        check(
            |c| c.tracing.endpoint = Some("http://127.0.0.1:4318/v1/traces".parse().unwrap()),
            &["tracing.endpoint"],
        );
        check(|c| c.tracing.sample_ratio = 0.5, &["tracing.sample_ratio"]);
        check(
            |c| c.tracing.service_name = "edge".into(),
            &["tracing.service_name"],
        );
        check(
            |c| {
                c.server.listen = "127.0.0.1:1".parse().unwrap();
                c.store.connection_limit = 3;
            },
            &["server.listen", "store.connection_limit"],
        );
    }

    #[test]
    fn live_keys_take_the_new_value() {
        let old = Config {
            server: ServerConfig {
                tls: Some(TlsConfig {
                    cert: "c1.pem".into(),
                    key: "k1.pem".into(),
                }),
                ..base().server
            },
            ..base()
        };
        let mut new = old.clone();
        new.routes.push(new.routes[0].clone());
        new.routes[1].name = "b".into();
        new.cors.allowed_origins = vec!["https://x.example".into()];
        new.cookie.secure ^= true;
        new.cookie.domain = Some("example.com".into());
        new.server.trusted_proxies = vec![Cidr {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 8,
        }];
        new.server.upstream_timeout = Duration::from_secs(77);
        new.server.body_read_timeout = Duration::from_secs(77);
        new.server.tls = Some(TlsConfig {
            cert: "c2.pem".into(),
            key: "k2.pem".into(),
        });
        new.session.logout_path = Some("/bye".into());
        new.forward_auth.path = Some("/verify".into());
        new.routes[0].require_claims = vec![crate::config::ClaimRule {
            claim: "role".into(),
            allowed: vec![serde_json::json!("admin")],
        }];
        new.session.expired_status = http::StatusCode::from_u16(440).unwrap();
        new.admin.api_key = Some("another key".into());
        new.logging.level = "debug".into();
        let (next, changed) = apply_live(&old, new.clone());
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(format!("{next:?}"), format!("{new:?}"));
        assert_eq!(next.admin.api_key, new.admin.api_key);
    }
}
