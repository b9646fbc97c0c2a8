//! SPEC §8 store outage: the gateway reaches MariaDB through a TCP proxy the test can cut.
//! While the store is unreachable, requests with a valid access token keep being served;
//! refresh, creation and logout answer 503 `store_unavailable` with `Retry-After` and leave
//! cookies untouched; `/readyz` is 503. When the store returns, service recovers by itself.

mod common;
mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{start_gateway, test_config, Browser, Resp, TestUpstream};
use sessiongate::clock::Clock;
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to MariaDB that can be cut (open connections closed, new ones closed on
/// accept) and restored.
struct CuttableProxy {
    port: u16,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl CuttableProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (d, cs) = (down.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(h);
            }
        });
        Self {
            port,
            down,
            conns,
            task,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn assert_store_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    assert_eq!(r.json()["error"], "store_unavailable", "{what}");
    assert!(r.header("retry-after").is_some(), "{what}: no Retry-After");
    assert!(
        r.set_cookies().is_empty(),
        "{what}: cookies touched: {:?}",
        r.set_cookies()
    );
    assert!(r.header("id-refresh-token").is_none(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_and_recovery() {
    let db = common::TestMysql::new();
    // mysql://user[:pw]@host:port → proxy to host:port, same credentials.
    let (creds, hostport) = db
        .server
        .trim_start_matches("mysql://")
        .rsplit_once('@')
        .map(|(c, h)| (format!("{c}@"), h.to_string()))
        .unwrap_or_else(|| {
            (
                String::new(),
                db.server.trim_start_matches("mysql://").into(),
            )
        });
    let proxy = CuttableProxy::start(hostport).await;
    // prefer_socket=false: otherwise mysql_async switches to the server's Unix socket when
    // the server is local, bypassing the proxy.
    let url = format!(
        "mysql://{creds}127.0.0.1:{}/{}?prefer_socket=false",
        proxy.port, db.db
    );
    let up = TestUpstream::start().await;
    let gw = start_gateway(
        test_config(&url, &up.url(), "tokens.access_token.blacklisting = true"),
        Clock::system(),
    )
    .await;
    let mut admin = Browser::new(gw.admin_addr);
    let mut alice = Browser::new(gw.public_addr);
    alice.login("alice").await;
    assert_eq!(alice.get("/api/me").await.status, 200);
    let mut bob = Browser::new(gw.public_addr);
    bob.login("bob").await;
    assert_eq!(admin.get("/readyz").await.status, 200);

    proxy.cut();

    // Valid access tokens keep working (keys are cached, no store on this path).
    for _ in 0..3 {
        let r = alice.get("/api/me").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.upstream_header("x-user-id").unwrap(), "alice");
    }
    // Refresh, creation and logout: 503 with Retry-After, cookies untouched.
    let jar = alice.jar.clone();
    let started = Instant::now();
    let r = alice.refresh().await;
    assert_store_unavailable(&r, "refresh");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refresh took {:?}",
        started.elapsed()
    );
    assert_eq!(alice.jar, jar, "refresh cookies untouched");
    let mut carol = Browser::new(gw.public_addr);
    let r = carol.get("/auth/login?user=carol").await;
    assert_store_unavailable(&r, "creation");
    assert!(carol.jar.is_empty());
    let bob_jar = bob.jar.clone();
    let r = bob.post("/auth/logout").await;
    assert_store_unavailable(&r, "logout");
    assert_eq!(bob.jar, bob_jar, "logout cookies untouched");
    // Readiness follows the store; liveness does not.
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "not_ready");
    assert_eq!(admin.get("/healthz").await.status, 200);
    // Still serving authenticated requests after the failures.
    assert_eq!(alice.get("/api/me").await.status, 200);

    proxy.restore();

    // Recovers by itself: refresh succeeds again within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = alice.refresh().await;
        if r.status == 200 {
            break;
        }
        assert_store_unavailable(&r, "refresh while recovering");
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alice.get("/api/me").await.status, 200);
    carol.login("carol").await;
    assert_eq!(carol.get("/api/me").await.status, 200);
    let r = bob.post("/auth/logout").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(bob.get("/api/me").await.status, 401);
    assert_eq!(admin.get("/readyz").await.status, 200);

    let m = admin.get("/metrics").await.text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("sessiongate_refresh_total{outcome=\"store_unavailable\"} ")),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l
            .strip_prefix("sessiongate_store_errors_total ")
            .is_some_and(|v| v.trim() != "0")),
        "store errors counted"
    );
    gw.stop().await;
}

/// SPEC §8: shutdown closes the pool. After `stop`, no connection to the test database is
/// left open on the server (connections are ended, not abandoned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_store_pool() {
    let db = common::TestMysql::new();
    let up = TestUpstream::start().await;
    let gw = start_gateway(
        test_config(
            &db.url(),
            &up.url(),
            "tokens.access_token.blacklisting = true",
        ),
        Clock::system(),
    )
    .await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    assert_eq!(b.refresh().await.status, 200);
    let open = |db: &common::TestMysql| -> u64 {
        db.query(&format!(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID()",
            db.db
        ))[0][0]
            .parse()
            .unwrap()
    };
    assert!(open(&db) > 0, "the gateway holds pooled connections");
    gw.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = open(&db);
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} connections still open 5 s after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
