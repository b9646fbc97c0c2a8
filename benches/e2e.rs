//! End-to-end load benchmark (`cargo bench --bench e2e`): a minimal upstream and the real
//! gateway on loopback, driven by a Rust client at fixed concurrency for a bounded time.
//!
//! Prints req/s and p50/p99 for: direct upstream; gateway public route; gateway authenticated
//! route (cookie + anti-csrf); refresh with rotation on SQLite and on MySQL (each client
//! rotating its own session); session creation. Each gateway figure is also printed as a ratio
//! to the direct-upstream figure of the same run, since absolute numbers on a shared machine
//! mean little. The gateway is the real binary in a child process, so its store-query counter
//! (scraped from its /metrics) and its RSS are its own.
//!
//! Environment: `E2E_SECS` (per scenario, default 5), `E2E_CONCURRENCY` (default 50),
//! `E2E_GATEWAY_BIN` (run another build of the gateway, e.g. an older commit's),
//! `SESSIONGATE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`; the MySQL scenario is
//! reported as skipped, loudly, when no server answers).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

// The tests' gateway-config builder and cookie jar, so the bench measures the gateway the
// tests check.
#[path = "../tests/it/support/config.rs"]
mod config;
#[path = "../tests/it/support/jar.rs"]
mod jar;
use config::{free_port, GatewayToml};
use jar::Jar;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn start_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
                    if req.uri().path().ends_with("/login") {
                        let user = req.uri().query().unwrap_or("u=bench").to_string();
                        let v = format!(
                            "{{\"user_id\":\"{}\",\"jwt_payload\":{{}}}}",
                            user.replace("u=", "")
                        );
                        resp.headers_mut()
                            .insert("sessiongate-create", v.parse().unwrap());
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn free_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The tests' gateway with the routes the scenarios use (`/public`, `/auth/login`, `/api` with
/// anti-CSRF on every method), the default upstream timeout, and a pool for 50 clients.
fn config_text(
    store_url: &str,
    upstream: std::net::SocketAddr,
    listen: std::net::SocketAddr,
    admin: std::net::SocketAddr,
) -> String {
    GatewayToml::new(store_url, &format!("http://{upstream}"))
        .listen(listen, admin)
        .unset("server.upstream_timeout_secs")
        .set("store.connection_limit", "60")
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
    public_addr: std::net::SocketAddr,
    admin_addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    async fn start(store_url: &str, upstream: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (listen, admin) = (free_addr(), free_addr());
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, config_text(store_url, upstream, listen, admin)).unwrap();
        let child = std::process::Command::new(gateway_binary())
            .args(["serve", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start sessiongate");
        let g = Self {
            child,
            public_addr: listen,
            admin_addr: admin,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while g.metrics().await.is_none() {
            assert!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        g
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

    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

struct Stats {
    name: String,
    requests: u64,
    errors: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Authenticated,
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

async fn drive(
    name: &str,
    client: HttpClient,
    base: String,
    path: &'static str,
    kind: Kind,
    concurrency: usize,
    secs: f64,
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let client = client.clone();
        let base = base.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = match kind {
                Kind::Authenticated | Kind::Refresh => {
                    login(&client, &base, &format!("user{c}")).await
                }
                _ => Jar::default(),
            };
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut b = Request::builder();
                b = match kind {
                    Kind::Plain => b.method(Method::GET).uri(format!("{base}{path}")),
                    Kind::Create => b
                        .method(Method::GET)
                        .uri(format!("{base}/auth/login?u=c{c}-{n}")),
                    Kind::Authenticated => b
                        .method(Method::GET)
                        .uri(format!("{base}{path}"))
                        .header("cookie", session.cookie_header(path).unwrap_or_default())
                        .header("anti-csrf", session.anti_csrf.as_deref().unwrap_or("")),
                    Kind::Refresh => b
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
    Stats {
        name: name.to_string(),
        requests: all.len() as u64,
        errors,
        secs: elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

async fn mysql_url() -> Option<String> {
    let base = std::env::var("SESSIONGATE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
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

fn main() {
    let secs: f64 = std::env::var("E2E_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let conc: usize = std::env::var("E2E_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let upstream = start_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let gw = GatewayProcess::start(&sqlite, upstream).await;
        let base = format!("http://{}", gw.public_addr);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(conc * 2)
            .build(connector);

        let mut rows = Vec::new();
        rows.push(
            drive(
                "direct upstream",
                client.clone(),
                format!("http://{upstream}"),
                "/public/x",
                Kind::Plain,
                conc,
                secs,
            )
            .await,
        );
        rows.push(
            drive(
                "gateway public route",
                client.clone(),
                base.clone(),
                "/public/x",
                Kind::Plain,
                conc,
                secs,
            )
            .await,
        );
        // The same request as the authenticated scenario (cookies + anti-csrf) on the public
        // route: the difference to the next row is the cost of verification alone.
        rows.push(
            drive(
                "gateway public route, same cookies",
                client.clone(),
                base.clone(),
                "/public/x",
                Kind::Authenticated,
                conc,
                secs,
            )
            .await,
        );
        let q0 = gw.store_queries().await;
        let auth = drive(
            "gateway authenticated route",
            client.clone(),
            base.clone(),
            "/api/x",
            Kind::Authenticated,
            conc,
            secs,
        )
        .await;
        // Logins of the driving clients happen before timing starts; subtract them.
        let q_auth = gw.store_queries().await - q0 - conc as u64;
        let auth_requests = auth.requests;
        rows.push(auth);
        rows.push(
            drive(
                "refresh with rotation (SQLite)",
                client.clone(),
                base.clone(),
                "",
                Kind::Refresh,
                conc,
                secs,
            )
            .await,
        );
        rows.push(
            drive(
                "session creation (SQLite)",
                client.clone(),
                base.clone(),
                "",
                Kind::Create,
                conc,
                secs,
            )
            .await,
        );
        let (rss, peak) = gw.rss_mib();
        gw.stop();

        match mysql_url().await {
            Some(url) => {
                let gw = GatewayProcess::start(&url, upstream).await;
                let base = format!("http://{}", gw.public_addr);
                rows.push(
                    drive(
                        "refresh with rotation (MySQL)",
                        client.clone(),
                        base.clone(),
                        "",
                        Kind::Refresh,
                        conc,
                        secs,
                    )
                    .await,
                );
                rows.push(
                    drive(
                        "session creation (MySQL)",
                        client.clone(),
                        base,
                        "",
                        Kind::Create,
                        conc,
                        secs,
                    )
                    .await,
                );
                let (rss_m, peak_m) = gw.rss_mib();
                println!(
                    "gateway RSS after the MySQL scenarios: {rss_m:.1} MiB (peak {peak_m:.1} MiB)"
                );
                gw.stop();
                drop_mysql(&url).await;
            }
            None => println!("!! MySQL scenarios SKIPPED: no server at SESSIONGATE_TEST_MYSQL_URL"),
        }

        let direct = rows[0].rps();
        println!("\nconcurrency {conc}, {secs} s per scenario");
        println!(
            "{:<34} {:>10} {:>8} {:>9} {:>9} {:>8}",
            "scenario", "req/s", "errors", "p50 ms", "p99 ms", "×direct"
        );
        for r in &rows {
            println!(
                "{:<34} {:>10.0} {:>8} {:>9.2} {:>9.2} {:>8.2}",
                r.name,
                r.rps(),
                r.errors,
                r.p50_ms,
                r.p99_ms,
                r.rps() / direct
            );
        }
        println!(
            "\nauthenticated / public throughput: {:.3}; authenticated / public with the same cookies: {:.3}",
            rows[3].rps() / rows[1].rps(),
            rows[3].rps() / rows[2].rps()
        );
        println!(
            "store queries during the authenticated run: {q_auth} for {auth_requests} requests"
        );
        println!(
            "gateway process RSS after the SQLite scenarios: {rss:.1} MiB (peak {peak:.1} MiB)"
        );
    });
}
