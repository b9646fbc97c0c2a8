//! `[rate_limits]` through a real gateway: a burst on refresh and logout is cut with 429,
//! `Retry-After` and a JSON error, and counted per endpoint; the frontend SDK's normal
//! behaviour (a refresh per access-token expiry per tab) never trips the default buckets; the
//! bucket is the client's (after `trusted_proxies`), not the proxy's nor a spoofed
//! `X-Forwarded-For`; and an address-spraying client cannot grow the limiter's table past
//! `rate_limits.max_addresses`.

use std::time::Duration;

use http::{Method, Request};
use http_body_util::Full;
use sessiongate::clock::Clock;
use sessiongate::ratelimit::Endpoint;

use crate::support::client::Client;
use crate::support::db::TestSqlite;
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

/// `sessiongate_rate_limited_total{endpoint="…"}` as exported.
fn limited(gw: &sessiongate::app::Gateway, endpoint: &str) -> u64 {
    let text = gw.state.metrics.render();
    let prefix = format!("sessiongate_rate_limited_total{{endpoint=\"{endpoint}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A `POST` of the renew path with no cookies from `addr`, claiming `forwarded_for`.
async fn refresh_from(addr: std::net::SocketAddr, forwarded_for: Option<&str>) -> u16 {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/auth/refresh"));
    if let Some(xff) = forwarded_for {
        b = b.header("x-forwarded-for", xff);
    }
    Client::new()
        .send(b.body(Full::default()).unwrap())
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_cut_with_429_retry_after_and_counted() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let cfg = test_config(
        &db.url(),
        &up.url(),
        "rate_limits.enabled = true\n\
         rate_limits.refresh = { per_minute = 6, burst = 3 }\n\
         rate_limits.logout = { per_minute = 1, burst = 1 }",
    );
    let gw = start_gateway(cfg, Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("burst-user").await;
    for i in 0..3 {
        assert_eq!(
            b.refresh().await.status,
            200,
            "refresh {i} is within the burst"
        );
    }
    let cut = b.refresh().await;
    assert_eq!(cut.status, 429, "{}", cut.text());
    assert_eq!(cut.json()["error"], "rate_limited");
    let retry: u64 = cut.header("retry-after").unwrap().parse().unwrap();
    // One token every 10 s: the next one is at most 10 s away.
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert!(
        cut.header("x-request-id").is_some(),
        "a 429 leaves through finish"
    );
    // The refused refresh rotated nothing: the session still works.
    assert_eq!(b.get("/api/still-in").await.status, 200);
    assert_eq!(limited(&gw, "refresh"), 1);
    println!(
        "burst cut: {} retry-after: {retry} body: {}\nsessiongate_rate_limited_total{{endpoint=\"refresh\"}} {}",
        cut.status,
        cut.text(),
        limited(&gw, "refresh")
    );

    // Logout has its own bucket: the first goes through, the second is cut.
    assert_eq!(b.post("/auth/logout").await.status, 200);
    let mut other = Browser::new(gw.public_addr);
    other.login("burst-user-2").await;
    let cut = other.post("/auth/logout").await;
    assert_eq!(cut.status, 429);
    assert!(cut.header("retry-after").is_some());
    assert_eq!(limited(&gw, "logout"), 1);
    assert_eq!(limited(&gw, "refresh"), 1);
    let admin_metrics = crate::support::client::AdminClient::new(gw.admin_addr)
        .try_get("/metrics")
        .await
        .unwrap()
        .text();
    assert!(
        admin_metrics.contains("sessiongate_rate_limited_total{endpoint=\"logout\"} 1"),
        "{admin_metrics}"
    );
    gw.stop().await;
}

/// Eight tabs of one browser, each refreshing once per access-token expiry (60 s here,
/// passed with the test clock) over five expiries: 40 refreshes, in a few real seconds,
/// far faster than a browser would make them, and the default buckets never refuse one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_sdk_flow_is_never_limited() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let cfg = test_config(&db.url(), &up.url(), "rate_limits.enabled = true");
    let clock = Clock::system();
    let gw = start_gateway(cfg, clock.clone()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("sdk-user").await;
    for round in 0..5 {
        clock.advance(Duration::from_secs(61));
        let r = b.get("/api/expired").await;
        assert_eq!(r.status, 401, "round {round}: the access token expired");
        // Tabs share the cookies; at worst every tab refreshes once.
        for tab in 0..8 {
            let r = b.refresh().await;
            assert_eq!(r.status, 200, "round {round} tab {tab}: {}", r.text());
            assert_eq!(b.get(&format!("/api/tab/{tab}")).await.status, 200);
        }
    }
    assert_eq!(limited(&gw, "refresh"), 0);
    assert_eq!(limited(&gw, "session_create"), 0);
    gw.stop().await;
}

/// Behind a trusted proxy the bucket is the client's from `X-Forwarded-For`: one client's
/// burst does not limit another behind the same proxy. From an untrusted peer the header
/// changes nothing: rotating it does not escape the peer's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_key_on_the_client_after_trusted_proxies() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let limits = "rate_limits.enabled = true\n\
                  rate_limits.refresh = { per_minute = 1, burst = 2 }";
    let behind_proxy = test_config(
        &db.url(),
        &up.url(),
        &format!("{limits}\nserver.trusted_proxies = [\"127.0.0.1/32\"]"),
    );
    let gw = start_gateway(behind_proxy, Clock::system()).await;
    let a = Some("198.51.100.7, 203.0.113.1");
    assert_eq!(refresh_from(gw.public_addr, a).await, 401);
    assert_eq!(refresh_from(gw.public_addr, a).await, 401);
    assert_eq!(
        refresh_from(gw.public_addr, a).await,
        429,
        "client 203.0.113.1 spent"
    );
    // Another client behind the same proxy (and the left-most entry, which anyone can
    // write, is not the key).
    let b = Some("198.51.100.7, 203.0.113.2");
    assert_eq!(refresh_from(gw.public_addr, b).await, 401);
    assert_eq!(gw.state.rate_limits.tracked(Endpoint::Refresh), 2);
    gw.stop().await;

    let direct = test_config(&db.url(), &up.url(), limits);
    let gw = start_gateway(direct, Clock::system()).await;
    assert_eq!(refresh_from(gw.public_addr, Some("203.0.113.1")).await, 401);
    assert_eq!(refresh_from(gw.public_addr, Some("203.0.113.2")).await, 401);
    assert_eq!(
        refresh_from(gw.public_addr, Some("203.0.113.3")).await,
        429,
        "an untrusted peer's X-Forwarded-For is not its address"
    );
    assert_eq!(gw.state.rate_limits.tracked(Endpoint::Refresh), 1);
    gw.stop().await;
}

/// 3000 refreshes, each from a different client address (as a trusted proxy reports them),
/// with every bucket spent: the refresh table never tracks more than `max_addresses`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_spraying_keeps_the_limiter_bounded() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let cfg = test_config(
        &db.url(),
        &up.url(),
        "rate_limits.enabled = true\n\
         rate_limits.max_addresses = 500\n\
         rate_limits.refresh = { per_minute = 1, burst = 1 }\n\
         server.trusted_proxies = [\"127.0.0.1/32\"]",
    );
    let gw = start_gateway(cfg, Clock::system()).await;
    let addr = gw.public_addr;
    let mut tasks = Vec::new();
    for t in 0..6u32 {
        tasks.push(tokio::spawn(async move {
            for i in 0..500u32 {
                let n = t * 500 + i;
                let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
                assert_eq!(refresh_from(addr, Some(&ip)).await, 401);
            }
        }));
    }
    let mut peak = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        peak = peak.max(gw.state.rate_limits.tracked(Endpoint::Refresh));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let now = gw.state.rate_limits.tracked(Endpoint::Refresh);
    // A sweep runs on the request that crosses the bound; requests racing it on the other
    // core may add a few more addresses first.
    assert!(peak <= 520 && now <= 500, "peak {peak}, now {now}");
    assert!(now > 0, "the table is in use");
    gw.stop().await;
}
