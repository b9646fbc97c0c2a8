//! Idle keep-alive connections for goal 4 of issue 11: each connection sends one HTTP/1.1
//! request, reads the whole response and then stays open, idle.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The soft limit on open files of this process (`Max open files` in /proc/self/limits).
pub fn fd_soft_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Opens `n` connections to `addr`, `parallel` at a time, each after one `GET path` answered
/// 200. Returns the open connections and how many failed.
pub async fn open(
    addr: SocketAddr,
    path: &str,
    n: usize,
    parallel: usize,
) -> (Vec<TcpStream>, usize) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    let mut started = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while started < n || !tasks.is_empty() {
        while started < n && tasks.len() < parallel {
            let request = request.clone();
            tasks.spawn(async move { one(addr, &request).await });
            started += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(s))) => open.push(s),
            Some(_) => failed += 1,
            None => {}
        }
    }
    (open, failed)
}

async fn one(addr: SocketAddr, request: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let got = s.read(&mut chunk).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
        if let Some(end) = complete(&buf) {
            if !buf.starts_with(b"HTTP/1.1 200") || end != buf.len() {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            return Ok(s);
        }
    }
}

/// The length of the whole response once `buf` holds it (Content-Length or chunked).
fn complete(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    match length {
        Some(len) => (buf.len() >= head_end + len).then_some(head_end + len),
        None if head.contains("transfer-encoding: chunked") => {
            buf.ends_with(b"\r\n0\r\n\r\n").then_some(buf.len())
        }
        None => Some(head_end),
    }
}

/// How many of `conns` the peer has not closed (a read would block rather than see EOF).
pub fn still_open(conns: &[TcpStream]) -> usize {
    let mut byte = [0u8; 1];
    conns
        .iter()
        .filter(|s| {
            matches!(s.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count()
}
