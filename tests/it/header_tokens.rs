//! Tokens in headers (issue 12 item 2) over real sockets: a real upstream, the gateway on
//! port 0, SQLite and MariaDB. A client that cannot keep cookies asks for header mode with
//! `st-auth-mode: header`, authenticates with `Authorization: Bearer <access token>`,
//! refreshes and logs out with a bearer token; rotation, grace replay and theft detection are
//! the cookie rules. Also: which token wins when a request carries both a cookie session and
//! a bearer token, `Authorization` values that are not the gateway's, `routes[].token_transfer`,
//! CORS, and the README's transcript, run verbatim. Time past access-token expiry (60 s) and
//! the refresh grace window (10 s) is driven by the gateway's injected clock.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;

use crate::support::client::Client;
use crate::support::config::GatewayToml;
use crate::support::db;
use crate::support::{start_gateway, test_config, Browser, Resp, TestUpstream};

/// A client that keeps no cookies: it sends what it is given.
struct Plain {
    base: String,
    client: Client,
}

impl Plain {
    fn new(gw: &Gateway) -> Self {
        Self {
            base: format!("http://{}", gw.public_addr),
            client: Client::new(),
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.client
            .send(b.body(Full::new(Bytes::new())).unwrap())
            .await
    }

    /// `method path` with `Authorization: Bearer token`.
    async fn bearer(&self, method: Method, path: &str, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.send(method, path, &[("authorization", &auth)]).await
    }

    /// Logs in `user` in header mode; the session's (access, refresh) tokens.
    async fn login(&self, user: &str) -> (String, String) {
        let r = self
            .send(
                Method::GET,
                &format!("/auth/login?user={user}"),
                &[("st-auth-mode", "header")],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        tokens(&r)
    }
}

/// The (access, refresh) tokens of a header-mode answer, which sets no cookie.
fn tokens(r: &Resp) -> (String, String) {
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    let at = r.header("st-access-token").expect("st-access-token");
    let rt = r.header("st-refresh-token").expect("st-refresh-token");
    assert!(!at.is_empty() && !rt.is_empty());
    (at, rt)
}

/// A header-mode answer that clears the client's tokens (and sets no cookie).
fn assert_cleared(r: &Resp) {
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(r.header("st-access-token").as_deref(), Some(""));
    assert_eq!(r.header("st-refresh-token").as_deref(), Some(""));
    assert_eq!(r.header("id-refresh-token").as_deref(), Some("remove"));
}

async fn gateway(store_url: &str, up: &TestUpstream, extra: &str) -> (Gateway, Clock) {
    let clock = Clock::system();
    let gw = start_gateway(test_config(store_url, &up.url(), extra), clock.clone()).await;
    (gw, clock)
}

/// login → bearer requests (no anti-CSRF) → expiry → try_refresh → bearer refresh → grace
/// replay → logout with the bearer → the session is gone.
async fn header_flow(store_url: &str) {
    let up = TestUpstream::start().await;
    let (gw, clock) = gateway(store_url, &up, "").await;
    let c = Plain::new(&gw);

    let r = c
        .send(
            Method::GET,
            "/auth/login?user=alice",
            &[("st-auth-mode", "header")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (at, rt) = tokens(&r);
    assert!(
        r.header("anti-csrf").is_none(),
        "a bearer needs no anti-CSRF"
    );
    assert!(r.header("id-refresh-token").unwrap().contains(';'));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert!(r.header("sessiongate-create").is_none());

    // The bearer authenticates; the upstream gets identity, not the gateway's token.
    let r = c.bearer(Method::GET, "/api/me", &at).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
    assert!(r.upstream_header("x-session-handle").is_some());
    assert_eq!(r.upstream_header("authorization"), None);
    // State-changing methods need no anti-CSRF header with a bearer token.
    let r = c.bearer(Method::POST, "/api/write", &at).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("authorization"), None);

    clock.advance(Duration::from_secs(61));
    let r = c.bearer(Method::GET, "/api/me", &at).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    assert!(r.set_cookies().is_empty());
    assert!(
        r.header("st-access-token").is_none(),
        "try_refresh keeps tokens"
    );
    // Not the cookie refresh page, even for a navigation: the client refreshes its bearer.
    let auth = format!("Bearer {at}");
    let r = c
        .send(
            Method::GET,
            "/app/page",
            &[("authorization", &auth), ("accept", "text/html")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));

    let r = c.bearer(Method::POST, "/auth/refresh", &rt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (at2, rt2) = tokens(&r);
    assert_ne!(at2, at);
    assert_ne!(rt2, rt);
    assert!(r.header("id-refresh-token").unwrap().contains(';'));
    let r = c.bearer(Method::GET, "/api/me", &at2).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));

    // A lost answer: the previous refresh token again within the grace window gets the
    // same tokens.
    let r = c.bearer(Method::POST, "/auth/refresh", &rt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tokens(&r), (at2.clone(), rt2.clone()));
    let m = &gw.state.metrics;
    assert_eq!(m.refresh_total.with_label_values(&["rotated"]).get(), 1);
    assert_eq!(
        m.refresh_total.with_label_values(&["grace_replay"]).get(),
        1
    );

    // `sessiongate-update-payload` re-issues the access token in its header.
    let r = c.bearer(Method::GET, "/update?role=admin", &at2).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert!(r.header("st-refresh-token").is_none());
    let at3 = r.header("st-access-token").unwrap();
    let r = c.bearer(Method::GET, "/api/me", &at3).await;
    assert_eq!(
        r.upstream_header("x-jwt-payload").as_deref(),
        Some(r#"{"role":"admin"}"#)
    );

    let r = c.bearer(Method::POST, "/auth/logout", &at2).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cleared(&r);
    let r = c.bearer(Method::POST, "/auth/refresh", &rt2).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    assert_cleared(&r);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_flow_sqlite() {
    let db = db::TestSqlite::new();
    header_flow(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_flow_mysql() {
    let db = db::TestMysql::new();
    header_flow(&db.url()).await;
}

/// The previous refresh token after the grace window is theft, through headers as through
/// cookies: the session is revoked (the current access token is refused at once, with
/// blacklisting on) and the current refresh token is dead too.
async fn theft(store_url: &str) {
    let up = TestUpstream::start().await;
    let (gw, clock) = gateway(store_url, &up, "tokens.access_token.blacklisting = true").await;
    let c = Plain::new(&gw);
    let (_, rt) = c.login("victim").await;
    let r = c.bearer(Method::POST, "/auth/refresh", &rt).await;
    let (at2, rt2) = tokens(&r);
    clock.advance(Duration::from_secs(11));
    let r = c.bearer(Method::POST, "/auth/refresh", &rt).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "token_theft_detected"})
    );
    assert_cleared(&r);
    let r = c.bearer(Method::GET, "/api/me", &at2).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    assert_cleared(&r);
    let r = c.bearer(Method::POST, "/auth/refresh", &rt2).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    let m = &gw.state.metrics;
    assert_eq!(m.refresh_total.with_label_values(&["theft"]).get(), 1);
    assert_eq!(m.token_theft_total.get(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theft_through_headers_sqlite() {
    let db = db::TestSqlite::new();
    theft(&db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theft_through_headers_mysql() {
    let db = db::TestMysql::new();
    theft(&db.url()).await;
}

/// A forged bearer token is not the gateway's: no session (401 `unauthorised` on a required
/// route, nothing refreshed or revoked), and on a public route it reaches the upstream
/// untouched, like any `Authorization` that is the application's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_authorization() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let (gw, _clock) = gateway(&db.url(), &up, "").await;
    let c = Plain::new(&gw);
    let (at, rt) = c.login("alice").await;
    // Tamper with the payload: the signature no longer matches.
    let mut parts: Vec<String> = at.split('.').map(str::to_string).collect();
    parts[1].insert(0, 'e');
    let forged = parts.join(".");

    let r = c.bearer(Method::GET, "/api/me", &forged).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), serde_json::json!({"error": "unauthorised"}));
    let r = c.bearer(Method::GET, "/opt/x", &forged).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-user-id"), None);
    assert_eq!(
        r.upstream_header("authorization"),
        Some(format!("Bearer {forged}"))
    );
    let basic = "Basic YWxpY2U6cHc=";
    let r = c
        .send(Method::GET, "/public/x", &[("authorization", basic)])
        .await;
    assert_eq!(r.upstream_header("authorization").as_deref(), Some(basic));
    // A forged refresh token refreshes nothing and revokes nothing.
    let r = c
        .bearer(Method::POST, "/auth/refresh", &format!("{rt}x"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    assert_cleared(&r);
    assert_eq!(c.bearer(Method::GET, "/api/me", &at).await.status, 200);

    // The gateway's own tokens never reach an upstream in `Authorization`, on any route.
    let r = c.bearer(Method::GET, "/public/x", &at).await;
    assert_eq!(r.upstream_header("authorization"), None);
    let r = c.bearer(Method::GET, "/public/x", &rt).await;
    assert_eq!(r.upstream_header("authorization"), None);
    gw.stop().await;
}

/// Both a cookie session and a bearer token: the gateway's bearer token wins (and needs no
/// anti-CSRF), even when it has expired; an `Authorization` that is not the gateway's leaves
/// the cookie session in charge and reaches the upstream untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_wins_over_cookies() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let (gw, clock) = gateway(&db.url(), &up, "").await;
    let c = Plain::new(&gw);
    let mut browser = Browser::new(gw.public_addr);
    browser.login("alice").await;
    let (bob_at, _) = c.login("bob").await;
    let bob = format!("Bearer {bob_at}");

    let r = browser
        .send(Method::GET, "/api/me", &[("authorization", &bob)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("bob"));
    assert_eq!(r.upstream_header("authorization"), None);
    // No anti-CSRF token is needed when the bearer authenticates.
    browser.jar.anti_csrf = None;
    let r = browser
        .send(Method::POST, "/api/write", &[("authorization", &bob)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("bob"));
    // Without the bearer, the same POST is the cookie session's and needs anti-CSRF.
    let r = browser.send(Method::POST, "/api/write", &[]).await;
    assert_eq!(r.json()["error"], "try_refresh_token");

    // The application's own bearer token: the cookie session is used, the header forwarded.
    let own = "Bearer app-own-token.abc.def";
    let r = browser
        .send(Method::GET, "/api/me", &[("authorization", own)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
    assert_eq!(r.upstream_header("authorization").as_deref(), Some(own));

    // An expired gateway bearer token still wins: the client is asked to refresh it.
    clock.advance(Duration::from_secs(61));
    browser.refresh().await;
    let r = browser.get("/api/me").await;
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
    let r = browser
        .send(Method::GET, "/api/me", &[("authorization", &bob)])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "try_refresh_token");
    gw.stop().await;
}

/// A browser that asks for header mode at the refresh endpoint with its cookies still gets
/// cookies: a page script cannot trade the HttpOnly refresh cookie for tokens it can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_refresh_answers_with_cookies() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let (gw, _clock) = gateway(&db.url(), &up, "").await;
    let mut browser = Browser::new(gw.public_addr);
    browser.login("alice").await;
    let r = browser
        .send(Method::POST, "/auth/refresh", &[("st-auth-mode", "header")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.set_cookies().len(), 3);
    assert!(r.header("st-access-token").is_none());
    assert!(r.header("st-refresh-token").is_none());
    gw.stop().await;
}

/// `routes[].token_transfer`: `header` issues tokens in headers without `st-auth-mode`;
/// `cookie` ignores both `st-auth-mode` and bearer tokens (the `Authorization` header is the
/// application's there, forwarded untouched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_token_transfer() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let toml = GatewayToml::new(&db.url(), &up.url())
        .route_attr("login", "token_transfer = \"header\"")
        .route_attr("opt", "token_transfer = \"cookie\"")
        .route_attr("api", "token_transfer = \"cookie\"")
        .render();
    let cfg = sessiongate::config::load_from_str(&toml).unwrap();
    let gw = start_gateway(cfg, Clock::system()).await;
    let c = Plain::new(&gw);
    let r = c.send(Method::GET, "/auth/login?user=alice", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (at, _) = tokens(&r);
    let r = c.bearer(Method::GET, "/api/me", &at).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorised");
    assert!(!r.set_cookies().is_empty(), "a cookie route clears cookies");
    let r = c.bearer(Method::GET, "/opt/x", &at).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-user-id"), None);
    assert_eq!(
        r.upstream_header("authorization"),
        Some(format!("Bearer {at}"))
    );
    // The default routes accept the same token.
    let r = c.bearer(Method::GET, "/app/x", &at).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));
    gw.stop().await;

    let toml = GatewayToml::new(&db.url(), &up.url())
        .route_attr("login", "token_transfer = \"cookie\"")
        .render();
    let cfg = sessiongate::config::load_from_str(&toml).unwrap();
    let gw = start_gateway(cfg, Clock::system()).await;
    let c = Plain::new(&gw);
    let r = c
        .send(
            Method::GET,
            "/auth/login?user=alice",
            &[("st-auth-mode", "header")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.set_cookies().len(), 3);
    assert!(r.header("st-access-token").is_none());
    gw.stop().await;
}

/// An allowed origin may read the token headers; its preflight may send `Authorization` and
/// `st-auth-mode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_exposes_the_token_headers() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let spa = "https://spa.example";
    let (gw, _clock) = gateway(
        &db.url(),
        &up,
        &format!("cors.allowed_origins = [\"{spa}\"]"),
    )
    .await;
    let c = Plain::new(&gw);
    let exposed = |r: &Resp| {
        let v = r
            .header("access-control-expose-headers")
            .unwrap_or_default();
        v.contains("st-access-token") && v.contains("st-refresh-token")
    };
    let r = c
        .send(
            Method::OPTIONS,
            "/auth/login",
            &[
                ("origin", spa),
                ("access-control-request-method", "GET"),
                (
                    "access-control-request-headers",
                    "authorization, st-auth-mode",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 204);
    let allowed = r.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("st-auth-mode"));

    let r = c
        .send(
            Method::GET,
            "/auth/login?user=alice",
            &[("origin", spa), ("st-auth-mode", "header")],
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(spa)
    );
    assert!(exposed(&r), "{:?}", r.headers);
    let (at, rt) = tokens(&r);
    let auth = format!("Bearer {rt}");
    let r = c
        .send(
            Method::POST,
            "/auth/refresh",
            &[("origin", spa), ("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(exposed(&r));
    let auth = format!("Bearer {at}");
    let r = c
        .send(
            Method::GET,
            "/api/me",
            &[("origin", spa), ("authorization", &auth)],
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(spa)
    );
    assert!(exposed(&r));
    // A foreign origin gets no CORS grant (and the refresh endpoint refuses it).
    let r = c
        .send(
            Method::GET,
            "/auth/login?user=alice",
            &[
                ("origin", "https://evil.example"),
                ("st-auth-mode", "header"),
            ],
        )
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
    gw.stop().await;
}

/// Logout in header mode: with the access token (also an expired one) or the refresh token;
/// a bearer that names no session is asked to refresh, as a browser with a session is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_a_bearer() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let (gw, clock) = gateway(&db.url(), &up, "").await;
    let c = Plain::new(&gw);
    let (at, rt) = c.login("alice").await;
    clock.advance(Duration::from_secs(61));
    let r = c.bearer(Method::POST, "/auth/logout", &at).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cleared(&r);
    assert_eq!(
        c.bearer(Method::POST, "/auth/refresh", &rt).await.json()["error"],
        "unauthorised"
    );

    let (_, rt) = c.login("alice").await;
    let r = c.bearer(Method::POST, "/auth/logout", &rt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cleared(&r);
    assert_eq!(
        c.bearer(Method::POST, "/auth/refresh", &rt).await.json()["error"],
        "unauthorised"
    );

    let r = c.bearer(Method::POST, "/auth/logout", "not-a-token").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "try_refresh_token");
    gw.stop().await;
}

/// The README's `token_transfer` section, run verbatim: its minimal configuration plus the
/// header-mode route, and its shell transcript with `curl` against the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_transcript() {
    let readme = include_str!("../../README.md");
    let minimal = code_block(readme, "## Putting it in front of your app", "toml");
    let section = "## Tokens in headers (mobile apps, CLIs)";
    let route = code_block(readme, section, "toml");
    let script = code_block(readme, section, "sh");

    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let toml = format!(
        "server.listen = \"127.0.0.1:0\"\nserver.admin_listen = \"127.0.0.1:0\"\n\
         store.url = \"{}\"\n{minimal}\n{route}",
        db.url()
    )
    .replace("http://127.0.0.1:3000", &up.url());
    let cfg = sessiongate::config::load_from_str(&toml)
        .unwrap_or_else(|e| panic!("README configuration: {e}\n{toml}"));
    let gw = start_gateway(cfg, Clock::system()).await;
    let gw_url = format!("http://{}", gw.public_addr);
    let script = script.replace("http://127.0.0.1:8080", &gw_url);
    assert_ne!(script, code_block(readme, section, "sh"), "GW= line");

    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(cwd)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README script failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The upstream's echo of `GET /api/me` and of the mobile login.
    assert!(stdout.contains(r#""x-user-id":["alice"]"#), "{stdout}");
    assert!(!stdout.contains("authorization"), "{stdout}");
    // The logout revoked the session: the rotated refresh token is dead.
    let refresh_h = std::fs::read_to_string(dir.path().join("refresh.h")).unwrap();
    let rt = refresh_h
        .lines()
        .find_map(|l| l.strip_prefix("st-refresh-token: "))
        .expect("refresh.h has the new refresh token")
        .trim();
    let c = Plain::new(&gw);
    let r = c.bearer(Method::POST, "/auth/refresh", rt).await;
    assert_eq!(r.json()["error"], "unauthorised");
    gw.stop().await;
}

/// The first ```lang block after the `heading` line.
fn code_block(text: &str, heading: &str, lang: &str) -> String {
    let start = text
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let mut lines = text.lines().skip(start + 1);
    lines
        .by_ref()
        .find(|l| *l == format!("```{lang}"))
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"));
    let block: Vec<&str> = lines.take_while(|l| *l != "```").collect();
    block.join("\n") + "\n"
}
