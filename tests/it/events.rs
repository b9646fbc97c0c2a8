//! Security events posted to a real webhook receiver (a hyper server in the test): the theft
//! event arrives with a valid HMAC-SHA256 signature and the request's client address and
//! request id, and no token; logout and admin calls arrive too; a receiver that is down and
//! comes back gets the event on a retry; a full queue drops (and counts) events without
//! slowing requests. The JSON log line of each event is checked in `logs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sessiongate::clock::Clock;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::client::AdminClient;
use crate::support::config::{free_port, GatewayToml};
use crate::support::db::TestSqlite;
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

const SECRET: &str = "webhook-secret-for-the-events-suite";

/// One request as the receiver got it.
#[derive(Debug)]
struct Delivery {
    headers: http::HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the signature the way the README tells a receiver to.
    fn signature_is_valid(&self, secret: &[u8]) -> bool {
        let (Some(ts), Some(sig)) = (
            self.headers.get("x-sessiongate-timestamp"),
            self.headers.get("x-sessiongate-signature"),
        ) else {
            return false;
        };
        let Some(hex_sig) = sig.to_str().unwrap().strip_prefix("sha256=") else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&hex::decode(hex_sig).unwrap()).is_ok()
    }
}

/// A webhook receiver on `listener`: answers every POST 204 and hands it over.
fn receive(listener: TcpListener) -> mpsc::UnboundedReceiver<Delivery> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = tx.send(Delivery {
                            headers: parts.headers,
                            body,
                        });
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = http::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    rx
}

/// The next delivery of event `name` within 15 s (others are skipped).
async fn next_event(rx: &mut mpsc::UnboundedReceiver<Delivery>, name: &str) -> Delivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within 15 s"))
            .expect("receiver running");
        if got.json()["event"] == name {
            return got;
        }
    }
}

fn secret_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("webhook.secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path.display().to_string()
}

fn counter(gw: &sessiongate::app::Gateway, line_prefix: &str) -> u64 {
    gw.state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theft_logout_and_admin_events_reach_the_webhook_signed() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/sessiongate",
        listener.local_addr().unwrap()
    );
    let mut rx = receive(listener);
    // No grace window: presenting a rotated token again is theft at once.
    let toml = GatewayToml::new(&db.url(), &up.url())
        .set("tokens.refresh_token.reuse_grace_secs", "0")
        .extra(&format!(
            "events.webhook_url = {url:?}\nevents.webhook_secret_file = {:?}",
            secret_file(&dir)
        ))
        .render();
    let cfg = sessiongate::config::load_from_str(&toml).unwrap();
    let gw = start_gateway(cfg, Clock::system()).await;

    // Theft: a refresh token presented again after it was rotated.
    let mut b = Browser::new(gw.public_addr);
    b.login("event-user").await;
    let mut thief = b.clone();
    assert_eq!(b.refresh().await.status, 200);
    let stolen = thief.refresh().await;
    assert_eq!(stolen.status, 401);
    assert_eq!(stolen.json()["error"], "token_theft_detected");
    let theft = next_event(&mut rx, "session.theft_detected").await;
    println!(
        "theft event as received:\n{}\n{}",
        theft
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-sessiongate"))
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&theft.body)
    );
    assert!(theft.signature_is_valid(SECRET.as_bytes()), "{theft:?}");
    assert!(!theft.signature_is_valid(b"another secret"));
    assert_eq!(theft.headers["content-type"], "application/json");
    assert_eq!(
        theft.headers["x-sessiongate-event"],
        "session.theft_detected"
    );
    let e = theft.json();
    assert_eq!(e["user_id"], "event-user");
    assert_eq!(e["reason"], "theft");
    assert_eq!(e["revoked"], 1);
    assert!(
        e["session_handle"].as_str().is_some_and(|h| h.len() == 22),
        "{e}"
    );
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert_eq!(
        e["request_id"].as_str(),
        stolen.header("x-request-id").as_deref(),
        "the thief's request"
    );
    assert!(e["id"].as_str().is_some_and(|id| id.len() == 32));
    let ts: i64 = theft.headers["x-sessiongate-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((ts * 1000 - e["time_ms"].as_i64().unwrap()).abs() < 60_000);
    let body = String::from_utf8_lossy(&theft.body);
    for token in b.jar.cookies.values().chain(thief.jar.cookies.values()) {
        assert!(
            token.len() < 8 || !body.contains(token.as_str()),
            "a token in the event"
        );
    }

    // Logout: revoked by the browser.
    let mut c = Browser::new(gw.public_addr);
    c.login("logout-user").await;
    assert_eq!(c.post("/auth/logout").await.status, 200);
    let e = next_event(&mut rx, "session.revoked").await.json();
    assert_eq!(e["reason"], "logout");
    assert_eq!(e["revoked"], 1);
    assert_eq!(e["client_ip"], "127.0.0.1");

    // The admin API: the call, and the revocation it made.
    let admin = AdminClient::new(gw.admin_addr);
    let mut d = Browser::new(gw.public_addr);
    d.login("admin-target").await;
    let r = admin
        .call(
            http::Method::DELETE,
            "/v1/users/admin-target/sessions",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked = next_event(&mut rx, "session.revoked").await.json();
    assert_eq!(revoked["reason"], "admin");
    assert_eq!(revoked["user_id"], "admin-target");
    let call = next_event(&mut rx, "admin.call").await.json();
    assert_eq!(call["method"], "DELETE");
    assert_eq!(call["path"], "/v1/users/admin-target/sessions");
    assert_eq!(call["status"], 200);
    assert!(call.get("request_id").is_none());

    // A forced key rotation.
    let r = admin
        .call(http::Method::POST, "/v1/keys/rotate", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = next_event(&mut rx, "key.rotated").await.json();
    assert_eq!(rotated["kid"], r.json()["kid"]);
    assert_eq!(rotated["scheduled"], false);

    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(&gw, "sessiongate_events_delivered_total ") < 6 {
        assert!(Instant::now() < deadline, "deliveries not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counter(&gw, "sessiongate_events_failed_total "), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_event_when_it_comes_back() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = test_config(
        &db.url(),
        &up.url(),
        &format!(
            "events.webhook_url = \"http://{addr}/hook\"\n\
             events.retry_base_ms = 100\n\
             events.max_retries = 10"
        ),
    );
    let gw = start_gateway(cfg, Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("retry-user").await;
    assert_eq!(b.post("/auth/logout").await.status, 200);
    // Nothing listens: the first attempts fail (100, 200, 400 ms apart, …).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(counter(&gw, "sessiongate_events_delivered_total "), 0);
    let mut rx = receive(TcpListener::bind(addr).await.unwrap());
    let e = next_event(&mut rx, "session.revoked").await.json();
    assert_eq!(e["reason"], "logout");
    assert!(e.get("id").is_some());
    // Counted once the receiver's answer is back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(&gw, "sessiongate_events_delivered_total ") != 1 {
        assert!(Instant::now() < deadline, "delivery not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counter(&gw, "sessiongate_events_failed_total "), 0);
    gw.stop().await;
}

/// A receiver that accepts connections and never answers holds the worker on its first
/// event; with a one-event queue the rest are dropped and counted, and requests that raise
/// events are as fast as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_slowing_requests() {
    let db = TestSqlite::new();
    let up = TestUpstream::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let cfg = test_config(
        &db.url(),
        &up.url(),
        &format!(
            "events.webhook_url = \"http://{addr}/hook\"\n\
             events.queue_capacity = 1"
        ),
    );
    let gw = start_gateway(cfg, Clock::system()).await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let mut b = Browser::new(gw.public_addr);
        b.login(&format!("queue-user-{i}")).await;
        let started = Instant::now();
        assert_eq!(b.post("/auth/logout").await.status, 200);
        slowest = slowest.max(started.elapsed());
    }
    let dropped = counter(
        &gw,
        "sessiongate_events_dropped_total{reason=\"queue_full\"} ",
    );
    // One event is with the worker, one waits in the queue.
    assert!(dropped >= 18, "dropped {dropped}");
    // The stuck webhook (10 s per attempt) never shows in a request.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest logout {slowest:?}"
    );
    assert_eq!(counter(&gw, "sessiongate_events_delivered_total "), 0);
    gw.stop().await;
    held.abort();
}
