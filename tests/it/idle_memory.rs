//! Memory per open idle connection (issue 8 item 12), measured on the real binary: the
//! gateway's RSS (`VmRSS` in /proc/PID/status) with no client connections, then with N idle
//! keep-alive HTTP/1.1 connections that have each made one request, then with N more idle
//! HTTP/2 (h2c) connections that have each made one request. Asserts generous bounds
//! (64 KiB per idle HTTP/1.1 connection, 192 KiB per idle HTTP/2 one) and prints the numbers.
//!
//! Defaults keep it quick (N = 500 of each, debug binary). The README's numbers come from
//! `SESSIONGATE_IDLE_CONNS=5000 SESSIONGATE_MEMORY_BIN=target/release/sessiongate
//! cargo test --test it idle_memory -- --nocapture` (needs `ulimit -n` above 2 N + 100).
#![cfg(target_os = "linux")]

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use tokio::net::TcpStream;

use crate::support::client::AdminClient;
use crate::support::config::free_port;
use crate::support::{process, wire};

/// A path the gateway answers itself, so no upstream is involved.
const PATH: &str = "/.well-known/jwks.json";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn settle(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss_kib(pid)
}

async fn idle_h1(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Read the whole response (headers + JSON body) so the connection is idle again.
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = wire::http1_exchange(&mut s, request.as_bytes()).await.head;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn idle_h2(addr: std::net::SocketAddr) -> H2Sender {
    let mut sender = wire::h2c(addr).await;
    let req = wire::request(Method::GET, &format!("http://{addr}{PATH}"), &[]);
    let (status, _, _) = wire::h2_send(&mut sender, req).await;
    assert_eq!(status, 200);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_idle_connection_is_small() {
    let n: usize = std::env::var("SESSIONGATE_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let bin = std::env::var("SESSIONGATE_MEMORY_BIN").unwrap_or_else(|_| process::BIN.to_string());
    let dir = tempfile::tempdir().unwrap();
    let (pp, ap) = (free_port(), free_port());
    let toml = process::gateway_config("sqlite::memory:", "http://127.0.0.1:9", pp, ap)
        .set("logging.level", "\"warn\"")
        .extra("server.idle_timeout_secs = 3600\nserver.header_read_timeout_secs = 300")
        .render();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SESSIONGATE_") {
            cmd.env_remove(k);
        }
    }
    let child = Killed(
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning sessiongate"),
    );
    let pid = child.0.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{pp}").parse().unwrap();
    let admin = AdminClient::at(&format!("http://127.0.0.1:{ap}"));
    for _ in 0..600 {
        if admin
            .try_get("/readyz")
            .await
            .is_some_and(|r| r.status == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm up the runtime and allocator with a few short connections.
    for _ in 0..20 {
        drop(idle_h1(addr).await);
        drop(idle_h2(addr).await);
    }
    let base = settle(pid).await;

    let mut h1 = Vec::with_capacity(n);
    for _ in 0..n {
        h1.push(idle_h1(addr).await);
    }
    let with_h1 = settle(pid).await;
    let mut h2 = Vec::with_capacity(n);
    for _ in 0..n {
        h2.push(idle_h2(addr).await);
    }
    let with_h2 = settle(pid).await;

    let per_h1 = (with_h1.saturating_sub(base)) as f64 / n as f64;
    let per_h2 = (with_h2.saturating_sub(with_h1)) as f64 / n as f64;
    eprintln!(
        "{bin}: RSS {base} KiB idle; +{n} idle HTTP/1.1 connections: {with_h1} KiB \
         ({per_h1:.1} KiB each); +{n} idle HTTP/2 connections: {with_h2} KiB ({per_h2:.1} KiB each)"
    );
    assert!(
        per_h1 < 64.0,
        "{per_h1:.1} KiB per idle HTTP/1.1 connection"
    );
    assert!(per_h2 < 192.0, "{per_h2:.1} KiB per idle HTTP/2 connection");
    drop((h1, h2, child));
}

/// The child process, killed when the test ends however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
