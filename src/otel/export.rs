//! The OTLP/HTTP exporter: one task that takes finished spans from the tracer's bounded queue,
//! batches them (at most [`BATCH_SPANS`], or what arrived within [`BATCH_WAIT`] of the first),
//! and POSTs each batch as a protobuf `ExportTraceServiceRequest` to `tracing.endpoint`. One
//! request at a time, each bounded by [`EXPORT_TIMEOUT`]; a batch the collector refuses or
//! that cannot be delivered is dropped and counted (`trace_spans_dropped_total{reason=
//! "export_failed"}`), never retried: traces are best-effort and must not back up into the
//! request path, which only ever `try_send`s into the queue. When every sender is gone the
//! task sends what it holds and ends.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc;

use super::proto;
use crate::metrics::{Metrics, SpanDrop};

/// Most spans in one export request.
pub const BATCH_SPANS: usize = 512;
/// Longest a finished span waits for its batch to fill.
pub const BATCH_WAIT: Duration = Duration::from_millis(500);
/// Longest one export request may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub(super) async fn run(
    mut rx: mpsc::Receiver<proto::Span>,
    endpoint: Uri,
    service_name: String,
    metrics: Metrics,
) {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::proxy::forward::rustls_client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<Connector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let resource = proto::Resource {
        attributes: vec![
            string_attr("service.name", &service_name),
            string_attr("service.version", env!("CARGO_PKG_VERSION")),
            string_attr("telemetry.sdk.name", "sessiongate"),
            string_attr("telemetry.sdk.language", "rust"),
        ],
    };
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        let mut closed = false;
        while batch.len() < BATCH_SPANS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let body = encode(&resource, std::mem::take(&mut batch));
        match send(&client, &endpoint, body).await {
            Ok(()) => metrics.trace_spans_exported_total.inc_by(n),
            Err(why) => {
                tracing::warn!(endpoint = %endpoint, error = %why, spans = n, "trace export failed; spans dropped");
                metrics
                    .trace_spans_dropped_total
                    .with_label_values(&[SpanDrop::ExportFailed.as_str()])
                    .inc_by(n);
            }
        }
        if closed {
            return;
        }
    }
}

fn string_attr(key: &str, value: &str) -> proto::KeyValue {
    proto::KeyValue {
        key: key.to_string(),
        value: Some(proto::AnyValue {
            value: Some(proto::any_value::Value::StringValue(value.to_string())),
        }),
    }
}

fn encode(resource: &proto::Resource, spans: Vec<proto::Span>) -> Bytes {
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: "sessiongate".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
            }],
        }],
    }
    .encode_to_vec()
    .into()
}

async fn send(
    client: &Client<Connector, Full<Bytes>>,
    endpoint: &Uri,
    body: Bytes,
) -> Result<(), String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(endpoint.clone())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read the (small) answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {status}"))
        }
    };
    tokio::time::timeout(EXPORT_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", EXPORT_TIMEOUT.as_secs())))
}
