//! Session operations an attacker or an unlucky browser can reach (issue 8 items 3, 4 and 8),
//! over real sockets: logout after access-token expiry, `sessiongate-revoke` and
//! `sessiongate-update-payload` on a public session-control route, and the identity values
//! a session may be created with.
//!
//! The upstream here does what each request asks: `x-test-control: <header name>` and
//! `x-test-value: <value>` make it answer with that session-control header (`PAD` in the value
//! replaced by `x-test-pad` letters), and it echoes the request like the harness upstream.
//! Time past access-token expiry (60 s in the test config) is driven by the injected clock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use sessiongate::store::SessionStore;
use tokio::net::TcpListener;

use crate::support::{db, wire};
use crate::support::{start_gateway, test_config, Browser, Resp};

/// The upstream that sends whatever session control the request asks for.
struct ControlUpstream {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn control_handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let control = text("x-test-control");
    let pad: usize = text("x-test-pad").and_then(|v| v.parse().ok()).unwrap_or(0);
    let value = text("x-test-value").map(|v| v.replace("PAD", &"a".repeat(pad)));
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_string(),
            serde_json::json!([String::from_utf8_lossy(v.as_bytes())]),
        );
    }
    let echo = serde_json::json!({"path": req.uri().path(), "headers": headers});
    let mut resp = Response::new(Full::new(Bytes::from(echo.to_string())));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let (Some(name), Some(value)) = (control, value) {
        resp.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    Ok(resp)
}

impl ControlUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(control_handler))
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

struct Setup {
    gw: Gateway,
    clock: Clock,
    _up: ControlUpstream,
}

async fn setup(store_url: &str) -> Setup {
    let up = ControlUpstream::start().await;
    let clock = Clock::system();
    let gw = start_gateway(test_config(store_url, &up.url(), ""), clock.clone()).await;
    Setup { gw, clock, _up: up }
}

/// A request to `path` whose upstream answers with `control: value`.
async fn controlled(
    b: &mut Browser,
    method: Method,
    path: &str,
    control: &str,
    value: &str,
) -> Resp {
    b.send(
        method,
        path,
        &[("x-test-control", control), ("x-test-value", value)],
    )
    .await
}

/// Logs in through the public session-control route `/auth/login`.
async fn login(b: &mut Browser, user: &str) -> String {
    let create = serde_json::json!({"user_id": user, "jwt_payload": {"role": "member"}});
    let r = controlled(
        b,
        Method::POST,
        "/auth/login",
        "sessiongate-create",
        &create.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "login: {}", r.text());
    handle_of(b)
}

fn claims_of(token: &str) -> serde_json::Value {
    let body = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64URL.decode(body).unwrap()).unwrap()
}

/// The session handle named by the browser's access token.
fn handle_of(b: &Browser) -> String {
    claims_of(&b.jar.cookies["sAccessToken"])["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `token` with its claims replaced and the original header and signature kept.
fn with_claims(token: &str, claims: &serde_json::Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let body = B64URL.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{}.{}", parts[0], body, parts[2])
}

async fn session_exists(gw: &Gateway, handle: &str) -> bool {
    let now = gw.state.clock.now_ms();
    gw.state
        .sessions
        .store()
        .session(handle, now)
        .await
        .unwrap()
        .is_some()
}

fn assert_cleared(r: &Resp) {
    assert_eq!(r.header("id-refresh-token").as_deref(), Some("remove"));
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(
        cookies.iter().all(|c| c.contains("Max-Age=0")),
        "{cookies:?}"
    );
}

// ---- Item 3: logout after access-token expiry ----

/// The SDK's sequence: login → access token expires → POST logout with the cookies the
/// browser sends to that path (never `sRefreshToken`) → the old refresh token is refused.
/// Twice: a browser that still sends the expired `sAccessToken` (its clock is behind the
/// gateway's) gets 200 at once; one that dropped it at its `Expires` gets `try_refresh_token`,
/// refreshes and retries, as the SDK does.
async fn logout_after_expiry(store_url: &str) {
    let s = setup(store_url).await;
    for dropped in [false, true] {
        let mut b = Browser::new(s.gw.public_addr);
        let handle = login(&mut b, "alice").await;
        let before_logout = b.clone();
        s.clock.advance(Duration::from_secs(61));
        assert_eq!(b.get("/api/me").await.json()["error"], "try_refresh_token");
        if dropped {
            b.jar.cookies.remove("sAccessToken");
            let r = b.post("/auth/logout").await;
            assert_eq!(r.status, 401, "{}", r.text());
            assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
            assert!(r.set_cookies().is_empty(), "cookies stay for the refresh");
            assert_eq!(b.refresh().await.status, 200);
        }
        let after_refresh = b.clone();

        let r = b.post("/auth/logout").await;
        assert_eq!(r.status, 200, "dropped={dropped}: {}", r.text());
        assert_cleared(&r);
        assert!(
            !session_exists(&s.gw, &handle).await,
            "dropped={dropped}: the session row is gone"
        );
        for old in [before_logout, after_refresh] {
            let r = old.clone().refresh().await;
            assert_eq!(r.status, 401, "dropped={dropped}: {}", r.text());
            assert_eq!(r.json(), serde_json::json!({"error": "unauthorised"}));
        }
    }
    let revoked = &s.gw.state.metrics.sessions_revoked_total;
    assert_eq!(revoked.with_label_values(&["logout"]).get(), 2);
    s.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_after_access_expiry_revokes_the_session_sqlite() {
    let db = db::TestSqlite::new();
    logout_after_expiry(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_after_access_expiry_revokes_the_session_mysql() {
    let db = db::TestMysql::new();
    logout_after_expiry(&db.url()).await;
}

/// The same over HTTP/2 (h2c), with the request built by hand the way the browser sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_after_access_expiry_over_http2() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut b = Browser::new(s.gw.public_addr);
    let handle = login(&mut b, "alice").await;
    s.clock.advance(Duration::from_secs(61));

    let mut send = wire::h2c(s.gw.public_addr).await;
    let cookie = format!(
        "sAccessToken={}; sIdRefreshToken={}",
        b.jar.cookies["sAccessToken"], b.jar.cookies["sIdRefreshToken"]
    );
    let anti_csrf = b.jar.anti_csrf.clone().unwrap();
    let req = wire::request(
        Method::POST,
        &format!("http://{}/auth/logout", s.gw.public_addr),
        &[("cookie", &cookie), ("anti-csrf", &anti_csrf)],
    );
    // `h2_send` asserts that the answer came over HTTP/2.
    let (status, headers, _) = wire::h2_send(&mut send, req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["id-refresh-token"], "remove");
    assert!(!session_exists(&s.gw, &handle).await);
    let r = b.refresh().await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "unauthorised");
    s.gw.stop().await;
}

/// A browser that has a session but no access token naming it gets `try_refresh_token`
/// (cookies untouched); the SDK refreshes, retries, and the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_a_usable_access_token_asks_for_refresh() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut b = Browser::new(s.gw.public_addr);
    login(&mut b, "alice").await;
    b.jar.cookies.remove("sAccessToken");

    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    assert!(r.set_cookies().is_empty());

    assert_eq!(b.refresh().await.status, 200);
    let handle = handle_of(&b);
    let old = b.clone();
    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!session_exists(&s.gw, &handle).await);
    assert_eq!(old.clone().refresh().await.status, 401);

    // With no session at all, logout is still a plain 200 that clears cookies.
    let r = Browser::new(s.gw.public_addr).post("/auth/logout").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cleared(&r);
    s.gw.stop().await;
}

/// An expired token whose claims were changed to name someone else's session, or re-signed
/// with `alg: none`, ends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_a_forged_expired_token_revokes_nothing() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut victim = Browser::new(s.gw.public_addr);
    let victim_handle = login(&mut victim, "victim").await;
    let mut attacker = Browser::new(s.gw.public_addr);
    login(&mut attacker, "attacker").await;
    s.clock.advance(Duration::from_secs(61));

    let own = attacker.jar.cookies["sAccessToken"].clone();
    let mut claims = claims_of(&own);
    claims["sid"] = victim_handle.clone().into();
    claims["sub"] = "victim".into();
    let tampered = with_claims(&own, &claims);
    let none_header = B64URL.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let alg_none = format!(
        "{none_header}.{}.",
        B64URL.encode(serde_json::to_vec(&claims).unwrap())
    );
    for (name, token) in [("tampered", &tampered), ("alg none", &alg_none)] {
        let mut forger = attacker.clone();
        forger
            .jar
            .cookies
            .insert("sAccessToken".into(), token.clone());
        let r = forger.post("/auth/logout").await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "try_refresh_token", "{name}");
        // Without sIdRefreshToken: a plain 200, still nothing revoked.
        forger.jar.cookies.remove("sIdRefreshToken");
        assert_eq!(forger.post("/auth/logout").await.status, 200, "{name}");
        assert!(session_exists(&s.gw, &victim_handle).await, "{name}");
    }
    let r = victim.refresh().await;
    assert_eq!(r.status, 200, "the victim's session lives on: {}", r.text());
    let revoked = &s.gw.state.metrics.sessions_revoked_total;
    assert_eq!(revoked.with_label_values(&["logout"]).get(), 0);
    s.gw.stop().await;
}

// ---- Item 4: session control on a public route ----

/// `sessiongate-revoke: session` from the public session-control route `/auth/login` ends
/// the session, with a valid access token and with an expired one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_on_a_public_session_control_route_ends_the_session() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    for expired in [false, true] {
        let mut b = Browser::new(s.gw.public_addr);
        let handle = login(&mut b, "alice").await;
        let old = b.clone();
        if expired {
            s.clock.advance(Duration::from_secs(61));
        }
        let r = controlled(
            &mut b,
            Method::POST,
            "/auth/login/logout",
            "sessiongate-revoke",
            "session",
        )
        .await;
        assert_eq!(r.status, 200, "expired={expired}: {}", r.text());
        assert_cleared(&r);
        assert!(r.header("sessiongate-revoke").is_none());
        let refreshed = old.clone().refresh().await;
        assert_eq!(
            refreshed.status,
            401,
            "expired={expired}: {}",
            refreshed.text()
        );
        assert_eq!(refreshed.json()["error"], "unauthorised");
        assert!(!session_exists(&s.gw, &handle).await, "expired={expired}");
        if !expired {
            // The route reads the session as an optional route does: identity forwarded.
            assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
        }
    }
    s.gw.stop().await;
}

/// `sessiongate-revoke: user` with an expired access token ends all of the user's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_user_with_an_expired_token_on_a_public_route() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut tab1 = Browser::new(s.gw.public_addr);
    login(&mut tab1, "bob").await;
    let mut tab2 = Browser::new(s.gw.public_addr);
    login(&mut tab2, "bob").await;
    s.clock.advance(Duration::from_secs(61));
    let r = controlled(
        &mut tab1,
        Method::POST,
        "/auth/login/logout",
        "sessiongate-revoke",
        "user",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tab2.refresh().await.status, 401);
    s.gw.stop().await;
}

/// With no session at all, `sessiongate-revoke` is a 502 `bad_session_control`; with a
/// browser session that no genuine token names, `try_refresh_token`; a forged token revokes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_without_a_session() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut nobody = Browser::new(s.gw.public_addr);
    let r = controlled(
        &mut nobody,
        Method::POST,
        "/auth/login/logout",
        "sessiongate-revoke",
        "session",
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "bad_session_control");

    let mut victim = Browser::new(s.gw.public_addr);
    let victim_handle = login(&mut victim, "victim").await;
    let mut forger = Browser::new(s.gw.public_addr);
    login(&mut forger, "mallory").await;
    let own = forger.jar.cookies["sAccessToken"].clone();
    let mut claims = claims_of(&own);
    claims["sid"] = victim_handle.clone().into();
    forger
        .jar
        .cookies
        .insert("sAccessToken".into(), with_claims(&own, &claims));
    let r = controlled(
        &mut forger,
        Method::POST,
        "/auth/login/logout",
        "sessiongate-revoke",
        "session",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    assert!(r.set_cookies().is_empty());
    assert!(session_exists(&s.gw, &victim_handle).await);
    assert_eq!(victim.refresh().await.status, 200);
    s.gw.stop().await;
}

/// `sessiongate-update-payload` on the public session-control route re-issues the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_payload_on_a_public_session_control_route() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let mut b = Browser::new(s.gw.public_addr);
    login(&mut b, "alice").await;
    let r = controlled(
        &mut b,
        Method::POST,
        "/auth/login/profile",
        "sessiongate-update-payload",
        r#"{"role":"editor"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.set_cookies().len(), 1);
    let r = b.get("/api/me").await;
    assert_eq!(
        r.upstream_header("x-jwt-payload").as_deref(),
        Some(r#"{"role":"editor"}"#)
    );
    s.gw.stop().await;
}

// ---- Item 8: identity values ----

/// User ids that HTTP would alter on the way upstream, or that carry control characters, are
/// refused at creation with 502 `bad_session_control`, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_bad_user_ids() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let created = || s.gw.state.metrics.sessions_created_total.get();
    for user in [
        " alice",
        "alice ",
        "\talice",
        "alice\t",
        "\u{a0}alice",
        "al\u{1}ice",
        "alice\u{7f}",
        "al\nice",
        "",
    ] {
        let before = created();
        let mut b = Browser::new(s.gw.public_addr);
        let create = format!(r#"{{"user_id":"{}"}}"#, json_escaped(user));
        let r = controlled(
            &mut b,
            Method::POST,
            "/auth/login",
            "sessiongate-create",
            &create,
        )
        .await;
        assert_eq!(r.status, 502, "{user:?}: {}", r.text());
        assert_eq!(r.json()["error"], "bad_session_control", "{user:?}");
        assert!(r.set_cookies().is_empty(), "{user:?}");
        assert_eq!(created(), before, "{user:?}");
    }
    // Inner spaces are fine.
    let mut b = Browser::new(s.gw.public_addr);
    login(&mut b, "alice smith").await;
    let r = b.get("/api/me").await;
    assert_eq!(
        r.upstream_header("x-user-id").as_deref(),
        Some("alice smith")
    );
    s.gw.stop().await;
}

/// `s` as the inside of a JSON string in plain ASCII (a header value cannot carry the rest).
fn json_escaped(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c.to_string(),
            c => format!("\\u{:04x}", c as u32),
        })
        .collect()
}

/// The length of the `sAccessToken=<jwt>` cookie a response set.
fn access_cookie_len(r: &Resp) -> usize {
    let c = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("sAccessToken="))
        .expect("an access-token cookie");
    c.split(';').next().unwrap().len()
}

/// Padding (a multiple of 3, so each step adds exactly 4 base64 characters) that takes a
/// cookie of `len` bytes with `pad` letters to the first size over 4096, and that size.
fn pad_over_limit(pad: usize, len: usize) -> (usize, usize) {
    let steps = (4097 - len).div_ceil(4);
    (pad + 3 * steps, len + 4 * steps)
}

/// A JWT payload whose access-token cookie would pass 4096 bytes is refused with a message
/// naming the size, at creation and at `sessiongate-update-payload`; one that fits exactly
/// is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jwt_payload_is_refused() {
    let db = db::TestSqlite::new();
    let s = setup(&db.url()).await;
    let create = r#"{"user_id":"alice","jwt_payload":{"pad":"PAD"}}"#;
    let login_with = |pad: usize| {
        let mut b = Browser::new(s.gw.public_addr);
        async move {
            let pad = pad.to_string();
            let r = b
                .send(
                    Method::POST,
                    "/auth/login",
                    &[
                        ("x-test-control", "sessiongate-create"),
                        ("x-test-value", create),
                        ("x-test-pad", &pad),
                    ],
                )
                .await;
            (b, r)
        }
    };
    let (_, r) = login_with(1500).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (over_pad, over_len) = pad_over_limit(1500, access_cookie_len(&r));

    let created = s.gw.state.metrics.sessions_created_total.get();
    let (_, r) = login_with(over_pad).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "bad_session_control");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{over_len} bytes")) && msg.contains("4096"),
        "{msg}"
    );
    assert!(r.set_cookies().is_empty());
    assert_eq!(s.gw.state.metrics.sessions_created_total.get(), created);

    // Three letters fewer: at most 4096 bytes, accepted.
    let (mut b, r) = login_with(over_pad - 3).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(access_cookie_len(&r), over_len - 4);
    assert!(over_len - 4 <= 4096);

    // Update: the same limit; the session keeps its payload.
    let small = r#"{"pad":"PAD"}"#;
    for (pad, status) in [(over_pad, 502), (over_pad - 3, 200)] {
        let pad = pad.to_string();
        let r = b
            .send(
                Method::POST,
                "/auth/login/profile",
                &[
                    ("x-test-control", "sessiongate-update-payload"),
                    ("x-test-value", small),
                    ("x-test-pad", &pad),
                ],
            )
            .await;
        assert_eq!(r.status, status, "pad {pad}: {}", r.text());
        if status == 502 {
            assert!(r.json()["message"].as_str().unwrap().contains("4096"));
            assert!(r.set_cookies().is_empty());
            let now = s.gw.state.clock.now_ms();
            let handle = handle_of(&b);
            let stored = s.gw.state.sessions.store().session(&handle, now).await;
            let stored = stored.unwrap().unwrap().jwt_payload;
            assert_eq!(
                stored["pad"].as_str().unwrap().len(),
                over_pad - 3,
                "unchanged"
            );
        }
    }
    s.gw.stop().await;
}
