//! Wire-level clients for the integration tests, for what the cookie-jar `client::Browser`
//! cannot do: requests written byte for byte on a raw TCP (or TLS) socket, response heads
//! read without consuming what follows them (WebSocket tunnels, keep-alive slots), and HTTP/2
//! over cleartext with prior knowledge (h2c) through hyper's low-level client
//! (`hyper::client::conn`), which sends `:authority` only when the URI has one and any `Host`
//! header as given.
//!
//! Every read here has a deadline ([`IO_TIMEOUT`] unless the caller gives one), so a gateway
//! that never answers fails the test instead of hanging it. The helpers panic with what they
//! got when an answer is malformed or incomplete: a test must fail loudly on those.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long any exchange here may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The client connection preface of RFC 9113 §3.4.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame (RFC 9113 §6.5), the frame that must follow the preface.
pub const H2_SETTINGS: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---- HTTP/2 (h2c, prior knowledge) ----------------------------------------------------------

/// An h2c (prior knowledge) connection to `addr`; the connection task runs in the background
/// until the server or the last sender closes it.
pub async fn h2c<B>(addr: SocketAddr) -> http2::SendRequest<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    h2c_conn(addr).await.0
}

/// [`h2c`], also returning the connection task: it ends `Ok` when the server closes the
/// connection cleanly (GOAWAY), so a test can wait for that.
pub async fn h2c_conn<B>(addr: SocketAddr) -> (http2::SendRequest<B>, JoinHandle<hyper::Result<()>>)
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tcp = TcpStream::connect(addr).await.expect("connect for h2c");
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    (send, tokio::spawn(conn))
}

/// An HTTP/1.1 connection to `addr` through hyper's client; the connection task runs in the
/// background.
pub async fn h1<B>(addr: SocketAddr) -> http1::SendRequest<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect for HTTP/1.1");
    let (send, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    send
}

/// A request with an empty body and the given header fields, in order (a name may repeat).
/// An absolute `uri` gives HTTP/2 its `:authority`; a path alone gives none.
pub fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("a valid request")
}

/// Sends `req` on an h2c connection and collects the whole answer within [`IO_TIMEOUT`]:
/// status, headers and body. Asserts that the answer came over HTTP/2.
pub async fn h2_send<B>(
    send: &mut http2::SendRequest<B>,
    req: Request<B>,
) -> (StatusCode, HeaderMap, Bytes)
where
    B: Body + 'static,
{
    let exchange = async {
        send.ready().await.expect("h2 connection usable");
        let resp = send.send_request(req).await.expect("h2 request");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("h2 response body").to_bytes();
        (parts.status, parts.headers, body)
    };
    tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .expect("h2 answer in time")
}

// ---- HTTP/1.1 on a raw socket ----------------------------------------------------------------

/// A response read off a raw socket.
pub struct Raw {
    /// The status code of the status line.
    pub status: u16,
    /// The status line as sent, then the header lines with their names lower-cased (hyper
    /// sends them so anyway) and values as sent, `\r\n`-separated, without the blank line.
    pub head: String,
    /// The body, de-chunked when the response was chunked.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Raw {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the whole response when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.text()))
    }

    /// The values of every header line named `name` (any case), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        header_values(&self.head, name)
    }
}

/// Connects to `addr`, writes `request` exactly as given and reads one complete response
/// (see [`http1_exchange`]).
pub async fn http1_raw(addr: SocketAddr, request: impl AsRef<[u8]>) -> Raw {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    http1_exchange(&mut s, request.as_ref()).await
}

/// Writes `request` on `s` as is and reads one complete response within [`IO_TIMEOUT`]:
/// to the end of its `Content-Length` or last chunk, to the end of the head for 101 (the
/// connection is then a tunnel, left unread), 204, 304 and answers to `HEAD`, else until the
/// peer closes. Interim 1xx responses are skipped. Panics if the peer closes before the
/// response is complete, or on a malformed head or chunk.
pub async fn http1_exchange<S>(s: &mut S, request: &[u8]) -> Raw
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(request).await.expect("write the request");
    let head_request = request.starts_with(b"HEAD ");
    tokio::time::timeout(IO_TIMEOUT, read_response(s, head_request))
        .await
        .expect("a complete response in time")
}

async fn read_response<S: AsyncRead + Unpin>(s: &mut S, head_request: bool) -> Raw {
    let mut buf = Vec::new();
    let mut closed = None;
    loop {
        if let Some(raw) = complete_response(&mut buf, head_request, closed.is_some()) {
            return raw;
        }
        if let Some(why) = closed {
            panic!(
                "connection {why} before the response was complete: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) => closed = Some("closed".to_string()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => closed = Some(format!("failed ({e})")),
        }
    }
}

/// The response in `buf` if it is complete (`closed`: the peer has closed, so a response
/// without a length ends here). Drops interim 1xx responses from the front of `buf`.
fn complete_response(buf: &mut Vec<u8>, head_request: bool, closed: bool) -> Option<Raw> {
    loop {
        let end = find(buf, b"\r\n\r\n")?;
        let head = lower_case_names(&String::from_utf8_lossy(&buf[..end]));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        if (100..200).contains(&status) && status != 101 {
            buf.drain(..end + 4);
            continue;
        }
        let rest = &buf[end + 4..];
        let te = header_values(&head, "transfer-encoding").join(",");
        let body = if head_request || status == 101 || status == 204 || status == 304 {
            Vec::new()
        } else if te.to_ascii_lowercase().trim_end().ends_with("chunked") {
            dechunk(rest)?
        } else if let Some(len) = header_values(&head, "content-length").first() {
            let len: usize = len
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad content-length in {head:?}"));
            rest.get(..len)?.to_vec()
        } else if closed {
            rest.to_vec()
        } else {
            return None;
        };
        return Some(Raw { status, head, body });
    }
}

fn lower_case_names(head: &str) -> String {
    let mut lines = head.split("\r\n");
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push_str("\r\n");
        match line.split_once(':') {
            Some((name, value)) => {
                out.push_str(&name.to_ascii_lowercase());
                out.push(':');
                out.push_str(value);
            }
            None => out.push_str(line),
        }
    }
    out
}

fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body; `None` while the last chunk and the trailer section have not all
/// arrived. Panics on a malformed chunk.
pub fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size {size_text:?}: {e}"));
        let data = &b[eol + 2..];
        if size == 0 {
            // Trailer lines, then an empty line.
            let complete = data.starts_with(b"\r\n") || find(data, b"\r\n\r\n").is_some();
            return complete.then_some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        assert_eq!(&data[size..size + 2], b"\r\n", "chunk not ended by CRLF");
        out.extend_from_slice(&data[..size]);
        b = &data[size + 2..];
    }
}

/// Reads a response head byte by byte, through the blank line, and nothing after it (what
/// follows stays on `s`: a WebSocket tunnel's first bytes, the next response). Returns what
/// arrived if the peer closes first (`""` for a connection closed without an answer); panics
/// if `within` passes first.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> String {
    let mut head = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("no response head in time");
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one line (through `\n`) byte by byte within [`IO_TIMEOUT`]; what arrived if the peer
/// closes first (`""` when closed).
pub async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(IO_TIMEOUT, async {
        while !line.ends_with(b"\n") && s.read(&mut byte).await.unwrap_or(0) == 1 {
            line.push(byte[0]);
        }
    })
    .await
    .expect("line in time");
    String::from_utf8_lossy(&line).into_owned()
}

/// Time until the server closes `s` (EOF or reset), or `None` if it is still open after
/// `within`. Whatever the server sends before closing is ignored.
pub async fn closed_after<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let wait = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .ok()
        .map(|()| started.elapsed())
}
