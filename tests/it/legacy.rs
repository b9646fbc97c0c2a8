//! Taking over a deployment of the original library (issue 14), tested against the library
//! itself: sessions are created (and refreshed, revoked) by `supertokens-node-mysql-ref-jwt`
//! 5.0.4 running in `tests/legacy/server.js` on a real MariaDB database; then sessiongate is
//! started on the same database with `[legacy]` and the library's cookies are sent to it.
//!
//! The gateway runs in process with a test clock, so access-token expiry and the end of the
//! refresh grace window are reached by moving the clock, not by sleeping. Its native tables
//! get their own names ([`NATIVE_TABLES`]): the native defaults are the library's names.

use std::time::Duration;

use serde_json::{json, Value};
use sessiongate::clock::Clock;

use crate::support::client::Browser;
use crate::support::config::GatewayToml;
use crate::support::db::TestMysql;
use crate::support::legacy::{ensure_node_packages, tests_dir, LegacyApp, LegacyOptions};
use crate::support::{process, start_gateway, test_config, Resp, TestUpstream};

/// The gateway's own table names in the shared database, and the `[legacy]` section.
const NATIVE_TABLES: &str = "store.tables.signing_key = \"sessiongate_signing_key\"\n\
store.tables.refresh_tokens = \"sessiongate_sessions\"";
const LEGACY_SECTION: &str = "legacy.refresh_token_table = \"refresh_token\"\n\
legacy.signing_key_table = \"signing_key\"";
/// The library's access-token validity in these tests, and a clock step that outlasts it.
const LIBRARY_AT_SECS: u64 = 10;
const PAST_LIBRARY_AT: Duration = Duration::from_secs(LIBRARY_AT_SECS + 1);
/// Past `tokens.refresh_token.reuse_grace_secs` (10) of the test config.
const PAST_GRACE: Duration = Duration::from_secs(11);

fn gateway_extra(more: &str) -> String {
    format!("{NATIVE_TABLES}\n{LEGACY_SECTION}\n{more}")
}

async fn start_legacy_gateway(
    db: &TestMysql,
    up: &TestUpstream,
    clock: &Clock,
    more: &str,
) -> sessiongate::app::Gateway {
    start_gateway(
        test_config(&db.url(), &up.url(), &gateway_extra(more)),
        clock.clone(),
    )
    .await
}

/// A browser for the gateway at `gw` holding `from`'s cookies and anti-CSRF token (the same
/// browser after the operator put sessiongate where the library's app was).
fn switched(from: &Browser, gw: std::net::SocketAddr) -> Browser {
    let mut b = Browser::new(gw);
    b.jar = from.jar.clone();
    b
}

fn legacy_rows(db: &TestMysql, handle: &str) -> Vec<Vec<String>> {
    db.query(&format!(
        "SELECT user_id, session_info, jwt_user_payload FROM refresh_token WHERE session_handle = '{handle}'"
    ))
}

fn native_rows(db: &TestMysql, handle: &str) -> Vec<Vec<String>> {
    db.query(&format!(
        "SELECT user_id, jwt_payload, session_data FROM sessiongate_sessions WHERE session_handle = '{handle}'"
    ))
}

fn json_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The identity the upstream received: (user id, session handle, payload).
fn identity(r: &Resp) -> (String, String, Value) {
    assert_eq!(r.status, 200, "{}", r.text());
    (
        r.upstream_header("x-user-id").expect("x-user-id"),
        r.upstream_header("x-session-handle")
            .expect("x-session-handle"),
        json_text(&r.upstream_header("x-jwt-payload").expect("x-jwt-payload")),
    )
}

fn error_of(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

/// `Set-Cookie` values without the attributes that count from the moment of the answer.
fn stable_cookies(r: &Resp) -> Vec<String> {
    r.set_cookies()
        .iter()
        .map(|c| {
            c.split("; ")
                .filter(|a| !a.starts_with("Max-Age=") && !a.starts_with("Expires="))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

/// The value of one counter series, e.g. `x_total{outcome="converted"}`; 0 when absent.
async fn counter(gw: &sessiongate::app::Gateway, series: &str) -> f64 {
    let text = Browser::new(gw.admin_addr).get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("metric value"))
        .unwrap_or(0.0)
}

fn conversions(outcome: &str) -> String {
    format!("sessiongate_legacy_conversions_total{{outcome=\"{outcome}\"}}")
}

/// The whole migration of one session: the library creates it; sessiongate serves it, answers
/// its expiry, converts it on refresh (the library's row replaced by a native one with the same
/// handle, user, payload and data), serves it natively, repeats the conversion for a second tab
/// inside the grace window, and treats the legacy token after the window as theft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_session_is_served_converted_and_protected() {
    let db = TestMysql::new();
    let mut app = LegacyApp::start(&db);
    let payload = json!({"role": "admin", "n": 1});
    let data = json!({"cart": [1, 2]});
    let mut lib = app
        .login(json!("user-1"), payload.clone(), data.clone())
        .await;
    let me = lib.get("/api/me").await;
    assert_eq!(
        me.status,
        200,
        "the library serves its own session: {}",
        me.text()
    );
    let handle = me.json()["handle"].as_str().unwrap().to_string();
    println!("---- transcript: a session created by the library ----");
    println!("library GET /api/me -> {} {}", me.status, me.text());
    let row = legacy_rows(&db, &handle);
    println!("library row {handle}: {row:?}");
    assert_eq!(row.len(), 1);
    // The operator stops the library's app and puts sessiongate there.
    app.stop();

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    let mut b = switched(&lib, gw.public_addr);
    let stolen = b.clone();

    // Authenticated requests with the library's cookies reach the upstream as that session.
    let r = b.get("/api/me").await;
    assert_eq!(
        identity(&r),
        ("user-1".to_string(), handle.clone(), payload.clone()),
        "identity forwarded for a library access token"
    );
    println!("sessiongate GET /api/me (library cookies) -> {} x-user-id={:?} x-session-handle={:?} x-jwt-payload={:?}",
        r.status, r.upstream_header("x-user-id"), r.upstream_header("x-session-handle"), r.upstream_header("x-jwt-payload"));
    assert!(
        r.set_cookies().is_empty(),
        "no cookies change while the library token is valid"
    );
    // The library's anti-CSRF rule: a POST needs the token the library issued.
    let r = b.post("/api/me").await;
    assert_eq!(
        r.status,
        200,
        "POST with the library's anti-csrf: {}",
        r.text()
    );
    let mut no_csrf = b.clone();
    no_csrf.jar.anti_csrf = None;
    let r = no_csrf.post("/api/me").await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "try_refresh_token".into())
    );
    assert!(counter(&gw, "sessiongate_legacy_requests_total").await >= 2.0);

    // Expiry answers exactly as for a native token and keeps the cookies.
    clock.advance(PAST_LIBRARY_AT);
    let r = b.get("/api/me").await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "try_refresh_token".into()),
        "{}",
        r.text()
    );
    assert!(
        r.set_cookies().is_empty(),
        "try_refresh_token clears nothing: {:?}",
        r.set_cookies()
    );

    // One refresh converts.
    let converted = b.refresh().await;
    assert_eq!(converted.status, 200, "conversion: {}", converted.text());
    println!(
        "sessiongate POST /auth/refresh (library refresh token) -> {}",
        converted.status
    );
    for c in converted.set_cookies() {
        println!("  set-cookie: {}…", &c[..c.len().min(90)]);
    }
    let names: Vec<String> = converted
        .set_cookies()
        .iter()
        .map(|c| c.split('=').next().unwrap().to_string())
        .collect();
    for n in ["sAccessToken", "sRefreshToken", "sIdRefreshToken"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(converted.header("anti-csrf").is_some(), "anti-csrf header");
    assert!(
        converted.header("id-refresh-token").is_some(),
        "id-refresh-token header"
    );
    let access = b.jar.cookies["sAccessToken"].clone();
    assert!(
        !access.contains("%3D") && !access.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."),
        "the new access token is a native JWT, not the library's format: {access}"
    );
    assert!(
        legacy_rows(&db, &handle).is_empty(),
        "the library's row is gone"
    );
    let native = native_rows(&db, &handle);
    println!(
        "after conversion: library rows {:?}, native row {native:?}",
        legacy_rows(&db, &handle)
    );
    assert_eq!(
        native.len(),
        1,
        "one native session with the library's handle"
    );
    assert_eq!(native[0][0], "user-1");
    assert_eq!(json_text(&native[0][1]), payload);
    assert_eq!(json_text(&native[0][2]), data);
    assert_eq!(counter(&gw, &conversions("converted")).await, 1.0);

    // Native requests afterwards, with the same identity.
    let r = b.get("/api/me").await;
    assert_eq!(
        identity(&r),
        ("user-1".to_string(), handle.clone(), payload.clone())
    );
    let r = b.post("/api/me").await;
    assert_eq!(
        r.status,
        200,
        "native POST with the new anti-csrf: {}",
        r.text()
    );

    // A second tab refreshing with the same library token inside the grace window gets the
    // identical native child.
    let mut tab2 = stolen.clone();
    let again = tab2.refresh().await;
    assert_eq!(again.status, 200, "grace replay: {}", again.text());
    assert_eq!(
        stable_cookies(&again),
        stable_cookies(&converted),
        "identical cookies"
    );
    assert_eq!(again.header("anti-csrf"), converted.header("anti-csrf"));
    assert_eq!(
        again.header("id-refresh-token"),
        converted.header("id-refresh-token")
    );
    assert_eq!(native_rows(&db, &handle).len(), 1);
    assert_eq!(counter(&gw, &conversions("grace_replay")).await, 1.0);
    let r = tab2.get("/api/me").await;
    assert_eq!(identity(&r).1, handle);

    // After the window the library token is a stolen one: the converted session is revoked.
    clock.advance(PAST_GRACE);
    let mut thief = stolen.clone();
    let r = thief.refresh().await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "token_theft_detected".into()),
        "{}",
        r.text()
    );
    assert!(
        native_rows(&db, &handle).is_empty(),
        "theft revokes the converted session"
    );
    let r = b.refresh().await;
    assert_eq!(
        r.status,
        401,
        "the revoked session cannot refresh: {}",
        r.text()
    );
    assert_eq!(counter(&gw, &conversions("theft")).await, 1.0);
    drop(gw);
}

/// A numeric user id (stored by the library as `{"i":42}`) and no payload or data: the
/// identity is the same before and after conversion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_user_without_payload_keeps_its_identity() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let lib = app.login(json!(42), Value::Null, Value::Null).await;
    let rows = db.query("SELECT session_handle, user_id FROM refresh_token");
    assert_eq!(rows.len(), 1);
    let (handle, stored) = (rows[0][0].clone(), rows[0][1].clone());
    assert_eq!(stored, r#"{"i":42}"#, "the library's encoding of a number");
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    let mut b = switched(&lib, gw.public_addr);
    let before = identity(&b.get("/api/me").await);
    assert_eq!(
        (before.0.as_str(), before.1.as_str()),
        ("42", handle.as_str())
    );
    clock.advance(PAST_LIBRARY_AT);
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(legacy_rows(&db, &handle).is_empty());
    let after = identity(&b.get("/api/me").await);
    assert_eq!(after, before, "identity after conversion");
}

/// The library had already refreshed (a child access token with `prt`, a child refresh token
/// not yet promoted): the child access token asks for a refresh, and the child refresh token
/// converts by the library's parent/child rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_tokens_from_a_library_refresh_convert() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let mut lib = app.login(json!("kid"), json!({"a": 1}), json!(null)).await;
    let r = lib.refresh().await;
    assert_eq!(r.status, 200, "the library's own refresh: {}", r.text());
    let handle = r.json()["handle"].as_str().unwrap().to_string();
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    let mut b = switched(&lib, gw.public_addr);
    let r = b.get("/api/me").await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "try_refresh_token".into()),
        "{}",
        r.text()
    );
    let r = b.refresh().await;
    assert_eq!(
        r.status,
        200,
        "the child refresh token converts: {}",
        r.text()
    );
    assert!(legacy_rows(&db, &handle).is_empty());
    assert_eq!(native_rows(&db, &handle).len(), 1);
    assert_eq!(
        identity(&b.get("/api/me").await),
        ("kid".to_string(), handle, json!({"a": 1}))
    );
}

/// The library's own theft rule for tokens not yet converted: the parent refresh token after
/// the library promoted its child is neither the parent nor a child of it, so it is theft, and
/// sessiongate (unlike the library) ends that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_library_token_is_theft() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let mut lib = app.login(json!("owner"), json!(null), json!(null)).await;
    let old = lib.clone();
    let r = lib.refresh().await;
    assert_eq!(r.status, 200, "the library's refresh: {}", r.text());
    let handle = r.json()["handle"].as_str().unwrap().to_string();
    let hash_before = db.query("SELECT refresh_token_hash_2 FROM refresh_token")[0][0].clone();
    // Using the child access token makes the library promote the child refresh token.
    let r = lib.get("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hash_after = db.query("SELECT refresh_token_hash_2 FROM refresh_token")[0][0].clone();
    assert_ne!(hash_before, hash_after, "the library promoted the child");
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    let mut thief = switched(&old, gw.public_addr);
    let r = thief.refresh().await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "token_theft_detected".into()),
        "{}",
        r.text()
    );
    assert!(legacy_rows(&db, &handle).is_empty(), "the session is ended");
    assert!(native_rows(&db, &handle).is_empty(), "and not converted");
    let mut owner = switched(&lib, gw.public_addr);
    let r = owner.refresh().await;
    assert_eq!(
        r.status,
        401,
        "the ended session cannot refresh: {}",
        r.text()
    );
}

/// Flips one base64 character in the middle of a cookie value (still well-formed text).
fn flip(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let i = (chars.len() / 3..chars.len())
        .find(|&i| chars[i].is_ascii_alphanumeric())
        .unwrap();
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Forged library tokens get nowhere and revoke nothing; the real ones still work afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_library_tokens_revoke_nothing() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let lib = app
        .login(json!("victim"), json!({"r": "u"}), json!(null))
        .await;
    let handle = db.query("SELECT session_handle FROM refresh_token")[0][0].clone();
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;

    // An access token whose payload was edited (the library's signature no longer matches).
    let mut forged_at = switched(&lib, gw.public_addr);
    let at = forged_at.jar.cookies["sAccessToken"].clone();
    let mut parts: Vec<String> = at.split('.').map(str::to_string).collect();
    parts[1] = flip(&parts[1]);
    forged_at
        .jar
        .cookies
        .insert("sAccessToken".into(), parts.join("."));
    let r = forged_at.get("/api/me").await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "try_refresh_token".into()),
        "{}",
        r.text()
    );

    // A refresh token with one character changed (the GCM tag check fails).
    let mut forged_rt = switched(&lib, gw.public_addr);
    let rt = forged_rt.jar.cookies["sRefreshToken"].clone();
    forged_rt
        .jar
        .cookies
        .insert("sRefreshToken".into(), flip(&rt));
    let r = forged_rt.refresh().await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (401, "unauthorised".into()),
        "{}",
        r.text()
    );
    // Random text in the library's shape.
    let mut junk = switched(&lib, gw.public_addr);
    junk.jar.cookies.insert(
        "sRefreshToken".into(),
        format!("{}.{}", "QUJD".repeat(80), "ab".repeat(32)),
    );
    let r = junk.refresh().await;
    assert_eq!(r.status, 401, "{}", r.text());

    assert_eq!(
        legacy_rows(&db, &handle).len(),
        1,
        "the library's row is untouched"
    );
    assert!(
        native_rows(&db, &handle).is_empty(),
        "nothing was converted"
    );
    assert!(counter(&gw, &conversions("forged")).await >= 1.0);
    assert_eq!(counter(&gw, &conversions("theft")).await, 0.0);

    // The real holder is unaffected.
    let mut b = switched(&lib, gw.public_addr);
    assert_eq!(identity(&b.get("/api/me").await).0, "victim");
    clock.advance(PAST_LIBRARY_AT);
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "the real token still converts: {}", r.text());
    assert_eq!(native_rows(&db, &handle).len(), 1);
}

/// Sessions the library had revoked, or that had expired in its table, stay dead: refresh is
/// refused, cookies are cleared, nothing native appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_library_sessions_stay_dead() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let revoked = app.login(json!("gone"), json!(null), json!(null)).await;
    let revoked_handle = db.query("SELECT session_handle FROM refresh_token")[0][0].clone();
    assert!(
        app.revoke(&revoked_handle).await,
        "the library revoked its session"
    );
    let expired = app.login(json!("old"), json!(null), json!(null)).await;
    let expired_handle = db.query("SELECT session_handle FROM refresh_token")[0][0].clone();
    // The library's own notion of an expired session: `expires_at` (ms) in the past.
    db.query(&format!(
        "UPDATE refresh_token SET expires_at = 1000 WHERE session_handle = '{expired_handle}'"
    ));
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    clock.advance(PAST_LIBRARY_AT);
    for (who, from, handle) in [
        ("revoked", &revoked, &revoked_handle),
        ("expired", &expired, &expired_handle),
    ] {
        let mut b = switched(from, gw.public_addr);
        let r = b.get("/api/me").await;
        assert_eq!(r.status, 401, "{who}: expired access token: {}", r.text());
        let r = b.refresh().await;
        assert_eq!(
            (r.status.as_u16(), error_of(&r)),
            (401, "unauthorised".into()),
            "{who}: {}",
            r.text()
        );
        assert!(
            !b.jar.cookies.contains_key("sRefreshToken"),
            "{who}: cookies cleared: {:?}",
            r.set_cookies()
        );
        assert!(
            native_rows(&db, handle).is_empty(),
            "{who}: nothing converted"
        );
    }
    assert_eq!(counter(&gw, &conversions("converted")).await, 0.0);
}

/// After `accept_until` library tokens are unknown tokens: nothing is forwarded or converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_tokens_refused_after_accept_until() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let lib = app.login(json!("late"), json!(null), json!(null)).await;
    let handle = db.query("SELECT session_handle FROM refresh_token")[0][0].clone();
    drop(app);

    let up = TestUpstream::start().await;
    let clock = Clock::system();
    let gw = start_legacy_gateway(
        &db,
        &up,
        &clock,
        "legacy.accept_until = \"2020-01-01T00:00:00Z\"",
    )
    .await;
    let mut b = switched(&lib, gw.public_addr);
    let r = b.get("/api/me").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = b.refresh().await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        legacy_rows(&db, &handle).len(),
        1,
        "the library's row is untouched"
    );
    assert!(native_rows(&db, &handle).is_empty());
}

/// `sessiongate legacy status` counts what is left to migrate and says when the last legacy
/// token was converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_status_reports_progress() {
    let db = TestMysql::new();
    let app = LegacyApp::start(&db);
    let first = app.login(json!("one"), json!(null), json!(null)).await;
    app.login(json!("two"), json!(null), json!(null)).await;
    drop(app);

    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        process::gateway_config(&db.url(), &up.url(), 0, 0)
            .extra(&gateway_extra(""))
            .render(),
    )
    .unwrap();
    let status = || {
        let (code, out, err) = process::run_with_config(&["legacy", "status"], &config);
        assert_eq!(code, 0, "legacy status: {out}\n{err}");
        println!("$ sessiongate legacy status\n{out}");
        out
    };
    let before = status();
    assert!(before.contains("legacy sessions remaining: 2"), "{before}");
    assert!(before.contains("never"), "{before}");

    let clock = Clock::system();
    let gw = start_legacy_gateway(&db, &up, &clock, "").await;
    let mut b = switched(&first, gw.public_addr);
    clock.advance(PAST_LIBRARY_AT);
    assert_eq!(b.refresh().await.status, 200);
    drop(gw);

    let after = status();
    assert!(after.contains("legacy sessions remaining: 1"), "{after}");
    assert!(!after.contains("never"), "{after}");
}

/// In Chromium, with the unmodified supertokens-website 4.2.0 SDK: a page logs in against the
/// library's app; the origin is switched to sessiongate (a TCP front the script controls); the
/// page keeps working through the library token's expiry (the converting refresh) and a
/// native expiry, without a new login (`tests/browser/legacy.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_survives_the_switch() {
    const CHROMIUM: &str = "/usr/bin/chromium";
    const LIBRARY_SECS: u32 = 3;
    const NATIVE_SECS: u32 = 10;
    let dir = tests_dir("browser");
    ensure_node_packages(&dir, &["playwright-core", "esbuild", "supertokens-website"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `apt-get install -y chromium` (the browser suite needs it too)"
    );
    let db = TestMysql::new();
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("supertokens.js");
    let app = LegacyApp::start_with(
        &db,
        &LegacyOptions {
            access_token_validity_secs: LIBRARY_SECS,
            sdk_bundle: Some(bundle.clone()),
            ..LegacyOptions::default()
        },
    );
    let up = TestUpstream::start().await;
    let toml = GatewayToml::new(&db.url(), &up.url())
        .set(
            "tokens.access_token.validity_secs",
            &NATIVE_SECS.to_string(),
        )
        .extra(&gateway_extra(""))
        .render();
    let cfg = sessiongate::config::load_from_str(&toml)
        .unwrap_or_else(|e| panic!("gateway config: {e}\n{toml}"));
    let gw = start_gateway(cfg, Clock::system()).await;

    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join("legacy.mjs"))
        .current_dir(&dir)
        .env("LEGACY_PORT", app.port.to_string())
        .env("GATEWAY_PORT", gw.public_addr.port().to_string())
        .env("BUNDLE", &bundle)
        .env("LEGACY_AT_SECS", LIBRARY_SECS.to_string())
        .env("NATIVE_AT_SECS", NATIVE_SECS.to_string());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("running node tests/browser/legacy.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\nlibrary app errors:\n{}",
        String::from_utf8_lossy(&out.stderr),
        app.error_log()
    );
    let handle = stdout
        .lines()
        .find_map(|l| l.strip_prefix("HANDLE "))
        .expect("the script printed the session handle")
        .trim()
        .to_string();
    assert!(
        legacy_rows(&db, &handle).is_empty(),
        "the library's row is gone"
    );
    let native = native_rows(&db, &handle);
    assert_eq!(native.len(), 1, "the converted session");
    assert_eq!(native[0][0], "browser-user");
    assert_eq!(json_text(&native[0][1]), json!({"plan": "pro"}));
    assert_eq!(json_text(&native[0][2]), json!({"theme": "dark"}));
}
