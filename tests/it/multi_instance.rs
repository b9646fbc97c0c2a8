//! Two real `sessiongate serve` processes on one MariaDB database (blacklisting on), in front
//! of the harness upstream: cross-instance refresh, key rotation without refusals, revocation
//! propagation within 1 s, concurrent purges, and SIGTERM exits; plus a SIGTERM drain of a
//! streaming response.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support;
use crate::support::client::AdminClient;
use crate::support::process::{jwt_kid, Gateway};
use crate::support::{db, process};
use crate::support::{Browser, TestUpstream};

/// The same browser pointed at another instance.
fn at(b: &Browser, gw: &Gateway) -> Browser {
    let mut c = b.clone();
    c.base = gw.public.clone();
    c
}

async fn assert_ok(b: &mut Browser, what: &str) -> support::Resp {
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200, "{what} ({}): {}", b.base, r.text());
    r
}

async fn purged(admin: &AdminClient) -> u64 {
    let text = admin.try_get("/metrics").await.unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix("sessiongate_purged_sessions_total "))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .unwrap_or(0)
}

fn count(db: &db::TestMysql, sql: &str) -> u64 {
    db.query(sql)[0][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_mysql_database() {
    let db = db::TestMysql::new();
    let up = TestUpstream::start().await;
    let extra = "tokens.access_token.blacklisting = true";
    let mut a = Gateway::spawn(&db.url(), &up.url(), extra);
    let mut b = Gateway::spawn(&db.url(), &up.url(), extra);
    a.wait_ready().await;
    b.wait_ready().await;
    let (admin_a, admin_b) = (
        AdminClient::new(a.admin_addr),
        AdminClient::new(b.admin_addr),
    );

    // 1. Created through A, refreshed through B, valid on both.
    let mut alice_a = Browser::new(a.public_addr);
    alice_a.login("alice").await;
    let first = assert_ok(&mut alice_a, "fresh session on A").await;
    let alice_handle = first.upstream_header("x-session-handle").unwrap();
    // B's admin API sees the session A created.
    let r = admin_b
        .call(Method::GET, "/v1/users/alice/sessions", None)
        .await;
    assert_eq!(r.json()["sessions"], serde_json::json!([alice_handle]));
    let mut alice_b = at(&alice_a, &b);
    let r = alice_b.refresh().await;
    assert_eq!(r.status, 200, "refresh through B: {}", r.text());
    assert_ne!(
        alice_b.jar.cookies["sAccessToken"],
        alice_a.jar.cookies["sAccessToken"]
    );
    assert_ok(&mut alice_b, "B's refreshed token on B").await;
    let mut alice_back_on_a = at(&alice_b, &a);
    assert_ok(&mut alice_back_on_a, "B's refreshed token on A").await;
    // The old refresh token replayed on A within the grace window gets the same answer.
    let r = alice_a.refresh().await;
    assert_eq!(r.status, 200, "grace replay on A: {}", r.text());
    assert_eq!(
        alice_a.jar.cookies["sAccessToken"],
        alice_b.jar.cookies["sAccessToken"]
    );

    // 2. Rotation through A's admin API: new tokens from A verify on B; old ones on both.
    let old_kid = jwt_kid(&alice_b.jar.cookies["sAccessToken"]);
    let r = admin_a.call(Method::POST, "/v1/keys/rotate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let kid2 = r.json()["kid"].as_str().unwrap().to_string();
    assert_ne!(kid2, old_kid);
    let mut bob_a = Browser::new(a.public_addr);
    bob_a.login("bob").await;
    assert_eq!(
        jwt_kid(&bob_a.jar.cookies["sAccessToken"]),
        kid2,
        "A signs with the new key"
    );
    let mut bob_b = at(&bob_a, &b);
    assert_ok(&mut bob_b, "A's new-key token on B").await;
    for gw in [&a, &b] {
        let mut old = at(&alice_b, gw);
        assert_ok(&mut old, "old-key token after rotation").await;
    }

    // ...and through the CLI, while both instances run.
    let (code, out, err) = process::run_with_config(&["keys", "rotate"], &a.config);
    assert_eq!(code, 0, "keys rotate: {out}{err}");
    let kid3 = out
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!kid3.is_empty() && kid3 != kid2, "{out}");
    for gw in [&a, &b] {
        let mut old = at(&alice_b, gw);
        assert_ok(&mut old, "old-key token after the CLI rotation").await;
        let mut bob = at(&bob_a, gw);
        assert_ok(&mut bob, "kid2 token after the CLI rotation").await;
    }
    // A refresh through B after the CLI rotation still works, and its token verifies on A.
    let r = alice_b.refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut on_a = at(&alice_b, &a);
    assert_ok(
        &mut on_a,
        "token refreshed on B after the CLI rotation, on A",
    )
    .await;
    let keys = count(
        &db,
        "SELECT COUNT(*) FROM signing_key WHERE purpose = 'access'",
    );
    assert!(keys >= 3, "initial + API + CLI keys, got {keys}");

    // 3. Revocation through A's admin API reaches B within 1 s.
    let bob_handle = assert_ok(&mut bob_b, "bob on B")
        .await
        .upstream_header("x-session-handle")
        .unwrap();
    let r = admin_a
        .call(Method::DELETE, &format!("/v1/sessions/{bob_handle}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked_at = Instant::now();
    let r = bob_a.get("/api/me").await;
    assert_eq!(r.status, 401, "immediate on A: {}", r.text());
    assert_eq!(r.json()["error"], "unauthorised");
    let waited = loop {
        let mut probe = at(&bob_b, &b);
        let r = probe.get("/api/me").await;
        if r.status == 401 {
            assert_eq!(r.json()["error"], "unauthorised", "{}", r.text());
            break revoked_at.elapsed();
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts a session revoked on A after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("revocation on A refused by B after {waited:?}");
    // Alice, on the other hand, is untouched.
    assert_ok(&mut at(&alice_b, &b), "alice after bob's revocation").await;

    // 4. Concurrent purges on both instances: each expired row deleted once, no live row.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    const EXPIRED: u64 = 2500; // more than two purge batches of 1000
    const LIVE_EXTRA: u64 = 7;
    let mut values = Vec::new();
    for i in 0..(EXPIRED + LIVE_EXTRA) {
        let expires = if i < EXPIRED {
            now_ms - 1_000 - i as i64
        } else {
            now_ms + 3_600_000
        };
        values.push(format!(
            "('purge-test-{i}', 'purge-user-{}', 0, UNHEX(SHA2('h{i}', 256)), NULL, {now}, '{{}}', '{{}}', {now}, {expires})",
            i % 13,
            now = now_ms - 10_000
        ));
    }
    for chunk in values.chunks(500) {
        db.query(&format!(
            "INSERT INTO refresh_token (session_handle, user_id, generation, current_hash, \
             previous_hash, rotated_at_ms, session_data, jwt_payload, created_at_ms, \
             expires_at_ms) VALUES {}",
            chunk.join(", ")
        ));
    }
    let live_before = count(
        &db,
        &format!("SELECT COUNT(*) FROM refresh_token WHERE expires_at_ms > {now_ms}"),
    );
    assert!(live_before > LIVE_EXTRA, "alice's session is live too");
    let (ra, rb) = tokio::join!(
        admin_a.call(Method::POST, "/v1/jobs/purge", None),
        admin_b.call(Method::POST, "/v1/jobs/purge", None),
    );
    assert_eq!(ra.status, 200, "{}", ra.text());
    assert_eq!(rb.status, 200, "{}", rb.text());
    let (da, db_) = (
        ra.json()["deleted"].as_u64().unwrap(),
        rb.json()["deleted"].as_u64().unwrap(),
    );
    println!("concurrent purge: A {} B {}", ra.json(), rb.json());
    assert_eq!(da + db_, EXPIRED, "A {} + B {}", ra.json(), rb.json());
    let now_after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM refresh_token WHERE expires_at_ms <= {now_ms}")
        ),
        0,
        "expired rows remain"
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM refresh_token WHERE expires_at_ms > {now_after}")
        ),
        live_before,
        "a live row was deleted"
    );
    // A second round finds nothing.
    let r = admin_b.call(Method::POST, "/v1/jobs/purge", None).await;
    assert_eq!(r.json()["deleted"], 0, "{}", r.text());
    // The purge metric adds up across the instances.
    assert_eq!(purged(&admin_a).await + purged(&admin_b).await, EXPIRED);
    assert_ok(&mut at(&alice_b, &a), "alice after the purge").await;

    // 5. SIGTERM: both exit 0 within the grace period.
    a.terminate_cleanly().await;
    b.terminate_cleanly().await;
    drop(up);
}

/// SIGTERM in the middle of a streamed response: the response completes, then the process
/// exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_streaming_response() {
    let up = TestUpstream::start().await;
    let sqlite = db::TestSqlite::new();
    let mut gw = Gateway::spawn(&sqlite.url(), &up.url(), "");
    gw.wait_ready().await;

    const CHUNKS: usize = 12;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!(
        "{}/public/stream?chunks={CHUNKS}&ms=150",
        gw.public
    ))
    .body(Empty::new())
    .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response headers in time")
        .expect("request");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    // Read the first chunk, then signal.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk in time")
        .expect("a frame")
        .expect("no error");
    received.extend_from_slice(first.data_ref().expect("data frame"));
    let signalled_at = Instant::now();
    gw.sigterm();

    // New connections are refused soon after (the listener is closed while draining).
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(gw.public_addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("next chunk in time")
    {
        let frame = frame.expect("the stream is not cut off");
        if let Some(d) = frame.data_ref() {
            received.extend_from_slice(d);
        }
    }
    let want: String = (0..CHUNKS).map(|i| format!("chunk{i};")).collect();
    assert_eq!(String::from_utf8_lossy(&received), want);
    assert!(
        signalled_at.elapsed() >= Duration::from_millis(150 * (CHUNKS as u64 - 2)),
        "the stream really was in flight when SIGTERM arrived"
    );
    let status = gw
        .wait_exit(Duration::from_secs(process::GRACE_SECS + 5))
        .await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", gw.log_text());
    assert!(
        gw.log_text().contains("draining"),
        "the log shows the drain:\n{}",
        gw.log_text()
    );
}

/// A response that outlives `shutdown_grace_secs` is cut when the grace period ends, and the
/// process still exits 0 (it does not wait for the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_grace_period_bounds_the_drain() {
    let up = TestUpstream::start().await;
    let sqlite = db::TestSqlite::new();
    let mut gw = Gateway::spawn_with_env(
        &sqlite.url(),
        &up.url(),
        "",
        &[("SESSIONGATE_SERVER__SHUTDOWN_GRACE_SECS", "1")],
    );
    gw.wait_ready().await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // 60 chunks 100 ms apart: 6 s, far beyond the 1 s grace.
    let req = Request::get(format!("{}/public/stream?chunks=60&ms=100", gw.public))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response headers in time")
        .expect("request");
    let mut body = resp.into_body();
    tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk in time")
        .expect("a frame")
        .expect("no error");
    let signalled_at = Instant::now();
    gw.sigterm();
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    let took = signalled_at.elapsed();
    assert_eq!(status.code(), Some(0), "{status}\n{}", gw.log_text());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exit {took:?} after SIGTERM with a 1 s grace"
    );
    // The stream was cut: it ends (or errors) before all 60 chunks arrived.
    let mut received = 0usize;
    while let Some(Ok(f)) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the cut stream ends promptly")
    {
        received += f.data_ref().map_or(0, |d| d.len());
    }
    assert!(received < 59 * "chunk59;".len(), "stream was not cut");
    assert!(
        gw.log_text().contains("grace period over"),
        "{}",
        gw.log_text()
    );
}
