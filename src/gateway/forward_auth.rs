//! The forward-auth endpoint (`forward_auth.path`): a front proxy (nginx `auth_request`,
//! Caddy `forward_auth`, Traefik `forwardAuth`, Envoy `ext_authz` in HTTP mode) asks whether
//! the request it holds may go on, and who made it.
//!
//! The original request is described by the asking request: its method in
//! `X-Forwarded-Method` (Traefik, Caddy) or `X-Original-Method` (nginx), else the asking
//! request's own method; its URI in `X-Forwarded-Uri` or `X-Original-URI`, or, Envoy's way,
//! appended to the endpoint's path (`/.sessiongate/verify/orders/7?x=1`); its host in
//! `X-Forwarded-Host`, else the asking request's host. Its cookies and `anti-csrf` header are
//! the asking request's (every front proxy copies the original headers). These facts are
//! honoured only from peers in `server.trusted_proxies`; any other peer gets 403
//! `untrusted_peer`.
//!
//! The URI is normalised exactly as a proxied request's path (`proxy::route::normalise_path`),
//! routed, and authorised by the same `auth::authorise` as the proxy path (auth mode,
//! anti-CSRF with the original method, `require_claims`). Answers:
//! - 200, empty, with the identity headers (configured names) when there is a session: the
//!   front proxy copies them to the upstream. Public routes, and optional routes without a
//!   session: 200 without identity.
//! - the proxy path's refusals, unchanged: 401 (`session.expired_status`) with
//!   `try_refresh_token` / `unauthorised` and the clearing cookies, the refresh page for
//!   navigations, 403 `forbidden` (policy), 503, 404 when no route matches.
//! - the login redirect of a navigation becomes a 401 (front proxies such as nginx only
//!   understand 2xx, 401 and 403 from an auth server) carrying `Location`,
//!   `X-Sessiongate-Redirect` (for nginx's `auth_request_set`) and a small HTML page that
//!   follows the redirect when the front proxy passes the body on (Caddy, Traefik, Envoy).
//!
//! The endpoint never forwards anything and never changes a session.

use std::ops::ControlFlow;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

use super::{auth, is_navigation, Ctx, Edge, Outcome};
use crate::body::{self, Body};
use crate::error::Reject;
use crate::http::pages;
use crate::metrics::ForwardAuthDecision;
use crate::proxy::{headers, route};
use crate::ratelimit::Endpoint;
use crate::state::AppState;

/// The header naming the login page a navigation is sent to (with the 401 answer).
pub const REDIRECT_HEADER: &str = "x-sessiongate-redirect";

/// Whether `path` is for the forward-auth endpoint: `Some(None)` for its path itself,
/// `Some(Some(original))` for its path followed by the original path (Envoy's way).
pub(super) fn target<'p>(state: &AppState, path: &'p str) -> Option<Option<&'p str>> {
    let own = state.cfg.forward_auth.path.as_deref()?;
    match path.strip_prefix(own) {
        Some("") => Some(None),
        Some(rest) if rest.starts_with('/') && !own.ends_with('/') => Some(Some(rest)),
        _ => None,
    }
}

/// Answers one forward-auth request; `suffix`: the original URI appended to the endpoint's
/// path (Envoy), `had_params`: that suffix had `;` parameters.
pub(super) async fn verify(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
    suffix: Option<&str>,
    had_params: bool,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Reject> {
    let mut route_name = None;
    let result = decide(state, ctx, h, suffix, had_params, &mut route_name, outcome).await;
    let decision = match &result {
        Ok(r) if r.status().is_success() => ForwardAuthDecision::Allowed,
        Ok(_) | Err(Reject::Expired(..)) => ForwardAuthDecision::Unauthenticated,
        Err(Reject::Forbidden) => ForwardAuthDecision::Forbidden,
        Err(_) => ForwardAuthDecision::Refused,
    };
    // A miss (no valid session) takes a token from the client's forward-auth bucket
    // (`[rate_limits]`); an empty bucket turns the answer into a 429.
    let result = match decision {
        ForwardAuthDecision::Unauthenticated => state
            .rate_limits
            .check(Endpoint::ForwardAuth, ctx.edge.client)
            .and(result),
        _ => result,
    };
    let label = route_name.as_deref().unwrap_or("unmatched");
    state.metrics.forward_auth(label, decision);
    result
}

async fn decide(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
    suffix: Option<&str>,
    had_params: bool,
    route_name: &mut Option<String>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Reject> {
    if !ctx.edge.trusted {
        return Err(Reject::UntrustedPeer);
    }
    if had_params && suffix.is_none() {
        return Err(route::PathError::Params.into());
    }
    let (original, had_params) = original_request(ctx, h, suffix, had_params)?;
    let (_, route) = state
        .router
        .route(original.host.as_deref(), &original.path)
        .ok_or(Reject::NoRoute)?;
    *route_name = Some(route.name.clone());
    route::admit(route, had_params)?;
    let session = match auth::authorise(state, &original, route, h).await {
        ControlFlow::Continue(session) => session,
        ControlFlow::Break(Ok(resp)) if resp.status() == StatusCode::FOUND => {
            return Ok(login_answer(state, resp));
        }
        ControlFlow::Break(answer) => return answer,
    };
    let mut resp = Response::new(body::empty());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = session {
        outcome.user_id = Some(c.sub.clone());
        let payload = c.payload.to_string();
        headers::add_identity(
            resp.headers_mut(),
            &state.cfg.identity,
            &c.sub,
            &c.sid,
            &payload,
        )?;
    }
    Ok(resp)
}

/// The request the front proxy holds, as its headers (or the path suffix) describe it, and
/// whether its path had `;` parameters.
fn original_request(
    ctx: &Ctx,
    h: &HeaderMap,
    suffix: Option<&str>,
    suffix_params: bool,
) -> Result<(Ctx, bool), Reject> {
    let method = match one_of(h, &["x-forwarded-method", "x-original-method"])? {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| Reject::BadRequest(format!("invalid forwarded method {m:?}")))?,
        None => ctx.method.clone(),
    };
    let (path, query, had_params) = match one_of(h, &["x-forwarded-uri", "x-original-uri"])? {
        Some(uri) => {
            let (path, query) = match uri.split_once('?') {
                Some((p, q)) => (p, Some(q.to_string())),
                None => (uri, None),
            };
            let path = path.split('#').next().unwrap_or_default();
            let n = route::normalise_path(path)?;
            (n.path, query, n.had_params)
        }
        None => match suffix {
            Some(s) => (s.to_string(), ctx.query.clone(), suffix_params),
            None => {
                return Err(Reject::BadRequest(
                    "a forward-auth request names the original URI in X-Forwarded-Uri or X-Original-URI".into(),
                ))
            }
        },
    };
    let host = match one_of(h, &["x-forwarded-host"])? {
        Some(v) => {
            let first = v.split(',').next().unwrap_or_default().trim();
            Some(headers::canonical_host(first)?)
        }
        None => ctx.host.clone(),
    };
    let original = Ctx {
        navigation: is_navigation(&method, h),
        method,
        path,
        query,
        host,
        peer: ctx.peer,
        edge: Edge {
            trusted: ctx.edge.trusted,
            request_id: ctx.edge.request_id.clone(),
            origin: ctx.edge.origin.clone(),
            client: ctx.edge.client,
        },
    };
    Ok((original, had_params))
}

/// The value of the one header among `names` the request carries, if any: a header sent
/// twice, or two of `names` that disagree, or a value that is not text, is a 400.
fn one_of<'h>(h: &'h HeaderMap, names: &[&'static str]) -> Result<Option<&'h str>, Reject> {
    let mut found: Option<&str> = None;
    for name in names {
        let mut values = h.get_all(HeaderName::from_static(name)).iter();
        let Some(v) = values.next() else { continue };
        let bad = || Reject::BadRequest(format!("forward-auth header {name} is ambiguous"));
        if values.next().is_some() {
            return Err(bad());
        }
        let v = v.to_str().map_err(|_| bad())?;
        match found {
            Some(f) if f != v => return Err(bad()),
            _ => found = Some(v),
        }
    }
    Ok(found)
}

/// The proxy path's `302` to the login page, as a front proxy can pass it on: the configured
/// expiry status (401 by default) with `Location`, `X-Sessiongate-Redirect` and a page that
/// follows the link; the clearing cookies stay.
fn login_answer(state: &AppState, mut resp: Response<Body>) -> Response<Body> {
    let Some(location) = resp.headers().get(header::LOCATION).cloned() else {
        return resp;
    };
    let page = pages::redirect_page(&String::from_utf8_lossy(location.as_bytes()));
    *resp.status_mut() = state.cfg.session.expired_status;
    *resp.body_mut() = body::full(page);
    let h = resp.headers_mut();
    h.insert(HeaderName::from_static(REDIRECT_HEADER), location);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}
