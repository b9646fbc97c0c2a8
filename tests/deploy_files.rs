//! What an operator deploys, checked against the real binary: the environment Kubernetes
//! gives a pod (service-link variables are not configuration), the `health` subcommand the
//! container health checks run, `migrate --create-database`, and the files under `deploy/`
//! (every YAML parses; every path, port, probe and environment name agrees with the binary
//! and the shipped configs). No container engine runs here: images are not built and
//! manifests are not applied.

mod common;
mod harness;
mod ops;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ops::{command, run};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn minimal() -> &'static str {
    r#"
store.url = "sqlite::memory:"
tokens.refresh_token.renew_path = "/auth/refresh"

[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
"#
}

/// What the kubelet injects for a Service named `sessiongate` (and a second one named
/// `sessiongate-admin`), plus the demo's and the test suite's own variables.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("SESSIONGATE_SERVICE_HOST", "10.0.0.1"),
    ("SESSIONGATE_SERVICE_PORT", "80"),
    ("SESSIONGATE_SERVICE_PORT_HTTP", "80"),
    ("SESSIONGATE_PORT", "tcp://10.0.0.1:80"),
    ("SESSIONGATE_PORT_80_TCP", "tcp://10.0.0.1:80"),
    ("SESSIONGATE_PORT_80_TCP_ADDR", "10.0.0.1"),
    ("SESSIONGATE_PORT_80_TCP_PORT", "80"),
    ("SESSIONGATE_PORT_80_TCP_PROTO", "tcp"),
    ("SESSIONGATE_ADMIN_SERVICE_HOST", "10.0.0.2"),
    ("SESSIONGATE_ADMIN_PORT", "tcp://10.0.0.2:9090"),
    ("SESSIONGATE_SDK_BUNDLE", "/nonexistent/bundle.js"),
    ("SESSIONGATE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
];

#[test]
fn kubernetes_service_link_variables_do_not_stop_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "gateway.toml", minimal());
    let (code, out, err) = run(
        &["check-config", "--config", cfg.to_str().unwrap()],
        SERVICE_LINKS,
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
}

#[test]
fn a_misspelt_override_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "gateway.toml", minimal());
    let path = cfg.to_str().unwrap();
    let mut env = SERVICE_LINKS.to_vec();
    env.push(("SESSIONGATE_SERVER__LISTN", "0.0.0.0:8080"));
    let (code, _, err) = run(&["check-config", "--config", path], &env);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("server.listn: unknown key (from environment variable SESSIONGATE_SERVER__LISTN)"),
        "{err}"
    );
    // Exactly one problem: the service links are not reported.
    assert_eq!(err.lines().count(), 2, "{err}");

    // An unknown section with `__` is an error naming the variable (it is meant as an
    // override), and its value (perhaps a password) is not printed.
    let (code, _, err) = run(
        &["check-config", "--config", path],
        &[("SESSIONGATE_SERVERR__LISTEN", "0.0.0.0:8080")],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("SESSIONGATE_SERVERR__LISTEN: environment variable names no configuration section"),
        "{err}"
    );
    assert!(!err.contains("0.0.0.0:8080"), "{err}");
}

/// `sessiongate health …` with a bound on how long it may take.
fn health(args: &[&str], env: &[(&str, &str)], within: Duration) -> (i32, String) {
    let started = Instant::now();
    let mut c = command();
    c.arg("health").args(args).envs(env.iter().copied());
    let out = c.output().expect("running sessiongate health");
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < within, "health took {took:?}: {text}");
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_readiness_of_the_running_gateway() {
    let db = common::TestSqlite::new();
    let upstream = harness::TestUpstream::start().await;
    let mut gw = ops::Gateway::spawn(&db.url(), &upstream.url(), "");
    gw.wait_ready().await;
    let url = format!("{}/readyz", gw.admin);

    let (code, out) = health(&["--url", &url], &[], Duration::from_secs(5));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("200") && out.contains("ready"), "{out}");

    // Without --url: the config's admin_listen (from --config, or $SESSIONGATE_CONFIG).
    let config = gw.config.to_str().unwrap().to_string();
    let (code, out) = health(&["--config", &config], &[], Duration::from_secs(5));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&url), "{out}");
    let (code, out) = health(&[], &[("SESSIONGATE_CONFIG", &config)], Duration::from_secs(5));
    assert_eq!(code, 0, "{out}");

    // Not ready: 503 while draining (SIGTERM starts the drain; readiness answers 503).
    gw.sigterm();
    let deadline = Instant::now() + Duration::from_secs(ops::GRACE_SECS);
    loop {
        let (code, out) = health(&["--url", &url], &[], Duration::from_secs(5));
        if code == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "still ready while draining: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_on_errors_refusals_and_silence() {
    // Nothing listening.
    let closed = ops::free_port();
    let (code, out) = health(
        &["--url", &format!("http://127.0.0.1:{closed}/readyz")],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(code, 1, "{out}");

    // A 503 answer.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let body = r#"{"error":"not_ready"}"#;
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let (code, out) = health(
        &["--url", &format!("http://{addr}/readyz")],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("503"), "{out}");

    // A listener that accepts and never answers: bounded by --timeout-secs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (code, out) = health(
        &["--url", &format!("http://{addr}/readyz"), "--timeout-secs", "1"],
        &[],
        Duration::from_secs(4),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("within 1 s"), "{out}");
    drop(silent);

    // Not an http URL.
    let (code, out) = health(&["--url", "https://127.0.0.1:1/"], &[], Duration::from_secs(5));
    assert_eq!(code, 1, "{out}");
}

#[test]
fn migrate_create_database_creates_the_database_named_in_the_url() {
    let db = common::TestMysql::new();
    // TestMysql made the database; remove it so the command has something to create.
    db.query(&format!("DROP DATABASE `{}`", db.db));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "gateway.toml",
        &minimal().replace("sqlite::memory:", &db.url()),
    );
    let path = cfg.to_str().unwrap();

    // Without the flag the missing database is an error (exit 69)…
    let (code, _, err) = run(&["migrate", "--config", path], &[]);
    assert_eq!(code, 69, "{err}");
    // …with it the database is created and migrated, and running it again is harmless.
    for _ in 0..2 {
        let (code, _, err) = run(&["migrate", "--create-database", "--config", path], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(&format!("database {} exists", db.db)), "{err}");
    }
    let tables = db.query("SHOW TABLES");
    assert!(
        tables.iter().any(|r| r[0] == "refresh_token"),
        "{tables:?}"
    );
}
