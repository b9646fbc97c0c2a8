//! What an operator deploys, checked against the real binary: the environment Kubernetes
//! gives a pod (service-link variables are not configuration), the `health` subcommand the
//! container health checks run, `migrate --create-database`, and the files under `deploy/`
//! (every YAML parses; every path, port, probe and environment name agrees with the binary
//! and the shipped configs). No container engine runs here: images are not built and
//! manifests are not applied.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::client::Client;
use crate::support::config::free_port;
use crate::support::process::{command, run};
use crate::support::{db, process};

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
        err.contains(
            "server.listn: unknown key (from environment variable SESSIONGATE_SERVER__LISTN)"
        ),
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
        err.contains(
            "SESSIONGATE_SERVERR__LISTEN: environment variable names no configuration section"
        ),
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
    let db = db::TestSqlite::new();
    let upstream = support::TestUpstream::start().await;
    let mut gw = process::Gateway::spawn(&db.url(), &upstream.url(), "");
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
    let (code, out) = health(
        &[],
        &[("SESSIONGATE_CONFIG", &config)],
        Duration::from_secs(5),
    );
    assert_eq!(code, 0, "{out}");

    // Not ready: 503 while draining (SIGTERM starts the drain; readiness answers 503).
    gw.sigterm();
    let deadline = Instant::now() + Duration::from_secs(process::GRACE_SECS);
    loop {
        let (code, out) = health(&["--url", &url], &[], Duration::from_secs(5));
        if code == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still ready while draining: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_on_errors_refusals_and_silence() {
    // Nothing listening.
    let closed = free_port();
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
        &[
            "--url",
            &format!("http://{addr}/readyz"),
            "--timeout-secs",
            "1",
        ],
        &[],
        Duration::from_secs(4),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("within 1 s"), "{out}");
    drop(silent);

    // Not an http URL.
    let (code, out) = health(
        &["--url", "https://127.0.0.1:1/"],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(code, 1, "{out}");
}

#[test]
fn migrate_create_database_creates_the_database_named_in_the_url() {
    let db = db::TestMysql::new();
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
    assert!(tables.iter().any(|r| r[0] == "refresh_token"), "{tables:?}");
}

// ---------------------------------------------------------------------------------------
// The files under deploy/.

use serde_norway::Value as Yaml;
use sessiongate::config::load::{env_override, load_with_env, ConfigSource, EnvName};
use sessiongate::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a YAML file, with `<<` merge keys applied.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = <Yaml as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
            v.apply_merge().unwrap();
            v
        })
        .collect()
}

fn s(v: &Yaml) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A file holding a valid admin key, for configurations that name a key file.
fn admin_key_file(dir: &Path) -> String {
    write(dir, "admin_key", "0123456789abcdef0123456789abcdef\n")
        .to_string_lossy()
        .into_owned()
}

/// Loads `toml` with `env` exactly as the binary would, and also runs the real binary's
/// `check-config` with that file and environment (plus the Kubernetes service links).
fn check_with_binary(dir: &Path, toml: &str, env: &[(String, String)]) -> Config {
    let cfg = write(dir, "deployed.toml", toml);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(SERVICE_LINKS);
    let (code, out, err) = run(&["check-config", "--config", cfg.to_str().unwrap()], &all);
    assert_eq!(code, 0, "check-config with {env:?}:\n{out}\n{err}");
    for (name, _) in env {
        assert_eq!(env_override(name), EnvName::Override, "{name} is not read");
    }
    load_with_env(ConfigSource::Toml(toml), env.to_vec()).unwrap()
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    let mut found = Vec::new();
    let mut stack = vec![repo().join("deploy")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let rel = p
                    .strip_prefix(repo())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(!yaml_docs(&rel).is_empty(), "{rel} is empty");
                found.push(rel);
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        ["deploy/compose.yaml", "deploy/kubernetes/sessiongate.yaml"]
    );
}

/// Dockerfile instructions with continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(more) = t.strip_suffix('\\') {
            cur.push_str(more);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

/// The image's `SESSIONGATE_CONFIG` and the path its HEALTHCHECK / compose run.
const IMAGE_CONFIG: &str = "/etc/sessiongate/gateway.toml";
const IMAGE_BINARY: &str = "/usr/local/bin/sessiongate";

/// A health-check command (`[binary, "health", …]`): the binary is the image's, and its
/// arguments parse: with a `--url` nothing answers it runs the probe and exits 1 (clap's
/// usage error would be 2).
fn check_health_command(cmd: &[String]) {
    assert_eq!(cmd[0], IMAGE_BINARY, "{cmd:?}");
    assert_eq!(cmd[1], "health", "{cmd:?}");
    let closed = format!("http://127.0.0.1:{}/readyz", free_port());
    let mut args: Vec<&str> = cmd[2..].iter().map(String::as_str).collect();
    args.extend(["--url", &closed]);
    let (code, out) = health(&args, &[], Duration::from_secs(10));
    assert_eq!(code, 1, "{cmd:?}: {out}");
    let (code, out, err) = run(&["health", "--help"], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn dockerfile_copies_what_exists_and_checks_health_with_the_binary() {
    let ins = dockerfile();
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/", "node_modules/", "demo/"] {
        assert!(ignored.contains(&must), ".dockerignore lacks {must}");
    }
    let excluded = |path: &str| {
        ignored.iter().any(|pat| {
            let pat = pat.trim_end_matches('/');
            path == pat || path.starts_with(&format!("{pat}/"))
        })
    };

    let mut copied_config = None;
    let mut copied = Vec::new();
    for (op, rest) in &ins {
        if op != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let (dest, sources) = parts.split_last().unwrap();
        for src in sources {
            let src = src.trim_start_matches("./");
            assert!(repo().join(src).exists(), "COPY {src}: no such file");
            assert!(!excluded(src), "COPY {src} is excluded by .dockerignore");
            copied.push(src.trim_end_matches('/').to_string());
        }
        if *dest == IMAGE_CONFIG {
            copied_config = Some(sources[0].to_string());
        }
    }
    // The build needs every workspace member (the token core in crates/core).
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("Cargo.toml lists its workspace members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() || member == "." {
            continue;
        }
        assert!(
            copied
                .iter()
                .any(|c| member == c || member.starts_with(&format!("{c}/"))),
            "the build stage does not COPY workspace member {member}: {copied:?}"
        );
    }
    let config = copied_config.expect("the image ships a default configuration");
    let env: Vec<&String> = ins
        .iter()
        .filter(|(o, _)| o == "ENV")
        .map(|(_, r)| r)
        .collect();
    assert!(
        env.iter()
            .any(|e| e.contains(&format!("SESSIONGATE_CONFIG={IMAGE_CONFIG}"))),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e.contains("CARGO_PROFILE_RELEASE_STRIP=true")
                && e.contains("CARGO_PROFILE_RELEASE_DEBUG=0")),
        "the binary is built without debug info and stripped: {env:?}"
    );
    let copy_bin = ins
        .iter()
        .find(|(o, r)| o == "COPY" && r.starts_with("--from=build"))
        .unwrap();
    assert!(copy_bin.1.ends_with(IMAGE_BINARY), "{copy_bin:?}");

    // Non-root.
    let user = ins
        .iter()
        .rfind(|(o, _)| o == "USER")
        .expect("USER")
        .1
        .clone();
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "USER {user}");

    // The default configuration is valid, and the ports it listens on are the EXPOSEd ones.
    let dir = tempfile::tempdir().unwrap();
    let cfg = check_with_binary(dir.path(), &read(&config), &[]);
    let expose: Vec<u16> = ins
        .iter()
        .filter(|(o, _)| o == "EXPOSE")
        .flat_map(|(_, r)| r.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    assert_eq!(
        expose,
        [cfg.server.listen.port(), cfg.server.admin_listen.port()]
    );

    let (_, hc) = ins
        .iter()
        .find(|(o, _)| o == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    let json = &hc[hc.find("CMD [").expect("exec-form CMD") + 4..];
    let cmd: Vec<String> = serde_json::from_str(json).unwrap();
    check_health_command(&cmd);
    let (_, entry) = ins.iter().find(|(o, _)| o == "ENTRYPOINT").unwrap();
    assert_eq!(entry, &format!("[\"{IMAGE_BINARY}\"]"));
    let (_, run_cmd) = ins.iter().find(|(o, _)| o == "CMD").unwrap();
    assert_eq!(run_cmd, "[\"serve\"]");
}

/// The `SESSIONGATE_…=` assignments in a shell command line, values replaced by `subst`.
fn shell_assignments(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('=').map(|(k, _)| k))
        .filter(|k| k.starts_with("SESSIONGATE_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn compose_file_matches_the_binary_and_its_configuration() {
    let docs = yaml_docs("deploy/compose.yaml");
    let compose = &docs[0];
    let services = compose["services"].as_mapping().unwrap();
    let deploy = repo().join("deploy");
    let gitignore = read(".gitignore");
    let dir = tempfile::tempdir().unwrap();

    // Secrets: declared, files that are not in the repository (created by the operator).
    let secrets = compose["secrets"].as_mapping().unwrap();
    for (name, def) in secrets {
        let file = s(&def["file"]).trim_start_matches("./");
        assert!(
            gitignore.lines().any(|l| l == format!("/deploy/{file}")),
            "secret {name:?} file {file} is not in .gitignore"
        );
    }

    let mut gateways = 0;
    for (name, svc) in services {
        let name = s(name);
        for used in svc["secrets"].as_sequence().into_iter().flatten() {
            assert!(
                secrets.contains_key(s(used)),
                "{name}: undeclared secret {used:?}"
            );
        }
        for vol in svc["volumes"].as_sequence().into_iter().flatten() {
            let host = s(vol).split(':').next().unwrap();
            assert!(
                deploy.join(host).exists(),
                "{name}: volume {host} does not exist"
            );
        }
        if svc.get("build").is_none() {
            continue;
        }
        gateways += 1;
        let build = &svc["build"];
        let context = deploy.join(s(&build["context"]));
        assert!(
            context.join(s(&build["dockerfile"])).exists(),
            "{name}: dockerfile"
        );

        // The configuration mounted where the image reads it.
        let mount = svc["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .find(|v| v.split(':').nth(1) == Some(IMAGE_CONFIG))
            .unwrap_or_else(|| panic!("{name}: no configuration mounted at {IMAGE_CONFIG}"));
        let toml = std::fs::read_to_string(deploy.join(mount.split(':').next().unwrap())).unwrap();

        // Every SESSIONGATE_ name set (environment and the entrypoint's shell line) is one the
        // binary reads; with stand-in values the configuration passes check-config.
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in svc["environment"].as_mapping().into_iter().flatten() {
            let (k, v) = (s(k).to_string(), s(v).to_string());
            let v = if v.starts_with("/run/secrets/") {
                let secret = v.trim_start_matches("/run/secrets/");
                assert!(
                    secrets.contains_key(secret),
                    "{name}: {k} names secret {secret}"
                );
                admin_key_file(dir.path())
            } else {
                v
            };
            env.push((k, v));
        }
        let entry: Vec<String> = svc["entrypoint"]
            .as_sequence()
            .map(|e| e.iter().map(|x| s(x).to_string()).collect())
            .unwrap_or_default();
        let shell = entry.last().cloned().unwrap_or_default();
        let from_shell = shell_assignments(&shell);
        assert_eq!(from_shell, ["SESSIONGATE_STORE__URL"], "{name}: {shell}");
        assert!(
            shell.contains("$$(cat /run/secrets/db_password)"),
            "{shell}"
        );
        assert!(
            shell.contains(&format!("exec {IMAGE_BINARY} serve")),
            "{shell}"
        );
        let url = shell
            .split('"')
            .nth(1)
            .unwrap()
            .replace("$$(cat /run/secrets/db_password)", "0123456789abcdef");
        env.push(("SESSIONGATE_STORE__URL".into(), url.clone()));
        let cfg = check_with_binary(dir.path(), &toml, &env);

        // The database and user the db service creates are the URL's.
        let db_env = &services["db"]["environment"];
        assert!(url.starts_with(&format!("mysql://{}:", s(&db_env["MARIADB_USER"]))));
        assert!(url.ends_with(&format!("/{}", s(&db_env["MARIADB_DATABASE"]))));
        assert!(url.contains("@db:"), "{url}");

        // Ports: container sides are the configured listeners; the admin one is published
        // on loopback only.
        let ports: Vec<&str> = svc["ports"].as_sequence().unwrap().iter().map(s).collect();
        let admin = cfg.server.admin_listen.port();
        let public = cfg.server.listen.port();
        assert!(
            ports.iter().any(|p| port_of(p) == public),
            "{name}: {ports:?}"
        );
        for p in &ports {
            let container = port_of(p);
            assert!(container == public || container == admin, "{name}: {p}");
            if container == admin {
                assert!(
                    p.starts_with("127.0.0.1:"),
                    "{name}: admin port {p} is public"
                );
            }
        }
        assert!(
            ports.iter().any(|p| port_of(p) == admin),
            "{name}: {ports:?}"
        );

        // The health check runs the binary's probe.
        let test: Vec<String> = svc["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| s(x).to_string())
            .collect();
        assert_eq!(test[0], "CMD");
        check_health_command(&test[1..]);

        // Every route goes to the app service, on the port it listens on.
        let app_port: u16 = s(&services["app"]["environment"]["PORT"]).parse().unwrap();
        for r in &cfg.routes {
            let u = r.upstream.as_ref().expect("deploy routes have upstreams");
            assert_eq!(
                (u.host(), u.port_u16()),
                (Some("app"), Some(app_port)),
                "{u}"
            );
        }
    }
    assert_eq!(gateways, 2);
    // The app is reachable only from the compose network.
    assert!(services["app"].get("ports").is_none());
}

#[test]
fn kubernetes_manifests_match_the_binary_and_each_other() {
    let docs = yaml_docs("deploy/kubernetes/sessiongate.yaml");
    let kind = |k: &str| -> Vec<&Yaml> { docs.iter().filter(|d| s(&d["kind"]) == k).collect() };
    let one = |k: &str| -> &Yaml {
        let all = kind(k);
        assert_eq!(all.len(), 1, "one {k}");
        all[0]
    };
    let config_map = one("ConfigMap");
    let secret = one("Secret");
    let deployment = one("Deployment");
    let service = one("Service");
    let pdb = one("PodDisruptionBudget");
    let policies = kind("NetworkPolicy");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let spec = &pod["spec"];
    assert_eq!(spec["enableServiceLinks"].as_bool(), Some(false));
    let containers = spec["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // The configuration file the container is started with is the ConfigMap's.
    let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(s).collect();
    assert_eq!(args[0], "serve");
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let volume_at = |path: &str| -> (&Yaml, String) {
        let m = mounts
            .iter()
            .find(|m| path.starts_with(&format!("{}/", s(&m["mountPath"]))))
            .unwrap_or_else(|| panic!("nothing mounted for {path}"));
        let file = path[s(&m["mountPath"]).len() + 1..].to_string();
        let v = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        (v, file)
    };
    let (vol, file) = volume_at(config_path);
    assert_eq!(vol["configMap"]["name"], config_map["metadata"]["name"]);
    let toml = s(&config_map["data"][file.as_str()]).to_string();

    // Environment: every name is one the binary reads; with the Secret's keys (stand-in
    // values: the shipped ones are placeholders) and files, check-config passes.
    let dir = tempfile::tempdir().unwrap();
    let data = secret["stringData"].as_mapping().unwrap();
    let mut env = Vec::new();
    for e in c["env"].as_sequence().unwrap() {
        let name = s(&e["name"]).to_string();
        let value = if let Some(r) = e.get("valueFrom") {
            let r = &r["secretKeyRef"];
            assert_eq!(r["name"], secret["metadata"]["name"]);
            let shipped = s(&data[s(&r["key"])]);
            assert!(
                shipped.contains("change-me"),
                "placeholder expected: {shipped}"
            );
            shipped.replace("change-me", "0123456789abcdef")
        } else {
            let v = s(&e["value"]);
            if v.starts_with('/') {
                // A file from a mounted Secret: the key must exist there.
                let (vol, file) = volume_at(v);
                assert_eq!(vol["secret"]["secretName"], secret["metadata"]["name"]);
                let items = vol["secret"]["items"].as_sequence().unwrap();
                let item = items.iter().find(|i| s(&i["path"]) == file).unwrap();
                assert!(data.contains_key(s(&item["key"])), "{item:?}");
                admin_key_file(dir.path())
            } else {
                v.to_string()
            }
        };
        env.push((name, value));
    }
    let cfg = check_with_binary(dir.path(), &toml, &env);

    // The shipped placeholders are refused, naming the keys.
    let shipped: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = if k == "SESSIONGATE_STORE__URL" {
                s(&data["store-url"]).to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let e = load_with_env(ConfigSource::Toml(&toml), shipped).unwrap_err();
    assert!(e.problem("store.url").is_some(), "{e}");

    // Ports and probes agree with the configuration.
    let ports = c["ports"].as_sequence().unwrap();
    let port = |name: &str| -> u16 {
        let p = ports.iter().find(|p| s(&p["name"]) == name).unwrap();
        p["containerPort"].as_u64().unwrap() as u16
    };
    assert_eq!(port("http"), cfg.server.listen.port());
    assert_eq!(port("admin"), cfg.server.admin_listen.port());
    let probe = |which: &str| -> (String, String) {
        let g = &c[which]["httpGet"];
        (s(&g["path"]).to_string(), s(&g["port"]).to_string())
    };
    assert_eq!(probe("readinessProbe"), ("/readyz".into(), "admin".into()));
    assert_eq!(probe("livenessProbe"), ("/healthz".into(), "admin".into()));
    // The drain finishes before the kubelet's SIGKILL.
    assert!(
        spec["terminationGracePeriodSeconds"].as_u64().unwrap()
            > cfg.server.shutdown_grace.as_secs()
    );

    // Memory requests and limits are set (sized in the README's "Memory" section).
    let mem = |v: &Yaml| -> u64 {
        let t = s(v);
        let n: u64 = t
            .trim_end_matches("Mi")
            .parse()
            .unwrap_or_else(|_| panic!("{t}"));
        n
    };
    let request = mem(&c["resources"]["requests"]["memory"]);
    let limit = mem(&c["resources"]["limits"]["memory"]);
    assert!(
        request >= 32 && limit >= 2 * request,
        "{request}Mi / {limit}Mi"
    );
    // The limit holds the measured peak under load (24 MiB, README) plus every allowed
    // connection at the measured ~34 KiB each (idle HTTP/1.1), so the kernel never kills a pod
    // that is only doing what its configuration allows.
    let needed_kib = 24 * 1024 + cfg.server.max_connections as u64 * 34;
    assert!(
        limit * 1024 >= needed_kib,
        "{limit}Mi cannot hold {} connections ({needed_kib} KiB)",
        cfg.server.max_connections
    );

    // The Service exposes only the public port of these pods.
    assert_eq!(&service["spec"]["selector"], labels);
    let sp = service["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(sp.len(), 1);
    assert_eq!(s(&sp[0]["targetPort"]), "http");

    // The disruption budget covers these pods and keeps one.
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() >= 1);

    // Only the gateway reaches the app, on the port the routes use.
    let app_policy = policies
        .iter()
        .find(|p| p["spec"]["podSelector"]["matchLabels"] != *labels)
        .expect("a NetworkPolicy for the app");
    let ingress = app_policy["spec"]["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0]["from"].as_sequence().unwrap();
    assert_eq!(from.len(), 1);
    assert_eq!(&from[0]["podSelector"]["matchLabels"], labels);
    for r in &cfg.routes {
        let allowed: Vec<u64> = ingress[0]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_u64().unwrap())
            .collect();
        assert_eq!(
            allowed,
            [u64::from(r.upstream.as_ref().unwrap().port_u16().unwrap())]
        );
    }
    // The gateway's own policy admits the public port from anywhere and restricts the
    // admin port.
    let gw_policy = policies
        .iter()
        .find(|p| p["spec"]["podSelector"]["matchLabels"] == *labels)
        .expect("a NetworkPolicy for the gateway");
    let rules = gw_policy["spec"]["ingress"].as_sequence().unwrap();
    for rule in rules {
        let ports: Vec<u64> = rule["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_u64().unwrap())
            .collect();
        if ports.contains(&u64::from(port("admin"))) {
            assert!(
                rule.get("from").is_some(),
                "admin port open to all: {rule:?}"
            );
        }
    }
}

/// A child process killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("{what} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The compose stack's app (deploy/demo-app/app.py, run with this machine's python3) behind
/// the real binary with the compose configuration (only addresses and the store changed, by
/// environment overrides): a browser is sent to the login page, logs in, and is then seen
/// by the app as the user. What docker compose would add (images, networking) is not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_app_logs_a_user_in_through_the_gateway() {
    let app_port = free_port();
    let mut app = Child(
        std::process::Command::new("python3")
            .arg(repo().join("deploy/demo-app/app.py"))
            .env("PORT", app_port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the compose demo app"),
    );
    wait_for_port(app_port, "the demo app", &mut app).await;

    let db = db::TestSqlite::new();
    let dir = tempfile::tempdir().unwrap();
    let (public, admin) = (free_port(), free_port());
    let upstream = format!("http://127.0.0.1:{app_port}");
    let mut gw = Child(
        command()
            .args(["serve", "--config"])
            .arg(repo().join("deploy/gateway.compose.toml"))
            .env("SESSIONGATE_SERVER__LISTEN", format!("127.0.0.1:{public}"))
            .env(
                "SESSIONGATE_SERVER__ADMIN_LISTEN",
                format!("127.0.0.1:{admin}"),
            )
            .env("SESSIONGATE_STORE__URL", db.url())
            .env(
                "SESSIONGATE_ADMIN__API_KEY_FILE",
                admin_key_file(dir.path()),
            )
            .env("SESSIONGATE_ROUTES__0__UPSTREAM", &upstream)
            .env("SESSIONGATE_ROUTES__1__UPSTREAM", &upstream)
            .envs(SERVICE_LINKS.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(public, "sessiongate", &mut gw).await;
    // The compose health check's probe says ready.
    let (code, out) = health(
        &["--url", &format!("http://127.0.0.1:{admin}/readyz")],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(code, 0, "{out}");

    let addr: std::net::SocketAddr = format!("127.0.0.1:{public}").parse().unwrap();
    let mut browser = support::Browser::new(addr);
    // A navigation without a session goes to the login page, remembering where it was.
    let r = browser
        .send(http::Method::GET, "/account", &[("accept", "text/html")])
        .await;
    assert_eq!(r.status, 302, "{}", r.text());
    let login = r.header("location").unwrap();
    assert_eq!(login, "/login?next=%2Faccount");
    let form = browser.get(&login).await;
    assert_eq!(form.status, 200);
    assert!(
        form.text().contains("action='/login?next=%2Faccount'"),
        "{}",
        form.text()
    );

    // The form post: the app answers with sessiongate-create, the gateway sets the cookies.
    let client = Client::new();
    let req = http::Request::post(format!("http://{addr}{login}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            "user=alice&password=demo",
        )))
        .unwrap();
    let resp = client.send(req).await;
    assert_eq!(resp.status, 303);
    assert_eq!(resp.headers["location"], "/account");
    assert!(!resp.headers.contains_key("sessiongate-create"));
    browser.absorb(&resp);
    assert!(
        browser.jar.cookies.contains_key("sAccessToken"),
        "{:?}",
        browser.jar
    );

    let page = browser.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(
        text.contains("<th>x-user-id</th><td>alice</td>"),
        "the app sees the user: {text}"
    );
    assert!(
        text.contains("{&quot;name&quot;:&quot;alice&quot;}"),
        "{text}"
    );

    // A wrong password creates nothing.
    let req = http::Request::post(format!("http://{addr}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            "user=alice&password=nope",
        )))
        .unwrap();
    let resp = client.send(req).await;
    assert_eq!(resp.status, 401);
    assert!(resp.headers.get("set-cookie").is_none());
}
