//! The configuration suite: loading, validation and rendering, table-driven. Each case goes
//! through one `check` helper: TOML (and environment overrides) in, either success or the
//! exact list of key paths reported, in order, with a fragment each line must contain. Where
//! the wording is the contract (ranges, enum words) whole lines are asserted. No test touches
//! the process environment. (The binary's exit codes are tested in `tests/it/cli.rs`.)

use super::load::{load_with_env, resolve_config_path, ConfigSource};
use super::*;

/// A renew path and a route are required; add them unless the case sets its own.
fn complete(toml: &str) -> (String, Vec<(String, String)>) {
    let mut text = toml.to_string();
    let mut env = Vec::new();
    if !toml.contains("renew_path") {
        env.push((
            "SESSIONGATE_TOKENS__REFRESH_TOKEN__RENEW_PATH".to_string(),
            "/auth/refresh".to_string(),
        ));
    }
    if !toml.contains("[[routes]]") && !toml.contains("routes =") {
        text.push_str("\n[[routes]]\nname = \"app\"\nupstream = \"http://127.0.0.1:3000\"\n");
    }
    (text, env)
}

fn run(toml: &str, extra_env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let (text, mut env) = complete(toml);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    load_with_env(ConfigSource::Toml(&text), env)
}

/// `expected`: `&[]` for success, else every (key, message fragment) reported, and nothing
/// else. The fragment is searched in the whole Display line.
fn check(toml: &str, expected: &[(&str, &str)]) {
    check_env(toml, &[], expected)
}

fn check_env(toml: &str, env: &[(&str, &str)], expected: &[(&str, &str)]) {
    match run(toml, env) {
        Ok(_) if expected.is_empty() => {}
        Ok(c) => panic!("expected problems {expected:?} for\n{toml}\ngot Ok({c:?})"),
        Err(e) => {
            let lines: Vec<(String, String)> = e
                .problems
                .iter()
                .map(|p| (p.key.clone(), p.to_string()))
                .collect();
            let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
            let want: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys, want, "for\n{toml}\nproblems:\n{e}");
            for ((_, line), (key, frag)) in lines.iter().zip(expected) {
                assert!(
                    line.starts_with(&format!("{key}: ")) && line.contains(frag),
                    "line {line:?} should name {key} and contain {frag:?}"
                );
            }
        }
    }
}

#[test]
fn shipped_gateway_toml_loads() {
    let text = include_str!("../../gateway.toml");
    let c = load_with_env(ConfigSource::Toml(text), Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("gateway.toml:\n{e}"));
    assert_eq!(c.tokens.refresh_token.renew_path, "/auth/refresh");
    assert_eq!(c.session.logout_path.as_deref(), Some("/auth/logout"));
    assert_eq!(c.store.url, StoreUrl::Sqlite("sessiongate.db".into()));
    assert!(c.cookie.secure);
    assert_eq!(c.routes.len(), 2);
    // Secrets aside, the rendering loads back to the same configuration.
    let again = load_from_str(&render_masked(&c)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(render_masked(&again), render_masked(&c));
}

/// The defaults that are not integers (those are `integer_keys_follow_the_key_table`'s).
#[test]
fn defaults() {
    let c = run("", &[]).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.store.url, StoreUrl::Sqlite("sessiongate.db".into()));
    assert!(c.store.auto_migrate);
    assert_eq!(c.store.tables, TableNames::default());
    assert!(!c.tokens.access_token.blacklisting);
    assert_eq!(c.tokens.access_token.path, "/");
    assert!(c.tokens.access_token.signing_key.dynamic);
    assert_eq!(
        c.tokens.access_token.signing_key.algorithm,
        SigningAlgorithm::Hs256
    );
    assert_eq!(c.tokens.refresh_token.removal_cron, "0 0 0 1-31/7 * *");
    assert!(c.tokens.enable_anti_csrf);
    assert!(c.cookie.secure);
    assert_eq!(c.cookie.domain, None);
    assert_eq!(c.cookie.same_site, SameSite::Lax);
    assert_eq!(c.session.expired_status, 401);
    assert_eq!(c.session.theft_action, TheftAction::RevokeSession);
    assert_eq!(c.identity.user_id_header, "x-user-id");
    assert!(c.admin.api_key.is_none());
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.logging.format, LogFormat::Pretty);
    let r = &c.routes[0];
    assert_eq!(
        (
            r.path_prefix.as_str(),
            r.auth,
            r.anti_csrf,
            r.session_control
        ),
        ("/", AuthMode::Required, AntiCsrfMode::NonGet, false)
    );
    assert_eq!(
        (r.path_params, r.case_insensitive),
        (PathParams::Reject, false)
    );
}

/// Two out-of-range keys and a missing required one: all three reported, one line each.
#[test]
fn out_of_range_and_missing_keys_are_reported_together() {
    let toml = "[tokens.access_token]\nvalidity_secs = 5\n\
                [tokens.access_token.signing_key]\nupdate_interval_hours = 0\n";
    let (text, _) = complete(toml);
    let e = load_from_str(&text).unwrap_err();
    let lines: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "tokens.access_token.validity_secs: out of range (got 5; allowed 10..=86400000)",
            "tokens.access_token.signing_key.update_interval_hours: out of range (got 0; allowed 1..=720)",
            "tokens.refresh_token.renew_path: required but not set (allowed an absolute path starting with / without //, dot segments, query, fragment or spaces)",
        ],
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 3);
}

/// Every key whose value is one of a set of words: its words (declaration order, the first
/// the default).
const ENUM_KEYS: &[(&str, &[&str])] = &[
    (
        "tokens.access_token.signing_key.algorithm",
        &["HS256", "EdDSA"],
    ),
    ("cookie.same_site", &["strict", "lax", "none"]),
    (
        "session.theft_action",
        &["revoke_session", "revoke_all_user_sessions"],
    ),
    ("logging.format", &["pretty", "json"]),
    ("routes[0].auth", &["required", "optional", "public"]),
    ("routes[0].anti_csrf", &["non_get", "always", "never"]),
    ("routes[0].path_params", &["reject", "strip"]),
    ("routes[0].token_transfer", &["any", "cookie", "header"]),
];

/// `key = value` as TOML: top-level dotted for sections, inside the one route for routes.
fn set(key: &str, value: &str) -> String {
    match key.strip_prefix("routes[0].") {
        Some(field) => {
            format!("[[routes]]\nname = \"app\"\nupstream = \"http://a\"\n{field} = {value}")
        }
        None => format!("{key} = {value}"),
    }
}

/// `SESSIONGATE_…` name of a key path (`routes[0].auth` → `SESSIONGATE_ROUTES__0__AUTH`).
fn env_name(key: &str) -> String {
    let path = key.replace("[", ".").replace(']', "").replace('.', "__");
    format!("SESSIONGATE_{}", path.to_ascii_uppercase())
}

/// Enum keys: each word loads, from the file and from the environment, and renders back as
/// written; any other word, from either, is reported with the same line listing the words
/// (the line these keys have always had); a value that is not a string is a wrong type.
#[test]
fn enum_keys_take_exactly_their_words() {
    for (key, words) in ENUM_KEYS {
        let name = key.rsplit('.').next().unwrap();
        // A secret file would be needed for a static key; EdDSA is fine without one.
        for word in *words {
            let quoted = format!("{word:?}");
            let c = run(&set(key, &quoted), &[]).unwrap_or_else(|e| panic!("{key} = {word}: {e}"));
            let line = format!("{name} = {quoted}");
            assert!(
                render_masked(&c).lines().any(|l| l == line),
                "{key}: {line} not rendered"
            );
            let c = run("", &[(&env_name(key), word)]).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(
                render_masked(&c).lines().any(|l| l == line),
                "{key}: env {word}"
            );
        }
        let allowed: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
        let allowed = allowed.join(" | ");
        // Spellings are exact: another case of a word is another word.
        let recased = match words[0].to_ascii_uppercase() {
            upper if upper == words[0] => upper.to_ascii_lowercase(),
            upper => upper,
        };
        for bad in ["nope", &recased, "1"] {
            let want =
                format!("{key}: not one of the allowed values (got {bad:?}; allowed {allowed})");
            let e = run(&set(key, &format!("{bad:?}")), &[]).unwrap_err();
            assert_eq!(e.to_string(), want, "file");
            let e = run("", &[(&env_name(key), bad)]).unwrap_err();
            assert_eq!(e.to_string(), want, "environment");
        }
        for (value, got) in [
            ("1", "signed int `1`"),
            ("true", "bool true"),
            ("{ a = 1 }", "map"),
        ] {
            let e = run(&set(key, value), &[]).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{key}: wrong type (got {got}; allowed a string)")
            );
        }
    }
}

/// Enum words are parse problems: they come before the validator's, each on its own line.
#[test]
fn enum_and_range_problems_are_reported_together() {
    let e = run(
        "tokens.access_token.validity_secs = 5\ncookie.same_site = \"x\"\nlogging.format = \"z\"",
        &[],
    )
    .unwrap_err();
    let lines: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "cookie.same_site: not one of the allowed values (got \"x\"; allowed \"strict\" | \"lax\" | \"none\")",
            "logging.format: not one of the allowed values (got \"z\"; allowed \"pretty\" | \"json\")",
            "tokens.access_token.validity_secs: out of range (got 5; allowed 10..=86400000)",
        ]
    );
}

#[test]
fn rules() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        // server
        ("[server]\nlisten = \"0.0.0.0:80\"\nadmin_listen = \"[::1]:9\"", &[]),
        ("[server]\nlisten = \"localhost:8080\"", &[("server.listen", "got \"localhost:8080\"")]),
        ("[server]\nadmin_listen = \"127.0.0.1:8080\"", &[("server.admin_listen", "same address")]),
        ("[server]\nshutdown_grace_secs = 0", &[]),
        ("[server]\nshutdown_grace_secs = -1", &[("server.shutdown_grace_secs", "allowed 0..=3600")]),
        ("[server]\nupstream_timeout_secs = 0", &[("server.upstream_timeout_secs", "allowed 1..=3600")]),
        ("[server]\nheader_read_timeout_secs = 301", &[("server.header_read_timeout_secs", "1..=300")]),
        ("[server]\nmax_connections = 0", &[("server.max_connections", "1..=1000000")]),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"fd00::/8\"]", &[]),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/33\", \"nope\"]", &[
            ("server.trusted_proxies[0]", "prefix length"),
            ("server.trusted_proxies[1]", "got \"nope\""),
        ]),
        ("[server]\npublic_origins = [\"https://app.example.com\", \"http://[::1]:8080\"]", &[]),
        ("[server]\npublic_origins = [\"https://app.example.com/\"]", &[("server.public_origins[0]", "has a path")]),
        ("[server]\npublic_origins = [\"https://app.example.com/login\"]", &[("server.public_origins[0]", "has a path")]),
        ("[server]\npublic_origins = [\"ftp://app.example.com\"]", &[("server.public_origins[0]", "http or https")]),
        ("[server]\npublic_origins = [\"app.example.com\"]", &[("server.public_origins[0]", "no scheme")]),
        ("[server]\npublic_origins = [\"https://*.example.com\"]", &[("server.public_origins[0]", "wildcards")]),
        ("[server]\npublic_origins = [\"https://a.example\", \"https://A.example:443\"]", &[("server.public_origins[1]", "listed twice")]),
        ("[server.tls]\ncert = \"c.pem\"", &[("server.tls.key", "both")]),
        ("[server.tls]\nkey = \"k.pem\"", &[("server.tls.cert", "both")]),
        ("[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"", &[
            ("server.tls.cert", "cannot read"),
            ("server.tls.key", "cannot read"),
        ]),
        // store
        ("[store]\nurl = \"sqlite::memory:\"", &[]),
        ("[store]\nurl = \"mysql://u:p@db:3306/auth_session\"", &[]),
        ("[store]\nurl = \"mysql://u:hunter2@db:3306\"", &[("store.url", "no database")]),
        ("[store]\nurl = \"postgres://u:hunter2@db/x\"", &[("store.url", "u:***@db")]),
        ("[store]\nurl = \"sqlite://\"", &[("store.url", "file path")]),
        // TLS to MySQL: the driver's parameters pass; a wrong one names store.url.
        ("[store]\nurl = \"mysql://u:p@db:3306/auth?require_ssl=true\"", &[]),
        ("[store]\nurl = \"mysql://u:p@db/auth?require_ssl=true&verify_identity=false\"", &[]),
        ("[store]\nurl = \"mysql://u:p@db/auth?require_ssl=true&built_in_roots=false\"", &[("store.url", "built_in_roots")]),
        ("[store]\nurl = \"mysql://u:p@db/auth?require_ssl=yes\"", &[("store.url", "require_ssl")]),
        ("[store]\nurl = \"mysql://u:p@db/auth?sslmode=REQUIRED\"", &[("store.url", "sslmode")]),
        ("[store]\nurl = \"mysql://u:p@db/auth?ssl_ca=/nonexistent/ca.pem\"", &[("store.url", "unusable ssl_ca file")]),
        ("[store]\nurl = \"mysql://u:p@db/auth?ssl_ca=Cargo.toml\"", &[("store.url", "unusable ssl_ca file")]),
        // Database passwords shipped in deploy/, gateway.toml and the README.
        ("[store]\nurl = \"mysql://sessiongate:change-me@db:3306/auth_session\"", &[("store.url", "shipped placeholder")]),
        ("[store]\nurl = \"mysql://user:password@db:3306/auth_session\"", &[("store.url", "shipped placeholder")]),
        ("[store]\nurl = \"mysql://user:s3cret-of-mine@db:3306/auth_session\"", &[]),
        ("[store]\nurl = \"mysql://root@db:3306/auth_session\"", &[]),
        ("[store]\nconnection_limit = 10001", &[("store.connection_limit", "1..=10000")]),
        ("[store]\nauto_migrate = false", &[]),
        ("[store.tables]\nsigning_key = \"bad-name\"", &[("store.tables.signing_key", "[A-Za-z0-9_]{1,64}")]),
        ("[store.tables]\nsigning_key = \"keys; DROP TABLE x\"", &[("store.tables.signing_key", "not a valid table name")]),
        ("[store.tables]\nrefresh_tokens = \"\"", &[("store.tables.refresh_tokens", "not a valid table name")]),
        ("[store.tables]\nsigning_key = \"t\"\nrefresh_tokens = \"t\"", &[("store.tables.refresh_tokens", "same table")]),
        // tokens
        ("[tokens.access_token]\nvalidity_secs = 86400001", &[("tokens.access_token.validity_secs", "10..=86400000")]),
        ("[tokens.access_token]\npath = \"api\"", &[("tokens.access_token.path", "start with /")]),
        ("[tokens.access_token.signing_key]\nalgorithm = \"RS256\"", &[("tokens.access_token.signing_key.algorithm", "\"HS256\" | \"EdDSA\"")]),
        ("[tokens.access_token.signing_key]\nalgorithm = \"EdDSA\"", &[]),
        ("[tokens.access_token.signing_key]\nsecret_file = \"/nonexistent/key\"", &[("tokens.access_token.signing_key.secret_file", "cannot read")]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nvalidity_hours = 8761", &[("tokens.refresh_token.validity_hours", "1..=8760")]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nremoval_cron = \"0 0 * * *\"", &[("tokens.refresh_token.removal_cron", "not a valid cron")]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nremoval_cron = \"0 61 * * * *\"", &[("tokens.refresh_token.removal_cron", "not a valid cron")]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nremoval_cron = \"0 30 3 * * *\"", &[]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nremoval_cron = \"0 */5 * * * *\"", &[]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nremoval_cron = \"every day\"", &[("tokens.refresh_token.removal_cron", "not a valid cron")]),
        ("[tokens.refresh_token]\nrenew_path = \"r\"", &[("tokens.refresh_token.renew_path", "start with /")]),
        ("[tokens.refresh_token]\nrenew_path = \"/r\"\nreuse_grace_secs = 301", &[("tokens.refresh_token.reuse_grace_secs", "0..=300")]),
        // cookie
        ("[cookie]\ndomain = \".example.com\"", &[]),
        ("[cookie]\ndomain = \"https://example.com\"", &[("cookie.domain", "scheme")]),
        ("[cookie]\ndomain = \"example.com:443\"", &[("cookie.domain", "port")]),
        ("[cookie]\ndomain = \"example.com/x\"", &[("cookie.domain", "path")]),
        ("[cookie]\nsame_site = \"none\"\nsecure = false", &[("cookie.secure", "must be true when cookie.same_site = \"none\"")]),
        ("[cookie]\nsame_site = \"none\"", &[]),
        ("[cookie]\nsame_site = \"Lax\"", &[("cookie.same_site", "\"strict\" | \"lax\" | \"none\"")]),
        // session
        ("[session]\nlogout_path = \"/auth/refresh\"", &[("session.logout_path", "renew path")]),
        ("[session]\nlogout_path = \"//x\"", &[("session.logout_path", "//")]),
        ("[session]\nexpired_status = 440", &[]),
        ("[session]\nexpired_status = 403", &[("session.expired_status", "401 or 440")]),
        ("[session]\ntheft_action = \"revoke_all_user_sessions\"", &[]),
        ("[session]\ntheft_action = \"panic\"", &[("session.theft_action", "revoke_session")]),
        // identity
        ("[identity]\nuser_id_header = \"X-Uid\"", &[]),
        ("[identity]\nuser_id_header = \"x uid\"", &[("identity.user_id_header", "header name")]),
        ("[identity]\nuser_id_header = \"Host\"", &[("identity.user_id_header", "reserved")]),
        ("[identity]\nuser_id_header = \"x_user_id\"", &[("identity.user_id_header", "got \"x_user_id\"; allowed letters, digits and `-`")]),
        ("[identity]\nsession_handle_header = \"X_Session\"", &[("identity.session_handle_header", "contains `_`")]),
        ("[identity]\njwt_payload_header = \"x-jwt_payload\"", &[("identity.jwt_payload_header", "contains `_`")]),
        ("[identity]\njwt_payload_header = \"x-user-id\"", &[("identity.jwt_payload_header", "same header")]),
        // The clash is reported on the later of the two keys.
        ("[identity]\nuser_id_header = \"x-session-handle\"", &[("identity.session_handle_header", "same header")]),
        // cors
        ("[cors]\nallowed_origins = [\"https://app.example.com\", \"http://localhost:3000\"]", &[]),
        ("[cors]\nallowed_origins = [\"*\", \"https://a.com/\", \"a.com\"]", &[
            ("cors.allowed_origins[0]", "wildcard"),
            ("cors.allowed_origins[1]", "path"),
            ("cors.allowed_origins[2]", "scheme"),
        ]),
        ("[cors]\nallowed_origins = [\"https://app.example.com:8443\"]", &[]),
        // admin
        ("[admin]\napi_key = \"0123456789abcdef\"", &[]),
        ("[admin]\napi_key = \"short-secret\"", &[("admin.api_key", "at least 16")]),
        ("[admin]\napi_key = \"0123456789abcdef\"\napi_key_file = \"k\"", &[("admin.api_key", "not both")]),
        ("[admin]\napi_key_file = \"/nonexistent/admin.key\"", &[("admin.api_key_file", "cannot read")]),
        // Keys shipped in deploy/, gateway.toml and the README, or edits of them.
        ("[admin]\napi_key = \"example-admin-key-change-me-0123456789\"", &[("admin.api_key", "shipped placeholder")]),
        ("[admin]\napi_key = \"change-me-to-a-long-random-string\"", &[("admin.api_key", "shipped placeholder")]),
        ("[admin]\napi_key = \"change-me-to-a-long-random-string-2\"", &[("admin.api_key", "shipped placeholder")]),
        ("[admin]\napi_key = \"a-key-of-my-own-0123456789\"", &[]),
        // logging
        ("[logging]\nlevel = \"sessiongate=debug,info\"\nformat = \"json\"", &[]),
        ("[logging]\nlevel = \" \"", &[("logging.level", "empty")]),
        ("[logging]\nlevel = \"x=notalevel\"", &[("logging.level", "tracing filter")]),
        ("[logging]\nlevel = \"WARN\"", &[]),
        ("[logging]\nlevel = \"warning\"", &[("logging.level", "not a level")]),
        ("[logging]\nlevel = \"verbose\"", &[("logging.level", "not a level")]),
        ("[logging]\nlevel = \"info,sessiongate\"", &[("logging.level", "\"sessiongate\" is not a level")]),
        ("[logging]\nlevel = \"info,hyper\"", &[("logging.level", "\"hyper\" is not a level")]),
        ("[logging]\nlevel = \"info,hyper=warn,[request]=debug\"", &[]),
        ("[logging]\nformat = \"xml\"", &[("logging.format", "\"pretty\" | \"json\"")]),
        // tracing
        ("[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0.25\nservice_name = \"edge\"", &[]),
        ("[tracing]\nsample_ratio = 0", &[]),
        ("[tracing]\nendpoint = \"ftp://collector/v1/traces\"", &[("tracing.endpoint", "scheme is not http or https")]),
        ("[tracing]\nendpoint = \"/v1/traces\"", &[("tracing.endpoint", "not an absolute URL")]),
        ("[tracing]\nsample_ratio = 1.5", &[("tracing.sample_ratio", "0.0..=1.0")]),
        ("[tracing]\nsample_ratio = -0.1", &[("tracing.sample_ratio", "0.0..=1.0")]),
        ("[tracing]\nsample_ratio = nan", &[("tracing.sample_ratio", "0.0..=1.0")]),
        ("[tracing]\nservice_name = \"\"", &[("tracing.service_name", "1 to 255")]),
        ("[tracing]\nsampling = 1", &[("tracing.sampling", "unknown")]),
        // routes
        ("routes = []", &[("routes", "at least one")]),
        ("[[routes]]\nupstream = \"http://a\"", &[("routes[0].name", "required")]),
        ("[[routes]]\nname = \"a b\"\nupstream = \"http://a\"", &[("routes[0].name", "[A-Za-z0-9_.-]{1,64}")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n[[routes]]\nname = \"a\"\npath_prefix = \"/x\"\nupstream = \"http://a\"", &[("routes[1].name", "same name as routes[0]")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n[[routes]]\nname = \"b\"\nupstream = \"http://b\"", &[("routes[1].path_prefix", "same host and path_prefix")]),
        ("[[routes]]\nname = \"a\"\npath_prefix = \"api\"\nupstream = \"http://a\"", &[("routes[0].path_prefix", "start with /")]),
        // Prefixes must be written in the normalised form requests are matched in.
        ("[[routes]]\nname = \"a\"\npath_prefix = \"/%61pi\"\nupstream = \"http://a\"", &[("routes[0].path_prefix", "e.g. \"/api\"")]),
        ("[[routes]]\nname = \"a\"\npath_prefix = \"/api;v=1\"\nupstream = \"http://a\"", &[("routes[0].path_prefix", "normalised form")]),
        ("[[routes]]\nname = \"a\"\npath_prefix = \"/caf%c3%a9\"\nupstream = \"http://a\"", &[("routes[0].path_prefix", "e.g. \"/caf%C3%A9\"")]),
        ("[[routes]]\nname = \"a\"\npath_prefix = \"/%252e\"\nupstream = \"http://a\"", &[("routes[0].path_prefix", "double-encoded")]),
        ("[[routes]]\nname = \"a\"\npath_prefix = \"/caf%C3%A9/\"\nupstream = \"http://a\"", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\npath_params = \"strip\"\ncase_insensitive = true", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\ncase_insensitive = \"yes\"", &[("routes[0].case_insensitive", "wrong type")]),
        ("[[routes]]\nname = \"a\"\nhost = \"app.example.com\"\nupstream = \"https://a:8443/base\"", &[]),
        ("[[routes]]\nname = \"a\"\nhost = \"app.example.com:8443\"\nupstream = \"http://a\"", &[("routes[0].host", "has a port")]),
        ("[[routes]]\nname = \"a\"\nhost = \"http://app\"\nupstream = \"http://a\"", &[("routes[0].host", "scheme")]),
        ("[[routes]]\nname = \"a\"", &[("routes[0].upstream", "required")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"ftp://a\"", &[("routes[0].upstream", "http or https")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a/?x=1\"", &[("routes[0].upstream", "query")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"/relative\"", &[("routes[0].upstream", "absolute")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nauth = \"maybe\"", &[("routes[0].auth", "\"required\" | \"optional\" | \"public\"")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nanti_csrf = \"get\"", &[("routes[0].anti_csrf", "\"non_get\"")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nlogin_redirect = \"/login?next=1\"", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nlogin_redirect = \"https://auth.example.com/login?x=1\"", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nlogin_redirect = \"//evil.example\"", &[("routes[0].login_redirect", "//")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nlogin_redirect = \"javascript:alert(1)\"", &[("routes[0].login_redirect", "neither a path")]),
        // require_claims: non-empty lists of scalars, on routes that require a session
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = { role = [\"admin\", \"owner\"], tier = [2, 3], staff = [true] }", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = { role = [] }", &[("routes[0].require_claims.role", "empty list")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = { role = \"admin\" }", &[("routes[0].require_claims.role", "not a list")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = { role = [[\"admin\"]] }", &[("routes[0].require_claims.role", "not a scalar")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = { role = [{ a = 1 }] }", &[("routes[0].require_claims.role", "not a scalar")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nauth = \"public\"\nrequire_claims = { role = [\"admin\"] }", &[("routes[0].require_claims", "does not require one")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nauth = \"optional\"\nrequire_claims = { role = [\"admin\"] }", &[("routes[0].require_claims", "does not require one")]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nrequire_claims = [\"admin\"]", &[("routes[0].require_claims", "wrong type")]),
        // forward_auth: a path of its own, trusted proxies to answer, upstream-less routes
        ("server.trusted_proxies = [\"127.0.0.1/32\"]\ntokens.refresh_token.renew_path = \"/auth/refresh\"\n[forward_auth]\npath = \"/.sessiongate/verify\"\n[[routes]]\nname = \"a\"", &[]),
        ("server.trusted_proxies = [\"127.0.0.1/32\"]\ntokens.refresh_token.renew_path = \"/auth/refresh\"\n[forward_auth]\npath = \"/.sessiongate/verify\"\n[[routes]]\nname = \"a\"\nupstream = \"http://a\"", &[]),
        ("[forward_auth]\npath = \"/verify\"\n[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n", &[("forward_auth.path", "trusted_proxies is empty")]),
        ("server.trusted_proxies = [\"127.0.0.1/32\"]\n[forward_auth]\npath = \"verify\"\n[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n", &[("forward_auth.path", "start with /")]),
        ("server.trusted_proxies = [\"127.0.0.1/32\"]\ntokens.refresh_token.renew_path = \"/r\"\n[forward_auth]\npath = \"/r\"\n[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n", &[("forward_auth.path", "renew or logout")]),
        ("[forward_auth]\npaht = \"/v\"\n[[routes]]\nname = \"a\"\nupstream = \"http://a\"\n", &[("forward_auth.paht", "unknown key")]),
        // parse-level problems
        ("[tokens.access_token]\nvaliditysecs = 60", &[("tokens.access_token.validitysecs", "unknown key")]),
        ("nonsense = 1", &[("nonsense", "unknown key")]),
        ("storage.url = \"x\"", &[("storage", "unknown key")]),
        ("[tokens.access_token]\nvalidity_secs = \"60\"", &[("tokens.access_token.validity_secs", "wrong type (got string \"60\"; allowed an integer)")]),
        ("[cookie]\nsecure = \"yes\"\nsame_site = 1", &[
            ("cookie.same_site", "wrong type"),
            ("cookie.secure", "wrong type"),
        ]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://a\"\nbogus = true", &[("routes[0].bogus", "unknown key")]),
        ("[server]\ntrusted_proxies = [\"10.0.0.1\", 5]", &[("server.trusted_proxies[1]", "wrong type")]),
        ("[server\n", &[("<toml string>", "not valid TOML")]),
    ];
    for (toml, expected) in cases {
        check(toml, expected);
    }
}

#[test]
fn environment_overrides() {
    let file = "[tokens.access_token]\nvalidity_secs = 900\n";
    let c = run(
        file,
        &[("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "60")],
    )
    .unwrap();
    assert_eq!(c.tokens.access_token.validity_secs, 60, "env beats file");

    let c = run(
        "",
        &[
            ("SESSIONGATE_ADMIN__API_KEY", "1234567890123456"),
            ("SESSIONGATE_SERVER__TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("SESSIONGATE_STORE__URL", "mysql://u:p@db:3306/auth_session"),
            ("SESSIONGATE_ROUTES__0__UPSTREAM", "http://app:3000"),
            ("SESSIONGATE_CONFIG", "ignored.toml"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.admin.api_key.as_deref(), Some("1234567890123456"));
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.store.url.masked(), "mysql://u:***@db:3306/auth_session");
    assert_eq!(
        c.routes[0]
            .upstream
            .as_ref()
            .map(|u| u.to_string())
            .as_deref(),
        Some("http://app:3000/")
    );

    // A list from one variable, kept the way browsers write `Origin` (lower case, no
    // default port).
    let c = run(
        "",
        &[(
            "SESSIONGATE_SERVER__PUBLIC_ORIGINS",
            "https://App.Example.com:443, http://b.example:80, https://c.example:8443",
        )],
    )
    .unwrap();
    assert_eq!(
        c.server.public_origins,
        [
            "https://app.example.com",
            "http://b.example",
            "https://c.example:8443"
        ]
    );

    check_env(
        "",
        &[("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY", "60")],
        &[(
            "tokens.access_token.validity",
            "unknown key (from environment variable SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY)",
        )],
    );
    check_env(
        "",
        &[("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "soon")],
        &[(
            "tokens.access_token.validity_secs",
            "wrong type (from environment",
        )],
    );
    check_env(
        "",
        &[("SESSIONGATE_ROUTES__5__UPSTREAM", "http://x")],
        &[("routes[5].upstream", "1 entries")],
    );
    check_env(
        "",
        &[("SESSIONGATE_STORE__URL__HOST", "x")],
        &[("store.url", "wrong type")],
    );
}

#[test]
fn config_path_resolution() {
    assert_eq!(
        resolve_config_path(Some("a.toml".into()), Some("b.toml".into())),
        std::path::PathBuf::from("a.toml")
    );
    assert_eq!(
        resolve_config_path(None, Some("b.toml".into())),
        std::path::PathBuf::from("b.toml")
    );
    assert_eq!(
        resolve_config_path(None, None),
        std::path::PathBuf::from("gateway.toml")
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = load(Some(std::path::Path::new("/nonexistent/dir/gw.toml"))).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/gw.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn key_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.key");
    std::fs::write(&admin, "  0123456789abcdefXYZ\n").unwrap();
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "\n").unwrap();
    let c = run(
        &format!("[admin]\napi_key_file = {:?}", admin.display().to_string()),
        &[],
    )
    .unwrap();
    assert_eq!(c.admin.api_key.as_deref(), Some("0123456789abcdefXYZ"));
    check(
        &format!("[admin]\napi_key_file = {:?}", empty.display().to_string()),
        &[("admin.api_key_file", "empty")],
    );
    // A signing secret needs 32 bytes; the 21-byte admin key is too short for one.
    let jwt = dir.path().join("jwt.key");
    std::fs::write(&jwt, [0xa5u8; 32]).unwrap();
    let c = run(
        &format!(
            "[tokens.access_token.signing_key]\nsecret_file = {:?}",
            jwt.display().to_string()
        ),
        &[],
    )
    .unwrap();
    let sk = &c.tokens.access_token.signing_key;
    assert!(!sk.dynamic);
    // Read once, here: the configuration holds the key, and never prints it.
    assert_eq!(
        sk.secret_file.as_ref().map(|f| &f.key[..]),
        Some(&[0xa5u8; 32][..])
    );
    assert!(!format!("{c:?}").contains("165, 165"), "{c:?}");
    let jwt_file = format!("secret_file = {:?}", jwt.display().to_string());
    check(
        &format!("[tokens.access_token.signing_key]\n{jwt_file}\nalgorithm = \"HS256\""),
        &[],
    );
    check(
        &format!("[tokens.access_token.signing_key]\n{jwt_file}\nalgorithm = \"EdDSA\""),
        &[(
            "tokens.access_token.signing_key.algorithm",
            "EdDSA conflicts with secret_file",
        )],
    );
    // A file that cannot be used is reported once; the conflicts with it are still named.
    check(
        "[tokens.access_token.signing_key]\nsecret_file = \"/nonexistent/key\"\ndynamic = true\nalgorithm = \"EdDSA\"",
        &[
            ("tokens.access_token.signing_key.secret_file", "cannot read key file"),
            ("tokens.access_token.signing_key.algorithm", "EdDSA conflicts"),
            ("tokens.access_token.signing_key.dynamic", "true conflicts"),
        ],
    );
    check(
        &format!(
            "[tokens.access_token.signing_key]\ndynamic = true\nsecret_file = {:?}",
            jwt.display().to_string()
        ),
        &[("tokens.access_token.signing_key.dynamic", "conflicts")],
    );
    check(
        &format!(
            "[tokens.access_token.signing_key]\nsecret_file = {:?}",
            admin.display().to_string()
        ),
        &[(
            "tokens.access_token.signing_key.secret_file",
            "holds 21 bytes",
        )],
    );
}

/// `signing_key.secret_file` holds the key as raw bytes: binary content is fine, only one
/// trailing newline is dropped, and fewer than 32 bytes is reported by the loader (so
/// `check-config` says so, not only `serve`).
#[test]
fn secret_file_is_read_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let binary: Vec<u8> = (0u8..=255).rev().take(40).collect();
    let cases: Vec<(&[u8], &[u8])> = vec![
        (&binary, &binary),
        (b"k\n", b"k"),
        (b"k\r\n", b"k"),
        (b"k\n\n", b"k\n"),
        (b"k\r", b"k\r"),
        (b" k \n", b" k "),
        (b"\xff\xfe\n", b"\xff\xfe"),
        (b"", b""),
    ];
    for (i, (on_disk, key)) in cases.into_iter().enumerate() {
        let p = file(&format!("case{i}"), on_disk);
        assert_eq!(read_secret_file(&p).unwrap(), key, "case {i}: {on_disk:?}");
    }

    let key = "tokens.access_token.signing_key.secret_file";
    let with = |p: &std::path::Path| format!("{key} = {:?}", p.to_str().unwrap());
    let mut exact_32 = binary[..32].to_vec();
    exact_32.push(b'\n');
    for (name, bytes, want) in [
        ("bin", &binary[..], &binary[..]),
        ("exact32", &exact_32[..], &binary[..32]),
    ] {
        let c = run(&with(&file(name, bytes)), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let secret = c.tokens.access_token.signing_key.secret_file.unwrap();
        assert_eq!(secret.key, want, "{name}");
    }
    let short = run(&with(&file("short", &[0xffu8; 31])), &[]).unwrap_err();
    let line = short.to_string();
    assert!(
        line.starts_with(&format!("{key}: key file holds 31 bytes")),
        "{line}"
    );
    assert!(line.contains("at least 32 bytes"), "{line}");
    for blank in [file("empty", b""), file("newline", b"\n")] {
        check(&with(&blank), &[(key, "key file is empty")]);
    }
}

/// A MySQL URL with TLS parameters is kept whole (the driver reads them), its password masked
/// wherever it is printed; `ssl_ca` with `require_ssl=false` contradicts itself.
#[test]
fn mysql_tls_parameters_are_kept_and_the_password_masked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["db".to_string()]).unwrap();
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let url = format!(
        "mysql://user:hunter2-db@db:3306/auth?ssl_ca={}&verify_identity=false",
        ca.display()
    );
    let c = run(&format!("store.url = {url:?}"), &[]).unwrap();
    assert_eq!(c.store.url, StoreUrl::Mysql(url.clone()), "not mangled");
    let out = render_masked(&c);
    assert!(!out.contains("hunter2-db"), "{out}");
    assert!(out.contains(&url.replace("hunter2-db", "***")), "{out}");
    check(
        &format!("store.url = \"{url}&require_ssl=false\""),
        &[(
            "store.url",
            "ssl_ca needs TLS but the URL says require_ssl=false",
        )],
    );
}

#[test]
fn masked_rendering_hides_secrets() {
    let secret = "super-secret-admin-key-123";
    let toml = format!(
        "[store]\nurl = \"mysql://gw:dbpass42@db:3306/auth\"\n[admin]\napi_key = \"{secret}\"\n"
    );
    let c = run(&toml, &[]).unwrap();
    let text = render_masked(&c);
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains("dbpass42"), "{text}");
    assert!(text.contains("api_key = \"***\""), "{text}");
    assert!(text.contains("mysql://gw:***@db:3306/auth"), "{text}");

    let c = run(
        "[[routes]]\nname = \"a\"\nupstream = \"http://a\"\ncase_insensitive = true",
        &[],
    )
    .unwrap();
    assert!(render_masked(&c).contains("case_insensitive = true"));
}

#[test]
fn no_panic_on_odd_input() {
    for toml in [
        "",
        "routes = 5",
        "routes = [1, 2]",
        "server = \"x\"",
        "[tokens]\naccess_token = []",
        "[[routes]]\n[[routes]]",
        "[server]\nmax_connections = 9223372036854775807",
        "[server]\nshutdown_grace_secs = 1.5",
        "[cors]\nallowed_origins = \"https://a.com\"",
    ] {
        let _ = run(toml, &[("SESSIONGATE_ROUTES", "[{name=\"x\"}]")]);
        let _ = run(toml, &[]);
    }
    for garbage in [
        "[[[",
        "routes = 5",
        "tokens = []",
        "\u{0}",
        "[server]\nlisten = 8080",
    ] {
        assert!(load_from_str(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn environment_names_that_are_not_overrides() {
    // What Kubernetes injects for a Service named `sessiongate`, the demo's and the tests'
    // own variables: none of them is configuration, none may stop the gateway.
    let ignored = [
        ("SESSIONGATE_PORT", "tcp://10.0.0.1:8080"),
        ("SESSIONGATE_SERVICE_HOST", "10.0.0.1"),
        ("SESSIONGATE_SERVICE_PORT", "8080"),
        ("SESSIONGATE_SERVICE_PORT_HTTP", "8080"),
        ("SESSIONGATE_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("SESSIONGATE_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("SESSIONGATE_PORT_8080_TCP_PORT", "8080"),
        ("SESSIONGATE_PORT_8080_TCP_PROTO", "tcp"),
        ("SESSIONGATE_ADMIN_SERVICE_HOST", "10.0.0.2"),
        ("SESSIONGATE_SDK_BUNDLE", "/tmp/bundle.js"),
        ("SESSIONGATE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
        ("SESSIONGATE_CONFIG", "ignored.toml"),
        ("SESSIONGATE_", "x"),
    ];
    let c = run("", &ignored).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    for (name, _) in ignored {
        assert_eq!(load::env_override(name), load::EnvName::Ignored, "{name}");
    }

    // Inside a known section a misspelt key is still an error, and so is a misspelt section.
    check_env(
        "",
        &[("SESSIONGATE_SERVER__LISTN", "0.0.0.0:8080")],
        &[(
            "server.listn",
            "unknown key (from environment variable SESSIONGATE_SERVER__LISTN)",
        )],
    );
    check_env(
        "",
        &[("SESSIONGATE_SERVERR__LISTEN", "0.0.0.0:8080")],
        &[(
            "SESSIONGATE_SERVERR__LISTEN",
            "names no configuration section (\"serverr\")",
        )],
    );
    // The value of a misspelt override is not echoed (it may be a password in a URL).
    let e = run("", &[("SESSIONGATE_STOR__URL", "mysql://u:secret@db/x")]).unwrap_err();
    assert!(!e.to_string().contains("secret"), "{e}");
    // A whole section from one variable is still an override.
    assert_eq!(
        load::env_override("SESSIONGATE_ROUTES"),
        load::EnvName::Override
    );
    assert_eq!(
        load::env_override("SESSIONGATE_logging__level"),
        load::EnvName::Override
    );
}

#[test]
fn sections_are_the_raw_config_fields() {
    // An unknown top-level key lists the fields RawConfig has: they must be SECTIONS.
    let e = load_from_str("nosuchsection = 1").unwrap_err();
    let p = e.problem("nosuchsection").expect("unknown key reported");
    let allowed = p.allowed.clone().unwrap_or_default();
    let mut fields: Vec<&str> = allowed.trim_start_matches("one of ").split(", ").collect();
    fields.sort_unstable();
    let mut sections = load::SECTIONS.to_vec();
    sections.sort_unstable();
    assert_eq!(fields, sections, "{p}");
}

/// Every key of the integer key table: unset gives its default (as rendered), both ends of
/// its range load, one past either end is reported with the table's range.
#[test]
fn integer_keys_follow_the_key_table() {
    use super::validate::int_keys;
    let rendered = render_masked(&run("", &[]).unwrap());
    for key in int_keys::ALL {
        let unit = match key.name() {
            n if n.ends_with("_secs") => validate::Unit::Seconds,
            n if n.ends_with("_hours") => validate::Unit::Hours,
            _ => validate::Unit::Count,
        };
        assert_eq!(key.unit, unit, "{}: the name says {unit:?}", key.path);
        let line = format!("{} = {}", key.name(), key.default);
        assert!(
            rendered.lines().any(|l| l == line),
            "{}: default {line:?} not rendered",
            key.path
        );
        let env = format!(
            "SESSIONGATE_{}",
            key.path.replace('.', "__").to_ascii_uppercase()
        );
        for ok in [key.lo, key.hi] {
            let r = run("", &[(&env, &ok.to_string())]);
            assert!(r.is_ok(), "{} = {ok}: {r:?}", key.path);
        }
        for bad in [key.lo - 1, key.hi + 1] {
            let e = run("", &[(&env, &bad.to_string())]).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{}: out of range (got {bad}; allowed {})",
                    key.path,
                    key.range()
                )
            );
        }
    }
}

/// `require_claims` from the environment: a claim's list as one value (the key path is read
/// in lower case, so claim names with capitals need the file).
#[test]
fn require_claims_from_the_environment() {
    let c = run(
        "[[routes]]\nname = \"a\"\nupstream = \"http://a\"",
        &[(
            "SESSIONGATE_ROUTES__0__REQUIRE_CLAIMS__ROLE",
            "[\"admin\", \"owner\"]",
        )],
    )
    .unwrap();
    assert_eq!(
        c.routes[0].require_claims,
        [crate::config::ClaimRule {
            claim: "role".into(),
            allowed: vec![serde_json::json!("admin"), serde_json::json!("owner")],
        }]
    );
    check_env(
        "[[routes]]\nname = \"a\"\nupstream = \"http://a\"",
        &[("SESSIONGATE_ROUTES__0__REQUIRE_CLAIMS__ROLE", "[]")],
        &[("routes[0].require_claims.role", "empty list")],
    );
}
