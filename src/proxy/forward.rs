//! Forwarding to upstreams with hyper-util's pooled client (HTTP/1.1, or HTTP/2 over TLS
//! when the upstream offers it): bodies stream both ways, the time to response headers is
//! bounded by `server.upstream_timeout_secs`, and WebSocket upgrades are spliced.
//!
//! Header hygiene is not done here (see `headers.rs`); this module only moves requests.

use std::time::Duration;

use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::Body;
use crate::error::Reject;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Body>,
    timeout: Duration,
}

impl Upstream {
    pub fn new(timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let tls = rustls_client_config();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { client, timeout }
    }

    /// Sends `req` upstream. Connection failures are 502, no response headers within the
    /// timeout is 504. The response body is not awaited here: it streams to the client.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, Reject> {
        // The client speaks HTTP/1.1 upstream whatever the client used.
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Err(Reject::GatewayTimeout),
            Ok(Err(e)) => Err(Reject::BadGateway(error_chain(&e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

fn rustls_client_config() -> tokio_rustls::rustls::ClientConfig {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tokio_rustls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// After a `101 Switching Protocols` from upstream, splices the client's and the upstream's
/// upgraded connections together in a background task until either side closes.
pub fn splice_upgrade(
    client_upgrade: hyper::upgrade::OnUpgrade,
    upstream_resp: &mut Response<Incoming>,
) {
    if upstream_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let upstream_upgrade = hyper::upgrade::on(upstream_resp);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "websocket connection ended");
        }
    });
}
