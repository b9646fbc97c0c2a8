//! Reload on SIGHUP and TLS certificate reload (issue 9 item 5), against the real binary:
//! routes and the log level change live while a streaming response on an open HTTP/1.1
//! connection and another on an open h2c connection finish; a restart-only key keeps its old
//! value with an error line naming it; an invalid file changes nothing and is logged like
//! `check-config` reports it; `sessiongate_config_reloads_total{result}` counts both. The TLS
//! certificate is replaced on disk and new connections get it without a signal.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio::net::TcpStream;

use crate::support::client::AdminClient;
use crate::support::config::free_port;
use crate::support::process::Gateway;
use crate::support::TestUpstream;
use crate::support::{db, process, wire};

fn sighup(gw: &Gateway) {
    let ok = Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .expect("running kill")
        .success();
    assert!(ok, "kill -HUP failed");
}

/// The `message` of every JSON log line so far.
fn log_messages(gw: &Gateway) -> Vec<String> {
    gw.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect()
}

/// Waits (at most 10 s) until `count` of the log reaches `times`; `what` names it in the panic.
async fn wait_log(gw: &Gateway, what: &str, times: usize, count: impl Fn(&Gateway) -> usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(gw) < times {
        assert!(
            Instant::now() < deadline,
            "{what} not logged {times} time(s):\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `message` has been logged `times` times.
async fn wait_logged(gw: &Gateway, message: &str, times: usize) {
    let count = |gw: &Gateway| log_messages(gw).iter().filter(|m| *m == message).count();
    wait_log(gw, &format!("{message:?}"), times, count).await;
}

/// Waits for `times` access-log lines for `path` (a line is written when the response body has
/// ended on the gateway's side, which can be just after the client has read it), then checks
/// there are no more than that.
async fn wait_access_lines(gw: &Gateway, path: &str, times: usize) {
    let what = format!("an access line for {path}");
    wait_log(gw, &what, times, |gw| access_lines(gw, path)).await;
    assert_eq!(access_lines(gw, path), times, "{}", gw.log_text());
}

/// Access-log lines (target `sessiongate::access`) for `path`.
fn access_lines(gw: &Gateway, path: &str) -> usize {
    gw.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "sessiongate::access" && v["path"] == path)
        .count()
}

async fn metric(gw: &Gateway, line_prefix: &str) -> String {
    let text = AdminClient::new(gw.admin_addr)
        .call(http::Method::GET, "/metrics", None)
        .await;
    text.text()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .unwrap_or_else(|| panic!("no {line_prefix} in /metrics"))
        .to_string()
}

type H1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;
type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

fn get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .body(Empty::new())
        .unwrap()
}

async fn send_h1(s: &mut H1, addr: SocketAddr, path: &str) -> http::Response<Incoming> {
    s.ready().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.send_request(get(addr, path)))
        .await
        .expect("answer within 5 s")
        .unwrap()
}

async fn send_h2(s: &mut H2, addr: SocketAddr, path: &str) -> http::Response<Incoming> {
    s.ready().await.unwrap();
    let mut req = get(addr, path);
    req.headers_mut().remove("host");
    tokio::time::timeout(Duration::from_secs(5), s.send_request(req))
        .await
        .expect("answer within 5 s")
        .unwrap()
}

/// The rest of a body as text, within 10 s.
async fn rest(body: Incoming) -> String {
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body within 10 s")
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads the first data frame of a streaming response.
async fn first_chunk(body: &mut Incoming) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a chunk within 5 s")
            .expect("not the end")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            return String::from_utf8_lossy(&data).into_owned();
        }
    }
}

const ROUTE_B: &str = r#"
[[routes]]
name = "beta"
path_prefix = "/beta"
upstream = "UPSTREAM"
auth = "public"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_live_keys_and_leaves_open_requests_alone() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    // An environment override, which a reload must apply again: /api made public.
    let env = [("SESSIONGATE_ROUTES__0__AUTH", "public")];
    let mut gw = Gateway::spawn_with_env(&db.url(), &up.url(), "", &env);
    gw.wait_ready().await;
    let addr = gw.public_addr;

    // Before: route A answers, B does not exist; requests are in the access log.
    let mut conn1 = wire::h1(addr).await;
    assert_eq!(send_h1(&mut conn1, addr, "/api/x").await.status(), 200);
    assert_eq!(send_h1(&mut conn1, addr, "/beta/x").await.status(), 404);
    assert_eq!(send_h1(&mut conn1, addr, "/public/x").await.status(), 200);
    wait_access_lines(&gw, "/public/x", 1).await;

    // Slow streaming responses in flight on a keep-alive HTTP/1.1 and an h2c connection.
    let mut conn2 = wire::h2c(addr).await;
    let resp1 = send_h1(&mut conn1, addr, "/public/stream?chunks=8&ms=250").await;
    let resp2 = send_h2(&mut conn2, addr, "/public/stream?chunks=8&ms=250").await;
    assert_eq!(
        (resp1.status().as_u16(), resp2.status().as_u16()),
        (200, 200)
    );
    let (mut body1, mut body2) = (resp1.into_body(), resp2.into_body());
    assert_eq!(first_chunk(&mut body1).await, "chunk0;");
    assert_eq!(first_chunk(&mut body2).await, "chunk0;");

    // New file: route B, a restart-only change (listen), another upstream timeout (a new
    // upstream client while the old one streams) and a level that silences the access log.
    let old = std::fs::read_to_string(&gw.config).unwrap();
    let other_port = free_port();
    let new =
        old.replace(
            &format!("server.listen = \"{addr}\""),
            &format!("server.listen = \"127.0.0.1:{other_port}\""),
        )
        .replace(
            "server.upstream_timeout_secs = 5",
            "server.upstream_timeout_secs = 6",
        )
        .replace(
            "logging.level = \"info\"",
            "logging.level = \"info,sessiongate::access=warn\"",
        ) + &ROUTE_B.replace("UPSTREAM", &up.url());
    assert_ne!(new, old);
    std::fs::write(&gw.config, &new).unwrap();
    sighup(&gw);
    wait_logged(&gw, "configuration reloaded", 1).await;

    // B works on a new stream of the open h2c connection while its first stream still runs.
    let r = send_h2(&mut conn2, addr, "/beta/h2").await;
    assert_eq!(r.status(), 200);
    assert!(rest(r.into_body()).await.contains("\"/beta/h2\""));
    // Both streams that started before the reload finish whole.
    let (t1, t2) = tokio::join!(rest(body1), rest(body2));
    let all: String = (1..8).map(|i| format!("chunk{i};")).collect();
    assert_eq!(t1, all);
    assert_eq!(t2, all);
    // B works on the same HTTP/1.1 connection and on a new one; A still works.
    assert_eq!(send_h1(&mut conn1, addr, "/beta/same").await.status(), 200);
    let mut conn3 = wire::h1(addr).await;
    assert_eq!(send_h1(&mut conn3, addr, "/beta/new").await.status(), 200);
    assert_eq!(send_h1(&mut conn3, addr, "/public/y").await.status(), 200);
    assert_eq!(send_h1(&mut conn3, addr, "/api/y").await.status(), 200);

    // The restart-only key kept its value: still on the old port, not on the new one.
    let messages = log_messages(&gw);
    assert!(
        messages
            .iter()
            .any(|m| m == "server.listen changed; restart to apply"),
        "{}",
        gw.log_text()
    );
    assert!(
        !messages.iter().any(|m| m.contains("upstream_timeout")),
        "a live key was reported as restart-only:\n{}",
        gw.log_text()
    );
    assert!(TcpStream::connect(("127.0.0.1", other_port)).await.is_err());
    assert_eq!(
        metric(&gw, "sessiongate_config_reloads_total{result=\"ok\"}").await,
        "sessiongate_config_reloads_total{result=\"ok\"} 1"
    );
    assert_eq!(
        metric(&gw, "sessiongate_config_reloads_total{result=\"error\"}").await,
        "sessiongate_config_reloads_total{result=\"error\"} 0"
    );

    // An invalid file changes nothing and is reported like check-config reports it.
    let invalid = new
        .replace(
            "server.upstream_timeout_secs = 6",
            "server.upstream_timeout_secs = 0",
        )
        .replace("name = \"beta\"", "name = \"beta\"\npath_prefx = \"/b\"");
    std::fs::write(&gw.config, &invalid).unwrap();
    let (code, _, report) = process::run_with_config(&["check-config"], &gw.config);
    assert_eq!(code, 64, "{report}");
    let problems: Vec<&str> = report.lines().skip(1).collect();
    assert!(problems.len() >= 2, "{report}");
    sighup(&gw);
    wait_logged(
        &gw,
        "configuration reload refused, nothing changed; invalid configuration:",
        1,
    )
    .await;
    for p in &problems {
        wait_logged(&gw, p, 1).await;
    }
    assert_eq!(
        metric(&gw, "sessiongate_config_reloads_total{result=\"error\"}").await,
        "sessiongate_config_reloads_total{result=\"error\"} 1"
    );
    assert_eq!(
        metric(&gw, "sessiongate_config_reloads_total{result=\"ok\"}").await,
        "sessiongate_config_reloads_total{result=\"ok\"} 1"
    );
    assert!(gw.child.as_mut().unwrap().try_wait().unwrap().is_none());
    assert_eq!(send_h1(&mut conn1, addr, "/beta/after").await.status(), 200);
    let r = send_h2(&mut conn2, addr, "/beta/after-h2").await;
    assert_eq!(r.status(), 200);
    assert!(rest(r.into_body()).await.contains("\"/beta/after-h2\""));

    gw.terminate_cleanly().await;
    // The new level applied: requests after the first reload are not in the access log. (Read
    // once the process has exited, so a line written late cannot be missed.)
    assert_eq!(access_lines(&gw, "/beta/new"), 0, "{}", gw.log_text());
    assert_eq!(access_lines(&gw, "/public/y"), 0, "{}", gw.log_text());
    // The transcript of both reloads, for the record.
    for line in gw.log_text().lines() {
        if line.contains("reload")
            || line.contains("restart to apply")
            || line.contains("SIGHUP")
            || problems
                .iter()
                .any(|p| line.contains(&p.replace('"', "\\\"")))
        {
            println!("{line}");
        }
    }
}

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn cert() -> Cert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Cert {
        pem: c.cert.pem(),
        key: c.key_pair.serialize_pem(),
        der: c.cert.der().to_vec(),
    }
}

/// Writes `text` to `path` the way secret volumes do: a new file renamed into place.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Opens a TLS connection trusting both certificates; returns the one the server presented
/// and the connection (still open).
async fn presented(
    addr: SocketAddr,
    trusted: &[&Cert],
) -> (
    Vec<u8>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots
            .add(rustls::pki_types::CertificateDer::from(c.der.clone()))
            .unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (der, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_files_are_reloaded_without_a_signal() {
    let db = db::TestSqlite::new();
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (one, two) = (cert(), cert());
    std::fs::write(&cert_path, &one.pem).unwrap();
    std::fs::write(&key_path, &one.key).unwrap();
    let extra = format!(
        "server.tls.cert = \"{}\"\nserver.tls.key = \"{}\"",
        cert_path.display(),
        key_path.display()
    );
    let mut gw =
        Gateway::spawn_with_env(&db.url(), &up.url(), &extra, &[("SG_TLS_POLL_MS", "100")]);
    gw.wait_ready().await;
    let addr = gw.public_addr;

    let (der, mut open) = presented(addr, &[&one, &two]).await;
    assert_eq!(der, one.der, "serves certificate 1 at first");

    // cert-manager style rotation: key and certificate replaced, no signal.
    replace_file(&key_path, &two.key);
    replace_file(&cert_path, &two.pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (der, _) = presented(addr, &[&one, &two]).await;
        if der == two.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "certificate 2 not served within 5 s:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Clients that trust only the new certificate get through now.
    let (der, _) = presented(addr, &[&two]).await;
    assert_eq!(der, two.der);

    // An unusable certificate changes nothing: logged, and certificate 2 is still served.
    replace_file(&cert_path, "not a certificate\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw
        .log_text()
        .contains("cannot be used; keeping the current certificate")
    {
        assert!(
            Instant::now() < deadline,
            "the unusable certificate was not noticed within 5 s:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (der, _) = presented(addr, &[&two]).await;
    assert_eq!(
        der, two.der,
        "an unusable certificate must not replace the served one"
    );

    // The connection opened under certificate 1 still works.
    let answer = wire::http1_exchange(
        &mut open,
        b"GET /public/old-conn HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.head.starts_with("HTTP/1.1 200"), "{answer:?}");
    // A certificate reload is not a configuration reload.
    assert_eq!(
        metric(&gw, "sessiongate_config_reloads_total{result=\"ok\"}").await,
        "sessiongate_config_reloads_total{result=\"ok\"} 0"
    );
    gw.terminate_cleanly().await;
    for line in gw.log_text().lines().filter(|l| l.contains("TLS")) {
        println!("{line}");
    }
}
