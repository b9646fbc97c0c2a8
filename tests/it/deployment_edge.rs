//! Behind a load balancer, over real sockets (issue 9 items 1 and 8): the gateway's own origin
//! from a trusted proxy's `X-Forwarded-Proto/-Host` and `Forwarded`, `server.public_origins`,
//! integer user ids from upstreams and the admin API, and `X-Request-Id` on every request —
//! over HTTP/1.1 (hyper client, raw TCP) and h2c.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use tokio::net::TcpListener;

use crate::support::client::AdminClient;
use crate::support::config::ADMIN_KEY;
use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, Browser, Resp, TestUpstream};

const TRUSTED_LOOPBACK: &str = r#"server.trusted_proxies = ["127.0.0.1"]"#;
/// Trusts some proxies, but not the test client on 127.0.0.1.
const TRUSTED_ELSEWHERE: &str = r#"server.trusted_proxies = ["10.0.0.0/8"]"#;

struct Setup {
    _db: db::TestSqlite,
    _up: TestUpstream,
    gw: Gateway,
}

async fn setup(extra: &str) -> Setup {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let gw = start_gateway(test_config(&db.url(), &up.url(), extra), Clock::system()).await;
    Setup {
        _db: db,
        _up: up,
        gw,
    }
}

/// A browser with a fresh session on `gw`.
async fn logged_in(gw: &Gateway, user: &str) -> Browser {
    let mut b = Browser::new(gw.public_addr);
    b.login(user).await;
    b
}

/// `POST path` with the browser's cookies and `headers`.
async fn post(b: &mut Browser, path: &str, headers: &[(&str, &str)]) -> Resp {
    b.send(Method::POST, path, headers).await
}

fn assert_forbidden_origin(r: &Resp, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.json()["error"], "forbidden_origin", "{what}");
}

/// A request on a new h2c (prior knowledge) connection; returns status, headers and body.
async fn h2(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut send = wire::h2c(addr).await;
    let req = wire::request(method, &format!("http://{addr}{path}"), headers);
    wire::h2_send(&mut send, req).await
}

/// The browser's cookies as one `Cookie` value; `sRefreshToken` only with `refresh`.
fn cookie_header(b: &Browser, refresh: bool) -> String {
    b.jar
        .cookies
        .iter()
        .filter(|(k, _)| refresh || k.as_str() != "sRefreshToken")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------------------
// Item 1: the gateway's own origin behind a TLS-terminating proxy.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_forwarded_proto_makes_same_origin_refresh_and_logout_work() {
    let s = setup(TRUSTED_LOOPBACK).await;
    let host = s.gw.public_addr.to_string();
    let https_origin = format!("https://{host}");
    let mut b = logged_in(&s.gw, "lb-user").await;

    // The proxy terminated TLS: the browser's page is https://<Host>.
    let r = post(
        &mut b,
        "/auth/refresh",
        &[("x-forwarded-proto", "https"), ("origin", &https_origin)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.set_cookies().is_empty(), "a refresh sets new cookies");
    // The proxy also names the public host.
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "App.Example.com:443"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Not what the browser saw: http while the proxy says https; the proxy's own host.
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("x-forwarded-proto", "https"),
            ("origin", &format!("http://{host}")),
        ],
    )
    .await;
    assert_forbidden_origin(&r, "http origin behind an https proxy");
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("x-forwarded-proto", "https"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_forbidden_origin(&r, "foreign origin");

    // Logout works behind the proxy too, and really ends the session.
    let before_logout = b.clone();
    let r = post(
        &mut b,
        "/auth/logout",
        &[("x-forwarded-proto", "https"), ("origin", &https_origin)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut old = before_logout;
    let r = post(
        &mut old,
        "/auth/refresh",
        &[("x-forwarded-proto", "https"), ("origin", &https_origin)],
    )
    .await;
    assert_eq!(r.status, 401, "the logged-out session cannot refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_refresh_over_http2() {
    let s = setup(TRUSTED_LOOPBACK).await;
    let addr = s.gw.public_addr;
    let b = logged_in(&s.gw, "h2-lb-user").await;
    let cookie = cookie_header(&b, true);
    let (status, headers, body) = h2(
        addr,
        Method::POST,
        "/auth/refresh",
        &[
            ("cookie", &cookie),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers.get_all("set-cookie").iter().count() >= 3);
    let (status, _, _) = h2(
        addr,
        Method::POST,
        "/auth/refresh",
        &[
            ("cookie", &cookie),
            ("x-forwarded-proto", "https"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_peer_forwarded_headers_are_ignored() {
    let s = setup(TRUSTED_ELSEWHERE).await;
    let host = s.gw.public_addr.to_string();
    let mut b = logged_in(&s.gw, "direct-user").await;
    for (what, headers) in [
        (
            "X-Forwarded-Proto",
            vec![
                ("x-forwarded-proto", "https".to_string()),
                ("origin", format!("https://{host}")),
            ],
        ),
        (
            "X-Forwarded-Host",
            vec![
                ("x-forwarded-proto", "https".to_string()),
                ("x-forwarded-host", "app.example.com".to_string()),
                ("origin", "https://app.example.com".to_string()),
            ],
        ),
        (
            "Forwarded",
            vec![
                ("forwarded", "proto=https;host=app.example.com".to_string()),
                ("origin", "https://app.example.com".to_string()),
            ],
        ),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = post(&mut b, "/auth/refresh", &h).await;
        assert_forbidden_origin(&r, what);
        let r = post(&mut b, "/auth/logout", &h).await;
        assert_forbidden_origin(&r, what);
    }
    // Its real origin still works.
    let r = post(
        &mut b,
        "/auth/refresh",
        &[("origin", &format!("http://{host}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_rfc7239_forwarded_first_element_is_the_client_facing_hop() {
    let s = setup(TRUSTED_LOOPBACK).await;
    let mut b = logged_in(&s.gw, "forwarded-user").await;
    // Two proxies: the edge (client-facing) wrote the first element, the inner one the second.
    let forwarded = "for=203.0.113.9;proto=https;host=\"app.example.com\", \
                     for=10.0.0.1;proto=http;host=internal.svc:8080";
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("forwarded", forwarded),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("forwarded", forwarded),
            ("origin", "http://internal.svc:8080"),
        ],
    )
    .await;
    assert_forbidden_origin(&r, "the inner hop's origin");
    // `Forwarded` wins over `X-Forwarded-*`.
    let r = post(
        &mut b,
        "/auth/refresh",
        &[
            ("forwarded", "proto=https;host=app.example.com"),
            ("x-forwarded-host", "other.example"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_origins_are_accepted_from_any_peer() {
    let s = setup(
        r#"server.public_origins = ["https://App.example.com:443", "https://other.example:8443"]"#,
    )
    .await;
    let mut b = logged_in(&s.gw, "public-origin-user").await;
    for origin in ["https://app.example.com", "https://other.example:8443"] {
        let r = post(&mut b, "/auth/refresh", &[("origin", origin)]).await;
        assert_eq!(r.status, 200, "{origin}: {}", r.text());
    }
    for origin in [
        "https://evil.example",
        "http://app.example.com",
        "https://other.example",
    ] {
        let r = post(&mut b, "/auth/refresh", &[("origin", origin)]).await;
        assert_forbidden_origin(&r, origin);
    }
    let r = post(
        &mut b,
        "/auth/logout",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// WebSocket handshakes use the same own-origin rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_behind_a_trusted_proxy() {
    for (extra, expected) in [(TRUSTED_LOOPBACK, "101"), (TRUSTED_ELSEWHERE, "403")] {
        let s = setup(extra).await;
        let b = logged_in(&s.gw, "ws-user").await;
        let req = format!(
            "GET /api/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Origin: https://app.example.com\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: app.example.com\r\nCookie: {}\r\n\r\n",
            s.gw.public_addr,
            cookie_header(&b, false)
        );
        let head = wire::http1_raw(s.gw.public_addr, &req).await.head;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {expected}")),
            "{extra}: {head}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Item 8: integer user ids.
// ---------------------------------------------------------------------------------------

/// An upstream that answers every request with `sessiongate-create: <?create=…>` (percent
/// decoded) when asked, and echoes the identity it received as JSON.
async fn control_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let create = req.uri().query().and_then(|q| {
                        q.split('&')
                            .find_map(|kv| kv.strip_prefix("create="))
                            .map(|v| {
                                percent_encoding::percent_decode_str(v)
                                    .decode_utf8_lossy()
                                    .into_owned()
                            })
                    });
                    let user = req
                        .headers()
                        .get("x-user-id")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    let mut resp = Response::new(Full::new(Bytes::from(
                        serde_json::json!({ "user": user }).to_string(),
                    )));
                    if let Some(c) = create {
                        resp.headers_mut()
                            .insert("sessiongate-create", c.parse().unwrap());
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

fn encoded(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_user_id_in_session_control() {
    let db = db::TestSqlite::new();
    let (up, task) = control_upstream().await;
    let cfg = test_config(&db.url(), &format!("http://{up}"), "");
    let gw = start_gateway(cfg, Clock::system()).await;

    // The README's snippet with an ORM's integer id.
    let mut b = Browser::new(gw.public_addr);
    let create = r#"{"user_id": 42, "jwt_payload": {"role": "member"}}"#;
    let r = b
        .get(&format!("/auth/login?create={}", encoded(create)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(b.jar.cookies.contains_key("sAccessToken"));
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["user"],
        "42",
        "the upstream sees the id in decimal"
    );

    let r = Browser::new(gw.public_addr)
        .get(&format!(
            "/auth/login?create={}",
            encoded(r#"{"user_id": 18446744073709551615}"#)
        ))
        .await;
    assert_eq!(r.status, 200, "u64::MAX: {}", r.text());

    for bad in [
        r#"{"user_id": 4.2}"#,
        r#"{"user_id": 1e3}"#,
        r#"{"user_id": true}"#,
        r#"{"user_id": null}"#,
        r#"{"user_id": {"id": 42}}"#,
    ] {
        let mut c = Browser::new(gw.public_addr);
        let r = c.get(&format!("/auth/login?create={}", encoded(bad))).await;
        assert_eq!(r.status, 502, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"], "bad_session_control", "{bad}");
        assert!(
            r.text().contains("a string or an integer user_id"),
            "{bad}: the message says what is expected: {}",
            r.text()
        );
        assert!(
            !c.jar.cookies.contains_key("sAccessToken"),
            "{bad}: no session"
        );
    }
    gw.shutdown();
    gw.wait().await;
    task.abort();
}

async fn admin_post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    AdminClient::new(addr)
        .raw(Method::POST, path, Some(ADMIN_KEY), body.to_string())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_user_id_in_the_admin_api() {
    let s = setup("").await;
    let admin = s.gw.admin_addr;
    let r = admin_post(admin, "/v1/sessions", r#"{"user_id": 42}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user_id"], "42");
    let r = admin_post(
        admin,
        "/v1/sessions",
        r#"{"user_id": -7, "jwt_payload": {}}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user_id"], "-7");
    // The integer and the string name the same user.
    let r = admin_post(admin, "/v1/sessions", r#"{"user_id": "42"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = AdminClient::new(admin)
        .call(Method::GET, "/v1/users/42/sessions", None)
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["sessions"].as_array().map(Vec::len), Some(2), "{body}");

    for bad in [
        r#"{"user_id": 4.2}"#,
        r#"{"user_id": false}"#,
        r#"{"user_id": null}"#,
        r#"{"user_id": [42]}"#,
    ] {
        let r = admin_post(admin, "/v1/sessions", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            r.text().contains("a string or an integer user_id"),
            "{bad}: {}",
            r.text()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Item 8: X-Request-Id.
// ---------------------------------------------------------------------------------------

fn is_generated_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_from_an_untrusted_client_is_replaced_and_reaches_upstream_and_client() {
    let s = setup(TRUSTED_ELSEWHERE).await;
    let mut b = Browser::new(s.gw.public_addr);
    let r = b
        .send(
            Method::GET,
            "/public/x",
            &[("x-request-id", "chosen-by-client")],
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("the client gets an id");
    assert!(is_generated_id(&id), "{id}");
    assert_eq!(r.json()["headers"]["x-request-id"], serde_json::json!([id]));
    let again = b.get("/public/x").await.header("x-request-id").unwrap();
    assert!(
        is_generated_id(&again) && again != id,
        "a new id per request"
    );

    // Refusals and the gateway's own endpoints carry one too.
    for (status, r) in [
        (401, b.get("/api/x").await),
        (401, b.post("/auth/refresh").await),
        (200, b.get("/.well-known/jwks.json").await),
        (
            403,
            post(
                &mut b,
                "/auth/refresh",
                &[("origin", "https://evil.example")],
            )
            .await,
        ),
        (
            400,
            b.send(Method::GET, "/public/%252e", &[("x-request-id", "x")])
                .await,
        ),
    ] {
        assert_eq!(r.status, status, "{}", r.text());
        let id = r.header("x-request-id").unwrap_or_default();
        assert!(is_generated_id(&id), "{status}: {id:?}");
    }
    // A 400 for the head itself (duplicate Host), over raw HTTP/1.1.
    let head = wire::http1_raw(
        s.gw.public_addr,
        "GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: mine\r\n\r\n",
    )
    .await
    .head;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-request-id:"))
        .unwrap_or_else(|| panic!("no request id: {head}"));
    assert!(is_generated_id(line[13..].trim()), "{line}");

    // h2c too.
    let (status, headers, body) = h2(
        s.gw.public_addr,
        Method::GET,
        "/public/h2",
        &[("x-request-id", "chosen-by-client")],
    )
    .await;
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    assert!(is_generated_id(&id), "{id}");
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["headers"]["x-request-id"], serde_json::json!([id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_from_a_trusted_proxy_is_kept_when_valid() {
    let s = setup(TRUSTED_LOOPBACK).await;
    let mut b = Browser::new(s.gw.public_addr);
    let lb_id = "Root=1-67891233-abcdef012345678912345678;lb=edge";
    let r = b
        .send(Method::GET, "/public/x", &[("x-request-id", lb_id)])
        .await;
    assert_eq!(r.header("x-request-id").as_deref(), Some(lb_id));
    assert_eq!(
        r.json()["headers"]["x-request-id"],
        serde_json::json!([lb_id])
    );
    let r = b
        .send(Method::GET, "/api/x", &[("x-request-id", lb_id)])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-request-id").as_deref(), Some(lb_id));

    let long = "a".repeat(129);
    for bad in [&long[..], "with space", ""] {
        let r = b
            .send(Method::GET, "/public/x", &[("x-request-id", bad)])
            .await;
        let id = r.header("x-request-id").unwrap();
        assert!(is_generated_id(&id), "{bad:?} replaced by {id}");
        assert_eq!(r.json()["headers"]["x-request-id"], serde_json::json!([id]));
    }
    let r = b
        .send(
            Method::GET,
            "/public/x",
            &[("x-request-id", "one"), ("x-request-id", "two")],
        )
        .await;
    let id = r.header("x-request-id").unwrap();
    assert!(is_generated_id(&id), "two ids: replaced by {id}");
    let ok = "a".repeat(128);
    let r = b
        .send(Method::GET, "/public/x", &[("x-request-id", &ok)])
        .await;
    assert_eq!(r.header("x-request-id").as_deref(), Some(ok.as_str()));

    let (_, headers, body) = h2(
        s.gw.public_addr,
        Method::GET,
        "/public/h2",
        &[("x-request-id", lb_id)],
    )
    .await;
    assert_eq!(headers["x-request-id"], lb_id);
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["headers"]["x-request-id"], serde_json::json!([lb_id]));
}
