//! The forward-auth endpoint (`forward_auth.path`) behind real front proxies: Debian's nginx
//! (`auth_request`) and Caddy (`forward_auth`) in front of the real test upstream, with an
//! in-process gateway whose clock the test moves. The gateway, nginx and Caddy configurations
//! are the README's blocks verbatim (`<!-- forward-auth: … -->`), only their ports replaced,
//! and the Traefik and Envoy ones are parsed as YAML with the keys they rely on.
//!
//! A session is created the way such a deployment does it: the front proxy sends `/auth/` to
//! the gateway, whose `login` route forwards the login to the app with `session_control`, so
//! the app's `sessiongate-create` becomes the cookies. Everything else goes from the front
//! proxy to the app, after asking the gateway.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;

use crate::support::client::Client;
use crate::support::db;
use crate::support::front::{self, FrontProxy};
use crate::support::{start_gateway, Browser, TestUpstream};

/// The README's fenced block after `<!-- forward-auth: NAME -->`.
fn readme_block(name: &str) -> String {
    let readme = include_str!("../../README.md");
    let marker = format!("<!-- forward-auth: {name} -->");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README lacks {marker}"));
    let rest = &readme[at + marker.len()..];
    let open = rest.find("```").expect("a fenced block follows the marker");
    let start = open + rest[open..].find('\n').unwrap() + 1;
    let end = start + rest[start..].find("\n```").expect("the block is closed") + 1;
    rest[start..end].to_string()
}

/// The README's addresses replaced: the gateway `127.0.0.1:8080`, the app `127.0.0.1:3000`,
/// the front proxy's port 80.
fn with_ports(text: &str, gateway: SocketAddr, app: SocketAddr, front: u16) -> String {
    text.replace("127.0.0.1:8080", &gateway.to_string())
        .replace("127.0.0.1:3000", &app.to_string())
        .replace("listen 80;", &format!("listen 127.0.0.1:{front};"))
        .replace(":80 {", &format!(":{front} {{"))
}

struct Stack {
    up: TestUpstream,
    gw: Gateway,
    clock: Clock,
    _db: db::TestSqlite,
}

/// The README's gateway configuration (plus a SQLite store and plain-http cookies, as every
/// test gateway), with `edit` applied to its text.
async fn stack(edit: impl Fn(String) -> String) -> Stack {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let readme = readme_block("gateway").replace("127.0.0.1:3000", &up.addr.to_string());
    let toml = format!(
        "store.url = {:?}\ncookie.secure = false\n{}",
        db.url(),
        edit(readme)
    );
    let cfg = sessiongate::config::load_from_str(&toml)
        .unwrap_or_else(|e| panic!("README gateway config: {e}\n{toml}"));
    let clock = Clock::system();
    let gw = start_gateway(cfg, clock.clone()).await;
    Stack {
        up,
        gw,
        clock,
        _db: db,
    }
}

fn decisions(gw: &Gateway, route: &str, decision: &str) -> u64 {
    gw.state
        .metrics
        .forward_auth_total
        .with_label_values(&[route, decision])
        .get()
}

/// One deployment's whole story through the front proxy at `port`.
async fn flow(name: &str, front: &FrontProxy, s: &Stack) {
    let mut b = Browser::new(([127, 0, 0, 1], front.port).into());
    let ctx = |what: &str| format!("{name}: {what}\n{}", front.log());

    // A public route: 200 from the app, and a client's identity header never reaches it.
    let r = b
        .send(Method::GET, "/public/x", &[("x-user-id", "mallory")])
        .await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    assert_eq!(r.json()["path"], "/public/x");
    assert!(
        r.json()["headers"].get("x-user-id").is_none(),
        "{}",
        r.text()
    );

    // No session on a required route: the proxy path's JSON.
    let r = b.get("/app/x").await;
    assert_eq!(r.status, 401, "{}", ctx(&r.text()));
    assert_eq!(r.json(), serde_json::json!({"error": "unauthorised"}));

    // A navigation: 401 naming the login page, with a page that follows it.
    let r = b
        .send(Method::GET, "/app/page?tab=2", &[("accept", "text/html")])
        .await;
    assert_eq!(r.status, 401, "{}", ctx(&r.text()));
    let login = "/public/login?next=%2Fapp%2Fpage%3Ftab%3D2";
    assert_eq!(r.header("x-sessiongate-redirect").as_deref(), Some(login));
    assert_eq!(r.header("location").as_deref(), Some(login));
    assert!(r.text().contains("http-equiv=\"refresh\""), "{}", r.text());

    // Login through the gateway's own route.
    b.login("alice").await;

    // Authenticated: the identity the gateway answered is what the app gets; the spoof is gone.
    let r = b
        .send(Method::GET, "/app/x?q=1", &[("x-user-id", "mallory")])
        .await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    let echo = r.json();
    assert_eq!(echo["path"], "/app/x");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["headers"]["x-user-id"], serde_json::json!(["alice"]));
    assert!(echo["headers"]["x-session-handle"][0].is_string(), "{echo}");
    let payload = echo["headers"]["x-jwt-payload"][0].as_str().unwrap();
    assert!(payload.contains("member"), "{payload}");

    // Anti-CSRF is checked with the original method.
    let mut no_csrf = b.clone();
    no_csrf.jar.anti_csrf = None;
    let r = no_csrf.post("/app/x").await;
    assert_eq!(r.status, 401, "{}", ctx(&r.text()));
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    let r = b.post("/app/x").await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));

    // A policy denial.
    let r = b.get("/admin/x").await;
    assert_eq!(r.status, 403, "{}", ctx(&r.text()));
    assert_eq!(r.json(), serde_json::json!({"error": "forbidden"}));

    // Expiry → try_refresh_token → refresh through the front proxy → works again.
    s.clock.advance(Duration::from_secs(3601));
    let r = b.get("/app/x").await;
    assert_eq!(r.status, 401, "{}", ctx(&r.text()));
    assert_eq!(r.json(), serde_json::json!({"error": "try_refresh_token"}));
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    let r = b.get("/app/x").await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    assert_eq!(r.upstream_header("x-user-id").as_deref(), Some("alice"));

    // Logout through the front proxy ends it.
    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 200, "{}", ctx(&r.text()));
    assert!(r.set_cookies().iter().all(|c| c.contains("Max-Age=0")));
    let r = b.get("/app/x").await;
    assert_eq!(r.status, 401, "{}", ctx(&r.text()));
    assert_eq!(r.json(), serde_json::json!({"error": "unauthorised"}));

    assert!(decisions(&s.gw, "app", "allowed") >= 3);
    assert!(decisions(&s.gw, "public", "allowed") >= 1);
    assert!(decisions(&s.gw, "admin", "forbidden") >= 1);
    assert!(decisions(&s.gw, "app", "unauthenticated") >= 4);
    let forbidden =
        s.gw.state
            .metrics
            .auth_decisions_total
            .with_label_values(&["forbidden"])
            .get();
    assert!(forbidden >= 1);
}

#[tokio::test]
async fn nginx_auth_request_with_the_readme_config() {
    let s = stack(|t| t).await;
    let port = front::port();
    let site = with_ports(&readme_block("nginx"), s.gw.public_addr, s.up.addr, port);
    let nginx = FrontProxy::nginx(&site, port);
    flow("nginx", &nginx, &s).await;
}

#[tokio::test]
async fn caddy_forward_auth_with_the_readme_config() {
    let s = stack(|t| t).await;
    let port = front::port();
    let site = with_ports(&readme_block("caddy"), s.gw.public_addr, s.up.addr, port);
    let caddy = FrontProxy::caddy(&site, port);
    flow("caddy", &caddy, &s).await;
}

async fn ask(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> crate::support::Resp {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Client::new()
        .send(b.body(Full::<Bytes>::default()).unwrap())
        .await
}

/// The endpoint's contract, asked directly: the forwarded URI is normalised like a proxied
/// path, Envoy's path-suffix form, refusals of ambiguous or missing facts, routes without an
/// upstream on the proxy path, and the metric labels.
#[tokio::test]
async fn endpoint_contract_asked_directly() {
    let s = stack(|t| t).await;
    let gw = s.gw.public_addr;
    let verify = "/.sessiongate/verify";
    let check = |r: &crate::support::Resp, status: u16, error: Option<&str>| {
        assert_eq!(r.status.as_u16(), status, "{}", r.text());
        if let Some(e) = error {
            assert_eq!(r.json()["error"], e, "{}", r.text());
        }
    };

    let r = ask(gw, verify, &[("x-forwarded-uri", "/public/a")]).await;
    check(&r, 200, None);
    assert!(r.header("x-user-id").is_none());
    // Dot segments and escapes resolve before routing: this is /app/x, not /public/….
    let r = ask(gw, verify, &[("x-original-uri", "/public/%2E%2E/app/x")]).await;
    check(&r, 401, Some("unauthorised"));
    let r = ask(gw, verify, &[("x-forwarded-uri", "/public/../app/x?a=1")]).await;
    check(&r, 401, Some("unauthorised"));
    // Ambiguous escapes are refused as on the proxy path.
    let r = ask(gw, verify, &[("x-forwarded-uri", "/public/a%2Fb")]).await;
    check(&r, 400, None);
    // Envoy: the original path follows the endpoint's path.
    let r = ask(gw, &format!("{verify}/public/a?x=1"), &[]).await;
    check(&r, 200, None);
    let r = ask(gw, &format!("{verify}/app/x"), &[]).await;
    check(&r, 401, Some("unauthorised"));
    // Missing, repeated or disagreeing facts.
    let r = ask(gw, verify, &[]).await;
    check(&r, 400, Some("bad_request"));
    let r = ask(
        gw,
        verify,
        &[
            ("x-forwarded-uri", "/public/a"),
            ("x-original-uri", "/app/x"),
        ],
    )
    .await;
    check(&r, 400, Some("bad_request"));
    let r = ask(
        gw,
        verify,
        &[
            ("x-forwarded-uri", "/public/a"),
            ("x-forwarded-method", "GE T"),
        ],
    )
    .await;
    check(&r, 400, Some("bad_request"));
    let r = ask(
        gw,
        verify,
        &[
            ("x-forwarded-uri", "/public/a"),
            ("x-forwarded-host", "a@b"),
        ],
    )
    .await;
    check(&r, 400, None);
    // A route without an upstream is only for asking: the proxy path has nothing to forward.
    let r = ask(gw, "/app/x", &[]).await;
    check(&r, 404, Some("not_found"));

    assert_eq!(decisions(&s.gw, "public", "allowed"), 2);
    assert_eq!(decisions(&s.gw, "app", "unauthenticated"), 3);
    assert!(decisions(&s.gw, "unmatched", "refused") >= 4);
}

/// The endpoint honours the forwarded facts only from `server.trusted_proxies`: any other
/// peer gets 403 `untrusted_peer`, whatever it sends.
#[tokio::test]
async fn untrusted_peers_are_refused() {
    let s = stack(|t| t.replace("[\"127.0.0.1/32\"]", "[\"10.0.0.0/8\"]")).await;
    let r = ask(
        s.gw.public_addr,
        "/.sessiongate/verify",
        &[("x-forwarded-uri", "/public/a")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "untrusted_peer");
    assert_eq!(decisions(&s.gw, "unmatched", "refused"), 1);
}

/// Traefik and Envoy cannot run here: their README configurations are parsed as YAML and
/// checked for the keys forward auth relies on.
#[test]
fn traefik_and_envoy_readme_configs_parse() {
    use serde_norway::Value;
    let traefik: Value = serde_norway::from_str(&readme_block("traefik")).expect("Traefik YAML");
    let fa = &traefik["http"]["middlewares"]["sessiongate-auth"]["forwardAuth"];
    assert_eq!(
        fa["address"].as_str(),
        Some("http://127.0.0.1:8080/.sessiongate/verify")
    );
    let copied: Vec<&str> = fa["authResponseHeaders"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(copied, ["X-User-Id", "X-Session-Handle", "X-Jwt-Payload"]);

    let envoy: Value = serde_norway::from_str(&readme_block("envoy")).expect("Envoy YAML");
    let filters = envoy["http_filters"].as_sequence().unwrap();
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.router"
        ]
    );
    let http = &filters[1]["typed_config"]["http_service"];
    assert_eq!(http["path_prefix"].as_str(), Some("/.sessiongate/verify"));
    let exact = |v: &Value| -> Vec<String> {
        v["patterns"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| p["exact"].as_str().map(str::to_string))
            .collect()
    };
    let upstream = exact(&http["authorization_response"]["allowed_upstream_headers"]);
    assert_eq!(upstream, ["x-user-id", "x-session-handle", "x-jwt-payload"]);
    let removed: Vec<&str> = filters[0]["typed_config"]["mutations"]["request_mutations"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["remove"].as_str())
        .collect();
    assert_eq!(removed, upstream);
    assert!(
        exact(&http["authorization_response"]["allowed_client_headers"])
            .contains(&"x-sessiongate-redirect".to_string())
    );
}

/// `[rate_limits]` on the endpoint: each miss (no valid session) of one client takes a token
/// from its `forward_auth` bucket, an empty bucket answers 429 with `Retry-After`, allowed
/// answers take nothing, and the client is the one the front proxy names in
/// `X-Forwarded-For`, so another client behind the same proxy is not refused.
#[tokio::test]
async fn forward_auth_misses_are_rate_limited_per_client() {
    let s = stack(|t| {
        format!(
            "{t}\n[rate_limits]\nenabled = true\nforward_auth = {{ per_minute = 1, burst = 2 }}\n"
        )
    })
    .await;
    let gw = s.gw.public_addr;
    let verify = "/.sessiongate/verify";
    let miss = |client: &'static str| [("x-forwarded-uri", "/app/x"), ("x-forwarded-for", client)];
    for _ in 0..5 {
        let r = ask(
            gw,
            verify,
            &[
                ("x-forwarded-uri", "/public/a"),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "allowed answers take no token: {}", r.text());
    }
    for i in 0..2 {
        let r = ask(gw, verify, &miss("203.0.113.7")).await;
        assert_eq!(r.status, 401, "miss {i} is within the burst: {}", r.text());
    }
    let cut = ask(gw, verify, &miss("203.0.113.7")).await;
    assert_eq!(cut.status, 429, "{}", cut.text());
    assert_eq!(cut.json()["error"], "rate_limited");
    assert!(cut.header("retry-after").is_some());
    let other = ask(gw, verify, &miss("203.0.113.8")).await;
    assert_eq!(other.status, 401, "another client keeps its own bucket");
    let text = s.gw.state.metrics.render();
    assert!(
        text.contains("sessiongate_rate_limited_total{endpoint=\"forward_auth\"} 1"),
        "{text}"
    );
}
