//! Logs of the real binary with `logging.format = "json"`: one access-log line per request
//! with method, normalised path, route, status, duration and user id; a warn line for token
//! theft with session handle and user id; and never a token or cookie value.

mod common;
mod harness;
mod ops;

use std::time::Duration;

use harness::{Browser, TestUpstream};
use ops::Gateway;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_and_theft_warning_without_secrets() {
    let db = common::TestSqlite::new();
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
    assert_eq!(b.get("/api/a/../b").await.status, 200);
    let stolen = b.clone();
    assert_eq!(b.refresh().await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut thief = stolen;
    assert_eq!(thief.refresh().await.status, 401);
    let secrets: Vec<String> = b.jar.values().chain(thief.jar.values()).cloned().collect();
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
    assert_eq!(api["method"], "GET");
    assert_eq!(api["path"], "/api/b", "the normalised path is logged");
    assert_eq!(api["status"], 200);
    assert_eq!(api["user_id"], "log-user");
    assert!(api["duration_ms"].as_f64().is_some());
    assert!(access
        .iter()
        .any(|l| l["route"] == "refresh" && l["status"] == 200));
    let theft = lines
        .iter()
        .find(|l| l["level"] == "WARN" && l["message"].as_str().unwrap_or("").contains("theft"))
        .unwrap_or_else(|| panic!("no theft warning:\n{log}"));
    assert_eq!(theft["user_id"], "log-user");
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
