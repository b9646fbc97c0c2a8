//! The public listener's request handling: the browser contract of SPEC §4 and the upstream
//! contract of §5.
//!
//! Order for every request: refuse unsupported transfer codings (501) → compute the one
//! canonical host (400 when missing, duplicated, with userinfo, invalid, or disagreeing with
//! the request-target authority) → strip spoofed identity headers → normalise the path → CORS
//! preflight → the gateway's own endpoints (JWKS, refresh, logout) → route → authenticate from the
//! access token in memory (no store query unless blacklisting needs none either) → forward
//! with identity → apply session control from the upstream response. The canonical host is
//! what routes match and what the upstream receives as `Host`. Every refusal is a
//! [`Reject`] turned into a response by `error.rs`. The handler never returns `Err`.
//!
//! Every response, success or refusal, leaves through one exit, `finish`: it alone adds CORS
//! for an allowed `Origin`, sets `X-Request-Id`, records the request metrics and arranges the
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

use std::net::SocketAddr;
use std::time::Instant;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::config::{AuthMode, Route};
use crate::error::{json_response, Reject};
use crate::http::cookies;
use crate::proxy::{forward, headers, route};
use crate::session::access::AccessClaims;
use crate::session::csrf;
use crate::session::refresh::RefreshToken;
use crate::sessions::{IssuedSession, RefreshResult, SessionError, UnauthorisedWhy};
use crate::state::AppState;

const ACCESS_COOKIE: &str = "sAccessToken";
const REFRESH_COOKIE: &str = "sRefreshToken";
const ID_REFRESH_COOKIE: &str = "sIdRefreshToken";
const ANTI_CSRF: &str = "anti-csrf";
const ID_REFRESH_HEADER: &str = "id-refresh-token";
const EXPOSE: &str = "id-refresh-token, anti-csrf";
/// Public keys for upstreams that verify the JWT themselves (EdDSA keys only).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Connection facts the handler needs.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

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
    let seen = logging.then(|| Seen {
        client: headers::client_addr(req.headers(), peer.addr.ip(), |ip| is_trusted(&state, ip)),
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
    };
    let result = dispatch(&state, req, peer, edge, &mut outcome).await;
    let facts = Facts {
        started,
        method,
        peer,
        request_id,
        origin,
        seen,
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
        Err(reject) => reject.response(state.cfg.session.expired_status),
    };
    // A preflight answer carries its own CORS headers.
    if !outcome.preflight {
        add_cors(state, facts.origin.as_deref(), &mut resp);
    }
    let Facts {
        started,
        method,
        peer,
        request_id,
        seen,
        ..
    } = facts;
    resp.headers_mut()
        .insert(headers::REQUEST_ID, request_id.clone());
    let label = outcome.route_name.as_deref().unwrap_or(outcome.route);
    let status = resp.status().as_u16();
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
    origin: Option<String>,
    /// The gateway's own origin as the browser sees it ([`own_origin`]).
    own_origin: Option<String>,
    navigation: bool,
    peer: Peer,
    edge: Edge,
}

fn host_of(req: &Request<Incoming>) -> Result<Option<String>, Reject> {
    let authority = req.uri().authority().map(|a| a.as_str());
    headers::request_host(req.version(), authority, req.headers())
        .map_err(|e| Reject::BadRequest(e.to_string()))
}

fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

async fn dispatch(
    state: &AppState,
    mut req: Request<Incoming>,
    peer: Peer,
    edge: Edge,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Reject> {
    headers::check_transfer_coding(req.headers())
        .map_err(|e| Reject::NotImplemented(e.to_string()))?;
    let host = host_of(&req)?;
    headers::strip_spoofed(req.headers_mut(), &state.cfg.identity)
        .map_err(|e| Reject::BadRequest(e.to_string()))?;
    let path =
        route::normalise_path(req.uri().path()).map_err(|e| Reject::BadRequest(e.to_string()))?;
    let had_params = path.had_params;
    let path = path.path;
    let ctx = Ctx {
        method: req.method().clone(),
        query: req.uri().query().map(str::to_string),
        origin: edge.origin.clone(),
        own_origin: own_origin(peer, &edge, host.as_deref(), req.headers()),
        navigation: is_navigation(req.method(), req.headers()),
        host,
        path,
        peer,
        edge,
    };
    if tracing::enabled!(target: "sessiongate::access", tracing::Level::INFO) {
        outcome.path = Some(ctx.path.clone());
    }

    if ctx.method == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        if let Some(origin) = ctx.origin.as_deref().filter(|o| cors_allowed(state, o)) {
            outcome.preflight = true;
            return Ok(preflight(origin));
        }
    }

    let own_endpoint = ctx.path == JWKS_PATH
        || ctx.path == state.cfg.tokens.refresh_token.renew_path
        || state.cfg.session.logout_path.as_deref() == Some(ctx.path.as_str());
    if had_params && own_endpoint {
        return Err(Reject::BadRequest(route::PathError::Params.to_string()));
    }
    if ctx.method == Method::GET && ctx.path == JWKS_PATH {
        outcome.route = "jwks";
        let ring = state
            .sessions
            .keys()
            .ring()
            .map_err(|_| Reject::StoreUnavailable)?;
        return Ok(json_response(StatusCode::OK, &ring.jwks()));
    }
    let tokens = &state.cfg.tokens;
    if ctx.path == tokens.refresh_token.renew_path {
        outcome.route = "refresh";
        return refresh_endpoint(state, &ctx, req.headers()).await;
    }
    if state.cfg.session.logout_path.as_deref() == Some(ctx.path.as_str()) {
        outcome.route = "logout";
        return logout_endpoint(state, &ctx, req.headers()).await;
    }

    let (_, route) = state
        .router
        .route(ctx.host.as_deref(), &ctx.path)
        .ok_or(Reject::NoRoute)?;
    outcome.route_name = Some(route.name.clone());
    // The path routed (and authorised) below is the path forwarded: refuse what it dropped.
    route::admit(route, had_params).map_err(|e| Reject::BadRequest(e.to_string()))?;

    // A session-control route reads the session the way an optional route does, so that
    // `sessiongate-revoke` and `sessiongate-update-payload` act on it even when it is public.
    let session = match route.auth {
        AuthMode::Public if !route.session_control => None,
        AuthMode::Public | AuthMode::Optional => {
            match authenticate(state, &ctx, route, req.headers()).await {
                Auth::Valid(c) => Some(c),
                Auth::Unavailable => return Err(Reject::StoreUnavailable),
                _ => None,
            }
        }
        AuthMode::Required => match authenticate(state, &ctx, route, req.headers()).await {
            Auth::Valid(c) => Some(c),
            Auth::Unavailable => return Err(Reject::StoreUnavailable),
            Auth::TryRefresh => {
                return if ctx.navigation {
                    Ok(refresh_page(state))
                } else {
                    Err(Reject::TryRefreshToken)
                };
            }
            Auth::NoSession | Auth::Revoked => {
                let mut resp = match (&route.login_redirect, ctx.navigation) {
                    (Some(target), true) => login_redirect(target, &ctx),
                    _ => Reject::Unauthorised.response(state.cfg.session.expired_status),
                };
                clear_session(state, resp.headers_mut());
                return Ok(resp);
            }
        },
    };
    outcome.user_id = session.as_ref().map(|c| c.sub.clone());
    let presented = route
        .session_control
        .then(|| Presented::from(req.headers()));

    let mut resp = forward_to(state, &ctx, route, req, session.as_deref(), outcome).await?;
    if let Some(presented) = presented {
        apply_session_control(state, session.as_deref(), &presented, &mut resp).await?;
    } else {
        headers::take_session_control(resp.headers_mut());
    }
    Ok(resp)
}

enum Auth {
    Valid(std::sync::Arc<AccessClaims>),
    /// No `sIdRefreshToken`: the browser has no session.
    NoSession,
    TryRefresh,
    /// Revoked, seen through the blacklist.
    Revoked,
    /// The browser has a session but tokens cannot be checked yet (no keys, or the
    /// blacklist has not read the feed): the store has not been reachable since start.
    Unavailable,
}

async fn authenticate(state: &AppState, ctx: &Ctx, route: &Route, h: &HeaderMap) -> Auth {
    let m = &state.metrics.auth_decisions_total;
    let decide = |outcome: &str, auth: Auth| {
        m.with_label_values(&[outcome]).inc();
        auth
    };
    if cookies::cookie(h, ID_REFRESH_COOKIE).is_none() {
        return decide("no_session", Auth::NoSession);
    }
    if state.verification_blocker().is_some() {
        return decide("unavailable", Auth::Unavailable);
    }
    let Some(token) = cookies::cookie(h, ACCESS_COOKIE) else {
        return decide("missing_access_token", Auth::TryRefresh);
    };
    let claims = match state.sessions.verify(&token).await {
        Ok(c) => c,
        Err(e) => {
            let outcome = match e {
                crate::session::access::AccessError::Expired => "expired",
                crate::session::access::AccessError::UnknownKey => "unknown_key",
                _ => "invalid",
            };
            return decide(outcome, Auth::TryRefresh);
        }
    };
    if csrf::required(
        state.cfg.tokens.enable_anti_csrf,
        route.anti_csrf,
        &ctx.method,
    ) {
        let presented = h.get(ANTI_CSRF).and_then(|v| v.to_str().ok());
        if !csrf::matches(claims.anti_csrf.as_deref(), presented) {
            return decide("anti_csrf_failed", Auth::TryRefresh);
        }
    }
    if let Some(bl) = &state.blacklist {
        if bl.is_revoked(&claims.sid) {
            return decide("revoked", Auth::Revoked);
        }
    }
    decide("valid", Auth::Valid(claims))
}

/// Builds and sends the upstream request, returning the upstream response with hop-by-hop
/// headers removed and its body still streaming.
async fn forward_to(
    state: &AppState,
    ctx: &Ctx,
    route: &Route,
    mut req: Request<Incoming>,
    session: Option<&AccessClaims>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Reject> {
    let websocket = headers::is_websocket_upgrade(req.headers());
    // A browser always sends `Origin` on a WebSocket handshake; a foreign one would ride on
    // the user's cookies (cross-site WebSocket hijacking). No `Origin`: not a browser.
    if let Some(origin) = ctx.origin.as_deref().filter(|_| websocket) {
        if !is_own_origin(state, ctx, origin) && !cors_allowed(state, origin) {
            return Err(Reject::ForbiddenOrigin(origin.to_string()));
        }
    }
    let ws_key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let slot = req.extensions_mut().remove::<crate::server::ConnSlot>();
    let (mut parts, incoming) = req.into_parts();
    let uri = route::join_upstream_uri(&route.upstream, &ctx.path, ctx.query.as_deref())
        .map_err(|e| Reject::BadRequest(e.to_string()))?;
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, websocket);
    headers::strip_cookie(h, REFRESH_COOKIE);
    let trusted = ctx.edge.trusted;
    h.insert(headers::REQUEST_ID, ctx.edge.request_id.clone());
    let proto = if ctx.peer.tls { "https" } else { "http" };
    headers::set_forwarded(h, ctx.peer.addr.ip(), proto, ctx.host.as_deref(), trusted);
    if !trusted {
        headers::strip_untrusted(h);
    }
    // The upstream gets the host the request was routed on, whatever the client sent.
    match ctx.host.as_deref().map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            h.insert(header::HOST, v);
        }
        _ => {
            h.remove(header::HOST);
        }
    }
    if let Some(c) = session {
        let payload = c.payload.to_string();
        headers::add_identity(h, &state.cfg.identity, &c.sub, &c.sid, &payload)
            .map_err(|e| Reject::Internal(e.to_string()))?;
    }
    let (up_body, body_watch) = body::client_body(incoming, state.cfg.server.body_read_timeout);
    let mut up = Request::from_parts(parts, up_body);
    *up.uri_mut() = uri;

    let started = Instant::now();
    let result = state.upstream.send(up, &body_watch).await;
    outcome.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    state
        .metrics
        .upstream_duration_seconds
        .with_label_values(&[route.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let mut resp = result.inspect_err(|e| {
        tracing::warn!(route = %route.name, error = %e, "upstream request failed");
    })?;
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        // Only a real WebSocket switch for the key the client sent becomes a tunnel.
        match (client_upgrade, ws_key, slot) {
            (Some(up), Some(key), Some(slot)) if forward::is_websocket_switch(&resp, &key) => {
                forward::splice_websocket(up, &mut resp, slot);
            }
            _ => {
                let e = Reject::BadGateway(
                    "upstream switched protocols without a valid WebSocket handshake".into(),
                );
                tracing::warn!(route = %route.name, error = %e, "upstream request failed");
                return Err(e);
            }
        }
    }
    let (mut parts, incoming) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    Ok(Response::from_parts(parts, body::stream(incoming)))
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
    h.insert(
        HeaderName::from_static(ID_REFRESH_HEADER),
        HeaderValue::from_static("remove"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
}

fn store_failure(e: SessionError) -> Reject {
    match e {
        SessionError::Store(_) | SessionError::Keys(_) => {
            tracing::warn!(error = %e, "session store operation failed");
            Reject::StoreUnavailable
        }
        SessionError::InvalidInput(m) => Reject::BadSessionControl(m),
        SessionError::Sign(m) => Reject::Internal(m),
    }
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

/// Whether `origin` is the gateway's own: the request's [`own_origin`] or one of
/// `server.public_origins` (accepted whoever the peer is).
fn is_own_origin(state: &AppState, ctx: &Ctx, origin: &str) -> bool {
    ctx.own_origin
        .as_deref()
        .is_some_and(|o| o.eq_ignore_ascii_case(origin))
        || state
            .cfg
            .server
            .public_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
}

fn cors_allowed(state: &AppState, origin: &str) -> bool {
    state
        .cfg
        .cors
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
}

/// The guard of the gateway's own state-changing endpoints (refresh, logout): POST only, and
/// not from a foreign site — an `Origin` that is neither ours nor allowed, or
/// `Sec-Fetch-Site: cross-site` without an allowed origin.
fn post_from_allowed_origin(state: &AppState, ctx: &Ctx, h: &HeaderMap) -> Result<(), Reject> {
    if ctx.method != Method::POST {
        return Err(Reject::MethodNotAllowed("POST"));
    }
    if let Some(origin) = ctx.origin.as_deref() {
        if !is_own_origin(state, ctx, origin) && !cors_allowed(state, origin) {
            return Err(Reject::ForbiddenOrigin(origin.to_string()));
        }
        return Ok(());
    }
    let cross_site = h
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(Reject::ForbiddenOrigin("cross-site request".into()));
    }
    Ok(())
}

async fn refresh_endpoint(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    post_from_allowed_origin(state, ctx, h)?;
    let m = &state.metrics;
    let count = |outcome: &str| m.refresh_total.with_label_values(&[outcome]).inc();
    let expired = state.cfg.session.expired_status;
    let unauthorised = |state: &AppState| {
        let mut resp = Reject::Unauthorised.response(expired);
        clear_session(state, resp.headers_mut());
        resp
    };
    let (Some(rt), Some(_)) = (
        cookies::cookie(h, REFRESH_COOKIE),
        cookies::cookie(h, ID_REFRESH_COOKIE),
    ) else {
        count("unauthorised");
        return Ok(unauthorised(state));
    };
    let result = match state.sessions.refresh(&rt).await {
        Ok(r) => r,
        Err(e) => {
            count("store_unavailable");
            return Err(store_failure(e));
        }
    };
    match result {
        RefreshResult::Issued {
            session,
            grace_replay,
        } => {
            count(if grace_replay {
                "grace_replay"
            } else {
                "rotated"
            });
            let mut resp = json_response(StatusCode::OK, &serde_json::json!({}));
            set_session(state, resp.headers_mut(), &session);
            Ok(resp)
        }
        RefreshResult::Theft {
            handle,
            user_id,
            revoked,
        } => {
            count("theft");
            m.token_theft_total.inc();
            m.sessions_revoked_total
                .with_label_values(&["theft"])
                .inc_by(revoked);
            state.blacklist_now([handle.as_str()]);
            tracing::warn!(session_handle = %handle, user_id = %user_id, revoked, "refresh token theft detected; session revoked");
            let mut resp = Reject::TokenTheft.response(expired);
            clear_session(state, resp.headers_mut());
            Ok(resp)
        }
        RefreshResult::Unauthorised(why) => {
            count("unauthorised");
            if matches!(why, UnauthorisedWhy::BadMac) {
                tracing::info!("refresh with a forged refresh token refused");
            }
            Ok(unauthorised(state))
        }
    }
}

/// The session cookies a request carried, kept for acting on the session after the request
/// itself has been forwarded.
struct Presented {
    access_token: Option<String>,
    /// `sIdRefreshToken` was sent: the browser believes it has a session.
    browser_session: bool,
}

impl Presented {
    fn from(h: &HeaderMap) -> Self {
        Self {
            access_token: cookies::cookie(h, ACCESS_COOKIE).map(|t| t.into_owned()),
            browser_session: cookies::cookie(h, ID_REFRESH_COOKIE).is_some(),
        }
    }
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

async fn logout_endpoint(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    post_from_allowed_origin(state, ctx, h)?;
    // Without keys no token can be read, and ending a session needs the store anyway.
    let ring = state
        .sessions
        .keys()
        .ring()
        .map_err(|_| Reject::StoreUnavailable)?;
    // The session to end: from a genuine access token (an expired one too: the browser does
    // not send `sRefreshToken` here), else from a genuine refresh token.
    let access = cookies::cookie(h, ACCESS_COOKIE);
    let mut handle = session_to_end(state, access.as_deref())
        .await
        .map(|(handle, _)| handle);
    if handle.is_none() {
        if let Some(rt) = cookies::cookie(h, REFRESH_COOKIE) {
            handle = RefreshToken::parse(&rt, ring.refresh_key())
                .ok()
                .map(|t| t.handle.to_text());
        }
    }
    match handle {
        Some(handle) => {
            state
                .revoke_session(&handle, "logout")
                .await
                .map_err(store_failure)?;
        }
        // The browser has a session but nothing here names it (no access token, a forged
        // one, or its key is gone): have the SDK refresh and retry, rather than answer 200
        // and leave the refresh token alive. Cookies stay for the refresh.
        None if cookies::cookie(h, ID_REFRESH_COOKIE).is_some() => {
            return Err(Reject::TryRefreshToken);
        }
        None => {}
    }
    let mut resp = json_response(StatusCode::OK, &serde_json::json!({}));
    clear_session(state, resp.headers_mut());
    Ok(resp)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateControl {
    #[serde(deserialize_with = "crate::sessions::deserialize_user_id")]
    user_id: String,
    #[serde(default = "empty_object")]
    jwt_payload: serde_json::Value,
    #[serde(default = "empty_object")]
    session_data: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

enum RevokeScope {
    Session,
    User,
}

/// Reads `sessiongate-*` headers from an upstream response (always removing them) and acts
/// on them. Everything is parsed before anything is done, so a malformed header creates
/// nothing. `session` is the request's valid session (as on an optional route); revoke also
/// ends the session of a genuine but expired access token in `presented`.
async fn apply_session_control(
    state: &AppState,
    session: Option<&AccessClaims>,
    presented: &Presented,
    resp: &mut Response<Body>,
) -> Result<(), Reject> {
    let control = headers::take_session_control(resp.headers_mut());
    let bad = |what: &str| Reject::BadSessionControl(what.to_string());
    let parse_json = |v: &HeaderValue, what: &str| -> Result<serde_json::Value, Reject> {
        serde_json::from_slice(v.as_bytes()).map_err(|e| bad(&format!("{what}: {e}")))
    };
    let create = match &control.create {
        Some(v) => {
            let c: CreateControl = serde_json::from_value(parse_json(v, "sessiongate-create")?)
                .map_err(|e| bad(&format!("sessiongate-create: {e}")))?;
            if !c.jwt_payload.is_object() {
                return Err(bad("sessiongate-create: jwt_payload must be an object"));
            }
            Some(c)
        }
        None => None,
    };
    let revoke = match &control.revoke {
        Some(v) => match v.as_bytes() {
            b"session" => Some(RevokeScope::Session),
            b"user" => Some(RevokeScope::User),
            _ => return Err(bad("sessiongate-revoke must be `session` or `user`")),
        },
        None => None,
    };
    let update = match &control.update_payload {
        Some(v) => {
            let p = parse_json(v, "sessiongate-update-payload")?;
            if !p.is_object() {
                return Err(bad("sessiongate-update-payload must be a JSON object"));
            }
            Some(p)
        }
        None => None,
    };
    if control.duplicated {
        return Err(bad("a session-control header appears more than once"));
    }
    if create.is_some() && revoke.is_some() {
        return Err(bad("sessiongate-create and sessiongate-revoke together"));
    }

    if let Some(scope) = revoke {
        let target = match session {
            Some(c) => Some((c.sid.clone(), c.sub.clone())),
            None => session_to_end(state, presented.access_token.as_deref()).await,
        };
        let Some((handle, user_id)) = target else {
            // As at the logout path: a browser with a session that nothing here names is
            // asked to refresh and retry; a request with no session at all is the
            // upstream's mistake.
            return Err(if presented.browser_session {
                Reject::TryRefreshToken
            } else {
                bad("sessiongate-revoke on a request without a session")
            });
        };
        match scope {
            RevokeScope::Session => {
                state
                    .revoke_session(&handle, "upstream")
                    .await
                    .map_err(store_failure)?;
            }
            RevokeScope::User => {
                state
                    .revoke_user(&user_id, "upstream")
                    .await
                    .map_err(store_failure)?;
            }
        }
        clear_session(state, resp.headers_mut());
    }
    if let Some(c) = create {
        let issued = state
            .sessions
            .create(&c.user_id, c.jwt_payload, c.session_data)
            .await
            .map_err(store_failure)?;
        state.metrics.sessions_created_total.inc();
        set_session(state, resp.headers_mut(), &issued);
    } else if let Some(payload) = update {
        let Some(c) = session else {
            return Err(bad(
                "sessiongate-update-payload on a request without a session",
            ));
        };
        if let Some((token, expires)) = state
            .sessions
            .update_payload(c, payload)
            .await
            .map_err(store_failure)?
        {
            let now = state.clock.now_ms();
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookies::access_cookie(&state.cookies, &token, expires, now),
            );
        }
    }
    Ok(())
}

fn add_cors(state: &AppState, origin: Option<&str>, resp: &mut Response<Body>) {
    if let Some(origin) = origin.filter(|o| cors_allowed(state, o)) {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(header::VARY, HeaderValue::from_static("Origin"));
            if !h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE),
                );
            }
        }
    }
}

fn preflight(origin: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "anti-csrf, supertokens-sdk-name, supertokens-sdk-version, content-type, authorization",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// `302` to the route's login page with `next` = the original relative path and query.
/// The target comes from config, `next` is always relative: no open redirect.
fn login_redirect(target: &str, ctx: &Ctx) -> Response<Body> {
    let mut next = ctx.path.clone();
    if let Some(q) = &ctx.query {
        next.push('?');
        next.push_str(q);
    }
    let encoded: String =
        percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC).collect();
    let sep = if target.contains('?') { '&' } else { '?' };
    let location = format!("{target}{sep}next={encoded}");
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The page a browser navigation gets instead of `try_refresh_token`: it POSTs to the renew
/// path and reloads, so a page load survives access-token expiry.
fn refresh_page(state: &AppState) -> Response<Body> {
    let renew = serde_json::to_string(&state.cfg.tokens.refresh_token.renew_path)
        .unwrap_or_else(|_| "\"/\"".into());
    let expired = state.cfg.session.expired_status;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Refreshing session…</title></head>\
<body><p id=\"m\">Refreshing your session…</p>\
<noscript><form method=\"post\" action={renew}><button>Continue</button></form></noscript>\
<script>fetch({renew},{{method:\"POST\",credentials:\"same-origin\"}}).then(function(r){{\
if(r.status===200||r.status==={expired}){{location.reload();}}else{{document.getElementById(\"m\").textContent=\"The session service is unavailable; please retry shortly.\";}}\
}},function(){{document.getElementById(\"m\").textContent=\"Network error; please retry.\";}});</script>\
</body></html>"
    );
    let mut resp = Response::new(body::full(html));
    *resp.status_mut() = StatusCode::from_u16(expired).unwrap_or(StatusCode::UNAUTHORIZED);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
