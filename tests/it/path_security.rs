//! Path-based route bypasses over real sockets (issue 8, items 1, 9 and the path part of 13).
//!
//! HTTP/1.1 requests are written byte for byte on a raw TCP socket, so the request line is
//! exactly what an attacker sends; HTTP/2 requests go through hyper's h2c (prior knowledge)
//! client. What the upstream received is read from the echo upstream's answer.
//!
//! Layout: `/` public (the catch-all an attacker wants to land on), `/api` required,
//! `/login` public with session control (the shipped layout), `/app` required with
//! `path_params = "strip"`, `/ci` required and case-insensitive, `/cs` required.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use sessiongate::clock::Clock;

use crate::support::{db, wire};
use crate::support::{start_gateway, Browser, TestUpstream};

struct Setup {
    _up: TestUpstream,
    _db: db::TestSqlite,
    gw: sessiongate::app::Gateway,
    /// `Cookie` header value of a logged-in browser.
    cookie: String,
}

async fn setup() -> Setup {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let u = up.url();
    let toml = format!(
        r#"
server.listen = "127.0.0.1:0"
server.admin_listen = "127.0.0.1:0"
server.upstream_timeout_secs = 2
store.url = "{store}"
tokens.refresh_token.renew_path = "/auth/refresh"
cookie.secure = false
session.logout_path = "/auth/logout"

[[routes]]
name = "root"
path_prefix = "/"
upstream = "{u}"
auth = "public"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "{u}"

[[routes]]
name = "login"
path_prefix = "/login"
upstream = "{u}"
auth = "public"
session_control = true

[[routes]]
name = "app"
path_prefix = "/app"
upstream = "{u}"
path_params = "strip"

[[routes]]
name = "ci"
path_prefix = "/ci"
upstream = "{u}"
case_insensitive = true

[[routes]]
name = "cs"
path_prefix = "/cs"
upstream = "{u}"
"#,
        store = db.url()
    );
    let cfg = sessiongate::config::load_from_str(&toml).unwrap();
    let gw = start_gateway(cfg, Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    let r = b.get("/login/login?user=alice").await;
    assert_eq!(r.status, 200, "login: {}", r.text());
    let cookie = b
        .jar
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    Setup {
        _up: up,
        _db: db,
        gw,
        cookie,
    }
}

/// A response, over either protocol: its status and body.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    /// The path the echo upstream received.
    fn upstream_path(&self) -> String {
        assert_eq!(self.status, 200, "{self:?}");
        self.json()["path"].as_str().unwrap().to_string()
    }
}

/// Sends `GET <target> HTTP/1.1` with exactly these bytes as the request target.
async fn raw_get(addr: SocketAddr, target: &[u8], cookie: Option<&str>) -> Raw {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.extend_from_slice(format!("Cookie: {c}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let r = wire::http1_raw(addr, req).await;
    Raw {
        status: r.status,
        body: r.text(),
    }
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h2_get(send: &mut H2, addr: SocketAddr, path: &str, cookie: Option<&str>) -> Raw {
    let uri = format!("http://{addr}{path}");
    let headers: &[(&str, &str)] = match cookie {
        Some(c) => &[("cookie", c)],
        None => &[],
    };
    let (status, _, body) = wire::h2_send(send, wire::request(Method::GET, &uri, headers)).await;
    Raw {
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn assert_bad_request(r: &Raw, needle: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r:?}");
    let v = r.json();
    assert_eq!(v["error"], "bad_request", "{what}: {r:?}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
}

#[tokio::test]
async fn path_parameters_cannot_reach_a_required_route_through_a_public_one_http1() {
    let s = setup().await;
    let addr = s.gw.public_addr;
    let cookie = Some(s.cookie.as_str());

    // Before: routed to the public `/` route and forwarded unchanged (200, path /api;x/secret).
    for target in [
        "/api;x/secret",
        "/api;/secret",
        "/API/..;/api;jsessionid=1/secret",
    ] {
        let r = raw_get(addr, target.as_bytes(), None).await;
        assert_bad_request(&r, ";-parameters", target);
        // Refused on a reject route even with a valid session: the app would see another path.
        let r = raw_get(addr, target.as_bytes(), cookie).await;
        assert_bad_request(&r, ";-parameters", target);
    }
    // Before: the shipped layout's public login route, forwarded as /login/..;/app/secret.
    let r = raw_get(addr, b"/login/..;/app/secret", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = raw_get(addr, b"/login/..;x/app/secret", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    // A strip route forwards exactly the path it authorised.
    let r = raw_get(addr, b"/login/..;/app/secret", cookie).await;
    assert_eq!(r.upstream_path(), "/app/secret");
    let r = raw_get(addr, b"/app;jsessionid=abc/secret;v=1?q=1;2", cookie).await;
    assert_eq!(r.upstream_path(), "/app/secret");
    assert_eq!(r.json()["query"], "q=1;2", "the query is not a path");
    let r = raw_get(addr, b"/app;x/secret", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    // `%3B` is refused whichever way an upstream would read it.
    for target in ["/api%3Bx/secret", "/api%3bx/secret", "/app%3Bx/secret"] {
        let r = raw_get(addr, target.as_bytes(), cookie).await;
        assert_bad_request(&r, "%3B", target);
    }
    // The gateway's own endpoints do not take parameters either.
    let r = raw_get(addr, b"/auth/logout;x", cookie).await;
    assert_bad_request(&r, ";-parameters", "logout");
    // Paths without parameters are unaffected.
    let r = raw_get(addr, b"/api/secret", cookie).await;
    assert_eq!(r.upstream_path(), "/api/secret");
    let r = raw_get(addr, b"/public;x/y", None).await;
    assert_bad_request(&r, ";-parameters", "public reject route");
}

#[tokio::test]
async fn path_parameters_cannot_reach_a_required_route_through_a_public_one_http2() {
    let s = setup().await;
    let addr = s.gw.public_addr;
    let cookie = Some(s.cookie.as_str());
    let mut c = wire::h2c(addr).await;
    for path in ["/api;x/secret", "/api;/secret"] {
        let r = h2_get(&mut c, addr, path, None).await;
        assert_bad_request(&r, ";-parameters", path);
    }
    let r = h2_get(&mut c, addr, "/login/..;/app/secret", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = h2_get(&mut c, addr, "/login/..;/app/secret", cookie).await;
    assert_eq!(r.upstream_path(), "/app/secret");
    let r = h2_get(&mut c, addr, "/app;a=1/secret", cookie).await;
    assert_eq!(r.upstream_path(), "/app/secret");
    let r = h2_get(&mut c, addr, "/api%3Bx/secret", cookie).await;
    assert_bad_request(&r, "%3B", "h2 %3B");
}

#[tokio::test]
async fn double_encoding_and_overlong_utf8_are_refused() {
    let s = setup().await;
    let addr = s.gw.public_addr;
    let cases: &[(&str, &str)] = &[
        // Before: forwarded to the public route as-is; a decode-twice upstream sees /api/x.
        ("/%252e%252e/api/x", "double-encoded"),
        ("/x/%252E%252E/api/x", "double-encoded"),
        ("/api%252fx", "double-encoded"),
        ("/a%255cb", "double-encoded"),
        ("/a%2500", "double-encoded"),
        ("/a%253Bb", "double-encoded"),
        ("/a%25%32%65", "double-encoded"),
        // Overlong `.` (2, 3 and 4 bytes), a lone continuation byte, a truncated sequence.
        ("/%C0%AE%C0%AE/api/x", "UTF-8"),
        ("/%c0%ae", "UTF-8"),
        ("/%E0%80%AE", "UTF-8"),
        ("/%F0%80%80%AE", "UTF-8"),
        ("/%80", "UTF-8"),
        ("/caf%C3", "UTF-8"),
        ("/%ED%A0%80", "UTF-8"),
    ];
    for (target, needle) in cases {
        let r = raw_get(addr, target.as_bytes(), None).await;
        assert_bad_request(&r, needle, target);
    }
    let mut c = wire::h2c(addr).await;
    for (path, needle) in cases {
        let r = h2_get(&mut c, addr, path, None).await;
        assert_bad_request(&r, needle, path);
    }
    // Valid UTF-8 and ordinary escapes of `%` still pass, normalised.
    let r = raw_get(addr, b"/caf%c3%a9/100%25", None).await;
    assert_eq!(r.upstream_path(), "/caf%C3%A9/100%25");
}

#[tokio::test]
async fn raw_non_ascii_path_bytes_are_forwarded_percent_encoded() {
    let s = setup().await;
    let addr = s.gw.public_addr;
    // Before: the upstream received "/cafÃ©" (each byte widened to a char and re-encoded).
    let r = raw_get(addr, b"/caf\xc3\xa9/\xe6\x97\xa5", None).await;
    assert_eq!(r.upstream_path(), "/caf%C3%A9/%E6%97%A5");
    // Raw and escaped forms of one path reach the same route and the same upstream path.
    let r = raw_get(addr, b"/api/caf\xc3\xa9", Some(&s.cookie)).await;
    assert_eq!(r.upstream_path(), "/api/caf%C3%A9");
    let r = raw_get(addr, b"/api/caf\xc3\xa9", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    // Bytes that are not UTF-8 are refused (hyper's URI parser answers 400 before the gateway
    // sees them; this pins that behaviour).
    for target in [&b"/caf\xe9"[..], b"/\xc0\xae\xc0\xae/api", b"/\xff"] {
        let r = raw_get(addr, target, None).await;
        assert_eq!(r.status, 400, "{target:?}: {r:?}");
    }
    // HTTP/2 carries the same bytes in `:path`.
    let mut c = wire::h2c(addr).await;
    let r = h2_get(&mut c, addr, "/caf\u{e9}", None).await;
    assert_eq!(r.upstream_path(), "/caf%C3%A9");
}

#[tokio::test]
async fn case_insensitive_routes_match_any_ascii_case() {
    let s = setup().await;
    let addr = s.gw.public_addr;
    let cookie = Some(s.cookie.as_str());
    let mut c = wire::h2c(addr).await;
    for target in ["/CI/secret", "/Ci", "/cI/x/y"] {
        // Before: no such key; `/CI/secret` fell through to the public `/` route.
        let r = raw_get(addr, target.as_bytes(), None).await;
        assert_eq!(r.status, 401, "{target}: {r:?}");
        let r = h2_get(&mut c, addr, target, None).await;
        assert_eq!(r.status, 401, "h2 {target}: {r:?}");
        // Forwarded as the client wrote it: the upstream matches case-insensitively.
        let r = raw_get(addr, target.as_bytes(), cookie).await;
        assert_eq!(r.upstream_path(), *target);
    }
    let r = raw_get(addr, b"/CIA/x", None).await;
    assert_eq!(
        r.upstream_path(),
        "/CIA/x",
        "prefixes end on a segment boundary"
    );
    // Case-sensitive is the default: `/CS` is not `/cs`.
    let r = raw_get(addr, b"/cs/secret", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = raw_get(addr, b"/CS/secret", None).await;
    assert_eq!(r.upstream_path(), "/CS/secret");
}
