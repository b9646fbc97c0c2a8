//! Test harness for gateway tests: a real upstream (hyper, port 0) that echoes what it
//! received and can act as a login endpoint, a real gateway started through `app::start_on`
//! on port 0, and a small HTTP client with a cookie jar that behaves like a browser's.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sessiongate::app::{self, Gateway};
use sessiongate::clock::Clock;
use sessiongate::config::Config;
use sessiongate::http::cookies;
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

/// A gateway config for tests: plain-http cookies, the given store and upstream, routes
/// `/api` (required), `/public` (public), `/auth/login` (public, session control),
/// `/opt` (optional), `/app` (required, login redirect), `/` (required, session control).
/// `extra` holds more root-level dotted keys, e.g. `tokens.access_token.blacklisting = true`.
pub fn test_config(store_url: &str, upstream: &str, extra: &str) -> Config {
    let toml = format!(
        r#"
server.listen = "127.0.0.1:0"
server.admin_listen = "127.0.0.1:0"
server.upstream_timeout_secs = 2
server.shutdown_grace_secs = 5
store.url = "{store_url}"
store.connection_limit = 20
tokens.access_token.validity_secs = 60
tokens.refresh_token.renew_path = "/auth/refresh"
tokens.refresh_token.reuse_grace_secs = 10
cookie.secure = false
session.logout_path = "/auth/logout"
admin.api_key = "test-admin-key-0123456789"
{extra}

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "{upstream}"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "{upstream}"
auth = "public"

[[routes]]
name = "login"
path_prefix = "/auth/login"
upstream = "{upstream}"
auth = "public"
session_control = true

[[routes]]
name = "opt"
path_prefix = "/opt"
upstream = "{upstream}"
auth = "optional"

[[routes]]
name = "app"
path_prefix = "/app"
upstream = "{upstream}"
login_redirect = "/auth/login-page"

[[routes]]
name = "control"
path_prefix = "/"
upstream = "{upstream}"
session_control = true
"#
    );
    sessiongate::config::load_from_str(&toml).unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
}

/// Starts a gateway and waits until it can check access tokens (a MySQL store is brought into
/// service in the background; on a busy machine its migrations may outlast `start_on`'s wait).
pub async fn start_gateway(cfg: Config, clock: Clock) -> Gateway {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = app::start_on(cfg, clock, public, admin)
        .await
        .expect("gateway starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(why) = gw.state.verification_blocker() {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway not ready after 30 s: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw
}

/// A response as a test sees it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
    /// What the upstream echoed as received header `name` (first value).
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name][0].as_str().map(str::to_string)
    }
}

/// A client with a browser-like cookie jar (one origin, paths ignored except that
/// `sRefreshToken` is sent only to the refresh path), and the SDK's anti-CSRF habit.
#[derive(Clone)]
pub struct Browser {
    pub base: String,
    pub jar: BTreeMap<String, String>,
    pub anti_csrf: Option<String>,
    client: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            jar: BTreeMap::new(),
            anti_csrf: None,
            client: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(&mut self, method: Method, path: &str, extra: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        let cookies: Vec<String> = self
            .jar
            .iter()
            .filter(|(k, _)| k.as_str() != cookies::REFRESH || path.starts_with("/auth/refresh"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookies.is_empty() {
            b = b.header("cookie", cookies.join("; "));
        }
        if let Some(t) = &self.anti_csrf {
            b = b.header(cookies::ANTI_CSRF, t);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let resp = Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        self.absorb(&resp);
        resp
    }

    /// Applies `Set-Cookie` and `anti-csrf` like a browser plus the frontend SDK would.
    pub fn absorb(&mut self, resp: &Resp) {
        for c in resp.set_cookies() {
            let first = c.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let cleared = value.is_empty() || c.contains("Max-Age=0");
            if cleared {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_string(), value.to_string());
            }
        }
        if let Some(t) = resp.header(cookies::ANTI_CSRF) {
            self.anti_csrf = Some(t);
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, &[]).await
    }

    pub async fn post(&mut self, path: &str) -> Resp {
        self.send(Method::POST, path, &[]).await
    }

    pub async fn refresh(&mut self) -> Resp {
        self.send(Method::POST, "/auth/refresh", &[]).await
    }

    pub async fn login(&mut self, user: &str) -> Resp {
        let r = self.get(&format!("/auth/login?user={user}")).await;
        assert_eq!(r.status, 200, "login: {}", r.text());
        r
    }
}
