//! The one HTTP client of the tests: [`Client::send`] sends a request and collects the answer
//! into a [`Resp`]. [`Browser`] puts a cookie jar in front of it (for the public listener) and
//! [`AdminClient`] a bearer key (for the admin listener). Raw and HTTP/2 exchanges live in
//! `wire`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sessiongate::http::cookies;

use super::config::ADMIN_KEY;
use super::jar::{Jar, REFRESH_PATH};

/// How long any request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A pooled HTTP/1.1 client (hyper-util's legacy client).
#[derive(Clone)]
pub struct Client(hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>);

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        Self(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http())
    }

    /// Sends `req` and collects the whole answer; `Err` says why there is none (timeout,
    /// connection refused, ...).
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// [`Client::try_send`], panicking when there is no answer.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        self.try_send(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// A client with a browser-like cookie jar for one origin (see `jar`), and the SDK's
/// anti-CSRF habit.
#[derive(Clone)]
pub struct Browser {
    pub base: String,
    pub jar: Jar,
    client: Client,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            jar: Jar::default(),
            client: Client::new(),
        }
    }

    pub async fn send(&mut self, method: Method, path: &str, extra: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(c) = self.jar.cookie_header(path) {
            b = b.header("cookie", c);
        }
        if let Some(t) = &self.jar.anti_csrf {
            b = b.header(cookies::ANTI_CSRF, t);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let resp = self.client.send(b.body(Full::default()).unwrap()).await;
        self.absorb(&resp);
        resp
    }

    /// Applies `Set-Cookie` and `anti-csrf` like a browser plus the frontend SDK would.
    pub fn absorb(&mut self, resp: &Resp) {
        self.jar.absorb(&resp.headers);
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, &[]).await
    }

    pub async fn post(&mut self, path: &str) -> Resp {
        self.send(Method::POST, path, &[]).await
    }

    pub async fn refresh(&mut self) -> Resp {
        self.send(Method::POST, REFRESH_PATH, &[]).await
    }

    pub async fn login(&mut self, user: &str) -> Resp {
        let r = self.get(&format!("/auth/login?user={user}")).await;
        assert_eq!(r.status, 200, "login: {}", r.text());
        r
    }
}

/// A client for the admin listener at `base` (`http://host:port`), sending [`ADMIN_KEY`].
pub struct AdminClient {
    base: String,
    client: Client,
}

impl AdminClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self::at(&format!("http://{addr}"))
    }

    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_string(),
            client: Client::new(),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(k) = bearer {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        b.body(Full::new(body.into())).unwrap()
    }

    /// A request with any (or no) bearer key and a raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Resp {
        self.client
            .send(self.request(method, path, bearer, body))
            .await
    }

    /// `GET path` with the admin key; `None` when nothing answers.
    pub async fn try_get(&self, path: &str) -> Option<Resp> {
        let req = self.request(Method::GET, path, Some(ADMIN_KEY), Bytes::new());
        self.client.try_send(req).await.ok()
    }

    /// A request with the admin key and a JSON body (or none).
    pub async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Resp {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, Some(ADMIN_KEY), body).await
    }

    /// `POST /v1/sessions` with `body` (`user_id`, optional `jwt_payload`, `session_data`).
    pub async fn create(&self, body: serde_json::Value) -> Resp {
        self.call(Method::POST, "/v1/sessions", Some(body)).await
    }
}
