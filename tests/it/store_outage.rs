//! Store outage (SPEC §8): a TCP relay we control sits between the gateway and MariaDB. With
//! the relay cut, requests carrying a valid access token are still served; refresh, session
//! creation and logout answer 503 `store_unavailable` with `Retry-After` and leave cookies
//! alone; `/readyz` stays 200 and says `"store":"down"`; when the relay is restored the
//! gateway recovers by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use sessiongate::clock::Clock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::support;
use crate::support::client::AdminClient;
use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

/// A TCP relay to `target` that can be cut (existing connections closed, new ones dropped)
/// and restored.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    kill: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (kill, _) = broadcast::channel(4);
        let (u, k) = (up.clone(), kill.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !u.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut killed = k.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = killed.recv() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            kill,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.kill.send(());
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_survives_a_store_outage() {
    let db = db::TestMysql::new();
    let server: url_parts::Server = url_parts::parse(&db.server);
    let target: SocketAddr = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    // prefer_socket=false: mysql_async would otherwise switch to the server's Unix socket on
    // loopback and bypass the relay.
    let relayed_url = format!(
        "mysql://{}@{}/{}?prefer_socket=false",
        server.userinfo, relay.addr, db.db
    );
    let up = TestUpstream::start().await;
    let gw = start_gateway(test_config(&relayed_url, &up.url(), ""), Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    assert_eq!(b.get("/api/x").await.status, 200);

    relay.cut();
    // Valid access tokens keep working: no store on this path.
    for _ in 0..5 {
        let r = b.get("/api/x").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.upstream_header("x-user-id").unwrap(), "alice");
    }
    let jar_before = b.jar.clone();
    let started = Instant::now();
    let r = b.refresh().await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(r.set_cookies().is_empty(), "cookies untouched");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answers promptly"
    );
    let mut newcomer = Browser::new(gw.public_addr);
    let r = newcomer.get("/auth/login?user=bob").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(r.set_cookies().is_empty());
    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 503);
    assert!(r.set_cookies().is_empty());
    assert_eq!(b.jar, jar_before);
    // The instance stays ready (authenticated traffic needs no store, so Kubernetes must not
    // pull it); readiness and `sessiongate_store_up` report the store as down.
    let admin = AdminClient::new(gw.admin_addr);
    async fn ready(admin: &AdminClient) -> (http::StatusCode, serde_json::Value) {
        let r = admin.raw(Method::GET, "/readyz", None, "").await;
        (r.status, r.json())
    }
    let (status, body) = ready(&admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "store": "down"})
    );
    assert_eq!(gw.state.metrics.store_up.get(), 0);

    relay.restore();
    // Recovers by itself: refresh succeeds again within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = b.refresh().await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "gateway did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.get("/api/x").await.status, 200);
    assert_eq!(newcomer.get("/auth/login?user=bob").await.status, 200);
    let (status, body) = ready(&admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "up");
    assert_eq!(gw.state.metrics.store_up.get(), 1);
    gw.stop().await;
}

/// Every refusal reaches an allowed cross-origin SPA with CORS, not only the successes: a
/// 501, a 400, a 502 `bad_session_control`, a 502 from the upstream, a 504 and the refresh
/// endpoint's 503 `store_unavailable` with `Retry-After` all carry
/// `Access-Control-Allow-Origin` and `X-Request-Id`, so the SPA sees a (retryable) error
/// instead of a CORS failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_an_allowed_spa_with_cors() {
    const SPA: &str = "https://app.example";
    let db = db::TestMysql::new();
    let server: url_parts::Server = url_parts::parse(&db.server);
    let target: SocketAddr = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let relayed_url = format!(
        "mysql://{}@{}/{}?prefer_socket=false",
        server.userinfo, relay.addr, db.db
    );
    let up = TestUpstream::start().await;
    let extra = format!("cors.allowed_origins = [\"{SPA}\"]");
    let gw = start_gateway(
        test_config(&relayed_url, &up.url(), &extra),
        Clock::system(),
    )
    .await;
    let addr = gw.public_addr;
    // Exactly the SPA's origin allowed, and one request id, whatever the status.
    let check = |what: &str, status: u16, acao: Vec<&str>, rid: Vec<&str>, head: &str| {
        assert_eq!(acao, vec![SPA], "{what}: no CORS on a {status}\n{head}");
        assert_eq!(rid.len(), 1, "{what}: X-Request-Id\n{head}");
    };
    let check_raw = |what: &str, r: &wire::Raw| {
        check(
            what,
            r.status,
            r.headers("access-control-allow-origin"),
            r.headers("x-request-id"),
            &r.head,
        )
    };
    let check_resp = |what: &str, r: &support::Resp| {
        let values = |name: &str| -> Vec<String> {
            r.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect()
        };
        let (acao, rid) = (
            values("access-control-allow-origin"),
            values("x-request-id"),
        );
        check(
            what,
            r.status.as_u16(),
            acao.iter().map(String::as_str).collect(),
            rid.iter().map(String::as_str).collect(),
            &format!("{:?}", r.headers),
        )
    };
    let raw = |request: String| async move { wire::http1_raw(addr, request).await };

    // 501: an unsupported transfer coding.
    let r = raw(format!(
        "POST /public/x HTTP/1.1\r\nHost: {addr}\r\nOrigin: {SPA}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    ))
    .await;
    assert_eq!(r.status, 501, "{r:?}");
    check_raw("501", &r);
    // 400: two Host headers.
    let r = raw(format!(
        "GET /public/x HTTP/1.1\r\nHost: {addr}\r\nHost: other.example\r\nOrigin: {SPA}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    check_raw("400", &r);
    // 502: the upstream switches protocols without a valid WebSocket handshake.
    let r = raw(format!(
        "GET /public/ws?accept=wrong HTTP/1.1\r\nHost: {addr}\r\nOrigin: {SPA}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ))
    .await;
    assert_eq!(r.status, 502, "{r:?}");
    check_raw("502", &r);

    let mut b = Browser::new(addr);
    let origin = [("origin", SPA)];
    b.login("alice").await;
    // 502 bad_session_control: a malformed `sessiongate-create`.
    let r = b
        .send(Method::GET, "/auth/login/bad-control", &origin)
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "bad_session_control");
    check_resp("bad_session_control", &r);
    // 504: the upstream answers after `server.upstream_timeout_secs` (2 s).
    let r = b.send(Method::GET, "/api/slow?ms=4000", &origin).await;
    assert_eq!(r.status, 504, "{}", r.text());
    check_resp("504", &r);
    // 503 store_unavailable from the refresh endpoint, with Retry-After.
    relay.cut();
    let r = b.send(Method::POST, "/auth/refresh", &origin).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(r.header("retry-after").is_some());
    check_resp("503", &r);
    relay.restore();
    gw.stop().await;
}

/// Splits `mysql://user[:pass]@host:port` for the relay.
mod url_parts {
    pub struct Server {
        pub userinfo: String,
        pub host: String,
        pub port: u16,
    }

    pub fn parse(url: &str) -> Server {
        let rest = url.trim_start_matches("mysql://");
        let (userinfo, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
        Server {
            userinfo: userinfo.to_string(),
            host: host.to_string(),
            port: port.parse().unwrap(),
        }
    }
}

/// SPEC §8: shutdown closes the pool. After `stop`, no connection to the test database is
/// left open on the server (connections are ended, not abandoned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_store_pool() {
    let db = db::TestMysql::new();
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
    let open = |db: &db::TestMysql| -> u64 {
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
