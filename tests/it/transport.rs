//! Transport-level behaviour over real sockets: WebSocket upgrades through an authenticated
//! route, TLS termination with ALPN (HTTP/2 and HTTP/1.1), and the header read timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiongate::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_on_an_authenticated_route() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);

    // Without a session the upgrade is refused like any request.
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    s.write_all(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let head = wire::read_head(&mut s, wire::IO_TIMEOUT).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    b.login("alice").await;
    let cookie = format!(
        "sAccessToken={}; sIdRefreshToken={}",
        b.jar.cookies["sAccessToken"], b.jar.cookies["sIdRefreshToken"]
    );
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    let req = format!("GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\nx-user-id: mallory\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = wire::read_head(&mut s, wire::IO_TIMEOUT).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    let greeting = wire::read_line(&mut s).await;
    assert_eq!(
        greeting, "hello alice\n",
        "the upstream saw the gateway's identity, not the client's"
    );
    s.write_all(b"ping-123").await.unwrap();
    let mut buf = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping-123");
    // An open tunnel would hold the shutdown until the grace period ends.
    drop(s);
    gw.stop().await;
}

fn self_signed() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Vec<u8>,
) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let der = cert.cert.der().to_vec();
    (dir, cert_path, key_path, der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_with_alpn() {
    use tokio_rustls::rustls;
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let (_dir, cert, key, der) = self_signed();
    let extra = format!(
        "server.tls.cert = \"{}\"\nserver.tls.key = \"{}\"",
        cert.display(),
        key.display()
    );
    let gw = start_gateway(test_config(&db.url(), &up.url(), &extra), Clock::system()).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    for want in [http::Version::HTTP_2, http::Version::HTTP_11] {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_only();
        // The connector offers exactly one ALPN protocol; the gateway must accept either.
        let connector = if want == http::Version::HTTP_2 {
            builder.enable_http2().build()
        } else {
            builder.enable_http1().build()
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(want == http::Version::HTTP_2)
                .build::<_, http_body_util::Full<bytes::Bytes>>(connector);
        let uri = format!("https://localhost:{}/public/tls", gw.public_addr.port());
        let resp = client
            .request(http::Request::get(uri).body(Default::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.version(), want);
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["headers"]["x-forwarded-proto"][0], "https");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let gw = start_gateway(
        test_config(&db.url(), &up.url(), "server.header_read_timeout_secs = 1"),
        Clock::system(),
    )
    .await;
    let mut s = TcpStream::connect(gw.public_addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The gateway closes (possibly after a 408) instead of waiting forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("connection closed by the header read timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_queues_extra_connections() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let gw = start_gateway(
        test_config(&db.url(), &up.url(), "server.max_connections = 1"),
        Clock::system(),
    )
    .await;
    let request = b"GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n";
    // The first connection takes the only slot and stays open (keep-alive).
    let mut first = TcpStream::connect(gw.public_addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // A second connection is accepted by the kernel but not served while the first is open.
    let mut second = TcpStream::connect(gw.public_addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let waited =
        tokio::time::timeout(Duration::from_millis(500), second.read_exact(&mut buf)).await;
    assert!(
        waited.is_err(),
        "second connection served while the limit was reached"
    );
    // Closing the first frees the slot: the second is served.
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    gw.stop().await;
}
