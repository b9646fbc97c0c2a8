//! Connection and key metrics (issue 13 item 4), each moved by its cause over real sockets and
//! read from the admin listener's `/metrics` as a scraper would: connections accepted and open
//! per listener, connections dropped by reason (per-IP limit, first-request deadline), pauses at
//! `server.max_connections`, failed TLS handshakes (garbage and silence), the upstream latency
//! histogram per route, and the signing key's age (driven by the injected clock).

use std::time::Duration;

use http::Method;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::client::AdminClient;
use crate::support::{db, start_gateway, test_config, wire, TestUpstream};

async fn gateway(extra: &str, clock: Clock) -> (db::TestSqlite, TestUpstream, Gateway) {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let cfg = test_config(&db.url(), &up.url(), extra);
    let gw = start_gateway(cfg, clock).await;
    (db, up, gw)
}

async fn metrics_text(gw: &Gateway) -> String {
    AdminClient::new(gw.admin_addr)
        .raw(Method::GET, "/metrics", None, "")
        .await
        .text()
}

/// The value of one exposition line `series` (`name{labels}` exactly as exported), 0 when
/// absent.
async fn scrape(gw: &Gateway, series: &str) -> f64 {
    let text = metrics_text(gw).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits (bounded) until `series` reads `want`.
async fn wait_for(gw: &Gateway, series: &str, want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = scrape(gw, series).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} = {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    (s, head)
}

const OPEN: &str = "sessiongate_connections_open{listener=\"public\"}";
const ACCEPTED: &str = "sessiongate_connections_accepted_total{listener=\"public\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_counts_and_drops_follow_their_causes() {
    let (_db, _up, gw) = gateway(
        "server.max_connections_per_ip = 2\nserver.header_read_timeout_secs = 1",
        Clock::system(),
    )
    .await;
    assert_eq!(scrape(&gw, OPEN).await, 0.0);
    assert_eq!(scrape(&gw, ACCEPTED).await, 0.0);
    // Every reason is exported from the start.
    for reason in ["header_timeout", "idle_timeout", "per_ip_limit"] {
        let series = format!("sessiongate_connections_closed_total{{reason=\"{reason}\"}}");
        let text = metrics_text(&gw).await;
        assert!(text.contains(&format!("{series} 0")), "{series}\n{text}");
    }

    let (a, head) = get(gw.public_addr, "/public/a").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (b, head) = get(gw.public_addr, "/public/b").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(scrape(&gw, OPEN).await, 2.0);
    assert_eq!(scrape(&gw, ACCEPTED).await, 2.0);

    // Over the per-IP limit: accepted, then dropped at once.
    let mut third = TcpStream::connect(gw.public_addr).await.unwrap();
    let _ = third
        .write_all(b"GET /public/c HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(
        wire::read_head(&mut third, Duration::from_secs(3)).await,
        ""
    );
    wait_for(
        &gw,
        "sessiongate_connections_closed_total{reason=\"per_ip_limit\"}",
        1.0,
    )
    .await;
    assert_eq!(scrape(&gw, ACCEPTED).await, 3.0);
    assert_eq!(scrape(&gw, OPEN).await, 2.0);

    // Closed by the client: no longer open.
    drop((a, b));
    wait_for(&gw, OPEN, 0.0).await;

    // Silent past the first-request deadline: dropped for it.
    let mut silent = TcpStream::connect(gw.public_addr).await.unwrap();
    wait_for(&gw, OPEN, 1.0).await;
    assert!(wire::closed_after(&mut silent, Duration::from_secs(4))
        .await
        .is_some());
    wait_for(
        &gw,
        "sessiongate_connections_closed_total{reason=\"header_timeout\"}",
        1.0,
    )
    .await;
    wait_for(&gw, OPEN, 0.0).await;

    // The admin listener counts its own connections (this scrape is one of them).
    assert!(
        scrape(
            &gw,
            "sessiongate_connections_accepted_total{listener=\"admin\"}"
        )
        .await
            >= 1.0
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaching_max_connections_is_counted() {
    let (_db, _up, gw) = gateway("server.max_connections = 1", Clock::system()).await;
    let series = "sessiongate_connection_limit_waits_total";
    let (first, head) = get(gw.public_addr, "/public/a").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The one slot is taken: the accept loop pauses.
    wait_for(&gw, series, 1.0).await;
    // A second connection waits in the queue and is served once the first closes.
    let second = tokio::spawn(get(gw.public_addr, "/public/b"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(first);
    let (_second, head) = second.await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshakes_are_counted_by_reason() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), cert.key_pair.serialize_pem()).unwrap();
    let extra = format!(
        "server.header_read_timeout_secs = 1\nserver.tls.cert = \"{}\"\nserver.tls.key = \"{}\"",
        dir.path().join("c.pem").display(),
        dir.path().join("k.pem").display()
    );
    let (_db, _up, gw) = gateway(&extra, Clock::system()).await;
    let error = "sessiongate_tls_handshake_failures_total{reason=\"error\"}";
    let timeout = "sessiongate_tls_handshake_failures_total{reason=\"timeout\"}";
    assert_eq!(scrape(&gw, error).await, 0.0);
    // Plain HTTP to the TLS port: not a handshake.
    let mut plain = TcpStream::connect(gw.public_addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = wire::closed_after(&mut plain, Duration::from_secs(4)).await;
    wait_for(&gw, error, 1.0).await;
    // Silence: the handshake deadline passes.
    let mut silent = TcpStream::connect(gw.public_addr).await.unwrap();
    assert!(wire::closed_after(&mut silent, Duration::from_secs(4))
        .await
        .is_some());
    wait_for(&gw, timeout, 1.0).await;
    assert_eq!(scrape(&gw, error).await, 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_latency_per_route_and_signing_key_age() {
    let clock = Clock::system();
    let (_db, _up, gw) = gateway("", clock.clone()).await;
    let count = "sessiongate_upstream_duration_seconds_count{route=\"public\"}";
    assert_eq!(scrape(&gw, count).await, 0.0);
    for path in ["/public/a", "/public/b"] {
        let (_s, head) = get(gw.public_addr, path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    assert_eq!(scrape(&gw, count).await, 2.0);
    // Refused before the upstream: not an upstream call.
    let (_s, head) = get(gw.public_addr, "/api/x").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(
        scrape(
            &gw,
            "sessiongate_upstream_duration_seconds_count{route=\"api\"}"
        )
        .await,
        0.0
    );

    let age = "sessiongate_signing_key_age_seconds";
    assert!(scrape(&gw, age).await < 60.0);
    clock.advance(Duration::from_secs(5 * 3600));
    let aged = scrape(&gw, age).await;
    assert!(
        (5.0 * 3600.0..5.0 * 3600.0 + 60.0).contains(&aged),
        "{aged}"
    );
    gw.stop().await;
}
