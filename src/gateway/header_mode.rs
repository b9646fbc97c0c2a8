//! Tokens in headers, for clients that cannot keep cookies (mobile apps, CLIs, single-page
//! apps on another site): which token a request carrying `Authorization: Bearer` is
//! authenticated with, whether that header reaches the upstream, and whether an answer
//! carries its tokens in headers (`http::bearer`) or in cookies.
//!
//! The rules (README "Tokens in headers"):
//! - A bearer token is the gateway's when it is a genuine gateway access token: it verifies
//!   against the key ring, expired or not. The gateway's bearer token is the request's
//!   access token and wins over cookies; it needs no anti-CSRF token (it is not an ambient
//!   credential a foreign page can make the browser send). Any other `Authorization` (Basic,
//!   the application's own bearer tokens, a forged token) is the application's: the session,
//!   if any, comes from cookies, and the header is forwarded untouched.
//! - The gateway's own tokens in `Authorization` (an access token, expired or not, or a
//!   genuine refresh token) are removed before the request is forwarded.
//! - An answer carries tokens in headers (and no `Set-Cookie`) when the route's
//!   `token_transfer` is `header`, or it is `any` and the request sends `st-auth-mode: header`
//!   or authenticates with the gateway's bearer token. Routes with `token_transfer = "cookie"`
//!   never read or remove `Authorization` and always answer with cookies.
//! - The refresh and logout endpoints take any `Authorization: Bearer` as meant for them and
//!   then answer in headers; without one they read cookies and answer with cookies, even if
//!   `st-auth-mode: header` is sent (so a page script cannot trade the HttpOnly refresh
//!   cookie for tokens it can read).
//!
//! It must not choose statuses (that is `error.rs`) nor write `Access-Control-Allow-*`.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue};

use super::{clear_session, set_cleared_headers, set_issued_headers, set_session};
use crate::config::TokenTransfer;
use crate::http::bearer;
use crate::http::cookies::EXPOSE;
use crate::session::access::{AccessClaims, AccessError};
use crate::sessions::IssuedSession;
use crate::state::AppState;

/// What a request's `Authorization: Bearer` is to the gateway.
pub(super) enum Bearer {
    /// No bearer token, or a route that leaves `Authorization` to the application.
    Absent,
    /// The gateway's access token, valid now.
    Valid(Arc<AccessClaims>),
    /// The gateway's access token, genuine but expired: the client should refresh.
    Expired,
    /// Not the gateway's (or not checkable: no keys loaded yet).
    Foreign,
}

/// Classifies the request's bearer token on a route with `transfer`. A valid token costs a
/// lookup in the verified-token cache after its first use.
pub(super) async fn access_bearer(
    state: &AppState,
    transfer: TokenTransfer,
    h: &HeaderMap,
) -> Bearer {
    let Some(token) = bearer::token(h).filter(|_| transfer != TokenTransfer::Cookie) else {
        return Bearer::Absent;
    };
    match state.sessions.verify(token).await {
        Ok(claims) => Bearer::Valid(claims),
        // `verify` checks the signature before the expiry: an expired token is genuine.
        Err(AccessError::Expired) => Bearer::Expired,
        Err(_) => Bearer::Foreign,
    }
}

/// Whether the answer to this request on a route with `transfer` carries tokens in headers.
pub(super) async fn answers_in_headers(
    state: &AppState,
    transfer: TokenTransfer,
    h: &HeaderMap,
) -> bool {
    match transfer {
        TokenTransfer::Cookie => false,
        TokenTransfer::Header => true,
        TokenTransfer::Any => {
            bearer::asks_for_headers(h)
                || matches!(
                    access_bearer(state, transfer, h).await,
                    Bearer::Valid(_) | Bearer::Expired
                )
        }
    }
}

/// The gateway's access token from the bearer, expired or not, as text (for ending its
/// session); `None` when the bearer is not the gateway's.
pub(super) async fn own_access_token(
    state: &AppState,
    transfer: TokenTransfer,
    h: &HeaderMap,
) -> Option<String> {
    match access_bearer(state, transfer, h).await {
        Bearer::Valid(_) | Bearer::Expired => bearer::token(h).map(str::to_string),
        Bearer::Absent | Bearer::Foreign => None,
    }
}

/// Removes `Authorization` before forwarding when it carries one of the gateway's tokens (an
/// access token, expired or not, or a genuine refresh token); any other value stays.
pub(super) async fn strip_own_bearer(state: &AppState, transfer: TokenTransfer, h: &mut HeaderMap) {
    let own = match access_bearer(state, transfer, h).await {
        Bearer::Valid(_) | Bearer::Expired => true,
        Bearer::Absent => false,
        Bearer::Foreign => bearer::token(h)
            .and_then(|t| state.sessions.refresh_token_handle(t))
            .is_some(),
    };
    if own {
        h.remove(header::AUTHORIZATION);
    }
}

/// Adds a created or refreshed session to a response: the token headers (with
/// `id-refresh-token`, no anti-CSRF token: a bearer token needs none) or the cookies and
/// headers of SPEC §4.
pub(super) fn issue(state: &AppState, h: &mut HeaderMap, s: &IssuedSession, in_headers: bool) {
    if !in_headers {
        return set_session(state, h, s);
    }
    bearer::set_tokens(h, &s.access_token, Some(&s.refresh_token));
    set_issued_headers(h, s);
}

/// A re-issued access token alone (`sessiongate-update-payload`), in a header when the
/// request is in header mode. `false`: the caller sets the cookie.
pub(super) fn reissue_access(h: &mut HeaderMap, token: &str, in_headers: bool) -> bool {
    if in_headers {
        bearer::set_tokens(h, token, None);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    in_headers
}

/// Ends the client's session on a response: empty token headers and
/// `id-refresh-token: remove`, or the clearing cookies of SPEC §4.
pub(super) fn clear(state: &AppState, h: &mut HeaderMap, in_headers: bool) {
    if !in_headers {
        return clear_session(state, h);
    }
    bearer::clear_tokens(h);
    set_cleared_headers(h);
}
