//! The `sessiongate` binary's commands (SPEC §2): `check-config` (masking, exit 64 with one
//! line per problem, unknown keys, environment overrides), `migrate` (tables, indexes,
//! idempotence) and `keys rotate` against a fresh MariaDB database.

use std::path::{Path, PathBuf};

use crate::support;
use crate::support::config::free_port;
use crate::support::process::{run, run_with_config};
use crate::support::{db, process};

const API_KEY: &str = "cli-test-api-key-do-not-print-4f9a1c";
const DB_PASSWORD: &str = "db-pass-do-not-print-77c1";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A minimal valid file (the repository ships no gateway.toml at its root).
fn minimal(store_url: &str) -> String {
    format!(
        r#"
store.url = "{store_url}"
tokens.refresh_token.renew_path = "/auth/refresh"
admin.api_key = "{API_KEY}"

[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
"#
    )
}

fn repo_gateway_toml() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    p.exists().then_some(p)
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(shipped) = repo_gateway_toml() {
        let (code, out, err) = run_with_config(&["check-config"], &shipped);
        assert_eq!(code, 0, "shipped gateway.toml: {err}");
        assert!(out.contains("[server]"), "{out}");
    }
    let cfg = write(
        dir.path(),
        "gateway.toml",
        &minimal(&format!(
            "mysql://gate:{DB_PASSWORD}@db.internal:3306/auth_session"
        )),
    );
    let (code, out, err) = run_with_config(&["check-config"], &cfg);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    println!("{out}");
    // The effective config, defaults filled in.
    for want in [
        "[server]",
        "listen = \"127.0.0.1:8080\"",
        "validity_secs = 3600",
        "renew_path = \"/auth/refresh\"",
        "name = \"app\"",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Secrets: never printed, masked where they were.
    for secret in [API_KEY, DB_PASSWORD] {
        assert!(!out.contains(secret), "secret printed:\n{out}");
        assert!(!err.contains(secret), "secret printed on stderr:\n{err}");
    }
    assert!(
        out.contains("url = \"mysql://gate:***@db.internal:3306/auth_session\""),
        "{out}"
    );
    assert!(out.contains("api_key = \"***\""), "{out}");
    // The printed config loads back to the same configuration, secrets aside (the masked
    // admin key is put back by hand).
    let back = write(
        dir.path(),
        "back.toml",
        &out.replace("api_key = \"***\"", &format!("api_key = \"{API_KEY}\"")),
    );
    let (code, out2, err2) = run_with_config(&["check-config"], &back);
    assert_eq!(code, 0, "{err2}");
    assert_eq!(out2, out, "rendering is stable");

    // --config defaults to $SESSIONGATE_CONFIG.
    let (code, out3, err3) = run(
        &["check-config"],
        &[("SESSIONGATE_CONFIG", cfg.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err3}");
    assert_eq!(out3, out);
}

#[test]
fn check_config_reports_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        r#"
tokens.access_token.validity_secs = 5
tokens.access_token.signing_key.update_interval_hours = 0

[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
"#,
    );
    let (code, out, err) = run_with_config(&["check-config"], &bad);
    assert_eq!(code, 64, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    println!("{err}");
    let line = |key: &str| {
        err.lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{err}"))
            .to_string()
    };
    let l = line("tokens.access_token.validity_secs");
    assert!(l.contains("got 5") && l.contains("10..=86400000"), "{l}");
    let l = line("tokens.access_token.signing_key.update_interval_hours");
    assert!(l.contains("got 0") && l.contains("1..=720"), "{l}");
    let l = line("tokens.refresh_token.renew_path");
    assert!(
        l.contains("required") && l.contains("allowed") && l.contains('/'),
        "{l}"
    );

    // An unknown key.
    let unknown = write(
        dir.path(),
        "unknown.toml",
        &minimal("sqlite::memory:").replacen(
            "tokens.refresh_token.renew_path",
            "tokens.access_token.validity_secondz = 30\ntokens.refresh_token.renew_path",
            1,
        ),
    );
    let (code, _, err) = run_with_config(&["check-config"], &unknown);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("tokens.access_token.validity_secondz"),
        "unknown key not named:\n{err}"
    );

    // An environment override that breaks a valid file.
    let good = write(dir.path(), "good.toml", &minimal("sqlite::memory:"));
    let args = ["check-config", "--config", good.to_str().unwrap()];
    let (code, _, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &args,
        &[("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "5")],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("tokens.access_token.validity_secs") && err.contains("10..=86400000"),
        "{err}"
    );
    // An override that is valid takes effect.
    let (code, out, err) = run(
        &args,
        &[("SESSIONGATE_TOKENS__ACCESS_TOKEN__VALIDITY_SECS", "120")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("validity_secs = 120"), "{out}");
    // An override of an unknown key.
    let (code, _, err) = run(&args, &[("SESSIONGATE_TOKENS__NOPE", "1")]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("tokens.nope"), "{err}");

    // A missing file.
    let (code, _, err) = run(
        &["check-config", "--config", "/nonexistent/gateway.toml"],
        &[],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
}

#[test]
fn migrate_and_keys_rotate_against_mysql() {
    let db = db::TestMysql::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "gateway.toml", &minimal(&db.url()));

    let (code, out, err) = run_with_config(&["migrate"], &cfg);
    assert_eq!(code, 0, "migrate: {out}{err}");
    let tables = |db: &db::TestMysql| {
        let mut t: Vec<String> = db
            .query(&format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}'",
                db.db
            ))
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        t.sort();
        t
    };
    let t = tables(&db);
    for want in ["refresh_token", "signing_key", "sessiongate_migrations"] {
        assert!(t.iter().any(|x| x == want), "no {want} in {t:?}");
    }
    // Indexes on the sessions table: primary key on the handle, user_id, expires_at_ms.
    let idx = db.query(&format!(
        "SELECT index_name, column_name FROM information_schema.statistics \
         WHERE table_schema = '{}' AND table_name = 'refresh_token' ORDER BY index_name, seq_in_index",
        db.db
    ));
    let indexed = |col: &str| idx.iter().any(|r| r[1] == col);
    assert!(indexed("session_handle"), "{idx:?}");
    assert!(indexed("user_id"), "{idx:?}");
    assert!(indexed("expires_at_ms"), "{idx:?}");
    assert!(
        idx.iter()
            .any(|r| r[0] == "PRIMARY" && r[1] == "session_handle"),
        "{idx:?}"
    );
    let migrations = || {
        db.query("SELECT version, name, applied_at_ms FROM sessiongate_migrations ORDER BY version")
    };
    let applied = migrations();
    assert!(!applied.is_empty());
    let schema = || {
        db.query(&format!(
            "SELECT table_name, column_name, column_type FROM information_schema.columns \
             WHERE table_schema = '{}' ORDER BY table_name, ordinal_position",
            db.db
        ))
    };
    let schema_before = schema();

    // Idempotent: nothing changes the second time.
    let (code, out, err) = run_with_config(&["migrate"], &cfg);
    assert_eq!(code, 0, "second migrate: {out}{err}");
    assert!(err.contains("migrations applied: 0"), "{err}");
    assert_eq!(migrations(), applied, "migrations table changed");
    assert_eq!(schema(), schema_before, "schema changed");
    assert_eq!(tables(&db), t);

    // keys rotate: the first run creates the key ring (the store had none); each run after that
    // inserts exactly one key row, which becomes the signing key.
    let keys = || db.query("SELECT kid, purpose FROM signing_key ORDER BY seq, kid");
    assert!(keys().is_empty());
    let (code, out, err) = run_with_config(&["keys", "rotate"], &cfg);
    assert_eq!(code, 0, "{out}{err}");
    let after_first = keys();
    assert!(
        after_first.iter().any(|r| r[1] == "access"),
        "{after_first:?}"
    );
    let (code, out, err) = run_with_config(&["keys", "rotate"], &cfg);
    assert_eq!(code, 0, "{out}{err}");
    let after_second = keys();
    assert_eq!(
        after_second.len(),
        after_first.len() + 1,
        "{after_first:?} -> {after_second:?}"
    );
    let new: Vec<_> = after_second
        .iter()
        .filter(|r| !after_first.contains(r))
        .collect();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0][1], "access");
    assert_eq!(
        out.trim(),
        format!("signing key is now {}", new[0][0]),
        "prints the new kid"
    );
    // Nothing else touched.
    assert_eq!(migrations(), applied);
}

#[test]
fn store_unreachable_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write(
        dir.path(),
        "gateway.toml",
        &minimal(&format!("mysql://root@127.0.0.1:{port}/nothing")),
    );
    let (code, out, err) = run_with_config(&["migrate"], &cfg);
    assert_eq!(code, 69, "{out}{err}");
    assert!(err.starts_with("error:"), "{err}");
}

/// The placeholder secrets shipped in `deploy/`, read from the files themselves so a new
/// placeholder there cannot slip past: the Kubernetes Secret's admin key and database URL.
fn kubernetes_placeholders() -> (String, String) {
    let yaml = include_str!("../../deploy/kubernetes/sessiongate.yaml");
    let value = |key: &str| {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in the Kubernetes manifest"))
            .trim()
            .to_string()
    };
    (value("admin-api-key"), value("store-url"))
}

/// Item 11: `check-config` and `serve` refuse the admin keys and database passwords shipped as
/// placeholders (exit 64, naming the key and saying why, the secret itself never printed).
#[test]
fn shipped_placeholder_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (k8s_key, k8s_url) = kubernetes_placeholders();
    // The value `deploy/admin_key.example` held, as compose mounted it: a file.
    let old_example = write(
        dir.path(),
        "admin_key",
        "example-admin-key-change-me-0123456789\n",
    );
    let cfg = write(
        dir.path(),
        "gateway.toml",
        &minimal("sqlite::memory:").replace(&format!("admin.api_key = \"{API_KEY}\"\n"), ""),
    );
    let cfg = cfg.to_str().unwrap();
    let file_var = old_example.to_str().unwrap();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "compose's admin key file",
            vec![("SESSIONGATE_ADMIN__API_KEY_FILE", file_var)],
            &["admin.api_key_file"],
        ),
        (
            "Kubernetes Secret",
            vec![
                ("SESSIONGATE_ADMIN__API_KEY", &k8s_key),
                ("SESSIONGATE_STORE__URL", &k8s_url),
            ],
            &["admin.api_key", "store.url"],
        ),
        (
            "the old compose database URL",
            vec![(
                "SESSIONGATE_STORE__URL",
                "mysql://sessiongate:change-me@db:3306/auth_session",
            )],
            &["store.url"],
        ),
        (
            "the README's MySQL snippet",
            vec![(
                "SESSIONGATE_STORE__URL",
                "mysql://user:password@db:3306/auth_session",
            )],
            &["store.url"],
        ),
        (
            "gateway.toml's commented example",
            vec![(
                "SESSIONGATE_ADMIN__API_KEY",
                "change-me-to-a-long-random-string",
            )],
            &["admin.api_key"],
        ),
    ];
    for (name, env, keys) in cases {
        for cmd in ["check-config", "serve"] {
            let (code, out, err) = run(&[cmd, "--config", cfg], &env);
            assert_eq!(code, 64, "{name}, {cmd}: stdout:\n{out}\nstderr:\n{err}");
            for key in keys {
                let line = err
                    .lines()
                    .find(|l| l.starts_with(&format!("{key}:")))
                    .unwrap_or_else(|| panic!("{name}, {cmd}: no line for {key} in:\n{err}"));
                assert!(line.contains("shipped placeholder"), "{name}: {line}");
            }
            for (_, secret) in &env {
                if let Some(pass) = secret.strip_prefix("mysql://") {
                    let pass = pass.split_once(':').unwrap().1.split_once('@').unwrap().0;
                    assert!(!err.contains(&format!(":{pass}@")), "{name}: {err}");
                } else if !secret.starts_with('/') {
                    assert!(!err.contains(secret), "{name}: secret printed: {err}");
                }
            }
        }
    }
}

/// The compose configuration passes `check-config` once its secrets are generated, with the
/// environment compose.yaml sets; and compose publishes the admin port on loopback only.
#[test]
fn compose_config_passes_with_generated_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(
        dir.path(),
        "admin_key",
        "9f2c4b7e1a6d3f8e0b5c2a7d4e1f6b3c\n",
    );
    let compose_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.compose.toml");
    let env = [
        (
            "SESSIONGATE_STORE__URL",
            "mysql://sessiongate:4d1f9a7c2e6b8d3f@db:3306/auth_session",
        ),
        ("SESSIONGATE_SERVER__LISTEN", "0.0.0.0:8080"),
        ("SESSIONGATE_SERVER__ADMIN_LISTEN", "0.0.0.0:9090"),
        ("SESSIONGATE_ADMIN__API_KEY_FILE", key.to_str().unwrap()),
    ];
    let (code, out, err) = run(
        &["check-config", "--config", compose_toml.to_str().unwrap()],
        &env,
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    let compose = include_str!("../../deploy/compose.yaml");
    let port_lines: Vec<&str> = compose
        .lines()
        .filter(|l| l.trim_start().starts_with("ports:"))
        .collect();
    assert_eq!(port_lines.len(), 2, "{port_lines:?}");
    for l in port_lines {
        for mapping in l.split('"').filter(|m| m.ends_with(":9090")) {
            assert!(
                mapping.starts_with("127.0.0.1:"),
                "admin port published widely: {l}"
            );
        }
        assert!(l.contains(":9090\""), "{l}");
    }
    assert!(
        !compose.contains("change-me") && !compose.contains("admin_key.example"),
        "compose.yaml ships no secret"
    );
}

/// Item 11: `signing_key.secret_file` is the key as raw bytes (one trailing newline dropped),
/// through the real binary: a token signed with those exact bytes is accepted; one signed with
/// the lossy UTF-8 form the gateway used to derive is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_secret_file_is_used_as_raw_bytes() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use sessiongate::keys::KeyRing;
    use sessiongate::session::access::AccessClaims;

    // Not UTF-8, with NUL, a leading space and a CR: everything lossy decoding or trimming
    // would change.
    let mut secret: Vec<u8> = b" \xff\xfe\x00binary-secret\x80\xc3(".to_vec();
    secret.extend((0u8..24).map(|i| i.wrapping_mul(37) ^ 0xa5));
    secret.push(b'\r');
    secret.push(b' ');
    assert!(std::str::from_utf8(&secret).is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwt-secret");
    let mut on_disk = secret.clone();
    on_disk.extend_from_slice(b"\r\n");
    std::fs::write(&file, &on_disk).unwrap();
    let lossy = String::from_utf8_lossy(&on_disk).trim().as_bytes().to_vec();
    assert_ne!(lossy, secret);

    let up = support::TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let extra = format!(
        "tokens.access_token.signing_key.secret_file = {:?}",
        file.to_str().unwrap()
    );
    let mut gw = process::Gateway::spawn(&db.url(), &up.url(), &extra);
    gw.wait_ready().await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = AccessClaims {
        sub: "raw-bytes-user".into(),
        sid: "handle-raw".into(),
        iat: now,
        exp: now + 60,
        anti_csrf: None,
        payload: serde_json::json!({"k": 1}),
    };
    let kid_of = |key: &[u8]| {
        KeyRing::from_static_secret(key)
            .unwrap()
            .signing_key()
            .unwrap()
            .kid
            .clone()
    };
    let mint = |kid: String, key: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid);
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(key)).unwrap()
    };
    let cases = [
        ("exact bytes", mint(kid_of(&secret), &secret), 200),
        ("lossy form, its own kid", mint(kid_of(&lossy), &lossy), 401),
        (
            "lossy form, the exact kid",
            mint(kid_of(&secret), &lossy),
            401,
        ),
        (
            "exact bytes with the newline kept",
            mint(kid_of(&secret), &on_disk),
            401,
        ),
    ];
    for (name, token, want) in cases {
        let mut b = support::Browser::new(gw.public_addr);
        b.jar.cookies.insert("sAccessToken".into(), token);
        b.jar
            .cookies
            .insert("sIdRefreshToken".into(), "present".into());
        let r = b.get("/api/me").await;
        assert_eq!(r.status, want, "{name}: {}", r.text());
        if want == 200 {
            assert_eq!(r.upstream_header("x-user-id").unwrap(), "raw-bytes-user");
        }
    }
    gw.terminate_cleanly().await;
}

/// The worker count `serve` reports in its "listening" log line (JSON logs; waited for, at
/// most 10 s, since the line need not be in the file the moment `/readyz` answers).
async fn runtime_workers(gw: &process::Gateway) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = gw.log_text();
        if let Some(line) = log.lines().find(|l| l.contains("sessiongate listening")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            return v["workers"].as_u64().expect("workers field") as usize;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listening line in {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_server_workers_core_threads() {
    let up = support::TestUpstream::start().await;
    for (workers, expected) in [("3", 3), ("1", 1)] {
        let db = db::TestSqlite::new();
        let extra = format!("server.workers = {workers}");
        let mut gw = process::Gateway::spawn(&db.url(), &up.url(), &extra);
        gw.wait_ready().await;
        assert_eq!(
            runtime_workers(&gw).await,
            expected,
            "server.workers = {workers}"
        );
        assert_eq!(
            core_threads(gw.pid()),
            expected,
            "server.workers = {workers}"
        );
        gw.terminate_cleanly().await;
    }
    // 0 (the default) is one per core.
    let db = db::TestSqlite::new();
    let mut gw = process::Gateway::spawn(&db.url(), &up.url(), "");
    gw.wait_ready().await;
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(runtime_workers(&gw).await, cores);
    assert_eq!(core_threads(gw.pid()), cores);
    gw.terminate_cleanly().await;
}

/// The process's core threads (`server::Cores` names them `sessiongate-core-N`; the kernel
/// keeps the first 15 bytes of a thread's name).
fn core_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("sessiongate-cor"))
        .count()
}
