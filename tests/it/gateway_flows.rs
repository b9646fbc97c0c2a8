//! The gateway over real sockets: a real upstream, the gateway on port 0, real SQLite and
//! MariaDB stores, and a browser-like client with a cookie jar. Time past access-token expiry
//! is driven by the gateway's injected clock (the config keeps its real ranges).

use std::time::Duration;

use http::{Method, StatusCode};
use sessiongate::clock::Clock;

use crate::support;
use crate::support::client::AdminClient;
use crate::support::config::free_port;
use crate::support::db;
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

async fn setup_sqlite(
    extra: &str,
) -> (
    TestUpstream,
    db::TestSqlite,
    sessiongate::app::Gateway,
    Clock,
) {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let clock = Clock::system();
    let gw = start_gateway(test_config(&db.url(), &up.url(), extra), clock.clone()).await;
    (up, db, gw, clock)
}

/// login → access → expiry → try_refresh → refresh → access → logout → refused.
async fn full_flow(store_url: &str) {
    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_gateway(test_config(store_url, &up.url(), ""), clock.clone()).await;
    let mut b = Browser::new(gw.public_addr);

    // No session yet.
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "unauthorised"}));

    let login = b.login("alice").await;
    let cookies = login.set_cookies();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(cookies[0].starts_with("sAccessToken=") && cookies[0].contains("HttpOnly"));
    assert!(cookies[1].starts_with("sRefreshToken=") && cookies[1].contains("Path=/auth/refresh"));
    assert!(cookies[2].starts_with("sIdRefreshToken=") && !cookies[2].contains("HttpOnly"));
    assert!(login.header("anti-csrf").is_some());
    let idr = login.header("id-refresh-token").unwrap();
    assert!(idr.contains(';'), "{idr}");
    assert_eq!(
        login.header("access-control-expose-headers").unwrap(),
        "id-refresh-token, anti-csrf, st-access-token, st-refresh-token"
    );
    assert!(
        login.header("sessiongate-create").is_none(),
        "control header must not leak"
    );

    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").unwrap(), "alice");
    assert_eq!(
        r.upstream_header("x-jwt-payload").unwrap(),
        r#"{"role":"member"}"#
    );
    assert!(r.upstream_header("x-session-handle").is_some());

    // POST needs the anti-CSRF header (non_get default).
    let token = b.jar.anti_csrf.take();
    let r = b.post("/api/write").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "try_refresh_token");
    b.jar.anti_csrf = token;
    assert_eq!(b.post("/api/write").await.status, 200);

    // Access token expires (validity 60 s): try refresh, cookies untouched.
    clock.advance(Duration::from_secs(61));
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    assert!(r.set_cookies().is_empty());

    let r = b.refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.set_cookies().len(), 3);
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-user-id").unwrap(), "alice");

    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("id-refresh-token").unwrap(), "remove");
    assert!(r.set_cookies().iter().all(|c| c.contains("Max-Age=0")));
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_sqlite() {
    let db = db::TestSqlite::new();
    full_flow(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_mysql() {
    let db = db::TestMysql::new();
    full_flow(&db.url()).await;
}

/// An old refresh token replayed after the grace window is theft: the session is revoked,
/// cookies cleared, the metric counted.
async fn theft(store_url: &str) {
    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_gateway(test_config(store_url, &up.url(), ""), clock.clone()).await;
    let mut victim = Browser::new(gw.public_addr);
    victim.login("victim").await;
    let stolen = victim.clone();
    assert_eq!(victim.refresh().await.status, 200);
    // Grace window is 10 s in the test config.
    clock.advance(Duration::from_secs(11));
    let mut thief = stolen;
    let r = thief.refresh().await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "token_theft_detected"})
    );
    assert_eq!(r.header("id-refresh-token").unwrap(), "remove");
    assert_eq!(r.set_cookies().len(), 3);
    // The victim's current token no longer works either: the session is gone.
    let r = victim.refresh().await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    let m = &gw.state.metrics;
    assert_eq!(m.refresh_total.with_label_values(&["theft"]).get(), 1);
    assert_eq!(m.token_theft_total.get(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theft_sqlite() {
    let db = db::TestSqlite::new();
    theft(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theft_mysql() {
    let db = db::TestMysql::new();
    theft(&db.url()).await;
}

/// 20 concurrent refreshes with one token all succeed with identical cookies.
async fn concurrent_refreshes(store_url: &str) {
    let up = TestUpstream::start().await;
    let gw = start_gateway(test_config(store_url, &up.url(), ""), Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("tabs").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mut tab = b.clone();
            tokio::spawn(async move { tab.refresh().await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        // Max-Age counts from the moment of each answer, so it may differ by a second;
        // values, paths and Expires must not.
        let without_max_age: Vec<String> = r
            .set_cookies()
            .iter()
            .map(|c| {
                c.split("; ")
                    .filter(|a| !a.starts_with("Max-Age="))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .collect();
        answers.push((
            without_max_age,
            r.header("anti-csrf"),
            r.header("id-refresh-token"),
            r.set_cookies(),
        ));
    }
    assert!(
        answers
            .windows(2)
            .all(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1 && w[0].2 == w[1].2),
        "all tabs got the same tokens"
    );
    let mut tab = b.clone();
    tab.absorb(&support::Resp {
        status: StatusCode::OK,
        headers: {
            let mut h = http::HeaderMap::new();
            for c in &answers[0].3 {
                h.append("set-cookie", c.parse().unwrap());
            }
            h
        },
        body: Default::default(),
    });
    assert_eq!(tab.get("/api/x").await.status, 200);
    let m = &gw.state.metrics;
    assert_eq!(m.refresh_total.with_label_values(&["rotated"]).get(), 1);
    assert_eq!(
        m.refresh_total.with_label_values(&["grace_replay"]).get(),
        19
    );
    assert_eq!(m.refresh_total.with_label_values(&["theft"]).get(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_sqlite() {
    let db = db::TestSqlite::new();
    concurrent_refreshes(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_mysql() {
    let db = db::TestMysql::new();
    concurrent_refreshes(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_refresh_token_for_a_real_handle_revokes_nothing() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    let real = b.jar.cookies["sRefreshToken"].clone();
    // Same handle and generation, garbage secret and MAC: the layout of a real token.
    use base64::Engine;
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&real)
        .unwrap();
    for byte in raw.iter_mut().skip(25) {
        *byte ^= 0x5a;
    }
    let mut forger = b.clone();
    forger.jar.cookies.insert(
        "sRefreshToken".into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
    );
    // Refused by its MAC before any store access.
    let admin = AdminClient::new(gw.admin_addr);
    let (before, _) = request_driven_store_queries(&admin).await;
    let r = forger.refresh().await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    let (after, _) = request_driven_store_queries(&admin).await;
    assert_eq!(
        after, before,
        "a forged refresh token must not reach the store"
    );
    // The real session is untouched and still refreshes.
    assert_eq!(b.refresh().await.status, 200);
    assert_eq!(b.get("/api/x").await.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    // Public route: spoofed headers are removed, not forwarded.
    let r = b
        .send(
            Method::GET,
            "/public/x",
            &[
                ("x-user-id", "admin"),
                ("X-Session-Handle", "h"),
                ("sessiongate-create", "{}"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-user-id"), None);
    assert_eq!(r.upstream_header("x-session-handle"), None);
    assert_eq!(r.upstream_header("sessiongate-create"), None);
    // Underscore variant: refused.
    let r = b
        .send(Method::GET, "/public/x", &[("X_User_Id", "admin")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");
    // Authenticated: the gateway's value wins, and Connection cannot drop it.
    b.login("alice").await;
    let r = b
        .send(
            Method::GET,
            "/api/x",
            &[
                ("x-user-id", "admin"),
                ("connection", "x-user-id, x-jwt-payload"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-user-id").unwrap(), "alice");
    assert!(r.upstream_header("x-jwt-payload").is_some());
    // The refresh token is never forwarded.
    let r = b
        .send(Method::GET, "/api/x", &[("cookie", "sRefreshToken=stolen")])
        .await;
    let cookies = r.json()["headers"]["cookie"].to_string();
    assert!(!cookies.contains("sRefreshToken"), "{cookies}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_access_tokens_are_refused() {
    use base64::Engine;
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    let at = b.jar.cookies["sAccessToken"].clone();
    let parts: Vec<&str> = at.split('.').collect();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["sub"] = "admin".into();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap();
    let cases = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(serde_json::json!({"alg": "none", "kid": kid})),
                b64(claims.clone())
            ),
        ),
        (
            "tampered claims",
            format!("{}.{}.{}", parts[0], b64(claims.clone()), parts[2]),
        ),
        (
            "unknown kid",
            format!(
                "{}.{}.{}",
                b64(serde_json::json!({"alg": "HS256", "kid": "k999"})),
                parts[1],
                parts[2]
            ),
        ),
        ("garbage", "x.y.z".to_string()),
    ];
    for (name, token) in cases {
        let mut evil = b.clone();
        evil.jar.cookies.insert("sAccessToken".into(), token);
        let r = evil.get("/api/x").await;
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(r.json()["error"], "try_refresh_token", "{name}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    // Dot segments resolve before matching: this is the protected /api route.
    let r = b.get("/public/../api/secret").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = b.get("/public/%2e%2e/api/secret").await;
    assert_eq!(r.status, 401);
    for bad in ["/public/..%2fapi", "/public/%5c..", "/public/%00"] {
        let r = b.get(bad).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    // The normalised path is what is forwarded.
    let r = b.get("/public//a/./b/../c").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/public/a/c");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_and_slow_is_504() {
    let db = db::TestSqlite::new();
    let dead = free_port();
    let gw = start_gateway(
        test_config(&db.url(), &format!("http://127.0.0.1:{dead}"), ""),
        Clock::system(),
    )
    .await;
    let mut b = Browser::new(gw.public_addr);
    let r = b.get("/public/x").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    gw.stop().await;

    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    let started = std::time::Instant::now();
    // upstream_timeout_secs = 2 in the test config.
    let r = b.get("/public/slow?ms=5000").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "gateway_timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_streaming_response_finish() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    let req = tokio::spawn(async move { b.get("/public/stream?chunks=6&ms=200").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = gw.public_addr;
    let stopping = tokio::spawn(gw.stop());
    let r = req.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;chunk5;");
    stopping.await.unwrap();
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_to_http1_upstream() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{}/public/h2", gw.public_addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["path"], "/public/h2");
    assert_eq!(v["headers"]["host"][0], gw.public_addr.to_string());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_control_from_upstream() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    // Malformed control header: 502 and nothing created.
    let r = b.get("/bad-control").await;
    assert_eq!(r.status, 401, "required route without session");
    b.login("alice").await;
    let before = gw.state.metrics.sessions_created_total.get();
    let r = b.get("/bad-control").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_session_control");
    assert!(r.set_cookies().is_empty());
    assert_eq!(gw.state.metrics.sessions_created_total.get(), before);
    // Update payload: a new access token carrying it.
    let r = b.get("/update?role=admin").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.set_cookies().len(), 1);
    let r = b.get("/api/x").await;
    assert_eq!(
        r.upstream_header("x-jwt-payload").unwrap(),
        r#"{"role":"admin"}"#
    );
    // Control headers on a route without session_control are stripped and ignored.
    let r = b.get("/public/login?user=mallory").await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty());
    assert!(r.header("sessiongate-create").is_none());
    // Revoke all of the user's sessions.
    let mut other_tab = Browser::new(gw.public_addr);
    other_tab.login("alice").await;
    let r = b.get("/logout-all").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("id-refresh-token").unwrap(), "remove");
    assert_eq!(other_tab.refresh().await.status, 401);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_navigation_pages() {
    let (_up, _db, gw, clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    let nav = [("accept", "text/html,application/xhtml+xml")];
    // No session + login_redirect: 302 with a relative next.
    let r = b.send(Method::GET, "/app/page?x=1", &nav).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        "/auth/login-page?next=%2Fapp%2Fpage%3Fx%3D1"
    );
    // Expired access token: the refresh-and-reload page.
    b.login("alice").await;
    clock.advance(Duration::from_secs(61));
    let r = b.send(Method::GET, "/app/page", &nav).await;
    assert_eq!(r.status, 401);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("/auth/refresh") && r.text().contains("location.reload"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_endpoint_rules() {
    let (_up, _db, gw, _clock) =
        setup_sqlite("cors.allowed_origins = [\"https://app.example\"]").await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    assert_eq!(b.send(Method::GET, "/auth/refresh", &[]).await.status, 405);
    // Cross-site form POST: refused, cookies untouched.
    let r = b
        .send(
            Method::POST,
            "/auth/refresh",
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookies().is_empty());
    let r = b
        .send(
            Method::POST,
            "/auth/refresh",
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Own origin and allowed origins pass.
    let own = format!("http://{}", gw.public_addr);
    assert_eq!(
        b.send(Method::POST, "/auth/refresh", &[("origin", &own)])
            .await
            .status,
        200
    );
    let r = b
        .send(
            Method::POST,
            "/auth/refresh",
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").unwrap(),
        "https://app.example"
    );
    assert_eq!(
        r.header("access-control-allow-credentials").unwrap(),
        "true"
    );
    // Preflight.
    let r = b
        .send(
            Method::OPTIONS,
            "/api/x",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin").unwrap(),
        "https://app.example"
    );
    let allowed = r.header("access-control-allow-headers").unwrap();
    for h in [
        "anti-csrf",
        "supertokens-sdk-name",
        "supertokens-sdk-version",
        "content-type",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // No cookies at all: unauthorised and cleared.
    let mut fresh = Browser::new(gw.public_addr);
    let r = fresh.refresh().await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let mut b = Browser::new(gw.public_addr);
    let big = "x".repeat(80 * 1024);
    let r = b.send(Method::GET, "/public/x", &[("x-big", &big)]).await;
    assert_eq!(r.status, 431);
    gw.stop().await;
}

/// Store operations that only background jobs perform (src/jobs.rs), so they may tick at any
/// moment: the key rotation check (`KeyCache::rotate_if_due`: `keys`, `insert_key`,
/// `delete_access_keys`), the revocation feed poll (`Blacklist::catch_up`:
/// `revocations_since`), the store probe (`ping`) and the purge (`job_lock`, `purge_expired`).
const JOB_STORE_OPERATIONS: &[&str] = &[
    "keys",
    "insert_key",
    "delete_access_keys",
    "revocations_since",
    "ping",
    "job_lock",
    "purge_expired",
];

/// The sum of every `sessiongate_store_queries_total` series on `/metrics` except the
/// [`JOB_STORE_OPERATIONS`], and how many series were summed.
async fn request_driven_store_queries(admin: &AdminClient) -> (u64, usize) {
    let text = admin.raw(Method::GET, "/metrics", None, "").await.text();
    let mut series = 0;
    let mut sum = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sessiongate_store_queries_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample line");
        let op = labels
            .split(',')
            .find_map(|l| l.strip_prefix("op=\""))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no op label: {line}"));
        if !JOB_STORE_OPERATIONS.contains(&op) {
            series += 1;
            sum += value.parse::<u64>().expect("an integer count");
        }
    }
    (sum, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_cost_no_store_query() {
    let (_up, _db, gw, _clock) = setup_sqlite("").await;
    let admin = AdminClient::new(gw.admin_addr);
    let mut b = Browser::new(gw.public_addr);
    let (at_start, _) = request_driven_store_queries(&admin).await;
    b.login("alice").await;
    // The count sees request-driven operations at all: logging in creates a session.
    let (before, series) = request_driven_store_queries(&admin).await;
    assert!(
        before > at_start && series > 0,
        "login was not counted: {at_start} then {before} over {series} series"
    );
    for _ in 0..50 {
        assert_eq!(b.get("/api/x").await.status, 200);
    }
    let (after, _) = request_driven_store_queries(&admin).await;
    assert_eq!(
        after, before,
        "authenticated requests must not query the store"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklisting_refuses_revoked_sessions() {
    let (_up, _db, gw, _clock) = setup_sqlite("tokens.access_token.blacklisting = true").await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    let handle = b
        .get("/api/x")
        .await
        .upstream_header("x-session-handle")
        .unwrap();
    // Revoke through the admin API: immediate on this instance.
    let r = AdminClient::new(gw.admin_addr)
        .call(Method::DELETE, &format!("/v1/sessions/{handle}"), None)
        .await;
    assert_eq!(r.status, 200);
    let r = b.get("/api/x").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    gw.stop().await;
}
