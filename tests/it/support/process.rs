//! Support for operational tests that run the real `sessiongate` binary: config files on free
//! ports, child processes that are always killed (a guard with `Drop`), SIGTERM, and running
//! the binary to completion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::client::AdminClient;
use super::config::{free_port, GatewayToml};

pub const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");
/// `server.shutdown_grace_secs` in [`gateway_config`].
pub const GRACE_SECS: u64 = 5;

/// The config of one instance of the binary: the test gateway on these ports with only the
/// `api`, `public` and `login` routes, JSON logs at info level.
pub fn gateway_config(
    store_url: &str,
    upstream: &str,
    public_port: u16,
    admin_port: u16,
) -> GatewayToml {
    GatewayToml::new(store_url, upstream)
        .listen(
            ([127, 0, 0, 1], public_port).into(),
            ([127, 0, 0, 1], admin_port).into(),
        )
        .set("server.shutdown_grace_secs", &GRACE_SECS.to_string())
        .set("server.upstream_timeout_secs", "5")
        .set("store.connection_limit", "10")
        .set("logging.level", "\"info\"")
        .set("logging.format", "\"json\"")
        .only_routes(&["api", "public", "login"])
}

/// A `Command` for the binary with no `SESSIONGATE_*` variables inherited (they would be
/// config overrides).
pub fn command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SESSIONGATE_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_LOG");
    c
}

/// A running `sessiongate serve`, killed (SIGKILL) on drop if still running.
pub struct Gateway {
    pub child: Option<Child>,
    pub public: String,
    pub admin: String,
    pub public_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    pub log: PathBuf,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Gateway {
    /// Writes the config and starts `sessiongate serve --config <file>`; does not wait.
    pub fn spawn(store_url: &str, upstream: &str, extra: &str) -> Self {
        Self::spawn_with_env(store_url, upstream, extra, &[])
    }

    /// [`Gateway::spawn`] with `SESSIONGATE_…` overrides in the environment.
    pub fn spawn_with_env(
        store_url: &str,
        upstream: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (pp, ap) = (free_port(), free_port());
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            gateway_config(store_url, upstream, pp, ap)
                .extra(extra)
                .render(),
        )
        .unwrap();
        let log = dir.path().join("stderr.log");
        let child = command()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning sessiongate");
        let public_addr: std::net::SocketAddr = format!("127.0.0.1:{pp}").parse().unwrap();
        let admin_addr: std::net::SocketAddr = format!("127.0.0.1:{ap}").parse().unwrap();
        Self {
            child: Some(child),
            public: format!("http://{public_addr}"),
            admin: format!("http://{admin_addr}"),
            public_addr,
            admin_addr,
            log,
            config,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/readyz` until 200; panics (with the process log) after 60 s or if it exits.
    pub async fn wait_ready(&mut self) {
        let admin = AdminClient::at(&self.admin);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "sessiongate exited during start-up ({status}):\n{}",
                    self.log_text()
                );
            }
            if let Some(r) = admin.try_get("/readyz").await {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not ready within 60 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then asserts exit status 0 within the grace period (plus start-up slack).
    pub async fn terminate_cleanly(&mut self) {
        self.sigterm();
        let status = self.wait_exit(Duration::from_secs(GRACE_SECS + 5)).await;
        assert_eq!(
            status.code(),
            Some(0),
            "exit after SIGTERM: {status}\n{}",
            self.log_text()
        );
    }
}

/// Runs the binary to completion with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("running sessiongate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn run_with_config(cmd: &[&str], config: &Path) -> (i32, String, String) {
    let mut args: Vec<&str> = cmd.to_vec();
    let p = config.to_str().unwrap();
    args.extend(["--config", p]);
    run(&args, &[])
}

/// The `kid` in a JWT's header.
pub fn jwt_kid(token: &str) -> String {
    use base64::Engine;
    let head = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}
