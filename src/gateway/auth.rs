//! Authenticate: the request's session from the access token in memory (no store query; the
//! blacklist when it is on), and the answers a required route gives without one.

use std::ops::ControlFlow;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::header_mode::{self, Bearer};
use super::{expired, Ctx};
use crate::body::{self, Body};
use crate::config::{AuthMode, Route, TokenTransfer};
use crate::error::{Expiry, Reject};
use crate::http::bearer;
use crate::http::cookies::{self, ANTI_CSRF};
use crate::metrics::AuthOutcome;
use crate::session::access::{AccessClaims, AccessError};
use crate::session::csrf;
use crate::state::AppState;

/// The session a route gets: `Continue` with the request's valid session (`None` on a
/// public or optional route without one), or `Break` with the answer a required route gives
/// without one (the refresh page, `try_refresh_token`, the login redirect, `unauthorised`).
/// A session-control route reads the session the way an optional route does, so that
/// `sessiongate-revoke` and `sessiongate-update-payload` act on it even when it is public.
pub(super) async fn authorise(
    state: &AppState,
    ctx: &Ctx,
    route: &Route,
    h: &HeaderMap,
) -> ControlFlow<Result<Response<Body>, Reject>, Option<Arc<AccessClaims>>> {
    let auth = match route.auth {
        AuthMode::Public if !route.session_control => return ControlFlow::Continue(None),
        AuthMode::Public | AuthMode::Optional => match authenticate(state, ctx, route, h).await {
            Auth::Valid(c) => return ControlFlow::Continue(Some(c)),
            Auth::Unavailable => return ControlFlow::Break(Err(Reject::StoreUnavailable)),
            Auth::Forbidden => return ControlFlow::Break(Err(Reject::Forbidden)),
            _ => return ControlFlow::Continue(None),
        },
        AuthMode::Required => authenticate(state, ctx, route, h).await,
    };
    ControlFlow::Break(match auth {
        Auth::Valid(c) => return ControlFlow::Continue(Some(c)),
        Auth::Unavailable => Err(Reject::StoreUnavailable),
        Auth::Forbidden => Err(Reject::Forbidden),
        // The refresh page posts cookies; a client sending a bearer token refreshes it itself.
        Auth::TryRefresh if ctx.navigation && bearer::token(h).is_none() => {
            Ok(crate::http::pages::refresh_page(
                &state.cfg.tokens.refresh_token.renew_path,
                state.cfg.session.expired_status,
            ))
        }
        Auth::TryRefresh => Err(expired(state, Expiry::TryRefreshToken)),
        Auth::NoSession | Auth::Revoked => {
            let mut resp = match (&route.login_redirect, ctx.navigation) {
                (Some(target), true) => login_redirect(target, ctx),
                _ => expired(state, Expiry::Unauthorised).response(),
            };
            let in_headers = header_mode::answers_in_headers(state, route.token_transfer, h).await;
            header_mode::clear(state, resp.headers_mut(), in_headers);
            Ok(resp)
        }
    })
}

enum Auth {
    Valid(Arc<AccessClaims>),
    /// No `sIdRefreshToken`: the browser has no session.
    NoSession,
    TryRefresh,
    /// Revoked, seen through the blacklist.
    Revoked,
    /// A valid session that does not meet the route's `require_claims` (`policy.rs`).
    Forbidden,
    /// The browser has a session but tokens cannot be checked yet (no keys, or the
    /// blacklist has not read the feed): the store has not been reachable since start.
    Unavailable,
}

async fn authenticate(state: &AppState, ctx: &Ctx, route: &Route, h: &HeaderMap) -> Auth {
    let decide = |outcome: AuthOutcome, auth: Auth| {
        state.metrics.auth_decision(outcome);
        auth
    };
    // The last two checks of a verified token, whatever carried it: the blacklist, then the
    // route's `require_claims`.
    let admit = |claims: Arc<AccessClaims>| {
        if state.sessions.is_revoked(&claims.sid) {
            return decide(AuthOutcome::Revoked, Auth::Revoked);
        }
        if !super::policy::allows(&route.require_claims, &claims.payload) {
            return decide(AuthOutcome::Forbidden, Auth::Forbidden);
        }
        decide(AuthOutcome::Valid, Auth::Valid(claims))
    };
    // The gateway's token in `Authorization: Bearer` wins over cookies and needs no
    // anti-CSRF token; any other bearer token is the application's (`header_mode`).
    if bearer::token(h).is_some() && route.token_transfer != TokenTransfer::Cookie {
        if state.verification_blocker().is_some() {
            return decide(AuthOutcome::Unavailable, Auth::Unavailable);
        }
        match header_mode::access_bearer(state, route.token_transfer, h).await {
            Bearer::Valid(c) => return admit(c),
            Bearer::Expired => return decide(AuthOutcome::Expired, Auth::TryRefresh),
            Bearer::Absent | Bearer::Foreign => {}
        }
    }
    if cookies::cookie(h, cookies::ID_REFRESH).is_none() {
        return decide(AuthOutcome::NoSession, Auth::NoSession);
    }
    if state.verification_blocker().is_some() {
        return decide(AuthOutcome::Unavailable, Auth::Unavailable);
    }
    let Some(token) = cookies::cookie(h, cookies::ACCESS) else {
        return decide(AuthOutcome::MissingAccessToken, Auth::TryRefresh);
    };
    let verdict = match &state.legacy {
        Some(legacy) => legacy.verify(&token).await,
        None => None,
    };
    let verdict = match verdict {
        Some(v) => v,
        None => state.sessions.verify(&token).await,
    };
    let claims = match verdict {
        Ok(c) => c,
        Err(e) => {
            let outcome = match e {
                AccessError::Expired => AuthOutcome::Expired,
                AccessError::UnknownKey => AuthOutcome::UnknownKey,
                _ => AuthOutcome::Invalid,
            };
            return decide(outcome, Auth::TryRefresh);
        }
    };
    // `non_get` routes exempt the methods that must not change state; the core rule takes the
    // answer, not the method.
    let safe_method = matches!(ctx.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if csrf::required(
        state.cfg.tokens.enable_anti_csrf,
        route.anti_csrf,
        safe_method,
    ) {
        let presented = h.get(ANTI_CSRF).and_then(|v| v.to_str().ok());
        if !csrf::matches(claims.anti_csrf.as_deref(), presented) {
            return decide(AuthOutcome::AntiCsrfFailed, Auth::TryRefresh);
        }
    }
    admit(claims)
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
