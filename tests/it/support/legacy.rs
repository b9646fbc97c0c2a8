//! The original library as a test fixture: [`LegacyApp`] runs `node tests/legacy/server.js`
//! (the unmodified `supertokens-node-mysql-ref-jwt` 5.0.4 in a small Express app) against a
//! per-test MariaDB database, so the issue-14 tests create sessions, refresh and revoke them
//! with the real library before handing the database to sessiongate.
//!
//! The app's npm packages are installed (`npm ci`) once per test process when
//! `tests/legacy/node_modules` lacks them; without Node or a reachable registry the test fails
//! with a message saying what to run, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use super::client::{Browser, Client, Resp};
use super::db::TestMysql;

/// The library's renew path in every legacy app the tests start: the gateway's `renew_path`
/// ([`super::jar::REFRESH_PATH`]), as the migration requires.
pub const RENEW_PATH: &str = super::jar::REFRESH_PATH;

/// `tests/<dir>` of this crate.
pub fn tests_dir(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir)
}

static NPM: Mutex<()> = Mutex::new(());

/// Makes sure `node` runs and `dir/node_modules` holds `packages`, running `npm ci` in `dir`
/// (once at a time per test process) when one is missing. `Err` says what to do by hand.
pub fn ensure_node_packages(dir: &Path, packages: &[&str]) -> Result<(), String> {
    let runs = |p: &str| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for tool in ["node", "npm"] {
        if !runs(tool) {
            return Err(format!(
                "`{tool}` is not installed; the legacy-library tests need Node.js 18+ and npm (apt-get install -y nodejs npm)"
            ));
        }
    }
    let _one_at_a_time = NPM.lock().unwrap_or_else(|e| e.into_inner());
    let present = || {
        packages.iter().all(|p| {
            dir.join("node_modules")
                .join(p)
                .join("package.json")
                .exists()
        })
    };
    if present() {
        return Ok(());
    }
    eprintln!("[legacy] npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status();
    match status {
        Ok(s) if s.success() && present() => Ok(()),
        other => Err(format!(
            "installing the npm packages of {} failed ({other:?}); the npm registry must be reachable, \
             or run `cd {} && npm ci` by hand",
            dir.display(),
            dir.display()
        )),
    }
}

/// Settings of one legacy app; [`LegacyOptions::default`] is the library's defaults with a
/// 10 s access token (its minimum outside its test mode).
#[derive(Clone, Debug)]
pub struct LegacyOptions {
    /// `tokens.accessToken.validity` in seconds (below 10 switches on the library's
    /// `TEST_MODE`, which only lifts its range checks).
    pub access_token_validity_secs: u32,
    /// `mysql.tables.refreshTokens`.
    pub refresh_table: String,
    /// `mysql.tables.signingKey`.
    pub signing_table: String,
    /// Listen on this port instead of any free one.
    pub port: Option<u16>,
    /// A supertokens-website bundle to serve at `/sdk/supertokens.js`.
    pub sdk_bundle: Option<PathBuf>,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        Self {
            access_token_validity_secs: 10,
            refresh_table: "refresh_token".into(),
            signing_table: "signing_key".into(),
            port: None,
            sdk_bundle: None,
        }
    }
}

/// A running legacy app, killed on drop.
pub struct LegacyApp {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    /// The app's stderr (library errors).
    pub errors: PathBuf,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Drop for LegacyApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `(host, port, user, password)` of a `mysql://user[:password]@host[:port]` server URL.
fn mysql_parts(server: &str) -> (String, u16, String, String) {
    let rest = server
        .strip_prefix("mysql://")
        .unwrap_or_else(|| panic!("not a mysql:// URL: {server}"));
    let rest = rest.split('/').next().unwrap_or(rest);
    let (creds, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().expect("port in the MySQL URL")),
        None => (hostport, 3306),
    };
    (host.into(), port, user.into(), password.into())
}

impl LegacyApp {
    /// Starts the app with the library's defaults on `db` and waits until it listens.
    pub fn start(db: &TestMysql) -> Self {
        Self::start_with(db, &LegacyOptions::default())
    }

    /// Starts the app with `opts` on `db` and waits (up to 60 s) until it listens; panics
    /// with its log if it exits or never gets there.
    pub fn start_with(db: &TestMysql, opts: &LegacyOptions) -> Self {
        let dir = tests_dir("legacy");
        ensure_node_packages(
            &dir,
            &[
                "supertokens-node-mysql-ref-jwt",
                "mysql",
                "express",
                "cookie-parser",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (host, port, user, password) = mysql_parts(&db.server);
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("legacy-app.log");
        let errors = tmp.path().join("legacy-app.err");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("server.js"))
            .current_dir(&dir)
            .env("LEGACY_PORT", opts.port.unwrap_or(0).to_string())
            .env("LEGACY_MYSQL_HOST", host)
            .env("LEGACY_MYSQL_PORT", port.to_string())
            .env("LEGACY_MYSQL_USER", user)
            .env("LEGACY_MYSQL_PASSWORD", password)
            .env("LEGACY_MYSQL_DATABASE", &db.db)
            .env("LEGACY_REFRESH_TABLE", &opts.refresh_table)
            .env("LEGACY_SIGNING_TABLE", &opts.signing_table)
            .env(
                "LEGACY_AT_VALIDITY_SECS",
                opts.access_token_validity_secs.to_string(),
            )
            .env("LEGACY_RENEW_PATH", RENEW_PATH)
            .env_remove("TEST_MODE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&errors).unwrap());
        if let Some(b) = &opts.sdk_bundle {
            cmd.env("LEGACY_SDK_BUNDLE", b);
        }
        let mut child = cmd.spawn().expect("spawning node tests/legacy/server.js");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(p) = out
                .lines()
                .find_map(|l| l.strip_prefix("listening "))
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break p;
            }
            let err = || std::fs::read_to_string(&errors).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the legacy app exited ({status}) before listening:\n{out}\n{}",
                    err()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the legacy app did not listen within 60 s:\n{out}\n{}",
                    err()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            errors,
            client: Client::new(),
            _dir: tmp,
        }
    }

    /// What the app wrote to stderr so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Kills the app (the library keeps no state outside MySQL, so nothing is lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `POST /login` with `{userId, payload, sessionData}` (`null` values are left out):
    /// the library's `createNewSession`. Returns the answer for a [`Browser`] to absorb.
    pub async fn create_session(
        &self,
        user_id: serde_json::Value,
        payload: serde_json::Value,
        session_data: serde_json::Value,
    ) -> Resp {
        let mut body = serde_json::json!({ "userId": user_id });
        if !payload.is_null() {
            body["payload"] = payload;
        }
        if !session_data.is_null() {
            body["sessionData"] = session_data;
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/login", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let r = self.client.send(req).await;
        assert_eq!(
            r.status,
            200,
            "legacy createNewSession: {}\n{}",
            r.text(),
            self.error_log()
        );
        r
    }

    /// A browser holding a fresh library session (see [`LegacyApp::create_session`]), talking
    /// to this app.
    pub async fn login(
        &self,
        user_id: serde_json::Value,
        payload: serde_json::Value,
        session_data: serde_json::Value,
    ) -> Browser {
        let r = self.create_session(user_id, payload, session_data).await;
        let mut b = Browser::new(self.addr());
        b.absorb(&r);
        b
    }

    /// `POST /revoke/:handle`: the library's `revokeSessionUsingSessionHandle`; whether a row went.
    pub async fn revoke(&self, handle: &str) -> bool {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/revoke/{handle}", self.base))
            .body(Full::default())
            .unwrap();
        let r = self.client.send(req).await;
        assert_eq!(
            r.status,
            200,
            "legacy revoke: {}\n{}",
            r.text(),
            self.error_log()
        );
        r.json()["revoked"].as_bool().expect("revoked flag")
    }
}
