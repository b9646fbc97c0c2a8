//! The public listener's request handling: the browser contract of SPEC §4 and the upstream
//! contract of §5.
//!
//! The phases of every request, in order (`handle` → `dispatch` → `finish`):
//! 1. request facts: refuse unsupported transfer codings (501), compute the one canonical
//!    host (400 when missing, duplicated, with userinfo, invalid, or disagreeing with the
//!    request-target authority), strip spoofed identity headers, normalise the path;
//! 2. own endpoints: the CORS preflight (`http::cors`), then JWKS, refresh and logout
//!    (`endpoints.rs`), and the forward-auth endpoint (`forward_auth.rs`);
//! 3. route;
//! 4. authenticate (`auth.rs`) from the access token in memory: no store query, one
//!    hash-set lookup when blacklisting is on; then the route's `require_claims`
//!    (`policy.rs`, 403 `forbidden`);
//! 5. prepare the upstream request with identity and forward it (`upstream.rs`);
//! 6. session control from the upstream response (`control.rs`);
//! 7. `finish`, the one exit.
//!
//! The canonical host is what routes match and what the upstream receives as `Host`. Every
//! refusal is a [`Reject`] turned into a response by `error.rs`. The handler never returns
//! `Err`. Every response, success or refusal, leaves through `finish`: it alone adds CORS for
//! an allowed `Origin`, sets `X-Request-Id`, records the request metrics and arranges the
//! access-log line.
//!
//! Before all of that the request gets its `X-Request-Id` (a trusted proxy's valid one, else
//! a fresh random one): sent upstream, set on every response, refusals included, and written
//! in the access log. The access-log line is written once, when the response body has ended
//! or been dropped, with the client address (after `trusted_proxies`), user agent, upstream
//! time and body bytes.
//!
//! Own origin: the refresh and logout endpoints and WebSocket handshakes accept an `Origin`
//! that is the gateway's own — the scheme and host of this request as the browser sees them
//! (from a trusted proxy: its `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host`), or one
//! of `server.public_origins` — or one in `cors.allowed_origins`.

mod auth;
mod control;
mod endpoints;
pub use endpoints::jwks;
mod forward_auth;
mod header_mode;
mod policy;
mod upstream;

use std::ops::ControlFlow;
use std::time::Instant;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::config::Route;
use crate::error::{Expiry, Reject};
use crate::http::cookies::{self, ANTI_CSRF, EXPOSE, ID_REFRESH_HEADER};
use crate::http::cors;
use crate::proxy::{headers, route};
use crate::server::Peer;
use crate::sessions::IssuedSession;
use crate::state::AppState;

/// Public keys for upstreams that verify the JWT themselves (EdDSA keys only).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What one request looked like, for the access log and metrics.
struct Outcome {
    route: &'static str,
    route_name: Option<String>,
    user_id: Option<String>,
    /// The normalised path, once known.
    path: Option<String>,
    /// Time until the upstream's response head, when the request was forwarded.
    upstream_ms: Option<f64>,
    /// The response is the gateway's own CORS preflight answer.
    preflight: bool,
}

/// Handles one request. Never fails: every error becomes a response. Every response carries
/// the request's `X-Request-Id`; the access-log line is written when the response body has
/// been sent (or abandoned), with the bytes it carried.
pub async fn handle(state: AppState, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let trusted = is_trusted(&state, peer.addr.ip());
    let request_id = request_id(req.headers(), trusted);
    let logging = tracing::enabled!(target: "sessiongate::access", tracing::Level::INFO);
    let client = headers::client_addr(req.headers(), peer.addr.ip(), |ip| is_trusted(&state, ip));
    let seen = logging.then(|| Seen {
        client,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    });
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut outcome = Outcome {
        route: "unmatched",
        route_name: None,
        user_id: None,
        path: None,
        upstream_ms: None,
        preflight: false,
    };
    let edge = Edge {
        trusted,
        request_id: request_id.clone(),
        origin: origin.clone(),
        client,
    };
    // Security events raised while handling the request name its client and request id.
    let events_origin = crate::events::Origin {
        client_ip: client,
        request_id: Some(request_id.clone()),
    };
    // `[tracing]`: the sampling decision, and the root span of a sampled request.
    let trace = state
        .tracer
        .as_ref()
        .and_then(|t| t.root(req.headers(), trusted));
    let span = trace
        .as_ref()
        .map(|t| crate::otel::request_span(t, &req, peer, client));
    // Boxed once, here: the dispatch future is many KiB, and each wrapper around it (the
    // events scope, the trace scope, the await below) would otherwise hold and move its own
    // copy (callgrind: ~27k instructions of memcpy per request, and a 26 KiB handler future).
    let work = Box::pin(crate::events::scope(
        events_origin,
        dispatch(&state, req, peer, edge, &mut outcome),
    ));
    let result = match trace {
        Some(t) => t.scope(work).await,
        None => work.await,
    };
    let facts = Facts {
        started,
        method,
        peer,
        request_id,
        origin,
        seen,
        span,
    };
    finish(&state, facts, outcome, result)
}

/// What `finish` needs from the request head, read before dispatch consumed the request.
struct Facts {
    started: Instant,
    method: Method,
    peer: Peer,
    request_id: HeaderValue,
    /// The request's `Origin`, for CORS.
    origin: Option<String>,
    /// `None` when the access log is off.
    seen: Option<Seen>,
    /// The request's root span, when it is traced.
    span: Option<crate::otel::Span>,
}

/// The one exit of the public listener: turns a refusal into its response, then, for
/// successes and refusals alike, adds CORS (for an allowed `Origin`) and `X-Request-Id`,
/// records the request metrics and arranges the access-log line.
fn finish(
    state: &AppState,
    facts: Facts,
    outcome: Outcome,
    result: Result<Response<Body>, Reject>,
) -> Response<Body> {
    let mut resp = match result {
        Ok(resp) => resp,
        Err(reject) => reject.response(),
    };
    // A preflight answer carries its own CORS headers.
    if !outcome.preflight {
        cors::add(
            &state.cfg.cors.allowed_origins,
            facts.origin.as_deref(),
            &mut resp,
        );
    }
    let Facts {
        started,
        method,
        peer,
        request_id,
        seen,
        span,
        ..
    } = facts;
    resp.headers_mut()
        .insert(headers::REQUEST_ID, request_id.clone());
    let label = outcome.route_name.as_deref().unwrap_or(outcome.route);
    let status = resp.status().as_u16();
    if let Some(span) = span {
        crate::otel::end_request(span, label, resp.status());
    }
    let m = &state.metrics;
    m.requests_total
        .with_label_values(&[label, resp.status().as_str()])
        .inc();
    m.request_duration_seconds
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    let Some(seen) = seen else {
        return resp;
    };
    let label = label.to_string();
    resp.map(|b| {
        body::counted(b, move |bytes| {
            tracing::info!(
                target: "sessiongate::access",
                request_id = %String::from_utf8_lossy(request_id.as_bytes()),
                client = %seen.client,
                peer = %peer.addr,
                method = %method,
                path = outcome.path.as_deref().unwrap_or("-"),
                route = label,
                status,
                bytes,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                upstream_ms = outcome.upstream_ms,
                user_id = outcome.user_id.as_deref().unwrap_or("-"),
                user_agent = seen.user_agent.as_deref().unwrap_or("-"),
                "request"
            );
        })
    })
}

/// What the access log keeps from the request head.
struct Seen {
    /// The client's address after `trusted_proxies` ([`headers::client_addr`]).
    client: std::net::IpAddr,
    user_agent: Option<String>,
}

/// Facts about the request's edge, settled before dispatch.
struct Edge {
    /// The peer is in `server.trusted_proxies`.
    trusted: bool,
    request_id: HeaderValue,
    /// The request's `Origin` header.
    origin: Option<String>,
    /// The client's address after `trusted_proxies` ([`headers::client_addr`]): what
    /// `[rate_limits]` key on.
    client: std::net::IpAddr,
}

fn is_trusted(state: &AppState, ip: std::net::IpAddr) -> bool {
    state
        .cfg
        .server
        .trusted_proxies
        .iter()
        .any(|c| c.contains(ip))
}

/// The request's id: a trusted proxy's valid `X-Request-Id`, else 16 random bytes in hex.
fn request_id(h: &HeaderMap, trusted: bool) -> HeaderValue {
    let mut sent = h.get_all(headers::REQUEST_ID).iter();
    if let (true, Some(v), None) = (trusted, sent.next(), sent.next()) {
        if headers::valid_request_id(v.as_bytes()) {
            return v.clone();
        }
    }
    let id = format!("{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Request facts derived once.
struct Ctx {
    method: Method,
    path: String,
    query: Option<String>,
    /// The canonical host ([`headers::request_host`]): routed on and sent upstream as `Host`.
    /// `None` only for an HTTP/1.0 request without one.
    host: Option<String>,
    navigation: bool,
    peer: Peer,
    edge: Edge,
}

fn host_of(req: &Request<Incoming>) -> Result<Option<String>, Reject> {
    let authority = req.uri().authority().map(|a| a.as_str());
    Ok(headers::request_host(
        req.version(),
        authority,
        req.headers(),
    )?)
}

fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// The phases in order; each may answer early. Its result goes to `finish`.
async fn dispatch(
    state: &AppState,
    mut req: Request<Incoming>,
    peer: Peer,
    edge: Edge,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Reject> {
    let (ctx, had_params) = request_facts(state, &mut req, peer, edge)?;
    if tracing::enabled!(target: "sessiongate::access", tracing::Level::INFO) {
        outcome.path = Some(ctx.path.clone());
    }
    if let Some(answer) = own_endpoints(state, &ctx, had_params, req.headers(), outcome).await {
        return answer;
    }
    let route = route(state, &ctx, had_params, outcome)?;
    if route.upstream.is_none() {
        // A route for the forward-auth endpoint only: nothing to forward to.
        return Err(Reject::NoRoute);
    }
    let verify = state
        .tracer
        .as_ref()
        .and_then(|_| crate::otel::span("session.verify", crate::otel::SpanKind::Internal));
    let session = match auth::authorise(state, &ctx, route, req.headers()).await {
        ControlFlow::Continue(session) => session,
        ControlFlow::Break(answer) => return answer,
    };
    drop(verify);
    outcome.user_id = session.as_ref().map(|c| c.sub.clone());
    let presented = match route.session_control {
        true => Some(control::Presented::read(state, route, req.headers()).await),
        false => None,
    };
    header_mode::strip_own_bearer(state, route.token_transfer, req.headers_mut()).await;
    let mut resp =
        upstream::forward_to(state, &ctx, route, req, session.as_deref(), outcome).await?;
    // The `sessiongate-*` headers never reach the browser; only a session-control route acts
    // on them, and only once they all parse.
    let taken = headers::take_session_control(resp.headers_mut());
    if let Some(presented) = presented {
        let control = control::parse(&taken)?;
        let client = ctx.edge.client;
        control::apply(
            state,
            session.as_deref(),
            &presented,
            control,
            &mut resp,
            client,
        )
        .await?;
    }
    Ok(resp)
}

/// Request facts: the framing check, the canonical host, spoofed identity headers removed,
/// the normalised path (and whether it had `;` parameters).
fn request_facts(
    state: &AppState,
    req: &mut Request<Incoming>,
    peer: Peer,
    edge: Edge,
) -> Result<(Ctx, bool), Reject> {
    headers::check_transfer_coding(req.headers())?;
    let host = host_of(req)?;
    headers::strip_spoofed(req.headers_mut(), &state.cfg.identity)?;
    let path = route::normalise_path(req.uri().path())?;
    let ctx = Ctx {
        method: req.method().clone(),
        query: req.uri().query().map(str::to_string),
        navigation: is_navigation(req.method(), req.headers()),
        host,
        path: path.path,
        peer,
        edge,
    };
    Ok((ctx, path.had_params))
}

/// The gateway's own answers: the CORS preflight of an allowed origin, JWKS, refresh and
/// logout. `None`: the request is for an upstream.
async fn own_endpoints(
    state: &AppState,
    ctx: &Ctx,
    had_params: bool,
    h: &HeaderMap,
    outcome: &mut Outcome,
) -> Option<Result<Response<Body>, Reject>> {
    if ctx.method == Method::OPTIONS && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        if let Some(origin) = ctx
            .edge
            .origin
            .as_deref()
            .filter(|o| cors::allowed(&state.cfg.cors.allowed_origins, o))
        {
            outcome.preflight = true;
            return Some(Ok(cors::preflight(origin)));
        }
    }
    let renew = ctx.path == state.cfg.tokens.refresh_token.renew_path;
    let logout = state.cfg.session.logout_path.as_deref() == Some(ctx.path.as_str());
    if had_params && (ctx.path == JWKS_PATH || renew || logout) {
        return Some(Err(route::PathError::Params.into()));
    }
    if ctx.method == Method::GET && ctx.path == JWKS_PATH {
        outcome.route = "jwks";
        return Some(endpoints::jwks(state));
    }
    if renew {
        outcome.route = "refresh";
        return Some(endpoints::refresh_endpoint(state, ctx, h).await);
    }
    if logout {
        outcome.route = "logout";
        return Some(endpoints::logout_endpoint(state, ctx, h).await);
    }
    if let Some(suffix) = forward_auth::target(state, &ctx.path) {
        outcome.route = "forward_auth";
        return Some(forward_auth::verify(state, ctx, h, suffix, had_params, outcome).await);
    }
    None
}

/// The route for the canonical host and path; a path whose `;` parameters the route does
/// not accept is refused, since the path routed (and authorised) is the path forwarded.
fn route<'s>(
    state: &'s AppState,
    ctx: &Ctx,
    had_params: bool,
    outcome: &mut Outcome,
) -> Result<&'s Route, Reject> {
    let (_, route) = state
        .router
        .route(ctx.host.as_deref(), &ctx.path)
        .ok_or(Reject::NoRoute)?;
    outcome.route_name = Some(route.name.clone());
    route::admit(route, had_params)?;
    Ok(route)
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Adds the creation cookies and headers of SPEC §4 to a response.
fn set_session(state: &AppState, h: &mut HeaderMap, s: &IssuedSession) {
    let now = state.clock.now_ms();
    for c in cookies::session_cookies(
        &state.cookies,
        &s.access_token,
        s.access_expires_at,
        &s.refresh_token,
        &s.id_refresh_token,
        s.session_expires_at,
        now,
    ) {
        h.append(header::SET_COOKIE, c);
    }
    if let Some(t) = &s.anti_csrf {
        set_header(h, ANTI_CSRF, t);
    }
    set_issued_headers(h, s);
}

/// What every answer that issues a session carries, in cookies or in headers:
/// `id-refresh-token`, the exposed header names and `Cache-Control: no-store`.
fn set_issued_headers(h: &mut HeaderMap, s: &IssuedSession) {
    set_header(
        h,
        ID_REFRESH_HEADER,
        &format!("{};{}", s.id_refresh_token, s.session_expires_at),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Adds the clearing cookies and `id-refresh-token: remove`.
fn clear_session(state: &AppState, h: &mut HeaderMap) {
    for c in cookies::clearing_cookies(&state.cookies) {
        h.append(header::SET_COOKIE, c);
    }
    set_cleared_headers(h);
}

/// What every answer that ends a session carries, in cookies or in headers:
/// `id-refresh-token: remove` and the exposed header names.
fn set_cleared_headers(h: &mut HeaderMap) {
    h.insert(
        HeaderName::from_static(ID_REFRESH_HEADER),
        HeaderValue::from_static("remove"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
}

/// A session-expiry refusal, with the configured `session.expired_status`.
fn expired(state: &AppState, why: Expiry) -> Reject {
    Reject::Expired(why, state.cfg.session.expired_status)
}

/// The gateway's own origin as the browser sees it: the scheme of this connection and the
/// canonical host, or, from a trusted proxy, the scheme and host it reports
/// ([`headers::forwarded_origin`], field by field). Untrusted peers' forwarded headers are
/// ignored.
fn own_origin(peer: Peer, edge: &Edge, host: Option<&str>, h: &HeaderMap) -> Option<String> {
    let mut scheme = if peer.tls { "https" } else { "http" };
    let mut host = host.map(str::to_string);
    if edge.trusted {
        let forwarded = headers::forwarded_origin(h);
        scheme = forwarded.proto.unwrap_or(scheme);
        host = forwarded.host.or(host);
    }
    host.map(|h| headers::origin(scheme, &h))
}

/// Whether `origin` may drive the gateway's own state-changing exchanges (refresh, logout,
/// WebSocket handshakes): the request's [`own_origin`] (worked out here, only when asked, from
/// the request's unchanged headers `h`), one of `server.public_origins` (accepted whoever the
/// peer is), or one of `cors.allowed_origins`.
fn origin_allowed(state: &AppState, ctx: &Ctx, h: &HeaderMap, origin: &str) -> bool {
    own_origin(ctx.peer, &ctx.edge, ctx.host.as_deref(), h)
        .is_some_and(|o| o.eq_ignore_ascii_case(origin))
        || state
            .cfg
            .server
            .public_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
        || cors::allowed(&state.cfg.cors.allowed_origins, origin)
}

/// The session (handle, user id) that a genuine access token names, expired or not. The
/// signature, key and algorithm rules still hold, so a forged or tampered token names none.
/// Only for ending a session (logout, `sessiongate-revoke`), never for authorising.
async fn session_to_end(state: &AppState, access_token: Option<&str>) -> Option<(String, String)> {
    let claims = state
        .sessions
        .verify_ignoring_expiry(access_token?)
        .await
        .ok()?;
    Some((claims.sid, claims.sub))
}
