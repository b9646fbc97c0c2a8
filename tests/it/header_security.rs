//! Header hygiene over real sockets (issue 8, items 5, 6, 9 and 10): identity header names
//! with `_`, the one canonical host, headers only trusted proxies may send, HTTP/2 cookie
//! crumbs, and transfer codings. HTTP/1.1 requests are written byte for byte on a raw TCP
//! socket (so duplicate or missing `Host` lines reach the gateway as sent); HTTP/2 requests
//! use hyper's h2c prior-knowledge client (`hyper::client::conn::http2`), which sends
//! `:authority` only when the URI has one and any `Host` header as given. The upstream is the
//! harness echo server, which reports every header line it received.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, TestUpstream};

/// A host-specific route before the harness routes: `/admin-only` on `admin.example.com`,
/// public, forwarded under `/via-admin` so the echoed path tells which route matched.
fn admin_route(upstream: &str) -> String {
    format!(
        "[[routes]]\nname = \"admin-host\"\npath_prefix = \"/admin-only\"\nhost = \"admin.example.com\"\n\
         upstream = \"{upstream}/via-admin\"\nauth = \"public\"\n"
    )
}

struct Setup {
    _up: TestUpstream,
    _db: db::TestSqlite,
    gw: Gateway,
}

/// The harness gateway plus the admin-host route; `extra` holds more root-level keys.
async fn setup(extra: &str) -> Setup {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let extra = format!("{extra}\n{}", admin_route(&up.url()));
    let cfg = test_config(&db.url(), &up.url(), &extra);
    let gw = start_gateway(cfg, Clock::system()).await;
    Setup {
        _up: up,
        _db: db,
        gw,
    }
}

use crate::support::wire::Raw;

/// The values the echo upstream reports it received for header `name`.
fn echoed(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

impl Raw {
    /// The values the upstream echoed for header `name`.
    fn upstream(&self, name: &str) -> Vec<String> {
        echoed(&self.json(), name)
    }
}

/// `GET target HTTP/1.1` with the given header lines and `Connection: close`.
async fn get(addr: SocketAddr, target: &str, lines: &[&str]) -> Raw {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    for l in lines {
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    wire::http1_raw(addr, &req).await
}

fn assert_bad_request(r: &Raw, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r:?}");
    assert_eq!(r.json()["error"], "bad_request", "{what}");
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

struct H2Resp {
    status: StatusCode,
    body: serde_json::Value,
}

impl H2Resp {
    fn upstream(&self, name: &str) -> Vec<String> {
        echoed(&self.body, name)
    }
}

/// Sends a GET over h2: `uri` absolute gives `:authority`, relative gives none.
async fn h2_get(send: &mut H2, uri: &str, headers: &[(&str, &str)]) -> H2Resp {
    let (status, _, bytes) = wire::h2_send(send, wire::request(Method::GET, uri, headers)).await;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes));
    });
    H2Resp { status, body }
}

// ---- item 6: one canonical host -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_host_is_canonical_routed_on_and_sent_upstream() {
    let s = setup("").await;
    let addr = s.gw.public_addr;

    // Upper case and a trailing dot: the host route matches; the upstream gets the canonical host.
    let r = get(addr, "/admin-only/x", &["Host: ADMIN.example.com."]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["path"], "/via-admin/admin-only/x");
    assert_eq!(r.upstream("host"), ["admin.example.com"]);
    assert_eq!(r.upstream("x-forwarded-host"), ["admin.example.com"]);
    // The port is kept as sent.
    let r = get(addr, "/admin-only/x", &["Host: Admin.Example.Com:8443"]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("host"), ["admin.example.com:8443"]);

    // Absolute-form that agrees with Host (after canonicalisation): routed on that host.
    let r = get(
        addr,
        "http://admin.example.com/admin-only/x",
        &["Host: ADMIN.EXAMPLE.COM."],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["path"], "/via-admin/admin-only/x");
    assert_eq!(r.upstream("host"), ["admin.example.com"]);

    // Absolute-form naming another host than Host: 400 (main routed on the authority and
    // sent the client's Host upstream).
    let r = get(
        addr,
        "http://admin.example.com/admin-only/x",
        &["Host: public.example"],
    )
    .await;
    assert_bad_request(&r, "authority and Host disagree");
    // Absolute-form without Host on HTTP/1.1.
    let r = get(addr, "http://admin.example.com/admin-only/x", &[]).await;
    assert_bad_request(&r, "absolute-form without Host");
    // Missing Host.
    let r = get(addr, "/public/x", &[]).await;
    assert_bad_request(&r, "missing Host");
    // Duplicate Host, whether the values agree or not.
    let r = get(
        addr,
        "/admin-only/x",
        &["Host: admin.example.com", "Host: admin.example.com"],
    )
    .await;
    assert_bad_request(&r, "duplicate Host (same)");
    let r = get(
        addr,
        "/public/x",
        &["Host: public.example", "Host: admin.example.com"],
    )
    .await;
    assert_bad_request(&r, "duplicate Host (different)");
    // Userinfo, in Host and in the request target.
    let r = get(addr, "/public/x", &["Host: admin@admin.example.com"]).await;
    assert_bad_request(&r, "userinfo in Host");
    let r = get(
        addr,
        "http://user@admin.example.com/admin-only/x",
        &["Host: admin.example.com"],
    )
    .await;
    assert!(r.status == 400, "userinfo in the target: {r:?}");
    // Invalid hosts.
    for bad in [
        "Host: a..example",
        "Host: a.example:99999",
        "Host: a.example:",
        "Host: a.example, b.example",
        "Host: ",
        "Host: [::1",
    ] {
        let r = get(addr, "/public/x", &[bad]).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    // Non-ASCII bytes in Host.
    let r = wire::http1_raw(
        addr,
        "GET /public/x HTTP/1.1\r\nHost: caf\u{e9}.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");

    // A plain valid request still works, and its Host is replaced by the canonical one.
    let r = get(addr, "/public/x", &["Host: Public.Example."]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("host"), ["public.example"]);
    s.gw.stop().await;
}

/// HTTP/1.0 without Host is accepted with no host: host-specific routes do not match and the
/// upstream gets the Host of its own URL (hyper's client sets it). With Host, as on HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_0_without_host_is_served_without_a_host() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let extra = admin_route(&up.url());
    let gw = start_gateway(test_config(&db.url(), &up.url(), &extra), Clock::system()).await;
    let addr = gw.public_addr;

    let r = wire::http1_raw(addr, "GET /public/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("host"), [up.addr.to_string()]);
    assert!(r.upstream("x-forwarded-host").is_empty(), "{r:?}");
    // No host: the admin-host route cannot match; `/` (required) answers.
    let r = wire::http1_raw(addr, "GET /admin-only/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 401, "{r:?}");

    let r = wire::http1_raw(
        addr,
        "GET /admin-only/x HTTP/1.0\r\nHost: ADMIN.example.com.\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("host"), ["admin.example.com"]);
    let r = wire::http1_raw(
        addr,
        "GET /public/x HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_host_is_canonical_routed_on_and_sent_upstream() {
    let s = setup("").await;
    let mut c = wire::h2c(s.gw.public_addr).await;

    // `:authority` only.
    let r = h2_get(&mut c, "http://ADMIN.example.com./admin-only/x", &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["path"], "/via-admin/admin-only/x");
    assert_eq!(r.upstream("host"), ["admin.example.com"]);
    // `:authority` and an agreeing Host.
    let r = h2_get(
        &mut c,
        "http://admin.example.com/admin-only/x",
        &[("host", "Admin.Example.Com")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.upstream("host"), ["admin.example.com"]);
    // Host only (no `:authority`): routed on Host.
    let r = h2_get(&mut c, "/admin-only/x", &[("host", "admin.example.com.")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.upstream("host"), ["admin.example.com"]);

    // `:authority` and Host disagree: 400 (main routed on `:authority`, sent Host upstream).
    let r = h2_get(
        &mut c,
        "http://admin.example.com/admin-only/x",
        &[("host", "public.example")],
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["error"], "bad_request");
    // Neither `:authority` nor Host.
    let r = h2_get(&mut c, "/public/x", &[]).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    // Userinfo in `:authority`.
    let r = h2_get(&mut c, "http://user@admin.example.com/admin-only/x", &[]).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    // Two Host fields.
    let r = h2_get(
        &mut c,
        "/public/x",
        &[("host", "a.example"), ("host", "a.example")],
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    s.gw.stop().await;
}

// ---- item 5: identity header names with `_` -------------------------------------------------

/// `identity.user_id_header = "x_user_id"` is refused by validation (src/config/tests_load.rs); a
/// config built in code with it anyway still strips client copies, because both sides are
/// compared in canonical form (main compared the client's canonical name with the raw one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_names_are_compared_in_canonical_form() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let mut cfg = test_config(&db.url(), &up.url(), "");
    cfg.identity.user_id_header = "x_user_id".into();
    let gw = start_gateway(cfg, Clock::system()).await;
    let addr = gw.public_addr;
    let host = format!("Host: {addr}");

    // The client's `x_user_id` is the configured name spelled with `_`: 400.
    let r = get(addr, "/public/x", &[&host, "x_user_id: admin"]).await;
    assert_bad_request(&r, "x_user_id from the client");
    // Its `-` spelling is removed.
    let r = get(addr, "/public/x", &[&host, "X-User-Id: admin"]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.upstream("x-user-id").is_empty(), "{r:?}");
    assert!(r.upstream("x_user_id").is_empty(), "{r:?}");

    // Authenticated: the upstream sees only the gateway's value.
    let login = get(addr, "/auth/login?user=alice", &[&host]).await;
    assert_eq!(login.status, 200, "{login:?}");
    let access = login
        .head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next())
        .filter(|c| c.starts_with("sAccessToken=") || c.starts_with("sIdRefreshToken="))
        .collect::<Vec<_>>()
        .join("; ");
    let cookie = format!("Cookie: {access}");
    let r = get(addr, "/api/x", &[&host, &cookie, "x-user-id: admin"]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("x_user_id"), ["alice"]);
    assert!(r.upstream("x-user-id").is_empty(), "{r:?}");
    gw.stop().await;
}

// ---- item 9: headers from untrusted clients, cookie crumbs -----------------------------------

const PROXY_ONLY: &[(&str, &str)] = &[
    ("x-real-ip", "6.6.6.6"),
    ("x-client-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-prefix", "/admin"),
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "DELETE"),
    ("x-method-override", "DELETE"),
    ("x_forwarded_for", "6.6.6.6"),
    ("some_header", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_only_headers_are_dropped_from_untrusted_clients() {
    for trusted in [false, true] {
        let extra = if trusted {
            "server.trusted_proxies = [\"127.0.0.1\"]"
        } else {
            ""
        };
        let s = setup(extra).await;
        let addr = s.gw.public_addr;
        let mut lines = vec![
            format!("Host: {addr}"),
            "x-request-id: r1".to_string(),
            "x-app-trace: t1".to_string(),
        ];
        lines.extend(PROXY_ONLY.iter().map(|(k, v)| format!("{k}: {v}")));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = get(addr, "/public/x", &lines).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.upstream("x-app-trace"), ["t1"], "ordinary headers pass");
        // A request id is kept only from a trusted proxy (issue 9 item 8).
        let ids = r.upstream("x-request-id");
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(ids[0] == "r1", trusted, "{ids:?}");
        for (name, value) in PROXY_ONLY {
            let want: Vec<String> = if trusted {
                vec![value.to_string()]
            } else {
                vec![]
            };
            assert_eq!(r.upstream(name), want, "h1 trusted={trusted} {name}");
        }

        let mut c = wire::h2c(addr).await;
        let uri = format!("http://{addr}/public/x");
        let r = h2_get(&mut c, &uri, PROXY_ONLY).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for (name, value) in PROXY_ONLY {
            let want: Vec<String> = if trusted {
                vec![value.to_string()]
            } else {
                vec![]
            };
            assert_eq!(r.upstream(name), want, "h2 trusted={trusted} {name}");
        }
        // Identity names spelled with `_` are still refused, trusted or not.
        let r = get(
            addr,
            "/public/x",
            &[&format!("Host: {addr}"), "X_User_Id: a"],
        )
        .await;
        assert_bad_request(&r, "identity with _");
        let r = h2_get(&mut c, &uri, &[("x_user_id", "a")]).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        s.gw.stop().await;
    }
}

/// HTTP/2 sends one `cookie` field per cookie; the HTTP/1.1 upstream gets one `Cookie`
/// header, `; `-joined, without `sRefreshToken`. Several HTTP/1.1 Cookie lines are joined too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_crumbs_are_joined_into_one_header() {
    let s = setup("").await;
    let addr = s.gw.public_addr;
    let mut c = wire::h2c(addr).await;
    let uri = format!("http://{addr}/public/x");
    let r = h2_get(
        &mut c,
        &uri,
        &[
            ("cookie", "a=1"),
            ("cookie", "sRefreshToken=secret"),
            ("cookie", "b=2; c=3"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.upstream("cookie"), ["a=1; b=2; c=3"]);

    let r = get(
        addr,
        "/public/x",
        &[
            &format!("Host: {addr}"),
            "Cookie: a=1; sRefreshToken=secret",
            "Cookie: b=2",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream("cookie"), ["a=1; b=2"]);
    s.gw.stop().await;
}

// ---- item 10: transfer codings ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_codings_other_than_chunked_are_refused() {
    let s = setup("").await;
    let addr = s.gw.public_addr;
    let post = |te_lines: &str, version: &str| {
        format!(
            "POST /public/x {version}\r\nHost: {addr}\r\n{te_lines}Connection: close\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n"
        )
    };

    // Plain chunked (any case) is forwarded.
    for te in ["chunked", "Chunked"] {
        let r = wire::http1_raw(
            addr,
            &post(&format!("Transfer-Encoding: {te}\r\n"), "HTTP/1.1"),
        )
        .await;
        assert_eq!(r.status, 200, "{te}: {r:?}");
        assert_eq!(r.json()["body"], "hello", "{te}");
    }

    // hyper frames these as chunked and hands them on; the gateway answers 501 (main
    // forwarded them).
    for lines in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let r = wire::http1_raw(addr, &post(lines, "HTTP/1.1")).await;
        assert_eq!(r.status, 501, "{lines:?}: {r:?}");
        assert_eq!(r.json()["error"], "not_implemented", "{lines:?}");
    }

    // hyper itself refuses these with a bare 400 before the gateway sees them.
    for (lines, version) in [
        ("Transfer-Encoding: identity\r\n", "HTTP/1.1"),
        ("Transfer-Encoding: chunked, identity\r\n", "HTTP/1.1"),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "HTTP/1.1",
        ),
        ("Transfer-Encoding: chunked\r\n", "HTTP/1.0"),
    ] {
        let r = wire::http1_raw(addr, &post(lines, version)).await;
        assert_eq!(r.status, 400, "{lines:?} {version}: {r:?}");
        assert!(r.body.is_empty(), "hyper's own 400 has no body: {r:?}");
    }
    s.gw.stop().await;
}

/// One HTTP/2 request written frame by frame (hyper's client strips `Transfer-Encoding`
/// before sending, so it cannot show this): the h2 layer resets a stream that carries
/// `Transfer-Encoding` (RFC 9113 §8.2.2) before the gateway sees it. Returns the type of the
/// first frame the server sends on stream 1: HEADERS (1) or RST_STREAM (3), with its payload.
async fn raw_h2_first_frame_on_stream_1(addr: SocketAddr, extra: &[(&str, &str)]) -> (u8, Vec<u8>) {
    fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
        // Literal header field without indexing, new name, no Huffman coding (RFC 7541 §6.2.2).
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    let path = "/public/x";
    block.push(0x04); // :path, indexed name, literal value
    block.push(path.len() as u8);
    block.extend_from_slice(path.as_bytes());
    let authority = addr.to_string();
    block.push(0x01); // :authority, indexed name, literal value
    block.push(authority.len() as u8);
    block.extend_from_slice(authority.as_bytes());
    for (k, v) in extra {
        literal(&mut block, k, v);
    }
    let mut out = wire::H2_PREFACE.to_vec();
    out.extend_from_slice(wire::H2_SETTINGS);
    let len = block.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x1, 0x5, 0, 0, 0, 1]); // HEADERS, END_STREAM | END_HEADERS, stream 1
    out.extend_from_slice(&block);

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&out).await.unwrap();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.unwrap();
            if head[3] == 0x4 && head[4] & 0x1 == 0 {
                // Acknowledge the server's SETTINGS.
                s.write_all(&[0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]).await.unwrap();
            }
            if stream == 1 && (head[3] == 0x1 || head[3] == 0x3) {
                return (head[3], payload);
            }
        }
    };
    tokio::time::timeout(wire::IO_TIMEOUT, read)
        .await
        .expect("a frame on stream 1 in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_transfer_encoding_is_refused_by_the_h2_layer() {
    let s = setup("").await;
    let addr = s.gw.public_addr;
    // The hand-written request is answered (HEADERS) without the header...
    let (kind, _) = raw_h2_first_frame_on_stream_1(addr, &[]).await;
    assert_eq!(kind, 0x1, "a response HEADERS frame");
    // ...and reset with PROTOCOL_ERROR (1) with it.
    for te in ["chunked", "gzip, chunked"] {
        let (kind, payload) =
            raw_h2_first_frame_on_stream_1(addr, &[("transfer-encoding", te)]).await;
        assert_eq!((kind, payload), (0x3, vec![0, 0, 0, 1]), "{te}");
    }
    s.gw.stop().await;
}
