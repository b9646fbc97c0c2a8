//! The admin listener over real sockets (SPEC §9): probes, metrics, and the `/v1` session API
//! against an in-process gateway on SQLite with the harness upstream.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use sessiongate::clock::Clock;

use crate::support::client::AdminClient;
use crate::support::config::ADMIN_KEY;
use crate::support::db;
use crate::support::{start_gateway, test_config, Browser, Resp, TestUpstream};

const KEY: &str = ADMIN_KEY;

/// Asserts an admin error: the status and a JSON body with exactly `error` and `message`.
fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{}",
        r.text()
    );
    let v = r.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), 2, "exactly error and message: {v}");
    assert_eq!(v["error"], code, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), Clock::system()).await;
    let admin = AdminClient::new(gw.admin_addr);

    let r = admin.raw(Method::GET, "/healthz", None, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin.raw(Method::GET, "/readyz", None, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ready");

    // Something to count, then the scrape.
    let mut b = Browser::new(gw.public_addr);
    assert_eq!(b.get("/public/x").await.status, 200);
    let r = admin.raw(Method::GET, "/metrics", None, "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    assert!(
        text.contains("sessiongate_requests_total{code=\"200\",route=\"public\"} 1"),
        "{text}"
    );
    for series in [
        "# TYPE sessiongate_request_duration_seconds histogram",
        "sessiongate_store_queries_total{",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }

    // `/readyz` queries nothing: ten probes leave `store_queries_total` alone. (A job may
    // query the store in the same moment, so up to three tries; a probe that queried would
    // fail every one.)
    let mut deltas = Vec::new();
    for _ in 0..3 {
        let before = all_store_queries(&admin).await;
        for _ in 0..10 {
            assert_eq!(
                admin.raw(Method::GET, "/readyz", None, "").await.status,
                200
            );
        }
        deltas.push(all_store_queries(&admin).await - before);
        if deltas.last() == Some(&0) {
            break;
        }
    }
    assert_eq!(
        deltas.last(),
        Some(&0),
        "/readyz queried the store: {deltas:?}"
    );

    let r = admin.raw(Method::GET, "/nope", None, "").await;
    assert_error(&r, 404, "not_found");

    gw.stop().await;
}

/// The sum of every `sessiongate_store_queries_total` series on `/metrics`.
async fn all_store_queries(admin: &AdminClient) -> u64 {
    let text = admin.raw(Method::GET, "/metrics", None, "").await.text();
    text.lines()
        .filter(|l| l.starts_with("sessiongate_store_queries_total{"))
        .map(|l| {
            l.rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a sample line: {l}"))
        })
        .sum()
}

/// An upstream that holds every request until released, and reports each arrival.
async fn holding_upstream() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    std::sync::Arc<tokio::sync::Notify>,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let rel = release.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (tx, rel) = (arrived_tx.clone(), rel.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let (tx, rel) = (tx.clone(), rel.clone());
                    async move {
                        let released = rel.notified();
                        let _ = tx.send(());
                        released.await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"held"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), arrived_rx, release)
}

/// While the public listener drains an in-flight request, the admin listener is still up:
/// `/readyz` answers 503 (draining) and `/healthz` 200. Then the request completes and the
/// gateway stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_draining() {
    let (upstream, mut arrived, release) = holding_upstream().await;
    let db = db::TestSqlite::new();
    let gw = start_gateway(test_config(&db.url(), &upstream, ""), Clock::system()).await;
    let admin = AdminClient::new(gw.admin_addr);
    assert_eq!(
        admin.raw(Method::GET, "/readyz", None, "").await.status,
        200
    );

    let mut b = Browser::new(gw.public_addr);
    let in_flight = tokio::spawn(async move { b.get("/public/held").await });
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("the request reaches the upstream")
        .unwrap();
    gw.shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let r = admin.raw(Method::GET, "/readyz", None, "").await;
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status.status, 503, "{}", status.text());
    let v = status.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{v}");
    assert_eq!(v["error"], "not_ready", "{v}");
    assert!(v["message"].as_str().unwrap().contains("draining"), "{v}");
    assert_eq!(v["store"], "up", "{v}");
    assert_eq!(
        admin.raw(Method::GET, "/healthz", None, "").await.status,
        200,
        "liveness is unaffected by draining"
    );
    // The public listener no longer accepts new connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(gw.public_addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "public listener still accepting 5 s after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    release.notify_waiters();
    let done = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request completes")
        .unwrap();
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.text(), "held");
    tokio::time::timeout(Duration::from_secs(10), gw.wait())
        .await
        .expect("gateway stops after the drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_without_a_key_is_forbidden() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let mut cfg = test_config(&db.url(), &up.url(), "");
    cfg.admin.api_key = None;
    let gw = start_gateway(cfg, Clock::system()).await;
    let admin = AdminClient::new(gw.admin_addr);
    for (m, p) in [
        (Method::GET, "/v1/users/alice/sessions"),
        (Method::POST, "/v1/keys/rotate"),
    ] {
        let r = admin.raw(m.clone(), p, Some(KEY), "").await;
        assert_error(&r, 403, "forbidden");
        let r = admin.raw(m, p, None, "").await;
        assert_error(&r, 403, "forbidden");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_session_api() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let clock = Clock::system();
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), clock.clone()).await;
    let admin = AdminClient::new(gw.admin_addr);

    // Authentication.
    let r = admin
        .raw(Method::GET, "/v1/users/bob/sessions", None, "")
        .await;
    assert_error(&r, 401, "unauthorized");
    let r = admin
        .raw(Method::GET, "/v1/users/bob/sessions", Some("wrong-key"), "")
        .await;
    assert_error(&r, 401, "unauthorized");
    let r = admin
        .raw(
            Method::GET,
            "/v1/users/bob/sessions",
            Some(&format!("{KEY}x")),
            "",
        )
        .await;
    assert_error(&r, 401, "unauthorized");

    // Create.
    let r = admin
        .create(serde_json::json!({
            "user_id": "bob",
            "jwt_payload": {"role": "member"},
            "session_data": {"note": "api"}
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let handle = created["handle"].as_str().unwrap().to_string();
    for k in [
        "access_token",
        "refresh_token",
        "id_refresh_token",
        "anti_csrf",
    ] {
        assert!(
            created[k].as_str().is_some_and(|v| !v.is_empty()),
            "{k}: {created}"
        );
    }
    assert!(created["access_token_expires_at"].as_i64().unwrap() > clock.now_ms());
    assert!(
        created["session_expires_at"].as_i64().unwrap()
            > created["access_token_expires_at"].as_i64().unwrap()
    );

    // The returned tokens work on the gateway as cookies.
    let mut b = Browser::new(gw.public_addr);
    b.jar.cookies.insert(
        "sAccessToken".into(),
        created["access_token"].as_str().unwrap().into(),
    );
    b.jar.cookies.insert(
        "sIdRefreshToken".into(),
        created["id_refresh_token"].as_str().unwrap().into(),
    );
    b.jar.cookies.insert(
        "sRefreshToken".into(),
        created["refresh_token"].as_str().unwrap().into(),
    );
    b.jar.anti_csrf = created["anti_csrf"].as_str().map(str::to_string);
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").unwrap(), "bob");
    assert_eq!(r.upstream_header("x-session-handle").unwrap(), handle);
    assert_eq!(
        r.upstream_header("x-jwt-payload").unwrap(),
        r#"{"role":"member"}"#
    );

    // Read.
    let r = admin
        .call(Method::GET, &format!("/v1/sessions/{handle}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["user_id"], "bob");
    assert_eq!(v["jwt_payload"], serde_json::json!({"role": "member"}));
    assert_eq!(v["session_data"], serde_json::json!({"note": "api"}));
    assert_eq!(v["expires_at"], created["session_expires_at"]);
    assert!(v["created_at"].as_i64().unwrap() <= clock.now_ms());

    // Session data.
    let r = admin
        .call(
            Method::PUT,
            &format!("/v1/sessions/{handle}/data"),
            Some(serde_json::json!({"cart": [1, 2]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .call(Method::GET, &format!("/v1/sessions/{handle}"), None)
        .await;
    assert_eq!(
        r.json()["session_data"],
        serde_json::json!({"cart": [1, 2]})
    );

    // JWT payload: stored now, visible upstream after the next refresh.
    let r = admin
        .call(
            Method::PUT,
            &format!("/v1/sessions/{handle}/jwt-payload"),
            Some(serde_json::json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .call(
            Method::PUT,
            &format!("/v1/sessions/{handle}/jwt-payload"),
            Some(serde_json::json!(["not", "an", "object"])),
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let r = b.get("/api/me").await;
    assert_eq!(
        r.upstream_header("x-jwt-payload").unwrap(),
        r#"{"role":"member"}"#,
        "the current access token still carries the old payload"
    );
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-jwt-payload").unwrap(),
        r#"{"role":"admin"}"#
    );

    // A second session for bob, one for carol.
    let mk = |user: &'static str| {
        let admin = &admin;
        async move {
            let r = admin.create(serde_json::json!({ "user_id": user })).await;
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["handle"].as_str().unwrap().to_string()
        }
    };
    let second = mk("bob").await;
    let carol = mk("carol").await;
    let r = admin
        .call(Method::GET, "/v1/users/bob/sessions", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut listed: Vec<String> = serde_json::from_value(r.json()["sessions"].clone()).unwrap();
    listed.sort();
    let mut want = vec![handle.clone(), second.clone()];
    want.sort();
    assert_eq!(listed, want);

    // Delete one.
    let r = admin
        .call(Method::DELETE, &format!("/v1/sessions/{second}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .call(Method::GET, &format!("/v1/sessions/{second}"), None)
        .await;
    assert_error(&r, 404, "not_found");
    let r = admin
        .call(Method::DELETE, &format!("/v1/sessions/{second}"), None)
        .await;
    assert_error(&r, 404, "not_found");
    let r = admin
        .call(Method::GET, "/v1/users/bob/sessions", None)
        .await;
    assert_eq!(r.json()["sessions"], serde_json::json!([handle.clone()]));

    // Key rotation: a new kid; tokens signed before keep working.
    let before = b.clone();
    let r = admin.call(Method::POST, "/v1/keys/rotate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let kid = r.json()["kid"].as_str().unwrap().to_string();
    let r = admin.call(Method::POST, "/v1/keys/rotate", None).await;
    let kid2 = r.json()["kid"].as_str().unwrap().to_string();
    assert_ne!(kid, kid2, "each rotation makes a new key");
    let mut old = before.clone();
    let r = old.get("/api/me").await;
    assert_eq!(r.status, 200, "old token after rotation: {}", r.text());
    let jwks = admin
        .raw(Method::GET, "/.well-known/jwks.json", None, "")
        .await;
    assert_eq!(jwks.status, 200);
    let r = mk("dave").await;
    assert!(!r.is_empty());

    // Delete all of bob's: the count.
    let third = mk("bob").await;
    let r = admin
        .call(Method::DELETE, "/v1/users/bob/sessions", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revoked"], 2, "{}", r.text());
    for h in [&handle, &third] {
        let r = admin
            .call(Method::GET, &format!("/v1/sessions/{h}"), None)
            .await;
        assert_error(&r, 404, "not_found");
    }
    let r = admin
        .call(Method::GET, "/v1/users/bob/sessions", None)
        .await;
    assert_eq!(r.json()["sessions"], serde_json::json!([]));
    let r = admin
        .call(Method::DELETE, "/v1/users/bob/sessions", None)
        .await;
    assert_eq!(r.json()["revoked"], 0, "{}", r.text());
    // Carol is untouched.
    let r = admin
        .call(Method::GET, &format!("/v1/sessions/{carol}"), None)
        .await;
    assert_eq!(r.status, 200);
    // Bob's revoked session can no longer refresh.
    let r = b.refresh().await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Unknown handles.
    for (m, p, body) in [
        (Method::GET, "/v1/sessions/nosuchhandle", None),
        (Method::DELETE, "/v1/sessions/nosuchhandle", None),
        (
            Method::PUT,
            "/v1/sessions/nosuchhandle/data",
            Some(serde_json::json!({})),
        ),
        (
            Method::PUT,
            "/v1/sessions/nosuchhandle/jwt-payload",
            Some(serde_json::json!({})),
        ),
    ] {
        let r = admin.call(m, p, body).await;
        assert_error(&r, 404, "not_found");
    }
    let r = admin.call(Method::GET, "/v1/nothing-here", None).await;
    assert_error(&r, 404, "not_found");

    // Oversized and malformed bodies.
    let big = format!(
        r#"{{"user_id":"eve","session_data":{{"pad":"{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    let r = admin
        .raw(Method::POST, "/v1/sessions", Some(KEY), big)
        .await;
    assert_error(&r, 413, "payload_too_large");
    let r = admin
        .raw(Method::POST, "/v1/sessions", Some(KEY), "{not json")
        .await;
    assert_error(&r, 400, "bad_request");
    let r = admin
        .raw(
            Method::PUT,
            &format!("/v1/sessions/{carol}/data"),
            Some(KEY),
            "[1,",
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let r = admin
        .raw(Method::POST, "/v1/sessions", Some(KEY), r#"{"user_id":""}"#)
        .await;
    assert_error(&r, 400, "bad_request");
    let r = admin
        .raw(Method::POST, "/v1/sessions", Some(KEY), r#"{"nope":1}"#)
        .await;
    assert_error(&r, 400, "bad_request");
    // Nothing was created by the refused requests.
    let r = admin
        .call(Method::GET, "/v1/users/eve/sessions", None)
        .await;
    assert_eq!(r.json()["sessions"], serde_json::json!([]));

    // Purge on demand (nothing expired yet).
    let r = admin.call(Method::POST, "/v1/jobs/purge", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"deleted": 0, "skipped": false})
    );
    gw.stop().await;
}

/// The admin API refuses the identity values the gateway refuses (issue 8 item 8): user ids
/// with edge whitespace or control characters, and JWT payloads whose `sAccessToken` cookie
/// would exceed 4096 bytes, at creation and at `PUT …/jwt-payload` (400, nothing changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_refuses_bad_identity_values() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let clock = Clock::system();
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), clock).await;
    let admin = AdminClient::new(gw.admin_addr);
    for user in [
        " alice",
        "alice ",
        "\talice",
        "alice\n",
        "al\u{1}ice",
        "a\u{7f}",
    ] {
        let r = admin.create(serde_json::json!({ "user_id": user })).await;
        assert_error(&r, 400, "bad_request");
        assert!(r.json()["message"].as_str().unwrap().contains("user_id"));
    }
    let r = admin
        .call(Method::GET, "/v1/users/alice/sessions", None)
        .await;
    assert_eq!(r.json()["sessions"], serde_json::json!([]));

    let big = serde_json::json!({ "pad": "x".repeat(3000) });
    let r = admin
        .create(serde_json::json!({ "user_id": "alice", "jwt_payload": big }))
        .await;
    assert_error(&r, 400, "bad_request");
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("4096") && msg.contains("bytes"), "{msg}");

    let r = admin
        .create(serde_json::json!({ "user_id": "alice", "jwt_payload": {"role": "member"} }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let handle = r.json()["handle"].as_str().unwrap().to_string();
    let path = format!("/v1/sessions/{handle}/jwt-payload");
    let r = admin.call(Method::PUT, &path, Some(big)).await;
    assert_error(&r, 400, "bad_request");
    assert!(r.json()["message"].as_str().unwrap().contains("4096"));
    let r = admin
        .call(Method::GET, &format!("/v1/sessions/{handle}"), None)
        .await;
    assert_eq!(
        r.json()["jwt_payload"],
        serde_json::json!({"role": "member"})
    );
    let fits = serde_json::json!({ "pad": "x".repeat(2000) });
    let r = admin.call(Method::PUT, &path, Some(fits)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.stop().await;
}
