//! Prepare the upstream request (path, identity, forwarded and hop-by-hop headers, `Host`,
//! request id) and forward it, returning the upstream response with its body streaming.

use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{origin_allowed, Ctx, Outcome};
use crate::body::{self, Body};
use crate::config::Route;
use crate::error::Reject;
use crate::http::cookies;
use crate::proxy::{forward, headers, route};
use crate::session::access::AccessClaims;
use crate::state::AppState;

/// Builds and sends the upstream request, returning the upstream response with hop-by-hop
/// headers removed and its body still streaming.
pub(super) async fn forward_to(
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
    if let Some(origin) = ctx.edge.origin.as_deref().filter(|_| websocket) {
        if !origin_allowed(state, ctx, req.headers(), origin) {
            return Err(Reject::ForbiddenOrigin(origin.to_string()));
        }
    }
    let ws_key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let slot = req.extensions_mut().remove::<crate::server::ConnSlot>();
    let (mut parts, incoming) = req.into_parts();
    // `dispatch` sends only routes with an upstream here.
    let upstream = route.upstream.as_ref().ok_or(Reject::NoRoute)?;
    let uri = route::join_upstream_uri(upstream, &ctx.path, ctx.query.as_deref())?;
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, websocket);
    headers::strip_cookie(h, cookies::REFRESH);
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
        headers::add_identity(h, &state.cfg.identity, &c.sub, &c.sid, &payload)?;
    }
    let mut span = None;
    if state.tracer.is_some() {
        span = crate::otel::span("upstream", crate::otel::SpanKind::Client);
        crate::otel::propagate(h, span.as_ref(), trusted);
    }
    if let Some(s) = span.as_mut() {
        upstream_attributes(s, &parts.method, &uri);
    }
    let (up_body, body_watch) = body::client_body(incoming, state.cfg.server.body_read_timeout);
    let mut up = Request::from_parts(parts, up_body);
    *up.uri_mut() = uri;

    let started = Instant::now();
    let result = state.upstream.send(up, &body_watch).await;
    if let Some(mut s) = span {
        match &result {
            Ok(r) => s.set_int("http.response.status_code", r.status().as_u16().into()),
            Err(e) => s.set_error(e.to_string()),
        }
    }
    outcome.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    state
        .metrics
        .upstream_duration_seconds
        .with_label_values(&[route.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let mut resp = result.map_err(Reject::from).inspect_err(|e| {
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

/// The upstream call's span attributes: method, server address and port, path (never the
/// query).
fn upstream_attributes(span: &mut crate::otel::Span, method: &http::Method, uri: &http::Uri) {
    span.set_str("http.request.method", method.as_str());
    span.set_str("server.address", uri.host().unwrap_or_default());
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    span.set_int("server.port", uri.port_u16().unwrap_or(default_port).into());
    span.set_str("url.path", uri.path());
    span.set_str("url.scheme", uri.scheme_str().unwrap_or("http"));
}
