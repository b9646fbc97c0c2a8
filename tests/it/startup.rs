//! Starting without the database, and readiness (issue 9 items 3 and 4), with the real binary
//! where the process matters.
//!
//! `serve` points at a MySQL address where nothing listens yet; the test later opens a TCP
//! relay on that address toward the real MariaDB. Before: `/healthz` 200, `/readyz` 503 (no
//! keys), refresh and session creation 503 `store_unavailable` with `Retry-After`. After: ready
//! within seconds, login and refresh work, same process. With a static `secret_file`, a token
//! minted for that secret is accepted while the store is still down. Each binary test prints a
//! transcript (time since start, request, status) with `--nocapture`.
//!
//! Also: `HEAD` on the health endpoints over HTTP/1.1 (raw bytes) and h2c, and a SQLite file
//! that cannot be opened still failing `serve` at once with exit 69.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use sessiongate::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::client::AdminClient;
use crate::support::config::free_port;
use crate::support::db;
use crate::support::process::Gateway;
use crate::support::{start_gateway, test_config, Browser, Resp, TestUpstream};

/// Lines of "+elapsed what -> status body", printed at the end of a test.
struct Transcript {
    started: Instant,
    lines: Vec<String>,
}

impl Transcript {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            lines: Vec::new(),
        }
    }

    fn note(&mut self, what: &str, r: &Resp) {
        let retry = r
            .header("retry-after")
            .map(|v| format!(" retry-after={v}"))
            .unwrap_or_default();
        let line = format!(
            "+{:>6} ms  {what:<34} -> {}{retry} {}",
            self.started.elapsed().as_millis(),
            r.status.as_u16(),
            r.text().chars().take(120).collect::<String>()
        );
        self.lines.push(line);
    }

    fn event(&mut self, what: &str) {
        let line = format!("+{:>6} ms  -- {what}", self.started.elapsed().as_millis());
        self.lines.push(line);
    }

    fn print(&self, title: &str) {
        println!("== {title}");
        for l in &self.lines {
            println!("{l}");
        }
    }
}

/// The MariaDB server address behind `db::TestMysql` (`mysql://user@host:port`).
async fn mysql_target(db: &db::TestMysql) -> (String, SocketAddr) {
    let rest = db.server.trim_start_matches("mysql://");
    let (userinfo, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let addr = tokio::net::lookup_host(hostport.trim_end_matches('/'))
        .await
        .unwrap()
        .next()
        .unwrap();
    (userinfo.to_string(), addr)
}

/// Starts forwarding `127.0.0.1:port` to `target` (the database "appears").
async fn open_relay(port: u16, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    })
}

/// A store URL for a database reached through `127.0.0.1:port`, where nothing listens yet.
/// `prefer_socket=false`: on loopback mysql_async would switch to the server's Unix socket.
fn relayed_url(userinfo: &str, port: u16, db: &str) -> String {
    format!("mysql://{userinfo}@127.0.0.1:{port}/{db}?prefer_socket=false")
}

/// Polls the admin `path` until it answers; returns the first answer.
async fn first_answer(gw: &mut Gateway, path: &str) -> Resp {
    let admin = AdminClient::new(gw.admin_addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gw.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("sessiongate exited ({status}):\n{}", gw.log_text());
        }
        if let Some(r) = admin.try_get(path).await {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "the admin listener did not answer within 10 s:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_store_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    assert_eq!(r.json()["error"], "store_unavailable", "{what}");
    assert!(r.header("retry-after").is_some(), "{what}: Retry-After");
    assert!(r.set_cookies().is_empty(), "{what}: cookies untouched");
}

/// The value of an unlabelled metric in a Prometheus scrape.
fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_without_mysql_and_becomes_ready_when_it_appears() {
    let db = db::TestMysql::new();
    let (userinfo, target) = mysql_target(&db).await;
    let port = free_port();
    let up = TestUpstream::start().await;
    let mut t = Transcript::new();
    let mut gw = Gateway::spawn(&relayed_url(&userinfo, port, &db.db), &up.url(), "");
    t.event(&format!(
        "serve started; nothing listens on 127.0.0.1:{port}"
    ));

    let r = first_answer(&mut gw, "/healthz").await;
    t.note("GET /healthz", &r);
    assert_eq!(r.status, 200);
    let admin = AdminClient::new(gw.admin_addr);
    let r = admin.try_get("/readyz").await.unwrap();
    t.note("GET /readyz", &r);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "not_ready");
    assert_eq!(r.json()["store"], "down");
    assert!(r.text().contains("signing keys"), "{}", r.text());
    let r = admin.try_get("/metrics").await.unwrap();
    assert_eq!(metric(&r.text(), "sessiongate_store_up"), Some(0.0));

    // Whatever needs the store or the keys: refresh, session creation, a session-carrying
    // request on an authenticated route, logout, the admin session API.
    let mut b = Browser::new(gw.public_addr);
    b.jar
        .cookies
        .insert("sRefreshToken".into(), "anything".into());
    b.jar
        .cookies
        .insert("sIdRefreshToken".into(), "anything".into());
    b.jar
        .cookies
        .insert("sAccessToken".into(), "anything".into());
    let r = b.refresh().await;
    t.note("POST /auth/refresh", &r);
    assert_store_unavailable(&r, "refresh");
    let r = b.get("/api/x").await;
    t.note("GET /api/x (with session cookies)", &r);
    assert_store_unavailable(&r, "authenticated route");
    let r = b.post("/auth/logout").await;
    t.note("POST /auth/logout", &r);
    assert_store_unavailable(&r, "logout");
    let mut newcomer = Browser::new(gw.public_addr);
    let r = newcomer.get("/auth/login?user=alice").await;
    t.note("GET /auth/login?user=alice", &r);
    assert_store_unavailable(&r, "session creation");
    let r = newcomer.get("/public/x").await;
    t.note("GET /public/x", &r);
    assert_eq!(r.status, 200, "public routes need no store");
    let r = admin
        .call(
            Method::POST,
            "/v1/sessions",
            Some(serde_json::json!({"user_id": "carol"})),
        )
        .await;
    t.note("POST admin /v1/sessions", &r);
    assert_store_unavailable(&r, "admin session API");

    // The database appears a little later (the retry loop has failed a few times and is
    // backing off): ready without a restart.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _relay = open_relay(port, target).await;
    t.event("relay opened toward MariaDB");
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = admin.try_get("/readyz").await.unwrap();
        if r.status == 200 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 10 s after the store appeared: {}\n{}",
            r.text(),
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    t.note("GET /readyz", &r);
    assert_eq!(r.json()["store"], "up");
    let r = newcomer.login("alice").await;
    t.note("GET /auth/login?user=alice", &r);
    let r = newcomer.get("/api/x").await;
    t.note("GET /api/x", &r);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
    let r = newcomer.refresh().await;
    t.note("POST /auth/refresh", &r);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin.try_get("/metrics").await.unwrap();
    assert_eq!(metric(&r.text(), "sessiongate_store_up"), Some(1.0));
    // Migrations ran and the keys were created in the database that appeared.
    assert!(!db.query("SELECT kid FROM signing_key").is_empty());
    t.print("start without the database (dynamic keys)");
    gw.terminate_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_secret_serves_authenticated_requests_while_mysql_is_down() {
    use sessiongate::keys::KeyRing;
    use sessiongate::session::access::{self, AccessClaims};
    use sessiongate::session::refresh::{RefreshToken, SessionHandle};

    let db = db::TestMysql::new();
    let (userinfo, target) = mysql_target(&db).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-static-signing-secret-of-more-than-32-bytes";
    let secret_path = dir.path().join("jwt.secret");
    std::fs::write(&secret_path, secret).unwrap();
    let up = TestUpstream::start().await;
    let mut t = Transcript::new();
    let extra = format!(
        "tokens.access_token.signing_key.secret_file = \"{}\"\ntokens.access_token.signing_key.dynamic = false",
        secret_path.display()
    );
    let mut gw = Gateway::spawn(&relayed_url(&userinfo, port, &db.db), &up.url(), &extra);
    t.event(&format!(
        "serve started; nothing listens on 127.0.0.1:{port}"
    ));

    let r = first_answer(&mut gw, "/readyz").await;
    t.note("GET /readyz", &r);
    assert_eq!(r.status, 200, "keys need no store: {}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "ready", "store": "down"})
    );

    // A token minted for the secret, as another instance would have issued it.
    let ring = KeyRing::from_static_secret(secret.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = AccessClaims {
        sub: "dave".into(),
        sid: "h-static".into(),
        iat: now,
        exp: now + 60,
        anti_csrf: None,
        payload: serde_json::json!({}),
    };
    let token = access::mint(&claims, ring.signing_key().unwrap()).unwrap();
    let mut b = Browser::new(gw.public_addr);
    b.jar.cookies.insert("sAccessToken".into(), token);
    b.jar
        .cookies
        .insert("sIdRefreshToken".into(), "present".into());
    let r = b.get("/api/x").await;
    t.note("GET /api/x (minted token)", &r);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("dave"));
    // A genuine refresh token (its MAC checks out with the key derived from the secret):
    // only the store can say whether its session lives.
    let rt = RefreshToken::root(ring.refresh_key(), SessionHandle([7; 16]), [9; 16]);
    b.jar.cookies.insert("sRefreshToken".into(), rt.to_text());
    let r = b.refresh().await;
    t.note("POST /auth/refresh (genuine token)", &r);
    assert_store_unavailable(&r, "refresh needs the store");

    let _relay = open_relay(port, target).await;
    t.event("relay opened toward MariaDB");
    let mut c = Browser::new(gw.public_addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = c.get("/auth/login?user=erin").await;
        if r.status == 200 {
            break r;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    t.note("GET /auth/login?user=erin", &r);
    let r = c.refresh().await;
    t.note("POST /auth/refresh", &r);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = AdminClient::new(gw.admin_addr)
        .try_get("/readyz")
        .await
        .unwrap();
    t.note("GET /readyz", &r);
    assert_eq!(r.json()["store"], "up");
    t.print("start without the database (static secret_file)");
    gw.terminate_cleanly().await;
}

/// With blacklisting, keys alone are not enough: until the revocation feed has been read once
/// a token may name a revoked session, so even a genuine token gets 503 `store_unavailable`
/// (never a 401 that would end the session) and `/readyz` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_blacklisting_no_token_is_accepted_before_the_revocation_feed_is_read() {
    use sessiongate::keys::KeyRing;
    use sessiongate::session::access::{self, AccessClaims};

    let db = db::TestMysql::new();
    let (userinfo, target) = mysql_target(&db).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-static-signing-secret-of-more-than-32-bytes";
    let secret_path = dir.path().join("jwt.secret");
    std::fs::write(&secret_path, secret).unwrap();
    let up = TestUpstream::start().await;
    let extra = format!(
        "tokens.access_token.signing_key.secret_file = \"{}\"\n\
         tokens.access_token.signing_key.dynamic = false\n\
         tokens.access_token.blacklisting = true",
        secret_path.display()
    );
    let mut gw = Gateway::spawn(&relayed_url(&userinfo, port, &db.db), &up.url(), &extra);

    let r = first_answer(&mut gw, "/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("revocation feed"), "{}", r.text());

    let ring = KeyRing::from_static_secret(secret.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = AccessClaims {
        sub: "frank".into(),
        sid: "h-feed".into(),
        iat: now,
        exp: now + 60,
        anti_csrf: None,
        payload: serde_json::json!({}),
    };
    let mut b = Browser::new(gw.public_addr);
    b.jar.cookies.insert(
        "sAccessToken".into(),
        access::mint(&claims, ring.signing_key().unwrap()).unwrap(),
    );
    b.jar
        .cookies
        .insert("sIdRefreshToken".into(), "present".into());
    assert_store_unavailable(&b.get("/api/x").await, "a genuine token before the feed");

    // Once the store answers and the feed has been read, the same token is accepted.
    let _relay = open_relay(port, target).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.get("/api/x").await;
        if r.status == 200 {
            assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("frank"));
            break;
        }
        assert_store_unavailable(&r, "a genuine token before the feed");
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.terminate_cleanly().await;
}

/// `HEAD /healthz` and `HEAD /readyz`: same status as GET, no body; over HTTP/1.1 (raw bytes)
/// and h2c.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_head_over_http1_and_h2c() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), Clock::system()).await;
    for path in ["/healthz", "/readyz"] {
        let mut s = TcpStream::connect(gw.admin_addr).await.unwrap();
        let req = format!("HEAD {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200 "), "HEAD {path}: {text}");
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty(), "HEAD {path} has no body: {text:?}");

        let io = hyper_util::rt::TokioIo::new(TcpStream::connect(gw.admin_addr).await.unwrap());
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .method(Method::HEAD)
            .uri(format!("http://{}{path}", gw.admin_addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "h2 HEAD {path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty(), "h2 HEAD {path} has no body");
    }
    gw.stop().await;
}

/// A SQLite file that cannot be opened will not fix itself: `serve` still exits 69 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unopenable_sqlite_file_still_exits_69() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let url = format!("sqlite://{}", blocker.join("sessions.db").display());
    let mut gw = Gateway::spawn(&url, &up.url(), "");
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(69), "{}", gw.log_text());
    assert!(
        TcpStream::connect(gw.admin_addr).await.is_err(),
        "nothing listens after the exit"
    );
}
