//! Route policies on claims (`routes[].require_claims`) on the proxy path: a valid session
//! whose JWT payload does not meet the route's rules gets 403 `{"error":"forbidden"}`, never
//! reaches the upstream, and is counted as `auth_decisions_total{outcome="forbidden"}`;
//! changing the payload (session control) changes the answer. The forward-auth endpoint
//! applies the same rules (`forward_auth` suite).

use sessiongate::clock::Clock;

use crate::support::config::GatewayToml;
use crate::support::db;
use crate::support::{start_gateway, Browser, TestUpstream};

fn forbidden_count(gw: &sessiongate::app::Gateway) -> u64 {
    gw.state
        .metrics
        .auth_decisions_total
        .with_label_values(&["forbidden"])
        .get()
}

#[tokio::test]
async fn require_claims_refuses_then_admits_after_a_payload_update() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let upstream = format!("upstream = \"{}\"", up.url());
    let toml = GatewayToml::new(&db.url(), &up.url())
        .add_route(
            "admin",
            "/admin",
            &[
                &upstream,
                r#"require_claims = { role = ["admin", "owner"] }"#,
            ],
        )
        .add_route(
            "tiers",
            "/gold",
            &[
                &upstream,
                "require_claims = { tier = [3], role = [\"member\"] }",
            ],
        )
        .render();
    let cfg = sessiongate::config::load_from_str(&toml).unwrap();
    let gw = start_gateway(cfg, Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);

    // No session: the usual 401, not a 403 (the policy is checked on a valid session).
    let r = b.get("/admin/panel").await;
    assert_eq!(r.status, 401);
    assert_eq!(forbidden_count(&gw), 0);

    b.login("alice").await; // payload {"role": "member"}
    let r = b.get("/admin/panel").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"error": "forbidden"}));
    assert_eq!(forbidden_count(&gw), 1);
    // Every rule must hold: role matches, tier is missing.
    let r = b.get("/gold/x").await;
    assert_eq!(r.status, 403);
    assert_eq!(forbidden_count(&gw), 2);
    // The session itself is fine elsewhere and was not ended.
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-user-id"][0], "alice");

    // The upstream promotes the user (sessiongate-update-payload on a session-control route).
    let r = b.get("/update?role=admin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = b.get("/admin/panel").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/admin/panel");
    assert_eq!(r.json()["headers"]["x-user-id"][0], "alice");
    assert_eq!(forbidden_count(&gw), 2);

    // A session carried as `Authorization: Bearer` (tokens in headers) meets the same policy.
    let base = format!("http://{}", gw.public_addr);
    let client = crate::support::client::Client::new();
    let send = |path: &str, headers: &[(&str, &str)]| {
        let mut req = http::Request::get(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        client.send(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
    };
    let login = send("/auth/login?user=bob", &[("st-auth-mode", "header")]).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let bearer = format!("Bearer {}", login.header("st-access-token").unwrap());
    let r = send("/admin/panel", &[("authorization", &bearer)]).await;
    assert_eq!(
        r.status,
        403,
        "a bearer session passes the policy too: {}",
        r.text()
    );
    assert_eq!(r.json(), serde_json::json!({"error": "forbidden"}));
    assert_eq!(forbidden_count(&gw), 3);
    let r = send("/api/me", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-user-id"][0], "bob");
    drop(db);
}
