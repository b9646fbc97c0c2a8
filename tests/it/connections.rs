//! Connection deadlines and limits over real sockets (issue 8 items 2, 7 and 10): silent and
//! half-open connections cannot hold the listener's slots, idle connections close, slow and
//! malformed request bodies are the client's fault (408/400), the per-IP limit, and WebSocket
//! tunnels (checked handshake, origin, slot, idle timeout, shutdown).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::StreamBody;
use hyper::body::Frame;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;
use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, TestUpstream};

async fn gateway(extra: &str) -> (db::TestSqlite, TestUpstream, Gateway) {
    gateway_with(extra, |_| {}).await
}

/// For keys the test config already sets (e.g. `server.shutdown_grace_secs`).
async fn gateway_with(
    extra: &str,
    adjust: impl FnOnce(&mut sessiongate::config::Config),
) -> (db::TestSqlite, TestUpstream, Gateway) {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let mut cfg = test_config(&db.url(), &up.url(), extra);
    adjust(&mut cfg);
    let gw = start_gateway(cfg, Clock::system()).await;
    (db, up, gw)
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    (s, head)
}

fn closed_metric(gw: &Gateway, reason: &str) -> u64 {
    gw.state
        .metrics
        .connections_closed_total
        .with_label_values(&[reason])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_starve_the_listener() {
    let (_db, _up, gw) =
        gateway("server.max_connections = 5\nserver.header_read_timeout_secs = 1").await;
    let addr = gw.public_addr;
    // Five connections take every slot and never send a complete request head: two send
    // nothing, one half an h2 preface, two a full h2 preface and SETTINGS but no stream.
    let mut silent = Vec::new();
    for i in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        match i {
            0 | 1 => {}
            2 => s.write_all(&wire::H2_PREFACE[..10]).await.unwrap(),
            _ => {
                s.write_all(wire::H2_PREFACE).await.unwrap();
                s.write_all(wire::H2_SETTINGS).await.unwrap();
            }
        }
        silent.push(s);
    }
    let opened = Instant::now();
    // A real request queued behind them is answered once their deadline has passed.
    let (_s, head) = get(addr, "/public/real").await;
    let answered = opened.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        answered < Duration::from_millis(2500),
        "answered after {answered:?}"
    );
    // Every silent socket was closed by the server.
    for (i, s) in silent.iter_mut().enumerate() {
        let closed = wire::closed_after(s, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "silent socket {i} still open");
    }
    let dropped = opened.elapsed();
    eprintln!("header_read_timeout 1 s: real request answered after {answered:?}; all five silent sockets closed by {dropped:?}");
    assert_eq!(closed_metric(&gw, "header_timeout"), 5);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connection_is_closed_after_the_handshake() {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), cert.key_pair.serialize_pem()).unwrap();
    let extra = format!(
        "server.header_read_timeout_secs = 1\nserver.tls.cert = \"{}\"\nserver.tls.key = \"{}\"",
        dir.path().join("c.pem").display(),
        dir.path().join("k.pem").display()
    );
    let (_db, _up, gw) = gateway(&extra).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(gw.public_addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("handshake");
    // Handshake done, then nothing: closed once the first-request deadline passes.
    let started = Instant::now();
    let closed = wire::closed_after(&mut tls, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "silent TLS connection still open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let (_db, _up, gw) = gateway("server.idle_timeout_secs = 1").await;
    // HTTP/1.1: a request longer than the idle timeout is not cut, the idle time after it is.
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    s.write_all(b"GET /public/slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let h1 = wire::closed_after(&mut s, Duration::from_secs(4))
        .await
        .expect("idle HTTP/1.1 connection closed");
    assert!(h1 >= Duration::from_millis(800), "closed too early: {h1:?}");

    // HTTP/2 (h2c prior knowledge): after its only stream ends the connection goes away.
    let (mut sender, conn) = wire::h2c_conn(gw.public_addr).await;
    let uri = format!("http://{}/public/h2", gw.public_addr);
    let (status, _, _) = wire::h2_send(&mut sender, wire::request(Method::GET, &uri, &[])).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(4), conn)
        .await
        .expect("idle HTTP/2 connection closed by the server")
        .unwrap()
        .unwrap();
    eprintln!(
        "idle_timeout 1 s: HTTP/1.1 closed {h1:?} after the response, HTTP/2 {:?}",
        started.elapsed()
    );
    assert_eq!(closed_metric(&gw, "idle_timeout"), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_body_is_answered_408() {
    // upstream_timeout_secs is 2 in the test config: without the body timeout this was a 504.
    let (_db, _up, gw) = gateway("server.body_read_timeout_secs = 1").await;
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    s.write_all(b"POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_millis(1900));

    // HTTP/2: a stream whose body stops after one chunk.
    let mut sender = wire::h2c(gw.public_addr).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
        .await
        .unwrap();
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let req = http::Request::post(format!("http://{}/public/upload", gw.public_addr))
        .body(body)
        .unwrap();
    let (status, _, body) = wire::h2_send(&mut sender, req).await;
    assert_eq!(status, 408);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "request_timeout");
    drop(tx);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_body_is_answered_400() {
    let (_db, _up, gw) = gateway("").await;
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    s.write_all(
        b"POST /public/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("\"bad_request\""), "{rest}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limit_closes_extra_connections() {
    let (_db, _up, gw) = gateway("server.max_connections_per_ip = 2").await;
    let (_a, head) = get(gw.public_addr, "/public/a").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (b, head) = get(gw.public_addr, "/public/b").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A third connection from 127.0.0.1 is closed without an answer.
    let mut third = TcpStream::connect(gw.public_addr).await.unwrap();
    let _ = third
        .write_all(b"GET /public/c HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let head = wire::read_head(&mut third, Duration::from_secs(3)).await;
    assert_eq!(head, "", "the third connection was served");
    assert_eq!(closed_metric(&gw, "per_ip_limit"), 1);
    // Closing one frees its place.
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_c, head) = get(gw.public_addr, "/public/c").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    gw.stop().await;
}

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends a WebSocket handshake for `path` with extra header lines; returns the stream and
/// the response head.
async fn ws_open(addr: std::net::SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    (s, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_real_websocket_switch_is_tunnelled() {
    let (_db, _up, gw) = gateway("").await;
    let addr = gw.public_addr;
    // The real thing: accepted, and the accept value reaches the client unchanged.
    let (mut s, head) = ws_open(addr, "/public/ws", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&support::upstream::websocket_accept(WS_KEY.as_bytes()).to_ascii_lowercase()),
        "{head}"
    );
    assert_eq!(wire::read_line(&mut s).await, "hello \n");
    // 101 without Sec-WebSocket-Accept, or with one for another key: 502, no tunnel.
    for q in ["none", "wrong"] {
        let (_s, head) = ws_open(addr, &format!("/public/ws?accept={q}"), "").await;
        assert!(head.starts_with("HTTP/1.1 502"), "accept={q}: {head}");
    }
    // The client did not ask for WebSocket (h2c), the upstream switches anyway: 502.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n").await.unwrap();
    let head = wire::read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    drop(s);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_websocket_is_refused() {
    let (_db, _up, gw) = gateway("cors.allowed_origins = [\"https://app.example\"]").await;
    let addr = gw.public_addr;
    let (_s, head) = ws_open(addr, "/public/ws", "Origin: https://evil.example\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    for origin in ["http://x", "https://app.example"] {
        let (mut s, head) = ws_open(addr, "/public/ws", &format!("Origin: {origin}\r\n")).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{origin}: {head}");
        assert_eq!(wire::read_line(&mut s).await, "hello \n");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnel_keeps_its_connection_slot() {
    let (_db, _up, gw) = gateway("server.max_connections = 1").await;
    let (mut tunnel, head) = ws_open(gw.public_addr, "/public/ws", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(wire::read_line(&mut tunnel).await, "hello \n");
    // The tunnel is the one connection: another is not served while it lasts.
    let mut other = TcpStream::connect(gw.public_addr).await.unwrap();
    other
        .write_all(b"GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    let waited = tokio::time::timeout(Duration::from_millis(700), other.read_exact(&mut buf)).await;
    assert!(
        waited.is_err(),
        "served while the tunnel held the only slot"
    );
    drop(tunnel);
    tokio::time::timeout(Duration::from_secs(5), other.read_exact(&mut buf))
        .await
        .expect("served once the tunnel closed")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnel_idle_timeout_and_shutdown() {
    let (_db, _up, gw) = gateway_with("server.idle_timeout_secs = 1", |c| {
        c.server.shutdown_grace = Duration::from_secs(1)
    })
    .await;
    // Idle: traffic keeps it open, silence closes it.
    let (mut idle, head) = ws_open(gw.public_addr, "/public/ws", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(wire::read_line(&mut idle).await, "hello \n");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        idle.write_all(b"ping\n").await.unwrap();
        assert_eq!(wire::read_line(&mut idle).await, "ping\n");
    }
    let closed = wire::closed_after(&mut idle, Duration::from_secs(4))
        .await
        .expect("idle tunnel closed");
    assert!(closed >= Duration::from_millis(800), "{closed:?}");

    // Shutdown: a busy tunnel is closed when the grace period ends.
    let (mut busy, head) = ws_open(gw.public_addr, "/public/ws", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(wire::read_line(&mut busy).await, "hello \n");
    let started = Instant::now();
    gw.shutdown();
    let traffic = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if busy.write_all(b"ping\n").await.is_err() {
                return;
            }
            let line = wire::read_line(&mut busy).await;
            if line.is_empty() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(4), traffic)
        .await
        .expect("tunnel closed at the end of the grace period");
    assert!(started.elapsed() >= Duration::from_millis(800));
    tokio::time::timeout(Duration::from_secs(5), gw.wait())
        .await
        .expect("gateway stopped");
}
