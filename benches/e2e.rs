//! End-to-end load benchmark (`cargo bench --bench e2e`): the real gateway beside nginx, both
//! in front of the same static nginx upstream on loopback, as issue 11 measured them, and the
//! issue's goal ratios computed from one run.
//!
//! Rows, each for `E2E_SECS`:
//! - `wrk -t2 -c50 --latency` (the load generator): the upstream direct; nginx as a
//!   plain `proxy_pass` (`upstream` pool, `keepalive 128`); the gateway's public route; the
//!   public route with the authenticated request's cookies; the authenticated route (cookie +
//!   anti-csrf of ONE logged-in session on every connection: the gateway's verified-token cache
//!   makes that the steady state of any number of users whose tokens it has seen).
//! - the Rust driver (each client rotating its own session, which wrk cannot do): refresh with
//!   rotation and session creation, on SQLite and on MySQL.
//! - `mysqlslap`: the database's ceiling for the refresh's transaction shape (goal 3).
//! - 10,000 idle keep-alive connections to a fresh gateway: its RSS before and with them open
//!   (goal 4); and the peak RSS (VmHWM) of the gateways that carried the load.
//!
//! The upstream and the proxy are nginx 1.22 from Debian (`/usr/sbin/nginx`, installed with
//! apt-get when missing and running as root), each a child process with its own prefix
//! directory; the gateway is the real binary in a child process, so its store-query counter
//! (scraped from its /metrics) and its RSS are its own. Everything listens on 127.0.0.1 and is
//! stopped when the bench ends, also when it panics.
//!
//! Environment: `E2E_SECS` (per scenario, default 5), `E2E_CONCURRENCY` (default 50: wrk's
//! connections, the Rust driver's clients, mysqlslap's clients), `E2E_GATEWAY_BIN` (run another
//! build of the gateway, e.g. an older commit's), `SESSIONGATE_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`; the MySQL rows and the ceiling are reported as skipped,
//! loudly, when no server answers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

// The tests' gateway-config builder and cookie jar, so the bench measures the gateway the
// tests check.
#[path = "../tests/it/support/config.rs"]
mod config;
#[path = "e2e/idle.rs"]
mod idle;
#[path = "../tests/it/support/jar.rs"]
mod jar;
#[path = "e2e/procs.rs"]
mod procs;
#[path = "e2e/slap.rs"]
mod slap;
#[path = "e2e/wrk.rs"]
mod wrk;
use config::{free_port, GatewayToml};
use jar::Jar;
use procs::{require_tool, Nginx};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Idle keep-alive connections of goal 4.
const IDLE_CONNECTIONS: usize = 10_000;
/// wrk's threads, as the issue ran it.
const WRK_THREADS: usize = 2;

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The tests' gateway with the routes the scenarios use (`/public`, `/auth/login`, `/api` with
/// anti-CSRF on every method), the default upstream timeout, a pool for 50 clients, room for
/// the idle connections, and access tokens that outlive a long run.
fn config_text(
    store_url: &str,
    upstream: SocketAddr,
    listen: SocketAddr,
    admin: SocketAddr,
) -> String {
    GatewayToml::new(store_url, &format!("http://{upstream}"))
        .listen(listen, admin)
        .unset("server.upstream_timeout_secs")
        .set(
            "server.max_connections",
            &(IDLE_CONNECTIONS + 2_000).to_string(),
        )
        .set("store.connection_limit", "60")
        .set("tokens.access_token.validity_secs", "3600")
        .extra("logging.level = \"warn\"")
        .only_routes(&["public", "login", "api"])
        .route_attr("api", "anti_csrf = \"always\"")
        .render()
}

/// The gateway binary under test: this build's, or `E2E_GATEWAY_BIN` (e.g. a release build of
/// an older commit, to compare two versions with the same load generator and config).
fn gateway_binary() -> std::ffi::OsString {
    std::env::var_os("E2E_GATEWAY_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sessiongate").into())
}

/// The real `sessiongate` binary in a child process, so its RSS and its own /metrics are
/// measured apart from the load generator and the upstream.
struct GatewayProcess {
    child: std::process::Child,
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    async fn start(store_url: &str, upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (listen, admin) = (free_addr(), free_addr());
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, config_text(store_url, upstream, listen, admin)).unwrap();
        // Through sh only to raise the soft limit on open files to the hard one for the idle
        // connections; `exec` keeps the pid the gateway's.
        let child = std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"",
            ])
            .arg(gateway_binary())
            .args(["serve", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start sessiongate");
        let mut g = Self {
            child,
            public_addr: listen,
            admin_addr: admin,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while g.metrics().await.is_none() {
            if let Some(status) = g.child.try_wait().ok().flatten() {
                panic!("gateway {:?} exited at start: {status}", gateway_binary());
            }
            assert!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        g
    }

    fn base(&self) -> String {
        format!("http://{}", self.public_addr)
    }

    async fn metrics(&self) -> Option<String> {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let req = Request::get(format!("http://{}/metrics", self.admin_addr))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let resp = client.request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    }

    /// Sum of `sessiongate_store_queries_total` over all operations.
    async fn store_queries(&self) -> u64 {
        let text = self.metrics().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("sessiongate_store_queries_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Resident and peak resident memory of the gateway process, MiB.
    fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Open file descriptors of the gateway process.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        procs::stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row of the results table.
struct Row {
    name: String,
    tool: &'static str,
    requests: u64,
    rps: f64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Row {
    fn from_wrk(name: &str, r: &wrk::WrkReport) -> Self {
        for line in &r.error_lines {
            println!("!! wrk, {name}: {line}");
        }
        Row {
            name: name.to_string(),
            tool: "wrk",
            requests: r.requests,
            rps: r.rps,
            errors: r.errors,
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
        }
    }
}

/// Runs wrk (blocking, off the runtime's workers) and prints the row as soon as it is known.
async fn wrk_row(
    bin: &str,
    name: &str,
    url: String,
    headers: Vec<(String, String)>,
    conc: usize,
    secs: f64,
) -> Row {
    let bin = bin.to_string();
    let report = tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        wrk::run(&bin, &url, &h, WRK_THREADS, conc, secs)
    })
    .await
    .unwrap();
    let row = Row::from_wrk(name, &report);
    eprintln!("{name}: {:.0} req/s", row.rps);
    row
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Refresh,
    Create,
}

async fn login(client: &HttpClient, base: &str, user: &str) -> Jar {
    let req = Request::get(format!("{base}/auth/login?u={user}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.expect("login");
    let mut s = Jar::default();
    s.absorb(resp.headers());
    let _ = resp.into_body().collect().await;
    assert!(
        s.cookie_header("/auth/refresh").is_some(),
        "login created no session"
    );
    s
}

/// The Rust driver: `concurrency` clients for `secs`, each rotating its own session (refresh)
/// or creating a new one per request (creation).
async fn drive(
    name: &str,
    client: HttpClient,
    base: String,
    kind: Kind,
    concurrency: usize,
    secs: f64,
) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let client = client.clone();
        let base = base.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = match kind {
                Kind::Refresh => login(&client, &base, &format!("user{c}")).await,
                Kind::Create => Jar::default(),
            };
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let b = match kind {
                    Kind::Create => Request::get(format!("{base}/auth/login?u=c{c}-{n}")),
                    Kind::Refresh => Request::builder()
                        .method(Method::POST)
                        .uri(format!("{base}/auth/refresh"))
                        .header(
                            "cookie",
                            session.cookie_header("/auth/refresh").unwrap_or_default(),
                        ),
                };
                let req = b.body(Full::new(Bytes::new())).unwrap();
                let t = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == 200;
                        if kind == Kind::Refresh {
                            session.absorb(resp.headers());
                        }
                        let _ = resp.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                n += 1;
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let row = Row {
        name: name.to_string(),
        tool: "rust",
        requests: all.len() as u64,
        rps: all.len() as f64 / elapsed,
        errors,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    };
    eprintln!("{name}: {:.0} req/s", row.rps);
    row
}

fn mysql_base() -> String {
    std::env::var("SESSIONGATE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A fresh database for the gateway on the MySQL server, or None when none answers.
async fn mysql_url() -> Option<String> {
    let base = mysql_base();
    let pool = mysql_async::Pool::new(base.as_str());
    let db = format!("sgbench_{}", std::process::id());
    let mut conn = tokio::time::timeout(Duration::from_secs(3), pool.get_conn())
        .await
        .ok()?
        .ok()?;
    use mysql_async::prelude::Queryable;
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .ok()?;
    conn.query_drop(format!("CREATE DATABASE {db}"))
        .await
        .ok()?;
    drop(conn);
    pool.disconnect().await.ok()?;
    Some(format!("{}/{db}", base.trim_end_matches('/')))
}

async fn drop_mysql(url: &str) {
    if let Some((base, db)) = url.rsplit_once('/') {
        let pool = mysql_async::Pool::new(base);
        if let Ok(mut c) = pool.get_conn().await {
            use mysql_async::prelude::Queryable;
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await;
        }
        let _ = pool.disconnect().await;
    }
}

/// Goal 4's idle-connection figure, measured on a fresh gateway.
struct IdleMemory {
    /// Connections actually opened (fewer than [`IDLE_CONNECTIONS`] when the fd limit forbids).
    opened: usize,
    failed: usize,
    still_open: usize,
    before_mib: f64,
    with_mib: f64,
    gateway_fds: usize,
}

impl IdleMemory {
    /// The RSS cost scaled to [`IDLE_CONNECTIONS`] connections, MiB.
    fn per_10k_mib(&self) -> f64 {
        (self.with_mib - self.before_mib) * IDLE_CONNECTIONS as f64 / self.opened.max(1) as f64
    }
}

async fn idle_memory(store_url: &str, upstream: SocketAddr, client: &HttpClient) -> IdleMemory {
    let gw = GatewayProcess::start(store_url, upstream).await;
    // A few requests first, so the "before" figure includes what any first request allocates.
    for _ in 0..200 {
        let req = Request::get(format!("{}/public/x", gw.base()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(resp) = client.request(req).await {
            let _ = resp.into_body().collect().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before_mib, _) = gw.rss_mib();
    // This process holds the client ends: stay below its own limit on open files.
    let n = match idle::fd_soft_limit() {
        Some(limit) if (limit as usize) < IDLE_CONNECTIONS + 1_000 => {
            println!(
                "!! open files limited to {limit} here: opening fewer idle connections and \
                 scaling to {IDLE_CONNECTIONS}"
            );
            (limit as usize).saturating_sub(1_000)
        }
        _ => IDLE_CONNECTIONS,
    };
    let t = Instant::now();
    let (conns, failed) = idle::open(gw.public_addr, "/public/x", n, 100).await;
    eprintln!(
        "opened {} idle connections in {:.1} s ({failed} failed)",
        conns.len(),
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (with_mib, _) = gw.rss_mib();
    let gateway_fds = gw.open_fds();
    let still_open = idle::still_open(&conns);
    let m = IdleMemory {
        opened: conns.len(),
        failed,
        still_open,
        before_mib,
        with_mib,
        gateway_fds,
    };
    drop(conns);
    gw.stop();
    m
}

/// What one run measured, for the results table and the goals.
struct Results {
    rows: Vec<Row>,
    /// Store queries during the authenticated row, and its requests.
    auth_queries: (u64, u64),
    /// VmRSS and VmHWM of the SQLite gateway after its load scenarios.
    sqlite_rss: (f64, f64),
    /// VmHWM of the MySQL gateway after its load scenarios.
    mysql_peak: Option<f64>,
    ceiling: Option<slap::Ceiling>,
    idle: IdleMemory,
}

impl Results {
    fn rps(&self, name: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.rps)
    }
}

/// The settings and tools of one run.
struct Bench {
    secs: f64,
    conc: usize,
    wrk: String,
    mysqlslap: Option<&'static str>,
    upstream: SocketAddr,
    nginx: SocketAddr,
    client: HttpClient,
}

impl Bench {
    async fn wrk(&self, name: &str, url: String, headers: &[(String, String)]) -> Row {
        wrk_row(&self.wrk, name, url, headers.to_vec(), self.conc, self.secs).await
    }

    async fn drive(&self, name: &str, base: String, kind: Kind) -> Row {
        drive(name, self.client.clone(), base, kind, self.conc, self.secs).await
    }

    async fn run(&self, dir: &std::path::Path) -> Results {
        let up = self.upstream;
        let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
        let gw = GatewayProcess::start(&sqlite, up).await;
        let base = gw.base();

        let mut rows = Vec::new();
        let url = format!("http://{up}/public/x");
        rows.push(self.wrk("upstream direct", url, &[]).await);
        let url = format!("http://{}/public/x", self.nginx);
        rows.push(self.wrk("nginx plain proxy_pass", url, &[]).await);
        let url = format!("{base}/public/x");
        rows.push(self.wrk("gateway public route", url, &[]).await);

        // One logged-in session for every wrk connection.
        let session = login(&self.client, &base, "wrk").await;
        let auth_headers = [
            (
                "Cookie",
                session.cookie_header("/api/x").unwrap_or_default(),
            ),
            ("anti-csrf", session.anti_csrf.clone().unwrap_or_default()),
        ]
        .map(|(k, v)| (k.to_string(), v));
        let mut check = Request::get(format!("{base}/api/x"));
        for (k, v) in &auth_headers {
            check = check.header(k.as_str(), v.as_str());
        }
        let status = self
            .client
            .request(check.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("authenticated request")
            .status();
        assert_eq!(status, 200, "the logged-in session's authenticated request");

        // The same request as the authenticated row on the public route: the difference to
        // the next row is the cost of verification alone.
        let url = format!("{base}/public/x");
        rows.push(
            self.wrk("gateway public, same cookies", url, &auth_headers)
                .await,
        );
        let q0 = gw.store_queries().await;
        let url = format!("{base}/api/x");
        let auth = self
            .wrk("gateway authenticated route", url, &auth_headers)
            .await;
        let auth_queries = (gw.store_queries().await - q0, auth.requests);
        rows.push(auth);
        let name = "refresh with rotation (SQLite)";
        rows.push(self.drive(name, base.clone(), Kind::Refresh).await);
        let name = "session creation (SQLite)";
        rows.push(self.drive(name, base.clone(), Kind::Create).await);
        let sqlite_rss = gw.rss_mib();
        gw.stop();

        let (mut mysql_peak, mut ceiling) = (None, None);
        match mysql_url().await {
            Some(url) => {
                let gw = GatewayProcess::start(&url, up).await;
                let name = "refresh with rotation (MySQL)";
                rows.push(self.drive(name, gw.base(), Kind::Refresh).await);
                // The ceiling right after the refresh row (the gateway idle), so both see the
                // same machine as far as possible.
                ceiling = self.ceiling().await;
                let name = "session creation (MySQL)";
                rows.push(self.drive(name, gw.base(), Kind::Create).await);
                let (rss, peak) = gw.rss_mib();
                println!(
                    "gateway RSS after the MySQL scenarios: {rss:.1} MiB (peak {peak:.1} MiB)"
                );
                mysql_peak = Some(peak);
                gw.stop();
                drop_mysql(&url).await;
            }
            None => {
                println!("!! MySQL scenarios SKIPPED: no server at SESSIONGATE_TEST_MYSQL_URL")
            }
        }

        let idle_db = format!("sqlite://{}", dir.join("idle.db").display());
        let idle = idle_memory(&idle_db, up, &self.client).await;
        Results {
            rows,
            auth_queries,
            sqlite_rss,
            mysql_peak,
            ceiling,
            idle,
        }
    }

    async fn ceiling(&self) -> Option<slap::Ceiling> {
        let Some(bin) = self.mysqlslap else {
            println!(
                "!! MySQL ceiling SKIPPED: /usr/bin/mysqlslap missing (Debian package mariadb-client)"
            );
            return None;
        };
        match slap::ceiling(bin, &mysql_base(), self.conc as u64, self.secs).await {
            Ok(c) => {
                eprintln!("MySQL ceiling: {:.0} txn/s", c.tps());
                Some(c)
            }
            Err(e) => {
                println!("!! MySQL ceiling FAILED: {e}");
                None
            }
        }
    }
}

fn print_results(r: &Results, secs: f64, conc: usize) {
    let (direct, nginx) = (r.rps("upstream direct"), r.rps("nginx plain proxy_pass"));
    let public = r.rps("gateway public route");
    let authed = r.rps("gateway authenticated route");
    println!("\nconcurrency {conc}, {secs} s per scenario; wrk -t{WRK_THREADS} -c{conc} --latency");
    println!(
        "{:<32} {:>5} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "tool", "requests", "req/s", "errors", "p50 ms", "p99 ms", "×direct", "×nginx"
    );
    for row in &r.rows {
        // Ratios only between rows of the same load generator.
        let (x_direct, x_nginx) = match row.tool {
            "wrk" => (
                format!("{:.2}", row.rps / direct),
                format!("{:.2}", row.rps / nginx),
            ),
            _ => (String::new(), String::new()),
        };
        println!(
            "{:<32} {:>5} {:>10} {:>10.0} {:>7} {:>8.2} {:>8.2} {x_direct:>8} {x_nginx:>7}",
            row.name, row.tool, row.requests, row.rps, row.errors, row.p50_ms, row.p99_ms,
        );
    }
    println!(
        "(authenticated row: one session's cookie and anti-csrf on all {conc} connections; the \
         gateway's verified-token cache makes that the steady state of users whose tokens it \
         has seen)"
    );
    println!(
        "authenticated / public with the same cookies: {:.3}",
        authed / r.rps("gateway public, same cookies")
    );
    let (q, n) = r.auth_queries;
    println!("store queries during the authenticated run: {q} for {n} requests");
    let (rss, peak_sqlite) = r.sqlite_rss;
    println!("gateway RSS after the SQLite scenarios: {rss:.1} MiB (peak {peak_sqlite:.1} MiB)");
    if let Some(c) = &r.ceiling {
        println!(
            "MySQL ceiling for the refresh transaction: {:.0} txn/s (mysqlslap, {} clients, {} \
             transactions in {:.2} s)",
            c.tps(),
            c.clients,
            c.transactions,
            c.secs
        );
    }
    let mysql_refresh = r.rps("refresh with rotation (MySQL)");
    let ceiling_ratio = r.ceiling.as_ref().map(|c| mysql_refresh / c.tps());
    if let Some(ratio) = ceiling_ratio.filter(|v| v.is_finite()) {
        println!("gateway refresh (MySQL) / ceiling: {ratio:.2}");
    }
    let idle = &r.idle;
    let scaled = if idle.opened < IDLE_CONNECTIONS {
        format!(" (measured with {}, scaled)", idle.opened)
    } else {
        String::new()
    };
    let per_10k = idle.per_10k_mib();
    println!(
        "10,000 idle keep-alive connections: +{per_10k:.1} MiB RSS ({:.1} KiB each){scaled}; \
         RSS {:.1} -> {:.1} MiB, gateway fds {}, {} still open at measurement, {} failed to open",
        per_10k * 1024.0 / IDLE_CONNECTIONS as f64,
        idle.before_mib,
        idle.with_mib,
        idle.gateway_fds,
        idle.still_open,
        idle.failed
    );
    let peak = peak_sqlite.max(r.mysql_peak.unwrap_or(0.0));
    println!("RSS under load: peak {peak:.1} MiB (VmHWM of the gateways after the load scenarios)");

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let at_least = |goal: &str, what: &str, v: f64, target: f64| {
        println!(
            "{goal:<7} {what:<30} {v:>7.2}   target ≥ {target:<5}  {}",
            verdict(v >= target)
        );
    };
    let at_most = |goal: &str, what: &str, v: f64, target: f64| {
        println!(
            "{goal:<7} {what:<30} {v:>7.1}   target ≤ {target:<5}  {}",
            verdict(v <= target)
        );
    };
    println!("\n== issue 11 goals, this run ==");
    at_least("goal 1", "authenticated / nginx", authed / nginx, 1.0);
    at_least("", "public / nginx", public / nginx, 1.1);
    at_least("goal 2", "authenticated / public", authed / public, 0.95);
    match ceiling_ratio.filter(|v| v.is_finite()) {
        Some(v) => at_least("goal 3", "MySQL refresh / ceiling", v, 0.8),
        None => println!("goal 3  MySQL refresh / ceiling        SKIPPED"),
    }
    at_most("goal 4", "10k idle connections, MiB", per_10k, 100.0);
    at_most("", "RSS under load, peak MiB", peak, 64.0);
}

fn main() {
    let secs: f64 = std::env::var("E2E_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let conc: usize = std::env::var("E2E_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let nginx_bin = require_tool("/usr/sbin/nginx", "nginx");
    let wrk = require_tool("/usr/bin/wrk", "wrk");
    let mysqlslap = std::path::Path::new("/usr/bin/mysqlslap")
        .exists()
        .then_some("/usr/bin/mysqlslap");

    // Outside the runtime, so they are dropped (stopped) last, also when a scenario panics.
    let upstream = Nginx::upstream(&nginx_bin);
    let proxy = Nginx::proxy(&nginx_bin, upstream.addr);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let bench = Bench {
            secs,
            conc,
            wrk,
            mysqlslap,
            upstream: upstream.addr,
            nginx: proxy.addr,
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(conc * 2)
                .build(connector),
        };
        bench.run(dir.path()).await
    });
    drop(rt);
    print_results(&results, secs, conc);
    for (name, n) in [("upstream", &upstream), ("proxy", &proxy)] {
        let log = n.error_log();
        if !log.trim().is_empty() {
            println!("\nnginx ({name}) error.log:\n{}", log.trim_end());
        }
    }
}
