//! Rendering: the effective [`Config`] as TOML text, as `sessiongate check-config` prints it.
//!
//! Owns the masking of secrets in that output: the admin API key is printed as `***` and the
//! store URL through [`StoreUrl::masked`]. The text is valid TOML and, secrets aside, loads
//! back to the same configuration. It must not print any secret, nor do any I/O.

use std::fmt::Write;

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

fn list<I: IntoIterator<Item = String>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().map(|s| q(&s)).collect();
    format!("[{}]", items.join(", "))
}

fn write_config(out: &mut String, c: &Config) -> std::fmt::Result {
    let s = &c.server;
    writeln!(out, "[server]")?;
    writeln!(out, "listen = {}", q(&s.listen.to_string()))?;
    writeln!(out, "admin_listen = {}", q(&s.admin_listen.to_string()))?;
    writeln!(out, "shutdown_grace_secs = {}", s.shutdown_grace.as_secs())?;
    writeln!(
        out,
        "upstream_timeout_secs = {}",
        s.upstream_timeout.as_secs()
    )?;
    writeln!(
        out,
        "header_read_timeout_secs = {}",
        s.header_read_timeout.as_secs()
    )?;
    writeln!(out, "max_connections = {}", s.max_connections)?;
    writeln!(out, "max_connections_per_ip = {}", s.max_connections_per_ip)?;
    writeln!(out, "idle_timeout_secs = {}", s.idle_timeout.as_secs())?;
    writeln!(
        out,
        "body_read_timeout_secs = {}",
        s.body_read_timeout.as_secs()
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
    writeln!(out, "connection_limit = {}", st.connection_limit)?;
    writeln!(out, "auto_migrate = {}", st.auto_migrate)?;
    writeln!(out, "\n[store.tables]")?;
    writeln!(out, "signing_key = {}", q(&st.tables.signing_key))?;
    writeln!(out, "refresh_tokens = {}", q(&st.tables.refresh_tokens))?;

    let t = &c.tokens;
    writeln!(out, "\n[tokens]")?;
    writeln!(out, "enable_anti_csrf = {}", t.enable_anti_csrf)?;
    let at = &t.access_token;
    writeln!(out, "\n[tokens.access_token]")?;
    writeln!(out, "validity_secs = {}", at.validity_secs)?;
    writeln!(out, "blacklisting = {}", at.blacklisting)?;
    writeln!(out, "path = {}", q(&at.path))?;
    let sk = &at.signing_key;
    writeln!(out, "\n[tokens.access_token.signing_key]")?;
    writeln!(out, "dynamic = {}", sk.dynamic)?;
    writeln!(out, "update_interval_hours = {}", sk.update_interval_hours)?;
    writeln!(out, "algorithm = {}", q(sk.algorithm.as_str()))?;
    match &sk.secret_file {
        Some(f) => writeln!(out, "secret_file = {}", q(&f.display().to_string()))?,
        None => writeln!(
            out,
            "# secret_file unset: keys are generated and kept in the store"
        )?,
    }
    let rt = &t.refresh_token;
    writeln!(out, "\n[tokens.refresh_token]")?;
    writeln!(out, "validity_hours = {}", rt.validity_hours)?;
    writeln!(out, "removal_cron = {}", q(&rt.removal_cron))?;
    writeln!(out, "renew_path = {}", q(&rt.renew_path))?;
    writeln!(out, "reuse_grace_secs = {}", rt.reuse_grace_secs)?;

    let ck = &c.cookie;
    writeln!(out, "\n[cookie]")?;
    match &ck.domain {
        Some(d) => writeln!(out, "domain = {}", q(d))?,
        None => writeln!(out, "# domain unset: host-only cookies")?,
    }
    writeln!(out, "secure = {}", ck.secure)?;
    writeln!(
        out,
        "same_site = {}",
        q(&ck.same_site.as_attr().to_ascii_lowercase())
    )?;

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
    let theft = match se.theft_action {
        TheftAction::RevokeSession => "revoke_session",
        TheftAction::RevokeAllUserSessions => "revoke_all_user_sessions",
    };
    writeln!(out, "theft_action = {}", q(theft))?;

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
    let format = match c.logging.format {
        LogFormat::Pretty => "pretty",
        LogFormat::Json => "json",
    };
    writeln!(out, "format = {}", q(format))?;

    for r in &c.routes {
        writeln!(out, "\n[[routes]]")?;
        writeln!(out, "name = {}", q(&r.name))?;
        writeln!(out, "path_prefix = {}", q(&r.path_prefix))?;
        if let Some(h) = &r.host {
            writeln!(out, "host = {}", q(h))?;
        }
        writeln!(out, "upstream = {}", q(&r.upstream.to_string()))?;
        let auth = match r.auth {
            AuthMode::Required => "required",
            AuthMode::Optional => "optional",
            AuthMode::Public => "public",
        };
        writeln!(out, "auth = {}", q(auth))?;
        let csrf = match r.anti_csrf {
            AntiCsrfMode::NonGet => "non_get",
            AntiCsrfMode::Always => "always",
            AntiCsrfMode::Never => "never",
        };
        writeln!(out, "anti_csrf = {}", q(csrf))?;
        writeln!(out, "session_control = {}", r.session_control)?;
        let params = match r.path_params {
            PathParams::Reject => "reject",
            PathParams::Strip => "strip",
        };
        writeln!(out, "path_params = {}", q(params))?;
        writeln!(out, "case_insensitive = {}", r.case_insensitive)?;
        if let Some(l) = &r.login_redirect {
            writeln!(out, "login_redirect = {}", q(l))?;
        }
    }
    Ok(())
}
