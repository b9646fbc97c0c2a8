//! The gateway's own endpoints: JWKS, refresh and logout.

use http::{HeaderMap, Method, Response, StatusCode};

use super::{clear_session, origin_allowed, session_to_end, set_session, store_failure, Ctx};
use crate::body::Body;
use crate::error::{json_response, Reject};
use crate::http::cookies;
use crate::session::refresh::RefreshToken;
use crate::sessions::{RefreshResult, UnauthorisedWhy};
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

pub(super) async fn refresh_endpoint(
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
        cookies::cookie(h, cookies::REFRESH),
        cookies::cookie(h, cookies::ID_REFRESH),
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

pub(super) async fn logout_endpoint(
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
    let access = cookies::cookie(h, cookies::ACCESS);
    let mut handle = session_to_end(state, access.as_deref())
        .await
        .map(|(handle, _)| handle);
    if handle.is_none() {
        if let Some(rt) = cookies::cookie(h, cookies::REFRESH) {
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
        None if cookies::cookie(h, cookies::ID_REFRESH).is_some() => {
            return Err(Reject::TryRefreshToken);
        }
        None => {}
    }
    let mut resp = json_response(StatusCode::OK, &serde_json::json!({}));
    clear_session(state, resp.headers_mut());
    Ok(resp)
}
