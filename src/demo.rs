//! `sessiongate demo`: the gateway on the embedded SQLite store in front of a built-in demo
//! app, so a newcomer can log in from a browser with one command.
//!
//! The demo app is an ordinary upstream reached through the same proxy path as any other: it
//! listens on its own loopback port, creates sessions with the `sessiongate-create` response
//! header, reads the identity headers the gateway injects, and asks the admin API for the
//! session's expiry. Nothing in the gateway knows it is a demo.
//!
//! With `--sdk-bundle PATH` (a browser bundle of the `supertokens-website` 4.x SDK exposing
//! `window.supertokens`) the app also serves `/sdk`, a page that drives the unmodified SDK's
//! fetch interceptor against the gateway; the browser end-to-end tests use it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{self, Body};

/// The password every demo user logs in with (shown on the login page).
pub const DEMO_PASSWORD: &str = "demo";
/// The admin key the demo configures so its app can read session expiry.
const DEMO_ADMIN_KEY: &str = "demo-admin-key-not-for-production";

/// Where the demo app reaches the admin API.
#[derive(Clone)]
struct DemoApp {
    admin: SocketAddr,
    /// The SDK bundle `/sdk/supertokens.js` serves, if configured.
    sdk_bundle: Option<PathBuf>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · sessiongate demo</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}\
nav a{{margin-right:1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;font-family:monospace}}\
.ok{{color:#176f2c}}.bad{{color:#a61b1b}}button{{font-size:1rem;padding:.3rem .8rem}}</style></head>\
<body><nav><a href=\"/\">Home</a><a href=\"/app\">Protected page</a><a href=\"/login\">Log in</a></nav>\
<h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(body).split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

impl DemoApp {
    async fn session_expiry(&self, handle: &str) -> Option<i64> {
        let req = Request::get(format!("http://{}/v1/sessions/{handle}", self.admin))
            .header(header::AUTHORIZATION, format!("Bearer {DEMO_ADMIN_KEY}"))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let resp = self.client.request(req).await.ok()?;
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["expires_at"].as_i64()
    }

    async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/") => html(StatusCode::OK, page(
                "sessiongate demo",
                "<p>This page is <b>public</b>: the gateway forwards it without a session.</p>\
<p>The <a href=\"/app\">protected page</a> needs a session; without one the gateway sends you to the login page.</p>\
<p>Access tokens live <b>10 seconds</b> here, so you can watch the gateway refresh them.</p>",
            )),
            (Method::GET, "/login") => html(StatusCode::OK, page(
                "Log in",
                &format!("<form method=\"post\" action=\"/login\">\
<p><label>User name <input name=\"username\" value=\"alice\" required></label></p>\
<p><label>Password <input name=\"password\" type=\"password\" required></label> (every demo user's password is <code>{DEMO_PASSWORD}</code>)</p>\
<input type=\"hidden\" name=\"next\" value=\"/app\"><p><button id=\"login\">Log in</button></p></form>"),
            )),
            (Method::POST, "/login") => {
                let wants_json = header_str(&req, "accept")
                    .is_some_and(|a| a.contains("application/json"));
                let body = Limited::new(req.into_body(), 16 * 1024)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let user = form_field(&body, "username").unwrap_or_default();
                let password = form_field(&body, "password").unwrap_or_default();
                if user.trim().is_empty() || password != DEMO_PASSWORD {
                    return html(StatusCode::UNAUTHORIZED, page(
                        "Log in",
                        "<p class=\"bad\" id=\"error\">Wrong user name or password.</p><p><a href=\"/login\">Try again</a></p>",
                    ));
                }
                let now = crate::clock::Clock::system().now_ms();
                let create = serde_json::json!({
                    "user_id": user.trim(),
                    "jwt_payload": {"name": user.trim(), "role": "demo-user"},
                    "session_data": {"logged_in_at": now},
                });
                // A script (the SDK page) asks for JSON: it must see the creation response
                // itself, with its `id-refresh-token` and `anti-csrf` headers, which a
                // followed redirect would hide from it.
                let mut r = if wants_json {
                    crate::error::json_response(
                        StatusCode::OK,
                        &serde_json::json!({"user_id": user.trim()}),
                    )
                } else {
                    let mut r = Response::new(body::empty());
                    *r.status_mut() = StatusCode::SEE_OTHER;
                    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/app"));
                    r
                };
                if let Ok(v) = HeaderValue::from_str(&create.to_string()) {
                    r.headers_mut().insert("sessiongate-create", v);
                }
                r
            }
            (Method::GET, "/app") => {
                let user = header_str(&req, "x-user-id").unwrap_or("").to_string();
                let handle = header_str(&req, "x-session-handle").unwrap_or("").to_string();
                let payload = header_str(&req, "x-jwt-payload").unwrap_or("").to_string();
                let expiry = match self.session_expiry(&handle).await {
                    Some(ms) => httpdate::fmt_http_date(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
                    ),
                    None => "unknown".into(),
                };
                let rows = [("x-user-id", &user), ("x-session-handle", &handle), ("x-jwt-payload", &payload)]
                    .iter()
                    .map(|(k, v)| format!("<tr><th>{k}</th><td id=\"{k}\">{}</td></tr>", escape(v)))
                    .collect::<String>();
                html(StatusCode::OK, page(
                    "Protected page",
                    &format!("<p>Hello, <b id=\"user\">{u}</b>. The gateway verified your session and told this app who you are:</p>\
<table>{rows}</table><p>Session expires: <span id=\"expires\">{e}</span></p>\
<p>Page rendered at <span id=\"rendered\">{now}</span>.</p>\
<p><button id=\"call-api\" onclick=\"callApi()\">Call the protected API</button> <span id=\"api-result\"></span></p>\
<p><button id=\"logout\" onclick=\"logout()\">Log out</button></p>\
<script>\
async function callApi(){{const out=document.getElementById('api-result');\
let r=await fetch('/api/me',{{headers:{{'anti-csrf':localStorage.getItem('anti-csrf')||''}}}});\
if(r.status===401){{const rr=await fetch('/auth/refresh',{{method:'POST'}});\
if(rr.status===200){{const t=rr.headers.get('anti-csrf');if(t)localStorage.setItem('anti-csrf',t);r=await fetch('/api/me');}}}}\
if(r.ok){{const j=await r.json();out.textContent='API says: user '+j.user_id+' at '+j.time;out.className='ok';}}\
else{{out.textContent='API refused: '+r.status;out.className='bad';}}}}\
async function logout(){{const r=await fetch('/auth/logout',{{method:'POST'}});\
if(r.status===401){{const rr=await fetch('/auth/refresh',{{method:'POST'}});\
if(rr.status===200)await fetch('/auth/logout',{{method:'POST'}});}}location.href='/';}}\
</script>",
                        u = escape(&user), e = escape(&expiry),
                        now = httpdate::fmt_http_date(std::time::SystemTime::now())),
                ))
            }
            (Method::GET, "/api/me") => {
                let v = serde_json::json!({
                    "user_id": header_str(&req, "x-user-id"),
                    "session_handle": header_str(&req, "x-session-handle"),
                    "jwt_payload": header_str(&req, "x-jwt-payload")
                        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
                    "time": httpdate::fmt_http_date(std::time::SystemTime::now()),
                });
                crate::error::json_response(StatusCode::OK, &v)
            }
            (Method::GET, "/sdk") => self.sdk_page(),
            (Method::GET, "/sdk/supertokens.js") => self.sdk_bundle().await,
            _ => html(StatusCode::NOT_FOUND, page("Not found", "<p>No such page.</p>")),
        }
    }

    /// The SDK test page: loads the bundle, initialises the SDK's fetch interceptor with the
    /// gateway's refresh path (session-expired status left at the SDK's default) and offers
    /// small helpers (`sdkLogin`, `sdkCall`, `sdkLogout`) that a test or a person can call.
    fn sdk_page(&self) -> Response<Body> {
        if self.sdk_bundle.is_none() {
            return html(StatusCode::NOT_FOUND, page(
                "Frontend SDK page",
                "<p class=\"bad\" id=\"sdk-status\">The SDK bundle is not configured: start the demo with <code>--sdk-bundle PATH</code>.</p>",
            ));
        }
        html(StatusCode::OK, page(
            "Frontend SDK page",
            "<p>This page uses the unmodified <code>supertokens-website</code> 4.2.0 fetch interceptor.</p>\
<p>SDK: <span id=\"sdk-status\">loading…</span> · session exists: <span id=\"sdk-session\">?</span></p>\
<p><button id=\"sdk-login\" onclick=\"sdkLogin('alice').then(show)\">Log in through the SDK</button> \
<button id=\"sdk-call\" onclick=\"sdkCall('/api/me').then(show)\">GET /api/me</button> \
<button id=\"sdk-logout\" onclick=\"sdkLogout().then(show)\">Log out</button></p>\
<pre id=\"sdk-result\"></pre>\
<script src=\"/sdk/supertokens.js\"></script>\
<script>\
async function asResult(r){const t=await r.text();let b=t;try{b=JSON.parse(t);}catch(e){}\
return {status:r.status,body:b,session:supertokens.doesSessionExist()};}\
async function sdkCall(url,init){try{return await asResult(await fetch(url,init));}\
catch(e){return {status:-1,error:String(e&&e.message||e),session:supertokens.doesSessionExist()};}}\
function sdkLogin(user){return sdkCall('/login',{method:'POST',headers:{'accept':'application/json',\
'content-type':'application/x-www-form-urlencoded'},body:'username='+encodeURIComponent(user)+'&password=demo'});}\
function sdkLogout(){return sdkCall('/auth/logout',{method:'POST'});}\
function show(r){document.getElementById('sdk-result').textContent=JSON.stringify(r,null,1);\
document.getElementById('sdk-session').textContent=String(supertokens.doesSessionExist());return r;}\
if(window.supertokens){supertokens.init({refreshTokenUrl:'/auth/refresh'});\
document.getElementById('sdk-status').textContent='ready';\
document.getElementById('sdk-session').textContent=String(supertokens.doesSessionExist());}\
else{document.getElementById('sdk-status').textContent='bundle failed to load';}\
</script>",
        ))
    }

    /// The configured SDK bundle, read from disk on each request (tests rebuild it).
    async fn sdk_bundle(&self) -> Response<Body> {
        let Some(path) = &self.sdk_bundle else {
            return html(
                StatusCode::NOT_FOUND,
                page("Not found", "<p>The SDK bundle is not configured.</p>"),
            );
        };
        match tokio::fs::read(path).await {
            Ok(bytes) => {
                let mut r = Response::new(body::full(bytes));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => html(
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "SDK bundle unavailable",
                    &format!("<p class=\"bad\">{}</p>", escape(&e.to_string())),
                ),
            ),
        }
    }
}

/// Starts the demo app on a loopback port; returns its address.
async fn start_demo_app(
    admin: SocketAddr,
    sdk_bundle: Option<PathBuf>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = DemoApp {
        admin,
        sdk_bundle,
        client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The demo's gateway configuration: SQLite under `dir`, 10 s access tokens, plain-http
/// cookies (loopback only), routes to the demo app.
pub fn demo_config(
    dir: &std::path::Path,
    listen: &str,
    admin: &str,
    upstream: SocketAddr,
) -> String {
    let db = dir.join("sessiongate.db");
    format!(
        r#"[server]
listen = "{listen}"
admin_listen = "{admin}"

[store]
url = "sqlite://{db}"

[tokens.access_token]
validity_secs = 10

[tokens.refresh_token]
renew_path = "/auth/refresh"

[cookie]
secure = false

[session]
logout_path = "/auth/logout"

[admin]
api_key = "{DEMO_ADMIN_KEY}"

[logging]
level = "info"

[[routes]]
name = "login"
path_prefix = "/login"
upstream = "http://{upstream}"
auth = "public"
session_control = true

[[routes]]
name = "app"
path_prefix = "/app"
upstream = "http://{upstream}"
login_redirect = "/login"

[[routes]]
name = "sdk"
path_prefix = "/sdk"
upstream = "http://{upstream}"
auth = "public"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "http://{upstream}"

[[routes]]
name = "home"
path_prefix = "/"
upstream = "http://{upstream}"
auth = "public"
"#,
        db = db.display()
    )
}

/// Options of `sessiongate demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Address of the admin listener.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: String,
    /// Directory for the demo's SQLite file.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// A browser bundle of the `supertokens-website` 4.x SDK (exposing `window.supertokens`)
    /// to serve at `/sdk/supertokens.js` for the `/sdk` test page.
    #[arg(long, env = "SESSIONGATE_SDK_BUNDLE")]
    pub sdk_bundle: Option<PathBuf>,
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    // The admin listener is bound first so the demo app knows where to reach it.
    let admin = TcpListener::bind(&args.admin_listen).await?;
    let public = TcpListener::bind(&args.listen).await?;
    let admin_addr = admin.local_addr()?;
    let upstream = start_demo_app(admin_addr, args.sdk_bundle.clone()).await?;
    let toml = demo_config(&args.dir, &args.listen, &args.admin_listen, upstream);
    let cfg =
        crate::config::load_from_str(&toml).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    crate::logging::init_logging(&cfg.logging);
    let gw = crate::app::start_on(cfg, crate::clock::Clock::system(), public, admin).await?;
    println!(
        "sessiongate demo is running: open http://{}/ (password: {DEMO_PASSWORD})",
        gw.public_addr
    );
    println!("admin API and metrics: http://{}/metrics", gw.admin_addr);
    crate::app::termination_signal().await;
    gw.stop().await;
    Ok(())
}
