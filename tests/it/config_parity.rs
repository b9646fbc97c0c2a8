//! `check-config` and `serve` agree (issue 9 item 7): every configuration `serve` would reject
//! at start is rejected by `check-config` too, with exit 64 and the key path, and `serve`
//! rejects it with 64 before it binds a port or opens the store. One table of bad files, each
//! run through the real binary both ways. Also: `--config` before the subcommand.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::config::free_port;
use crate::support::process::{command, run};

const API_KEY: &str = "parity-test-api-key-0123456789abcdef";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A complete file on free ports and a SQLite store in `dir`, plus `root` (root-level keys)
/// and `route` (keys of the one route).
fn config(dir: &Path, root: &str, route: &str) -> String {
    format!(
        r#"
server.listen = "127.0.0.1:{}"
server.admin_listen = "127.0.0.1:{}"
store.url = "sqlite://{}"
tokens.refresh_token.renew_path = "/auth/refresh"
admin.api_key = "{API_KEY}"
{root}

[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
{route}
"#,
        free_port(),
        free_port(),
        dir.join("sessions.db").display()
    )
}

/// Runs the binary with a deadline (a `serve` that accepts the file would run forever: it
/// is killed after 5 s and reported as exit code -1); returns (exit code, stderr).
fn run_bounded(args: &[&str]) -> (i32, String) {
    let mut child = command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running sessiongate");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (-1, "still running after 5 s: it accepted the file".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_config_rejects_what_serve_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short_secret = write(d, "short.key", "8 bytes!\n");
    let long_secret = write(
        d,
        "long.key",
        "a static secret of well over thirty-two bytes\n",
    );
    let not_pem = write(d, "not.pem", "this is not a certificate\n");
    let other_ca = write(d, "ca.txt", "no PEM block here\n");
    let missing = d.join("missing.pem");
    let (ss, ls) = (short_secret.display(), long_secret.display());
    let (np, oc, mi) = (not_pem.display(), other_ca.display(), missing.display());

    // (what, root-level keys, route keys, the key path that must be named)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "a level tracing reads as a target name: nothing would be logged",
            "logging.level = \"warning\"".into(),
            "",
            "logging.level",
        ),
        (
            "a trace sampling ratio above 1",
            "tracing.sample_ratio = 1.5".into(),
            "",
            "tracing.sample_ratio",
        ),
        (
            "a trace collector URL without a scheme",
            "tracing.endpoint = \"collector:4318/v1/traces\"".into(),
            "",
            "tracing.endpoint",
        ),
        (
            "a bare target directive",
            "logging.level = \"sessiongate\"".into(),
            "",
            "logging.level",
        ),
        (
            "a static secret shorter than 32 bytes",
            format!("tokens.access_token.signing_key.secret_file = \"{ss}\""),
            "",
            "tokens.access_token.signing_key.secret_file",
        ),
        (
            "a route host with a port never matches",
            String::new(),
            "host = \"api.example.com:8443\"",
            "routes[0].host",
        ),
        (
            "EdDSA with a static (HMAC) secret",
            format!(
                "tokens.access_token.signing_key.secret_file = \"{ls}\"\n\
                 tokens.access_token.signing_key.algorithm = \"EdDSA\""
            ),
            "",
            "tokens.access_token.signing_key.algorithm",
        ),
        (
            "a TLS certificate and key that are not PEM",
            format!("server.tls.cert = \"{np}\"\nserver.tls.key = \"{np}\""),
            "",
            "server.tls.",
        ),
        (
            "a TLS key file that does not exist",
            format!("server.tls.cert = \"{np}\"\nserver.tls.key = \"{mi}\""),
            "",
            "server.tls.key",
        ),
        (
            "a MySQL ssl_ca file that is not PEM",
            format!("store.url = \"mysql://u@127.0.0.1:1/db?ssl_ca={oc}\""),
            "",
            "store.url",
        ),
        (
            "a MySQL ssl_ca file that does not exist",
            format!("store.url = \"mysql://u@127.0.0.1:1/db?ssl_ca={mi}\""),
            "",
            "store.url",
        ),
        (
            "MySQL TLS that trusts no CA",
            "store.url = \"mysql://u@127.0.0.1:1/db?require_ssl=true&built_in_roots=false\"".into(),
            "",
            "store.url",
        ),
        (
            "an unknown MySQL URL parameter",
            "store.url = \"mysql://u@127.0.0.1:1/db?sslmode=REQUIRED\"".into(),
            "",
            "store.url",
        ),
        (
            "an empty require_claims list that no session could meet",
            String::new(),
            "require_claims = { role = [] }",
            "routes[0].require_claims.role",
        ),
        (
            "a forward-auth endpoint without trusted proxies to answer",
            "forward_auth.path = \"/.sessiongate/verify\"".into(),
            "",
            "forward_auth.path",
        ),
        (
            "a cron expression the scheduler refuses",
            "tokens.refresh_token.removal_cron = \"0 0 * * *\"".into(),
            "",
            "tokens.refresh_token.removal_cron",
        ),
    ];

    let mut failures = Vec::new();
    for (i, (what, root, route, key)) in cases.iter().enumerate() {
        // A store URL in `root` replaces the default one (a TOML key may appear once).
        let mut text = config(d, root, route);
        if root.starts_with("store.url") {
            let default_store = text
                .lines()
                .find(|l| l.starts_with("store.url = \"sqlite"))
                .unwrap()
                .to_string();
            text = text.replacen(&format!("{default_store}\n"), "", 1);
        }
        let file = write(d, &format!("case{i}.toml"), &text);
        let f = file.to_str().unwrap();

        let (code, err) = run_bounded(&["check-config", "--config", f]);
        if code != 64 || !err.contains(key) {
            failures.push(format!(
                "{what}: check-config exited {code}, want 64 naming {key}:\n{err}"
            ));
        }
        let (code, err) = run_bounded(&["serve", "--config", f]);
        if code != 64 || !err.contains(key) {
            failures.push(format!(
                "{what}: serve exited {code}, want 64 naming {key}:\n{err}"
            ));
        }
        // Refused before the store was opened (SQLite would have created its file).
        if d.join("sessions.db").exists() {
            failures.push(format!("{what}: serve opened the store before refusing"));
            let _ = std::fs::remove_file(d.join("sessions.db"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn config_option_goes_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", &config(dir.path(), "", ""));
    let bad = write(
        dir.path(),
        "bad.toml",
        &config(dir.path(), "logging.level = \"warning\"", ""),
    );
    let (g, b) = (good.to_str().unwrap(), bad.to_str().unwrap());

    let (code, out, err) = run(&["--config", g, "check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[server]"), "{out}");
    // The file before the subcommand is the one read: the bad one fails.
    let (code, _, err) = run(&["--config", b, "check-config"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("logging.level"), "{err}");
    // The same file on both sides is fine; two different files are a usage error.
    let (code, _, err) = run(&["--config", g, "check-config", "--config", g], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["--config", g, "check-config", "--config", b], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--config is given twice"), "{err}");
    // serve too: the bad file before the subcommand is refused without starting.
    let (code, err) = run_bounded(&["--config", b, "serve"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("logging.level"), "{err}");
}
