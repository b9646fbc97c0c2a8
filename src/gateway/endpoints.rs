//! The gateway's own endpoints: JWKS, refresh and logout.

use http::{HeaderMap, Method, Response, StatusCode};

use super::{expired, header_mode, origin_allowed, session_to_end, Ctx};
use crate::body::Body;
use crate::error::{json_response, Expiry, Reject};
use crate::http::{bearer, cookies};
use crate::metrics::RevokeReason;
use crate::ratelimit::Endpoint;
use crate::sessions::RefreshResult;
use crate::state::AppState;

/// The public keys (EdDSA only) for upstreams that verify the JWT themselves; served on both
/// listeners.
pub fn jwks(state: &AppState) -> Result<Response<Body>, Reject> {
    let ring = state
        .sessions
        .keys()
        .ring()
        .map_err(|_| Reject::StoreUnavailable)?;
    Ok(json_response(StatusCode::OK, &ring.jwks()))
}

/// The guard of the gateway's own state-changing endpoints (refresh, logout): POST only, and
/// not from a foreign site — an `Origin` that is neither ours nor allowed, or
/// `Sec-Fetch-Site: cross-site` without an allowed origin.
pub(super) fn post_from_allowed_origin(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
) -> Result<(), Reject> {
    if ctx.method != Method::POST {
        return Err(Reject::MethodNotAllowed("POST"));
    }
    if let Some(origin) = ctx.edge.origin.as_deref() {
        if !origin_allowed(state, ctx, h, origin) {
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

/// `POST` on the renew path: rotates the refresh token (`Sessions::refresh` counts the
/// outcome and acts on a theft) and answers with new tokens, or refuses clearing them. The
/// refresh token is `Authorization: Bearer`'s when one is sent (the answer then carries the
/// tokens in headers), else the cookie's; the same rules apply to both.
pub(super) async fn refresh_endpoint(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    post_from_allowed_origin(state, ctx, h)?;
    state
        .rate_limits
        .check(Endpoint::Refresh, ctx.edge.client)?;
    let in_headers = bearer::token(h).is_some();
    let presented = match (
        bearer::token(h),
        cookies::cookie(h, cookies::REFRESH),
        cookies::cookie(h, cookies::ID_REFRESH),
    ) {
        (Some(rt), _, _) => Some(rt.into()),
        (None, Some(rt), Some(_)) => Some(rt),
        _ => None,
    };
    let legacy = match (&state.legacy, presented.as_deref()) {
        (Some(l), Some(rt)) => l.refresh(&state.sessions, rt).await,
        _ => None,
    };
    let result = match legacy {
        Some(r) => r?,
        None => state.sessions.refresh(presented.as_deref()).await?,
    };
    let (mut resp, session) = match result {
        RefreshResult::Rotated(session) | RefreshResult::GraceReplay(session) => {
            let resp = json_response(StatusCode::OK, &serde_json::json!({}));
            (resp, Some(session))
        }
        RefreshResult::Theft => (expired(state, Expiry::TokenTheft).response(), None),
        RefreshResult::Missing
        | RefreshResult::Malformed
        | RefreshResult::Forged
        | RefreshResult::Refused(_) => (expired(state, Expiry::Unauthorised).response(), None),
    };
    match session {
        Some(session) => header_mode::issue(state, resp.headers_mut(), &session, in_headers),
        None => header_mode::clear(state, resp.headers_mut(), in_headers),
    }
    Ok(resp)
}

pub(super) async fn logout_endpoint(
    state: &AppState,
    ctx: &Ctx,
    h: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    post_from_allowed_origin(state, ctx, h)?;
    state.rate_limits.check(Endpoint::Logout, ctx.edge.client)?;
    // Without keys no token can be read, and ending a session needs the store anyway.
    if !state.sessions.keys().is_loaded() {
        return Err(Reject::StoreUnavailable);
    }
    // The session to end: from a genuine access token (an expired one too: the browser does
    // not send `sRefreshToken` here), else from a genuine refresh token. A client in header
    // mode sends either token as `Authorization: Bearer`, and is answered in headers.
    let bearer = bearer::token(h);
    let in_headers = bearer.is_some();
    let access = match bearer {
        Some(t) => Some(t.into()),
        None => cookies::cookie(h, cookies::ACCESS),
    };
    let mut handle = session_to_end(state, access.as_deref())
        .await
        .map(|(handle, _)| handle);
    if handle.is_none() {
        let refresh = match bearer {
            Some(t) => Some(t.into()),
            None => cookies::cookie(h, cookies::REFRESH),
        };
        if let Some(rt) = refresh {
            handle = state.sessions.refresh_token_handle(&rt);
        }
    }
    match handle {
        Some(handle) => {
            state.sessions.revoke(&handle, RevokeReason::Logout).await?;
        }
        // The browser has a session but nothing here names it (no access token, a forged
        // one, or its key is gone): have the SDK refresh and retry, rather than answer 200
        // and leave the refresh token alive. Cookies stay for the refresh.
        None if in_headers || cookies::cookie(h, cookies::ID_REFRESH).is_some() => {
            return Err(expired(state, Expiry::TryRefreshToken));
        }
        None => {}
    }
    let mut resp = json_response(StatusCode::OK, &serde_json::json!({}));
    header_mode::clear(state, resp.headers_mut(), in_headers);
    Ok(resp)
}
