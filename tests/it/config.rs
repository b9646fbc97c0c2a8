//! Configuration loading and validation, table-driven: each case is a TOML snippet added to a
//! minimal valid file and the set of key paths expected to be reported (empty = valid).

use sessiongate::config::{
    load_from_str, load_with_env, render_masked, AuthMode, ConfigSource, SameSite,
    SigningAlgorithm, StoreUrl, TheftAction,
};

const ROUTE: &str = "[[routes]]\nname = \"app\"\nupstream = \"http://127.0.0.1:3000\"\n";
const RENEW: &str = "tokens.refresh_token.renew_path = \"/auth/refresh\"\n";

/// Root-level dotted keys + the renew path + one route.
fn toml(root: &str) -> String {
    format!("{RENEW}{root}\n{ROUTE}")
}

/// The sorted key paths of the problems, or empty when the config is valid.
fn problems(text: &str) -> Vec<String> {
    match load_from_str(text) {
        Ok(_) => vec![],
        Err(e) => {
            let mut keys: Vec<String> = e.problems.iter().map(|p| p.key.clone()).collect();
            keys.sort();
            keys
        }
    }
}

fn check(root: &str, want: &[&str]) {
    let text = toml(root);
    assert_eq!(problems(&text), want, "for:\n{text}");
}

#[test]
fn shipped_gateway_toml_is_valid() {
    let cfg = load_from_str(include_str!("../../gateway.toml")).expect("gateway.toml is valid");
    assert_eq!(cfg.store.url, StoreUrl::Sqlite("sessiongate.db".into()));
    assert_eq!(cfg.tokens.refresh_token.renew_path, "/auth/refresh");
    assert_eq!(cfg.routes.len(), 2);
}

#[test]
fn defaults() {
    let cfg = load_from_str(&toml("")).unwrap();
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(cfg.server.shutdown_grace.as_secs(), 30);
    assert_eq!(cfg.server.upstream_timeout.as_secs(), 30);
    assert_eq!(cfg.server.idle_timeout.as_secs(), 60);
    assert_eq!(cfg.server.body_read_timeout.as_secs(), 30);
    assert_eq!(cfg.server.max_connections_per_ip, 0);
    assert_eq!(cfg.store.connection_limit, 50);
    assert!(cfg.store.auto_migrate);
    assert_eq!(cfg.store.tables.signing_key, "signing_key");
    assert_eq!(cfg.store.tables.refresh_tokens, "refresh_token");
    let at = &cfg.tokens.access_token;
    assert_eq!(
        (at.validity_secs, at.blacklisting, at.path.as_str()),
        (3600, false, "/")
    );
    assert!(at.signing_key.dynamic);
    assert_eq!(at.signing_key.update_interval_hours, 24);
    assert_eq!(at.signing_key.algorithm, SigningAlgorithm::Hs256);
    let rt = &cfg.tokens.refresh_token;
    assert_eq!((rt.validity_hours, rt.reuse_grace_secs), (2400, 30));
    assert_eq!(rt.removal_cron, "0 0 0 1-31/7 * *");
    assert!(cfg.tokens.enable_anti_csrf);
    assert_eq!(
        (
            cfg.cookie.secure,
            cfg.cookie.same_site,
            cfg.cookie.domain.clone()
        ),
        (true, SameSite::Lax, None)
    );
    assert_eq!(cfg.session.expired_status, 401);
    assert_eq!(cfg.session.theft_action, TheftAction::RevokeSession);
    assert_eq!(cfg.identity.user_id_header, "x-user-id");
    assert_eq!(cfg.routes[0].auth, AuthMode::Required);
    assert_eq!(cfg.routes[0].path_prefix, "/");
    assert!(cfg.admin.api_key.is_none());
}

#[test]
fn ranges_and_rules() {
    // (root-level keys, expected problem keys)
    let cases: &[(&str, &[&str])] = &[
        ("tokens.access_token.validity_secs = 10", &[]),
        ("tokens.access_token.validity_secs = 86400000", &[]),
        (
            "tokens.access_token.validity_secs = 9",
            &["tokens.access_token.validity_secs"],
        ),
        (
            "tokens.access_token.validity_secs = 86400001",
            &["tokens.access_token.validity_secs"],
        ),
        (
            "tokens.access_token.signing_key.update_interval_hours = 720",
            &[],
        ),
        (
            "tokens.access_token.signing_key.update_interval_hours = 721",
            &["tokens.access_token.signing_key.update_interval_hours"],
        ),
        ("tokens.access_token.signing_key.algorithm = \"EdDSA\"", &[]),
        ("logging.level = \"warn\"", &[]),
        ("logging.level = \"sessiongate=debug,info\"", &[]),
        ("logging.level = \"warning\"", &["logging.level"]),
        ("logging.level = \"verbose\"", &["logging.level"]),
        ("logging.level = \"info,sessiongate\"", &["logging.level"]),
        (
            "tokens.access_token.signing_key.algorithm = \"RS256\"",
            &["tokens.access_token.signing_key.algorithm"],
        ),
        (
            "tokens.refresh_token.validity_hours = 0",
            &["tokens.refresh_token.validity_hours"],
        ),
        ("tokens.refresh_token.validity_hours = 8760", &[]),
        (
            "tokens.refresh_token.validity_hours = 8761",
            &["tokens.refresh_token.validity_hours"],
        ),
        (
            "tokens.refresh_token.reuse_grace_secs = 301",
            &["tokens.refresh_token.reuse_grace_secs"],
        ),
        ("tokens.refresh_token.reuse_grace_secs = 0", &[]),
        ("tokens.refresh_token.removal_cron = \"0 */5 * * * *\"", &[]),
        (
            "tokens.refresh_token.removal_cron = \"every day\"",
            &["tokens.refresh_token.removal_cron"],
        ),
        (
            "tokens.refresh_token.removal_cron = \"0 0 * * *\"",
            &["tokens.refresh_token.removal_cron"],
        ),
        (
            "tokens.access_token.path = \"api\"",
            &["tokens.access_token.path"],
        ),
        ("store.connection_limit = 0", &["store.connection_limit"]),
        (
            "store.connection_limit = 10001",
            &["store.connection_limit"],
        ),
        ("store.url = \"postgres://x\"", &["store.url"]),
        ("store.url = \"mysql://u:p@db:3306/auth\"", &[]),
        ("store.url = \"sqlite::memory:\"", &[]),
        // TLS to MySQL: the driver's parameters pass; a wrong one names store.url.
        (
            "store.url = \"mysql://u:p@db:3306/auth?require_ssl=true\"",
            &[],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?require_ssl=true&verify_identity=false\"",
            &[],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?require_ssl=true&built_in_roots=false\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?require_ssl=yes\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?sslmode=REQUIRED\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?ssl_ca=/nonexistent/ca.pem\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://u:p@db/auth?ssl_ca=Cargo.toml\"",
            &["store.url"],
        ),
        (
            "store.tables.signing_key = \"keys; DROP TABLE x\"",
            &["store.tables.signing_key"],
        ),
        (
            "store.tables.refresh_tokens = \"\"",
            &["store.tables.refresh_tokens"],
        ),
        (
            "cookie.same_site = \"none\"\ncookie.secure = false",
            &["cookie.secure"],
        ),
        ("cookie.same_site = \"none\"\ncookie.secure = true", &[]),
        ("cookie.same_site = \"sometimes\"", &["cookie.same_site"]),
        (
            "cookie.domain = \"https://example.com\"",
            &["cookie.domain"],
        ),
        ("cookie.domain = \"example.com:443\"", &["cookie.domain"]),
        ("cookie.domain = \".example.com\"", &[]),
        ("session.expired_status = 440", &[]),
        ("session.expired_status = 403", &["session.expired_status"]),
        ("session.theft_action = \"revoke_all_user_sessions\"", &[]),
        (
            "session.theft_action = \"shrug\"",
            &["session.theft_action"],
        ),
        (
            "session.logout_path = \"/auth/refresh\"",
            &["session.logout_path"],
        ),
        ("server.listen = \"not an address\"", &["server.listen"]),
        (
            "server.upstream_timeout_secs = 0",
            &["server.upstream_timeout_secs"],
        ),
        ("server.trusted_proxies = [\"10.0.0.0/8\", \"::1\"]", &[]),
        (
            "server.trusted_proxies = [\"10.0.0.0/33\"]",
            &["server.trusted_proxies[0]"],
        ),
        (
            "server.public_origins = [\"https://app.example.com\", \"http://[::1]:8080\"]",
            &[],
        ),
        (
            "server.public_origins = [\"https://app.example.com/\"]",
            &["server.public_origins[0]"],
        ),
        (
            "server.public_origins = [\"https://app.example.com/login\"]",
            &["server.public_origins[0]"],
        ),
        (
            "server.public_origins = [\"ftp://app.example.com\"]",
            &["server.public_origins[0]"],
        ),
        (
            "server.public_origins = [\"app.example.com\"]",
            &["server.public_origins[0]"],
        ),
        (
            "server.public_origins = [\"https://*.example.com\"]",
            &["server.public_origins[0]"],
        ),
        (
            "server.public_origins = [\"https://a.example\", \"https://A.example:443\"]",
            &["server.public_origins[1]"],
        ),
        ("server.tls.cert = \"/x.pem\"", &["server.tls.key"]),
        ("server.idle_timeout_secs = 1", &[]),
        ("server.idle_timeout_secs = 3600", &[]),
        (
            "server.idle_timeout_secs = 0",
            &["server.idle_timeout_secs"],
        ),
        (
            "server.idle_timeout_secs = 3601",
            &["server.idle_timeout_secs"],
        ),
        ("server.body_read_timeout_secs = 1", &[]),
        (
            "server.body_read_timeout_secs = 0",
            &["server.body_read_timeout_secs"],
        ),
        (
            "server.body_read_timeout_secs = 3601",
            &["server.body_read_timeout_secs"],
        ),
        ("server.max_connections_per_ip = 0", &[]),
        ("server.max_connections_per_ip = 8", &[]),
        (
            "server.max_connections_per_ip = -1",
            &["server.max_connections_per_ip"],
        ),
        (
            "cors.allowed_origins = [\"*\"]",
            &["cors.allowed_origins[0]"],
        ),
        (
            "cors.allowed_origins = [\"https://app.example.com/path\"]",
            &["cors.allowed_origins[0]"],
        ),
        (
            "cors.allowed_origins = [\"https://app.example.com:8443\"]",
            &[],
        ),
        // The clash is reported on the later of the two keys.
        (
            "identity.user_id_header = \"x-session-handle\"",
            &["identity.session_handle_header"],
        ),
        (
            "identity.user_id_header = \"bad header\"",
            &["identity.user_id_header"],
        ),
        // `_` in an identity header name would disable spoof stripping upstream-side.
        (
            "identity.user_id_header = \"x_user_id\"",
            &["identity.user_id_header"],
        ),
        (
            "identity.session_handle_header = \"X_Session_Handle\"",
            &["identity.session_handle_header"],
        ),
        (
            "identity.jwt_payload_header = \"x-jwt_payload\"",
            &["identity.jwt_payload_header"],
        ),
        ("identity.user_id_header = \"X-Remote-User\"", &[]),
        ("admin.api_key = \"short\"", &["admin.api_key"]),
        // Placeholders shipped in deploy/, gateway.toml and the README (item 11).
        (
            "admin.api_key = \"example-admin-key-change-me-0123456789\"",
            &["admin.api_key"],
        ),
        (
            "admin.api_key = \"change-me-to-a-long-random-string\"",
            &["admin.api_key"],
        ),
        (
            "admin.api_key = \"change-me-to-a-long-random-string-2\"",
            &["admin.api_key"],
        ),
        ("admin.api_key = \"a-key-of-my-own-0123456789\"", &[]),
        (
            "store.url = \"mysql://sessiongate:change-me@db:3306/auth_session\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://user:password@db:3306/auth_session\"",
            &["store.url"],
        ),
        (
            "store.url = \"mysql://user:s3cret-of-mine@db:3306/auth_session\"",
            &[],
        ),
        ("store.url = \"mysql://root@db:3306/auth_session\"", &[]),
        ("logging.format = \"xml\"", &["logging.format"]),
        (
            "tokens.access_token.validity_secs = \"ten\"",
            &["tokens.access_token.validity_secs"],
        ),
    ];
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|(root, want)| {
            let got = problems(&toml(root));
            (got != *want).then(|| format!("{root:?}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn the_three_problems_of_the_issue_are_reported_together() {
    let text = format!(
        "[tokens.access_token]\nvalidity_secs = 5\n[tokens.access_token.signing_key]\nupdate_interval_hours = 0\n{ROUTE}"
    );
    let err = load_from_str(&text).unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tokens.access_token.validity_secs:")
                && l.contains("10..=86400000")
                && l.contains('5')),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("tokens.access_token.signing_key.update_interval_hours:")
            && l.contains("1..=720")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tokens.refresh_token.renew_path:")),
        "{lines:#?}"
    );
}

#[test]
fn routes() {
    let base = RENEW;
    let cases: &[(&str, &[&str])] = &[
        ("", &["routes"]),
        ("[[routes]]\nname = \"a\"\n", &["routes[0].upstream"]),
        ("[[routes]]\nupstream = \"http://x\"\n", &["routes[0].name"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"ftp://x\"\n", &["routes[0].upstream"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\nauth = \"sometimes\"\n", &["routes[0].auth"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\nanti_csrf = \"maybe\"\n", &["routes[0].anti_csrf"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"api\"\n", &["routes[0].path_prefix"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\nlogin_redirect = \"//evil.example\"\n", &["routes[0].login_redirect"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\n[[routes]]\nname = \"a\"\nupstream = \"http://y\"\npath_prefix = \"/b\"\n", &["routes[1].name"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"https://x:8443/base\"\nhost = \"app.example\"\nlogin_redirect = \"/login\"\n", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\nhost = \"app.example:8443\"\n", &["routes[0].host"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_params = \"allow\"\n", &["routes[0].path_params"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_params = \"strip\"\ncase_insensitive = true\n", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_params = \"reject\"\ncase_insensitive = false\n", &[]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\ncase_insensitive = \"yes\"\n", &["routes[0].case_insensitive"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"/api;v=1\"\n", &["routes[0].path_prefix"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"/%61pi\"\n", &["routes[0].path_prefix"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"/caf%c3%a9\"\n", &["routes[0].path_prefix"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"/%252e\"\n", &["routes[0].path_prefix"]),
        ("[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_prefix = \"/caf%C3%A9/\"\n", &[]),
    ];
    for (routes, want) in cases {
        let text = format!("{base}{routes}");
        assert_eq!(problems(&text), *want, "for:\n{text}");
    }
}

#[test]
fn unknown_keys_are_errors() {
    check(
        "tokens.access_token.validity = 60",
        &["tokens.access_token.validity"],
    );
    check("storage.url = \"x\"", &["storage"]);
    let text = format!("{RENEW}{ROUTE}colour = \"red\"\n");
    assert_eq!(problems(&text), vec!["routes[0].colour"]);
}

#[test]
fn environment_overrides() {
    let text = toml("tokens.access_token.validity_secs = 120");
    let cfg = load_with_env(
        ConfigSource::Toml(&text),
        [
            ("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "60"),
            ("SESSIONGATE_STORE__URL", "mysql://u:secret@db:3306/auth"),
            ("UNRELATED", "1"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.tokens.access_token.validity_secs, 60);
    assert_eq!(
        cfg.store.url,
        StoreUrl::Mysql("mysql://u:secret@db:3306/auth".into())
    );
    let err = load_with_env(
        ConfigSource::Toml(&text),
        [("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "5")],
    )
    .unwrap_err();
    assert_eq!(err.problems[0].key, "tokens.access_token.validity_secs");
    let err = load_with_env(
        ConfigSource::Toml(&text),
        [("SESSIONGATE_STORE__BOGUS", "1")],
    )
    .unwrap_err();
    assert_eq!(err.problems[0].key, "store.bogus");
}

#[test]
fn missing_file_names_the_path() {
    let err = load_with_env(
        ConfigSource::File(std::path::Path::new("/nonexistent/gateway.toml")),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert!(err.problems[0].key.contains("/nonexistent/gateway.toml"));
}

#[test]
fn masked_rendering_hides_secrets() {
    let text = toml("store.url = \"mysql://user:hunter2-db@db:3306/auth\"\nadmin.api_key = \"admin-key-that-is-secret-123\"");
    let cfg = load_from_str(&text).unwrap();
    let out = render_masked(&cfg);
    assert!(!out.contains("hunter2-db"), "{out}");
    assert!(!out.contains("admin-key-that-is-secret-123"), "{out}");
    assert!(out.contains("mysql://user:***@db:3306/auth"), "{out}");
    // The rendering is itself valid configuration describing the same values.
    assert!(out.contains("renew_path = \"/auth/refresh\""));
}

#[test]
fn eddsa_with_a_static_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt-secret");
    std::fs::write(&secret, [7u8; 48]).unwrap();
    let file = format!(
        "tokens.access_token.signing_key.secret_file = \"{}\"\n",
        secret.display()
    );
    check(&file, &[]);
    check(
        &format!("{file}tokens.access_token.signing_key.algorithm = \"HS256\""),
        &[],
    );
    check(
        &format!("{file}tokens.access_token.signing_key.algorithm = \"EdDSA\""),
        &["tokens.access_token.signing_key.algorithm"],
    );
}

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
    let cfg = load_from_str(&toml(&format!("store.url = \"{url}\""))).unwrap();
    assert_eq!(cfg.store.url, StoreUrl::Mysql(url.clone()), "not mangled");
    let out = render_masked(&cfg);
    assert!(!out.contains("hunter2-db"), "{out}");
    let masked = url.replace("hunter2-db", "***");
    assert!(out.contains(&masked), "{out}");
    // ssl_ca with require_ssl=false contradicts itself.
    let text = toml(&format!("store.url = \"{url}&require_ssl=false\""));
    assert_eq!(problems(&text), ["store.url"]);
}

#[test]
fn garbage_never_panics() {
    for text in [
        "",
        "[[[",
        "routes = 5",
        "tokens = []",
        "\u{0}",
        "[server]\nlisten = 8080",
        "[[routes]]\n[[routes]]",
    ] {
        assert!(load_from_str(text).is_err(), "{text:?}");
    }
}

#[test]
fn route_path_options_name_their_allowed_values() {
    let text = format!(
        "{RENEW}[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_params = \"allow\"\npath_prefix = \"/%61pi\"\n"
    );
    let err = load_from_str(&text).unwrap_err().to_string();
    assert!(
        err.contains("routes[0].path_params") && err.contains("\"reject\" | \"strip\""),
        "{err}"
    );
    // The normalised form the prefix would have to be written in is suggested.
    assert!(
        err.contains("routes[0].path_prefix") && err.contains("\"/api\""),
        "{err}"
    );
    let text = format!(
        "{RENEW}[[routes]]\nname = \"a\"\nupstream = \"http://x\"\npath_params = \"strip\"\ncase_insensitive = true\n"
    );
    let cfg = load_from_str(&text).unwrap();
    assert_eq!(
        cfg.routes[0].path_params,
        sessiongate::config::PathParams::Strip
    );
    assert!(cfg.routes[0].case_insensitive);
    let rendered = render_masked(&cfg);
    assert!(rendered.contains("path_params = \"strip\""), "{rendered}");
    assert!(rendered.contains("case_insensitive = true"), "{rendered}");
    let cfg = load_from_str(&format!("{RENEW}{ROUTE}")).unwrap();
    assert_eq!(
        cfg.routes[0].path_params,
        sessiongate::config::PathParams::Reject
    );
    assert!(!cfg.routes[0].case_insensitive);
}

/// `signing_key.secret_file` holds the key as raw bytes (item 11): binary content is fine,
/// only one trailing newline is dropped, and fewer than 32 bytes is reported by the loader
/// (so `check-config` says so, not only `serve`).
#[test]
fn secret_file_is_read_as_bytes() {
    use sessiongate::config::read_secret_file;
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
    let with = |p: &std::path::Path| toml(&format!("{key} = {:?}", p.to_str().unwrap()));
    let mut exact_32 = binary[..32].to_vec();
    exact_32.push(b'\n');
    let good = [file("bin", &binary), file("exact32", &exact_32)];
    for p in &good {
        assert_eq!(problems(&with(p)), Vec::<String>::new(), "{p:?}");
    }
    let short = file("short", &[0xffu8; 31]);
    let err = load_from_str(&with(&short)).unwrap_err();
    let line = err.problem(key).expect("reported").to_string();
    assert!(
        line.contains("31 bytes") && line.contains("at least 32"),
        "{line}"
    );
    for blank in [file("empty", b""), file("newline", b"\n")] {
        assert_eq!(problems(&with(&blank)), vec![key.to_string()]);
    }
}

/// `server.public_origins` is kept the way browsers write `Origin` (lower case, no default
/// port) and can be given from the environment as a comma-separated list.
#[test]
fn public_origins_are_normalised_and_read_from_the_environment() {
    let cfg = load_with_env(
        ConfigSource::Toml(&toml("")),
        [(
            "SESSIONGATE_SERVER__PUBLIC_ORIGINS",
            "https://App.Example.com:443, http://b.example:80, https://c.example:8443",
        )],
    )
    .unwrap();
    assert_eq!(
        cfg.server.public_origins,
        [
            "https://app.example.com",
            "http://b.example",
            "https://c.example:8443"
        ]
    );
}
