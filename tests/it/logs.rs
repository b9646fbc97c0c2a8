//! Logs of the real binary with `logging.format = "json"`: one access-log line per request
//! with request id, client address, method, normalised path, route, status, body bytes,
//! duration, upstream time (forwarded requests only), user id and user agent; a warn line for
//! token theft with session handle and user id; and never a token or cookie value.

use std::time::Duration;

use crate::support::db;
use crate::support::process::Gateway;
use crate::support::{Browser, TestUpstream};

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_and_theft_warning_without_secrets() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    // A 1 s grace window so the replay below is theft without waiting long.
    let mut gw = Gateway::spawn_with_env(
        &db.url(),
        &up.url(),
        "",
        &[("SESSIONGATE_TOKENS__REFRESH_TOKEN__REUSE_GRACE_SECS", "1")],
    );
    gw.wait_ready().await;
    let mut b = Browser::new(gw.public_addr);
    b.login("log-user").await;
    let api_resp = b
        .send(
            http::Method::GET,
            "/api/a/../b",
            &[
                ("user-agent", "edge-test/1.0 (logs)"),
                ("x-request-id", "chosen-by-client"),
            ],
        )
        .await;
    assert_eq!(api_resp.status, 200);
    let stolen = b.clone();
    assert_eq!(b.refresh().await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut thief = stolen;
    assert_eq!(thief.refresh().await.status, 401);
    let secrets: Vec<String> = b
        .jar
        .cookies
        .values()
        .chain(thief.jar.cookies.values())
        .cloned()
        .collect();
    gw.terminate_cleanly().await;

    let log = gw.log_text();
    let lines = json_lines(&log);
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "sessiongate::access")
        .collect();
    let api = access
        .iter()
        .find(|l| l["route"] == "api")
        .unwrap_or_else(|| panic!("no access line for the api route:\n{log}"));
    // One request, one line: written once, when its body ended.
    assert_eq!(
        access.iter().filter(|l| l["route"] == "api").count(),
        1,
        "{log}"
    );
    assert_eq!(api["method"], "GET");
    assert_eq!(api["path"], "/api/b", "the normalised path is logged");
    assert_eq!(api["status"], 200);
    assert_eq!(api["user_id"], "log-user");
    assert!(api["duration_ms"].as_f64().is_some());
    // The request id the client got (not its own: it is no trusted proxy), the client
    // address, the user agent, the upstream time and the body bytes.
    let id = api_resp.header("x-request-id").expect("request id");
    assert_ne!(id, "chosen-by-client");
    assert_eq!(api["request_id"], id.as_str());
    assert_eq!(
        api_resp.upstream_header("x-request-id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(api["client"], "127.0.0.1");
    assert_eq!(api["user_agent"], "edge-test/1.0 (logs)");
    assert!(
        api["upstream_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{api}"
    );
    assert_eq!(api["bytes"], api_resp.body.len() as u64);
    let refresh = access
        .iter()
        .find(|l| l["route"] == "refresh" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no access line for the refresh:\n{log}"));
    assert!(
        refresh.get("upstream_ms").is_none(),
        "no upstream call: {refresh}"
    );
    assert_eq!(refresh["bytes"], 2, "`{{}}`");
    assert!(refresh["request_id"]
        .as_str()
        .is_some_and(|s| s.len() == 32));
    let theft = lines
        .iter()
        .find(|l| l["level"] == "WARN" && l["message"].as_str().unwrap_or("").contains("theft"))
        .unwrap_or_else(|| panic!("no theft warning:\n{log}"));
    assert_eq!(theft["user_id"], "log-user");
    // The security event's stable name and origin (`events`).
    assert_eq!(theft["target"], "sessiongate::events");
    assert_eq!(theft["event"], "session.theft_detected");
    assert_eq!(theft["client_ip"], "127.0.0.1");
    assert!(theft["request_id"].as_str().is_some_and(|s| s.len() == 32));
    assert!(theft["session_handle"]
        .as_str()
        .is_some_and(|h| h.len() == 22));
    for s in secrets.iter().filter(|s| s.len() > 8) {
        assert!(
            !log.contains(s.as_str()),
            "a token or cookie value leaked into the logs"
        );
    }
}
