//! The upstream app behind every in-process gateway test: a real hyper server on port 0 that
//! echoes what it received as JSON and, chosen by the last path segment, acts as a login
//! endpoint, sends session-control headers, answers slowly, streams, or accepts a WebSocket
//! upgrade.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).boxed()
}

/// The upstream app: `GET|POST /login?user=U` answers with `sessiongate-create`;
/// `/logout-all` with `sessiongate-revoke: user`; `/bad-control` with a malformed create;
/// `/update?role=R` with `sessiongate-update-payload`; `/slow?ms=N` waits before answering;
/// `/stream?chunks=N&ms=M` streams N chunks M ms apart; everything else echoes the request as
/// JSON `{method, path, headers}`.
pub struct TestUpstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn upstream_handler(mut req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_string();
    if path.ends_with("/ws") {
        // A raw echo after a WebSocket-style upgrade; reports the identity it saw first.
        // Answers with the RFC 6455 `Sec-WebSocket-Accept` for the request's key, or with
        // none (`?accept=none`) or a wrong one (`?accept=wrong`).
        let user = req
            .headers()
            .get("x-user-id")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut io = TokioIo::new(upgraded);
                let _ = io.write_all(format!("hello {user}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let accept = match query_param(req.uri(), "accept").as_deref() {
            Some("none") => None,
            Some("wrong") => Some(websocket_accept(b"not the key")),
            _ => req
                .headers()
                .get("sec-websocket-key")
                .map(|k| websocket_accept(k.as_bytes())),
        };
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        if let Some(a) = accept {
            resp.headers_mut()
                .insert("sec-websocket-accept", a.parse().unwrap());
        }
        return Ok(resp);
    }
    let uri = req.uri().clone();
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_insert_with(Vec::new)
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = serde_json::json!({
        "method": method,
        "path": path,
        "query": uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(full(echo.to_string()));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    // Behaviour is chosen by the last path segment, so every route prefix reaches it.
    let last = path.rsplit('/').next().unwrap_or("");
    match last {
        "login" => {
            let user = query_param(&uri, "user").unwrap_or_else(|| "alice".into());
            let create = serde_json::json!({
                "user_id": user,
                "jwt_payload": {"role": "member"},
                "session_data": {"ip": "test"}
            });
            resp.headers_mut()
                .insert("sessiongate-create", create.to_string().parse().unwrap());
        }
        "logout-all" => {
            resp.headers_mut()
                .insert("sessiongate-revoke", "user".parse().unwrap());
        }
        "bad-control" => {
            resp.headers_mut()
                .insert("sessiongate-create", "{not json".parse().unwrap());
        }
        "update" => {
            let role = query_param(&uri, "role").unwrap_or_else(|| "admin".into());
            resp.headers_mut().insert(
                "sessiongate-update-payload",
                serde_json::json!({"role": role})
                    .to_string()
                    .parse()
                    .unwrap(),
            );
        }
        "slow" => {
            let ms: u64 = query_param(&uri, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(5000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        "stream" => {
            let chunks: usize = query_param(&uri, "chunks")
                .and_then(|v| v.parse().ok())
                .unwrap_or(5);
            let ms: u64 = query_param(&uri, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    if tx
                        .send(Ok(Frame::data(Bytes::from(format!("chunk{i};")))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let stream = tokio_stream_from(rx);
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            return Ok(r);
        }
        _ => {}
    }
    Ok(resp)
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2), computed independently of the gateway.
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// An mpsc receiver as a `Stream` (without pulling in tokio-stream).
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl TestUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(upstream_handler))
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
