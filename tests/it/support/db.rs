//! Shared test support: real databases.
//!
//! [`TestMysql`] creates a uniquely named database on the server at
//! `SESSIONGATE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) and drops it when
//! dropped. If no server answers there, a throwaway `mariadbd` is started once per test process
//! in a temp dir on a free port (when the binary exists); otherwise the test fails with a
//! message saying how to get one. MySQL tests are never skipped silently.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::config::free_port;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SERVER: OnceLock<String> = OnceLock::new();

/// A throwaway mariadbd kept alive for the test process.
struct Throwaway {
    _child: Child,
    _dir: tempfile::TempDir,
}
static THROWAWAY: OnceLock<std::sync::Mutex<Option<Throwaway>>> = OnceLock::new();

fn run_blocking<F: std::future::Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .expect("helper thread")
}

async fn reachable(url: &str) -> bool {
    let pool = mysql_async::Pool::new(url);
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(3), pool.get_conn()).await,
        Ok(Ok(_))
    );
    let _ = pool.disconnect().await;
    ok
}

fn find_mariadbd() -> Option<PathBuf> {
    [
        "/usr/sbin/mariadbd",
        "/usr/sbin/mysqld",
        "/usr/bin/mariadbd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Initialises a fresh data directory under `dir` and starts `mariadbd` on a free loopback
/// port with `extra` arguments (its error log goes to `dir/mariadbd.log`). Returns the child
/// and its port; the caller waits for readiness. Panics, saying how to get one, when no
/// `mariadbd` or `mariadb-install-db` is installed.
pub fn spawn_mariadbd(dir: &std::path::Path, extra: &[String]) -> (Child, u16) {
    let Some(mariadbd) = find_mariadbd() else {
        panic!(
            "No MySQL server answers at SESSIONGATE_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306) \
             and no mariadbd binary to start one. Install one with `apt-get install mariadb-server`, \
             start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, \
             or point SESSIONGATE_TEST_MYSQL_URL at a server."
        )
    };
    let data = dir.join("data");
    let install = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            &format!("--datadir={}", data.display()),
            "--skip-test-db",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(install, Ok(ref s) if s.success()),
        "mariadb-install-db failed ({install:?}); install mariadb-server or set SESSIONGATE_TEST_MYSQL_URL"
    );
    let port = free_port();
    let child = Command::new(mariadbd)
        .args([
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", dir.join("sock").display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_string(),
            "--user=root".to_string(),
            format!("--log-error={}", dir.join("mariadbd.log").display()),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mariadbd");
    (child, port)
}

fn start_throwaway() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, port) = spawn_mariadbd(dir.path(), &["--skip-grant-tables".to_string()]);
    let url = format!("mysql://root@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let u = url.clone();
    while !run_blocking({
        let u = u.clone();
        async move { reachable(&u).await }
    }) {
        assert!(
            Instant::now() < deadline,
            "throwaway mariadbd did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("started a throwaway mariadbd at {url}");
    *THROWAWAY
        .get_or_init(|| std::sync::Mutex::new(None))
        .lock()
        .unwrap() = Some(Throwaway {
        _child: child,
        _dir: dir,
    });
    url
}

/// The server URL (without database) the tests use.
pub fn mysql_server() -> String {
    SERVER
        .get_or_init(|| {
            let url = std::env::var("SESSIONGATE_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
            let url = url.trim_end_matches('/').to_string();
            let u = url.clone();
            if run_blocking(async move { reachable(&u).await }) {
                url
            } else {
                start_throwaway()
            }
        })
        .clone()
}

/// A database of its own for one test, dropped afterwards.
pub struct TestMysql {
    pub server: String,
    pub db: String,
}

impl TestMysql {
    pub fn new() -> Self {
        let server = mysql_server();
        let db = format!(
            "sgtest_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let (s, d) = (server.clone(), db.clone());
        run_blocking(async move {
            let pool = mysql_async::Pool::new(s.as_str());
            let mut c = pool.get_conn().await.expect("mysql connection");
            c.query_drop(format!("CREATE DATABASE `{d}`"))
                .await
                .expect("create test database");
            drop(c);
            let _ = pool.disconnect().await;
        });
        Self { server, db }
    }

    /// URL of the test database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.db)
    }

    /// Runs one query against the test database and returns rows as strings.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let (url, sql) = (self.url(), sql.to_string());
        run_blocking(async move {
            let pool = mysql_async::Pool::new(url.as_str());
            let mut c = pool.get_conn().await.expect("mysql connection");
            let rows: Vec<mysql_async::Row> = c.query(sql).await.expect("query");
            let out = rows
                .into_iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| match r.as_ref(i) {
                            Some(mysql_async::Value::Bytes(b)) => {
                                String::from_utf8_lossy(b).into_owned()
                            }
                            Some(mysql_async::Value::Int(v)) => v.to_string(),
                            Some(mysql_async::Value::UInt(v)) => v.to_string(),
                            Some(mysql_async::Value::NULL) | None => "NULL".into(),
                            Some(v) => format!("{v:?}"),
                        })
                        .collect()
                })
                .collect();
            drop(c);
            let _ = pool.disconnect().await;
            out
        })
    }
}

impl Default for TestMysql {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestMysql {
    fn drop(&mut self) {
        let (s, d) = (self.server.clone(), self.db.clone());
        run_blocking(async move {
            let pool = mysql_async::Pool::new(s.as_str());
            if let Ok(mut c) = pool.get_conn().await {
                let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{d}`")).await;
            }
            let _ = pool.disconnect().await;
        });
    }
}

/// A SQLite database in a temp dir that lives as long as the returned guard.
pub struct TestSqlite {
    pub dir: tempfile::TempDir,
}

impl TestSqlite {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("sessions.db")
    }
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }
}

impl Default for TestSqlite {
    fn default() -> Self {
        Self::new()
    }
}
