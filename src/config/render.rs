//! Rendering: the effective [`Config`] as TOML text, as `sessiongate check-config` prints it.
//!
//! Owns the masking of secrets in that output: the admin API key is printed as `***` and the
//! store URL through [`StoreUrl::masked`]. The text is valid TOML and, secrets aside, loads
//! back to the same configuration. It must not print any secret, nor do any I/O.

use std::fmt::Write;

use super::validate::{int_keys, IntKey};
use super::*;

/// The effective configuration with every default filled in and secrets masked.
pub fn render_masked(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_config(&mut out, config);
    out
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A configuration enum as the file spells it (its serde name), quoted.
fn word<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => q(&name),
        // Every configuration enum is a set of unit variants, serialized as strings.
        other => unreachable!("a configuration enum serialized as {other:?}"),
    }
}

/// An integer key, named as the key table names it.
fn int(out: &mut String, key: &IntKey, value: impl std::fmt::Display) -> std::fmt::Result {
    writeln!(out, "{} = {value}", key.name())
}

fn list<I: IntoIterator<Item = String>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().map(|s| q(&s)).collect();
    format!("[{}]", items.join(", "))
}

fn write_config(out: &mut String, c: &Config) -> std::fmt::Result {
    let s = &c.server;
    writeln!(out, "[server]")?;
    writeln!(out, "listen = {}", q(&s.listen.to_string()))?;
    writeln!(out, "admin_listen = {}", q(&s.admin_listen.to_string()))?;
    int(
        out,
        &int_keys::SHUTDOWN_GRACE_SECS,
        s.shutdown_grace.as_secs(),
    )?;
    int(
        out,
        &int_keys::UPSTREAM_TIMEOUT_SECS,
        s.upstream_timeout.as_secs(),
    )?;
    int(
        out,
        &int_keys::HEADER_READ_TIMEOUT_SECS,
        s.header_read_timeout.as_secs(),
    )?;
    int(out, &int_keys::MAX_CONNECTIONS, s.max_connections)?;
    int(
        out,
        &int_keys::MAX_CONNECTIONS_PER_IP,
        s.max_connections_per_ip,
    )?;
    int(out, &int_keys::WORKERS, s.workers)?;
    int(out, &int_keys::IDLE_TIMEOUT_SECS, s.idle_timeout.as_secs())?;
    int(
        out,
        &int_keys::BODY_READ_TIMEOUT_SECS,
        s.body_read_timeout.as_secs(),
    )?;
    writeln!(
        out,
        "trusted_proxies = {}",
        list(
            s.trusted_proxies
                .iter()
                .map(|c| format!("{}/{}", c.addr, c.prefix_len))
        )
    )?;
    writeln!(
        out,
        "public_origins = {}",
        list(s.public_origins.iter().cloned())
    )?;
    match &s.tls {
        Some(tls) => {
            writeln!(out, "\n[server.tls]")?;
            writeln!(out, "cert = {}", q(&tls.cert.display().to_string()))?;
            writeln!(out, "key = {}", q(&tls.key.display().to_string()))?;
        }
        None => writeln!(out, "# server.tls unset: plain HTTP")?,
    }

    let st = &c.store;
    writeln!(out, "\n[store]")?;
    writeln!(out, "url = {}", q(&st.url.masked()))?;
    int(out, &int_keys::CONNECTION_LIMIT, st.connection_limit)?;
    writeln!(out, "auto_migrate = {}", st.auto_migrate)?;
    writeln!(out, "\n[store.tables]")?;
    writeln!(out, "signing_key = {}", q(&st.tables.signing_key))?;
    writeln!(out, "refresh_tokens = {}", q(&st.tables.refresh_tokens))?;

    let t = &c.tokens;
    writeln!(out, "\n[tokens]")?;
    writeln!(out, "enable_anti_csrf = {}", t.enable_anti_csrf)?;
    let at = &t.access_token;
    writeln!(out, "\n[tokens.access_token]")?;
    int(out, &int_keys::ACCESS_VALIDITY_SECS, at.validity_secs)?;
    writeln!(out, "blacklisting = {}", at.blacklisting)?;
    writeln!(out, "path = {}", q(&at.path))?;
    let sk = &at.signing_key;
    writeln!(out, "\n[tokens.access_token.signing_key]")?;
    writeln!(out, "dynamic = {}", sk.dynamic)?;
    int(
        out,
        &int_keys::UPDATE_INTERVAL_HOURS,
        sk.update_interval_hours,
    )?;
    writeln!(out, "algorithm = {}", word(sk.algorithm))?;
    match &sk.secret_file {
        Some(f) => writeln!(out, "secret_file = {}", q(&f.path.display().to_string()))?,
        None => writeln!(
            out,
            "# secret_file unset: keys are generated and kept in the store"
        )?,
    }
    let rt = &t.refresh_token;
    writeln!(out, "\n[tokens.refresh_token]")?;
    int(out, &int_keys::REFRESH_VALIDITY_HOURS, rt.validity_hours)?;
    writeln!(out, "removal_cron = {}", q(&rt.removal_cron))?;
    writeln!(out, "renew_path = {}", q(&rt.renew_path))?;
    int(out, &int_keys::REUSE_GRACE_SECS, rt.reuse_grace_secs)?;

    let ck = &c.cookie;
    writeln!(out, "\n[cookie]")?;
    match &ck.domain {
        Some(d) => writeln!(out, "domain = {}", q(d))?,
        None => writeln!(out, "# domain unset: host-only cookies")?,
    }
    writeln!(out, "secure = {}", ck.secure)?;
    writeln!(out, "same_site = {}", word(ck.same_site))?;

    let se = &c.session;
    writeln!(out, "\n[session]")?;
    match &se.logout_path {
        Some(p) => writeln!(out, "logout_path = {}", q(p))?,
        None => writeln!(
            out,
            "# logout_path unset: the gateway handles no logout route"
        )?,
    }
    writeln!(out, "expired_status = {}", se.expired_status.as_u16())?;
    writeln!(out, "theft_action = {}", word(se.theft_action))?;

    let id = &c.identity;
    writeln!(out, "\n[identity]")?;
    writeln!(out, "user_id_header = {}", q(&id.user_id_header))?;
    writeln!(
        out,
        "session_handle_header = {}",
        q(&id.session_handle_header)
    )?;
    writeln!(out, "jwt_payload_header = {}", q(&id.jwt_payload_header))?;

    writeln!(out, "\n[cors]")?;
    writeln!(
        out,
        "allowed_origins = {}",
        list(c.cors.allowed_origins.iter().cloned())
    )?;

    writeln!(out, "\n[admin]")?;
    match &c.admin.api_key {
        Some(_) => writeln!(out, "api_key = \"***\"")?,
        None => writeln!(out, "# no admin API key: the /v1 admin API answers 403")?,
    }

    writeln!(out, "\n[logging]")?;
    writeln!(out, "level = {}", q(&c.logging.level))?;
    writeln!(out, "format = {}", word(c.logging.format))?;

    writeln!(out, "\n[forward_auth]")?;
    match &c.forward_auth.path {
        Some(p) => writeln!(out, "path = {}", q(p))?,
        None => writeln!(out, "# path unset: no forward-auth endpoint")?,
    }
    write_security(out, &c.events, &c.rate_limits)?;
    writeln!(out, "\n[tracing]")?;
    match &c.tracing.endpoint {
        Some(e) => writeln!(out, "endpoint = {}", q(&e.to_string()))?,
        None => writeln!(out, "# endpoint unset: no traces are exported")?,
    }
    writeln!(out, "sample_ratio = {:?}", c.tracing.sample_ratio)?;
    writeln!(out, "service_name = {}", q(&c.tracing.service_name))?;
    if let Some(l) = &c.legacy {
        writeln!(out, "\n[legacy]")?;
        writeln!(out, "url = {}", q(&super::mask_url_password(&l.url)))?;
        writeln!(out, "refresh_token_table = {}", q(&l.refresh_token_table))?;
        writeln!(out, "signing_key_table = {}", q(&l.signing_key_table))?;
        if let Some(t) = l
            .accept_until_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
        {
            writeln!(out, "accept_until = {}", q(&t.to_rfc3339()))?;
        }
    }

    for r in &c.routes {
        writeln!(out, "\n[[routes]]")?;
        writeln!(out, "name = {}", q(&r.name))?;
        writeln!(out, "path_prefix = {}", q(&r.path_prefix))?;
        if let Some(h) = &r.host {
            writeln!(out, "host = {}", q(h))?;
        }
        match &r.upstream {
            Some(u) => writeln!(out, "upstream = {}", q(&u.to_string()))?,
            None => writeln!(out, "# no upstream: used by the forward-auth endpoint only")?,
        }
        writeln!(out, "auth = {}", word(r.auth))?;
        writeln!(out, "anti_csrf = {}", word(r.anti_csrf))?;
        writeln!(out, "session_control = {}", r.session_control)?;
        writeln!(out, "path_params = {}", word(r.path_params))?;
        writeln!(out, "case_insensitive = {}", r.case_insensitive)?;
        writeln!(out, "token_transfer = {}", word(r.token_transfer))?;
        if let Some(l) = &r.login_redirect {
            writeln!(out, "login_redirect = {}", q(l))?;
        }
        if !r.require_claims.is_empty() {
            let rules: Vec<String> = r
                .require_claims
                .iter()
                .map(|c| {
                    let values: Vec<String> = c.allowed.iter().map(|v| v.to_string()).collect();
                    format!("{} = [{}]", q(&c.claim), values.join(", "))
                })
                .collect();
            writeln!(out, "require_claims = {{ {} }}", rules.join(", "))?;
        }
    }
    Ok(())
}

fn write_security(out: &mut String, e: &EventsConfig, r: &RateLimitsConfig) -> std::fmt::Result {
    writeln!(out, "\n[events]")?;
    match &e.webhook {
        Some(w) => {
            writeln!(out, "webhook_url = {}", q(&w.url.to_string()))?;
            match &w.secret {
                Some(f) => writeln!(
                    out,
                    "webhook_secret_file = {}",
                    q(&f.path.display().to_string())
                )?,
                None => writeln!(out, "# webhook_secret_file unset: events are not signed")?,
            }
        }
        None => writeln!(out, "# webhook_url unset: events are only logged")?,
    }
    int(out, &int_keys::EVENTS_QUEUE_CAPACITY, e.queue_capacity)?;
    int(out, &int_keys::EVENTS_MAX_RETRIES, e.max_retries)?;
    int(
        out,
        &int_keys::EVENTS_RETRY_BASE_MS,
        e.retry_base.as_millis(),
    )?;

    writeln!(out, "\n[rate_limits]")?;
    writeln!(out, "enabled = {}", r.enabled)?;
    int(out, &int_keys::RATE_LIMITS_MAX_ADDRESSES, r.max_addresses)?;
    use int_keys::*;
    for (name, b, keys) in [
        ("refresh", r.refresh, [REFRESH_PER_MINUTE, REFRESH_BURST]),
        ("logout", r.logout, [LOGOUT_PER_MINUTE, LOGOUT_BURST]),
        (
            "session_create",
            r.session_create,
            [SESSION_CREATE_PER_MINUTE, SESSION_CREATE_BURST],
        ),
        (
            "forward_auth",
            r.forward_auth,
            [FORWARD_AUTH_PER_MINUTE, FORWARD_AUTH_BURST],
        ),
    ] {
        writeln!(out, "\n[rate_limits.{name}]")?;
        int(out, &keys[0], b.per_minute)?;
        int(out, &keys[1], b.burst)?;
    }
    Ok(())
}
