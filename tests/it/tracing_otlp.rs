//! OpenTelemetry traces (issue 13 item 1) through real sockets: an in-test OTLP/HTTP collector
//! (a hyper server) decodes every `ExportTraceServiceRequest` it receives with the gateway's
//! own protobuf declarations (`sessiongate::otel::proto`), and the tests assert the span tree
//! a request produced: the root server span, its children (`session.verify`, the store
//! operations, the `upstream` client span), the `traceparent` the upstream received, the
//! trusted-proxy rule for incoming `traceparent`, and that no attribute carries a token or
//! cookie. MySQL, so store operations hop from the core threads to the main runtime and the
//! trace must go with them. Run with `--nocapture` to see a received trace tree.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use sessiongate::app::Gateway;
use sessiongate::clock::Clock;
use sessiongate::otel::proto::{self, any_value::Value, ExportTraceServiceRequest, SpanKind};
use tokio::net::{TcpListener, TcpSocket};

use crate::support::{db, start_gateway, test_config, wire, Browser, TestUpstream};

/// What the collector received: every span with its resource's `service.name`.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, proto::Span)>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    async fn start() -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let c = collector.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let c = c.clone();
                        async move { Ok::<_, Infallible>(c.receive(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (collector, addr)
    }

    async fn receive(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let what = format!(
            "{} {} {}",
            req.method(),
            req.uri().path(),
            req.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        );
        self.requests.lock().unwrap().push(what);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let export = ExportTraceServiceRequest::decode(body).expect("a protobuf export request");
        let mut spans = self.spans.lock().unwrap();
        for rs in export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| string_of(kv.value.as_ref()?))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        let mut resp = Response::new(Full::new(Bytes::from(
            proto::ExportTraceServiceRequest::default().encode_to_vec(),
        )));
        resp.headers_mut()
            .insert("content-type", "application/x-protobuf".parse().unwrap());
        resp
    }

    /// The spans of trace `trace_id`, waiting (bounded) until one named `root_name` prefix
    /// (the server span, which ends last) and `want` spans in all have arrived.
    async fn trace(&self, trace_id: &[u8], want: usize) -> Vec<proto::Span> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<proto::Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, s)| s.trace_id == trace_id)
                .map(|(_, s)| s.clone())
                .collect();
            if spans.len() >= want {
                return spans;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "trace {} has {} of {want} spans: {spans:#?}",
                hex::encode(trace_id),
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Root server spans received so far whose `url.path` is `path`.
    fn roots_for(&self, path: &str) -> Vec<proto::Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s)
            .filter(|s| {
                s.kind == SpanKind::Server as i32 && attr(s, "url.path") == Some(path.into())
            })
            .cloned()
            .collect()
    }
}

fn string_of(v: &proto::AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BytesValue(b) => Some(hex::encode(b)),
    }
}

fn attr(span: &proto::Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string_of(kv.value.as_ref()?))
}

/// The trace as an indented tree (name, kind, attributes), for `--nocapture` and failures.
fn tree(spans: &[proto::Span]) -> String {
    fn walk(spans: &[proto::Span], parent: &[u8], depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent_span_id == parent) {
            let attrs: BTreeMap<_, _> = s
                .attributes
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().and_then(string_of).unwrap_or_default(),
                    )
                })
                .collect();
            let kind = SpanKind::try_from(s.kind)
                .map(|k| format!("{k:?}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{}{} [{kind}] {:.3} ms {attrs:?}\n",
                "  ".repeat(depth),
                s.name,
                (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)) as f64 / 1e6
            ));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    let ids: Vec<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
    // Roots: spans whose parent is not in this set (a remote parent, or none).
    let mut roots: Vec<&[u8]> = spans
        .iter()
        .filter(|s| !ids.contains(&s.parent_span_id.as_slice()))
        .map(|s| s.parent_span_id.as_slice())
        .collect();
    roots.dedup();
    for r in roots {
        walk(spans, r, 0, &mut out);
    }
    out
}

async fn gateway(db_url: &str, collector: SocketAddr, extra: &str) -> (TestUpstream, Gateway) {
    let up = TestUpstream::start().await;
    let cfg = test_config(
        db_url,
        &up.url(),
        &format!(
            "tracing.endpoint = \"http://{collector}/v1/traces\"\ntracing.service_name = \"edge-test\"\n{extra}"
        ),
    );
    let gw = start_gateway(cfg, Clock::system()).await;
    (up, gw)
}

/// Sends `GET path` with `headers` from source address `from` (a loopback address).
async fn get_from(from: &str, to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> wire::Raw {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    wire::http1_exchange(&mut stream, req.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_with_verify_store_and_upstream_children() {
    let db = db::TestMysql::new();
    let (collector, at) = Collector::start().await;
    let (_up, gw) = gateway(&db.url(), at, "").await;
    let mut browser = Browser::new(gw.public_addr);
    let login = browser.login("trace-user").await;
    let api = browser.get("/api/orders").await;
    assert_eq!(api.status, 200, "{}", api.text());
    let refreshed = browser.refresh().await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());

    // The authenticated request: root server span with verify and upstream children.
    let sent = api
        .upstream_header("traceparent")
        .expect("upstream got a traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{sent}");
    let trace_id = hex::decode(parts[1]).unwrap();
    let spans = collector.trace(&trace_id, 3).await;
    let shown = tree(&spans);
    println!("trace {} as received by the collector:\n{shown}", parts[1]);
    let root = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("no server span:\n{shown}"));
    assert!(root.parent_span_id.is_empty(), "{shown}");
    assert_eq!(root.name, "GET api", "{shown}");
    for (k, v) in [
        ("http.request.method", "GET"),
        ("url.path", "/api/orders"),
        ("url.scheme", "http"),
        ("http.route", "api"),
        ("http.response.status_code", "200"),
        ("client.address", "127.0.0.1"),
        ("network.protocol.version", "1.1"),
        ("server.address", &gw.public_addr.ip().to_string()),
    ] {
        assert_eq!(attr(root, k).as_deref(), Some(v), "{k}\n{shown}");
    }
    let child = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span:\n{shown}"))
    };
    let verify = child("session.verify");
    assert_eq!(verify.parent_span_id, root.span_id, "{shown}");
    assert_eq!(verify.kind, SpanKind::Internal as i32);
    let upstream = child("upstream");
    assert_eq!(upstream.parent_span_id, root.span_id, "{shown}");
    assert_eq!(upstream.kind, SpanKind::Client as i32);
    assert_eq!(
        attr(upstream, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(upstream, "url.path").as_deref(), Some("/api/orders"));
    // The upstream's traceparent names the upstream span, so the app's spans join under it.
    assert_eq!(parts[2], hex::encode(&upstream.span_id), "{shown}");
    // Children lie within the root.
    for s in &spans {
        assert!(
            s.start_time_unix_nano >= root.start_time_unix_nano,
            "{shown}"
        );
        assert!(s.end_time_unix_nano <= root.end_time_unix_nano, "{shown}");
    }
    // A valid cached token needs no store: no store span in this trace.
    assert_eq!(spans.len(), 3, "{shown}");

    // Login and refresh: the store operations are children of their requests' roots, even
    // though MySQL operations run on the main runtime.
    for (path, op) in [
        ("/auth/login", "create_session"),
        ("/auth/refresh", "refresh"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let root = loop {
            if let Some(r) = collector.roots_for(path).pop() {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "no trace for {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let spans = collector.trace(&root.trace_id, 2).await;
        let shown = tree(&spans);
        println!("trace of {path}:\n{shown}");
        let store = spans
            .iter()
            .find(|s| s.name == op)
            .unwrap_or_else(|| panic!("no {op} span:\n{shown}"));
        assert_eq!(store.parent_span_id, root.span_id, "{shown}");
        assert_eq!(store.kind, SpanKind::Client as i32);
        assert_eq!(attr(store, "db.operation.name").as_deref(), Some(op));
    }

    // Never a token or cookie value in what the collector received.
    let mut secrets: Vec<String> = login
        .set_cookies()
        .into_iter()
        .chain(refreshed.set_cookies())
        .filter_map(|c| {
            c.split(';')
                .next()?
                .split_once('=')
                .map(|(_, v)| v.to_string())
        })
        .filter(|v| v.len() >= 16)
        .collect();
    secrets.extend(browser.jar.anti_csrf.clone());
    assert!(secrets.len() >= 3, "{secrets:?}");
    let all = collector.spans.lock().unwrap().clone();
    for (service, s) in &all {
        assert_eq!(service, "edge-test");
        for kv in &s.attributes {
            let v = kv.value.as_ref().and_then(string_of).unwrap_or_default();
            for secret in &secrets {
                assert!(
                    !v.contains(secret.as_str()),
                    "{} carries a secret: {v}",
                    kv.key
                );
            }
            assert!(
                !v.to_ascii_lowercase().contains("saccesstoken"),
                "{}: {v}",
                kv.key
            );
        }
    }
    assert!(collector
        .requests
        .lock()
        .unwrap()
        .iter()
        .all(|r| r == "POST /v1/traces application/x-protobuf"));
    let metrics = gw.state.metrics.render();
    assert!(
        metrics.contains("sessiongate_trace_spans_exported_total"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_taken_only_from_trusted_proxies() {
    let db = db::TestSqlite::new();
    let (collector, at) = Collector::start().await;
    // 127.0.0.2 is a trusted proxy; 127.0.0.1 is a client.
    let (_up, gw) = gateway(&db.url(), at, "server.trusted_proxies = [\"127.0.0.2\"]").await;
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let incoming = format!("00-{parent_trace}-{parent_span}-01");
    let headers = [
        ("traceparent", incoming.as_str()),
        ("tracestate", "vendor=abc"),
    ];

    // From the trusted proxy: the same trace, the proxy's span as the root's parent.
    let r = get_from("127.0.0.2", gw.public_addr, "/public/trusted", &headers).await;
    let echo = r.json();
    let sent = echo["headers"]["traceparent"][0]
        .as_str()
        .expect("traceparent upstream");
    assert!(sent.starts_with(&format!("00-{parent_trace}-")), "{sent}");
    assert_ne!(
        sent, incoming,
        "the upstream's parent is the gateway's upstream span"
    );
    assert_eq!(echo["headers"]["tracestate"][0], "vendor=abc");
    let spans = collector
        .trace(&hex::decode(parent_trace).unwrap(), 3)
        .await;
    let shown = tree(&spans);
    println!("trace continued from a trusted proxy:\n{shown}");
    let root = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(hex::encode(&root.parent_span_id), parent_span, "{shown}");
    assert_eq!(root.trace_state, "vendor=abc");
    // From a trusted proxy the client address is the one it reports.
    assert_eq!(
        attr(root, "network.peer.address").as_deref(),
        Some("127.0.0.2")
    );

    // From a client: ignored. A new trace, no parent, and the client's header is not what
    // the upstream receives.
    let r = get_from("127.0.0.1", gw.public_addr, "/public/untrusted", &headers).await;
    let echo = r.json();
    let sent = echo["headers"]["traceparent"][0]
        .as_str()
        .expect("traceparent upstream");
    assert!(!sent.contains(parent_trace), "{sent}");
    assert!(echo["headers"]["tracestate"].is_null(), "{echo}");
    let trace_id = hex::decode(sent.split('-').nth(1).unwrap()).unwrap();
    let spans = collector.trace(&trace_id, 3).await;
    let shown = tree(&spans);
    let root = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(root.parent_span_id.is_empty(), "{shown}");
    assert_eq!(attr(root, "url.path").as_deref(), Some("/public/untrusted"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_export_nothing_and_forward_no_client_traceparent() {
    let db = db::TestSqlite::new();
    let (collector, at) = Collector::start().await;
    let (_up, gw) = gateway(&db.url(), at, "tracing.sample_ratio = 0.0").await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get_from(
        "127.0.0.1",
        gw.public_addr,
        "/public/x",
        &[("traceparent", incoming)],
    )
    .await;
    assert!(r.json()["headers"]["traceparent"].is_null(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(collector.spans.lock().unwrap().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_requests_nothing_and_is_counted() {
    let db = db::TestSqlite::new();
    // Nothing listens there.
    let down: SocketAddr = format!("127.0.0.1:{}", crate::support::config::free_port())
        .parse()
        .unwrap();
    let (_up, gw) = gateway(&db.url(), down, "").await;
    let mut browser = Browser::new(gw.public_addr);
    for _ in 0..5 {
        assert_eq!(browser.get("/public/p").await.status, 200);
    }
    let dropped = || {
        gw.state
            .metrics
            .trace_spans_dropped_total
            .with_label_values(&["export_failed"])
            .get()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dropped() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "dropped {}",
            dropped()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}
