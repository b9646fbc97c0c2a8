//! The one place that turns a refusal or failure into an HTTP status and JSON body, and the
//! one rescue: the `From` conversions below turn the errors of the layers beneath (session
//! operations, the store, the key cache, path and header hygiene, forwarding upstream) into a
//! [`Reject`], logging store failures as they do.
//!
//! Every response the gateway itself produces for an error goes through [`Reject::response`],
//! so status codes are picked here and nowhere else. Bodies are `{"error": "...",
//! "message": "..."}`; the session-expiry ones keep the exact `{"error": "..."}` shape the
//! frontend SDK contract uses.
//!
//! One caller-dependent choice stays with the caller: an invalid session request is the
//! client's fault (400) when the client made it (admin API), but the upstream's when it came
//! from its session-control headers; the gateway wraps that case as
//! [`Reject::BadSessionControl`] (502) itself.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, Body, BodyFault};
use crate::keys::KeyCacheError;
use crate::proxy::forward::ForwardError;
use crate::proxy::headers::{HeaderError, HostError};
use crate::proxy::route::{PathError, UpstreamUriError};
use crate::sessions::SessionError;
use crate::store::StoreError;

/// The session-expiry refusals of the frontend SDK contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expiry {
    /// No session, or a session that is gone: the caller adds clearing cookies.
    #[error("unauthorised")]
    Unauthorised,
    /// The access token is missing, expired, badly signed or the anti-CSRF check failed.
    #[error("try refresh token")]
    TryRefreshToken,
    #[error("token theft detected")]
    TokenTheft,
}

impl Expiry {
    /// The `error` value the SDK reads.
    pub fn code(self) -> &'static str {
        match self {
            Expiry::Unauthorised => "unauthorised",
            Expiry::TryRefreshToken => "try_refresh_token",
            Expiry::TokenTheft => "token_theft_detected",
        }
    }
}

/// Why the gateway answers instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// A session-expiry refusal, answered with the status it carries
    /// (`session.expired_status`; only the public listener gives these).
    #[error("{0}")]
    Expired(Expiry, StatusCode),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no route for this request")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("origin not allowed: {0}")]
    ForbiddenOrigin(String),
    /// A valid session that does not meet the route's `require_claims`.
    #[error("forbidden")]
    Forbidden,
    /// The forward-auth endpoint asked by a peer outside `server.trusted_proxies`.
    #[error("the forward-auth endpoint answers only server.trusted_proxies")]
    UntrustedPeer,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request uses something the gateway does not implement (a transfer coding).
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// The client stopped sending its request body (`server.body_read_timeout_secs`).
    #[error("the request body was not received in time")]
    RequestTimeout,
    #[error("the session store is unavailable")]
    StoreUnavailable,
    #[error("upstream failed: {0}")]
    BadGateway(String),
    #[error("upstream sent a malformed session-control header: {0}")]
    BadSessionControl(String),
    #[error("upstream did not answer in time")]
    GatewayTimeout,
    #[error("internal error: {0}")]
    Internal(String),
    // Admin API only.
    #[error("{0}")]
    AdminUnauthorised(String),
    #[error("{0}")]
    AdminForbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("not ready: {0}")]
    NotReady(String),
    /// A `[rate_limits]` bucket of the client's address is empty; retry after the seconds.
    #[error("too many requests from this address; retry in {0} s")]
    RateLimited(u64),
}

/// Seconds a client should wait before retrying when the store is down.
pub const RETRY_AFTER_SECS: u32 = 2;

impl Reject {
    /// Status code for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::Expired(_, status) => *status,
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::NoRoute | Reject::NotFound(_) => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reject::ForbiddenOrigin(_)
            | Reject::Forbidden
            | Reject::UntrustedPeer
            | Reject::AdminForbidden(_) => StatusCode::FORBIDDEN,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Reject::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::StoreUnavailable | Reject::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Reject::BadGateway(_) | Reject::BadSessionControl(_) => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::AdminUnauthorised(_) => StatusCode::UNAUTHORIZED,
            Reject::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The machine-readable `error` value.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Expired(why, _) => why.code(),
            Reject::BadRequest(_) => "bad_request",
            Reject::NoRoute | Reject::NotFound(_) => "not_found",
            Reject::MethodNotAllowed(_) => "method_not_allowed",
            Reject::ForbiddenOrigin(_) => "forbidden_origin",
            Reject::Forbidden => "forbidden",
            Reject::UntrustedPeer => "untrusted_peer",
            Reject::PayloadTooLarge => "payload_too_large",
            Reject::NotImplemented(_) => "not_implemented",
            Reject::RequestTimeout => "request_timeout",
            Reject::StoreUnavailable => "store_unavailable",
            Reject::BadGateway(_) => "bad_gateway",
            Reject::BadSessionControl(_) => "bad_session_control",
            Reject::GatewayTimeout => "gateway_timeout",
            Reject::Internal(_) => "internal",
            Reject::AdminUnauthorised(_) => "unauthorized",
            Reject::AdminForbidden(_) => "forbidden",
            Reject::NotReady(_) => "not_ready",
            Reject::RateLimited(_) => "rate_limited",
        }
    }

    /// The JSON response. Session-expiry refusals carry only `error` (the SDK contract);
    /// the others add a human `message`. Internal details are never echoed to clients.
    pub fn response(&self) -> Response<Body> {
        let body = match self {
            // Like the expiry refusals, a policy denial names no rule: `{"error":"forbidden"}`.
            Reject::Expired(..) | Reject::Forbidden => serde_json::json!({ "error": self.code() }),
            Reject::Internal(_) => {
                serde_json::json!({ "error": self.code(), "message": "internal error" })
            }
            Reject::BadGateway(_) => {
                serde_json::json!({ "error": self.code(), "message": "upstream unavailable" })
            }
            other => serde_json::json!({ "error": other.code(), "message": other.to_string() }),
        };
        let mut resp = json_response(self.status(), &body);
        match self {
            Reject::StoreUnavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Reject::MethodNotAllowed(allow) => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Reject::RateLimited(secs) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            _ => {}
        }
        resp
    }
}

/// Store failures: logged, and answered 503 with `Retry-After`.
impl From<StoreError> for Reject {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "session store operation failed");
        Reject::StoreUnavailable
    }
}

/// A static key cannot be rotated (the request's mistake); any other key-cache failure means
/// the keys could not be read from the store.
impl From<KeyCacheError> for Reject {
    fn from(e: KeyCacheError) -> Self {
        match e {
            KeyCacheError::StaticKey => Reject::BadRequest(e.to_string()),
            KeyCacheError::Store(e) => e.into(),
            other => {
                tracing::warn!(error = %other, "session store operation failed");
                Reject::StoreUnavailable
            }
        }
    }
}

/// Invalid input is the caller's (400); a token that cannot be signed is ours (500).
impl From<SessionError> for Reject {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Store(e) => e.into(),
            SessionError::Keys(e) => e.into(),
            SessionError::InvalidInput(m) => Reject::BadRequest(m),
            SessionError::Sign(m) => {
                tracing::error!(error = %m, "could not sign an access token");
                Reject::Internal(m)
            }
        }
    }
}

impl From<PathError> for Reject {
    fn from(e: PathError) -> Self {
        Reject::BadRequest(e.to_string())
    }
}

impl From<HostError> for Reject {
    fn from(e: HostError) -> Self {
        Reject::BadRequest(e.to_string())
    }
}

impl From<UpstreamUriError> for Reject {
    fn from(e: UpstreamUriError) -> Self {
        Reject::BadRequest(e.to_string())
    }
}

/// A spoofed identity header is the client's mistake (400), a transfer coding the gateway does
/// not implement is 501, and an identity value that cannot be a header value is ours (500).
impl From<HeaderError> for Reject {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::UnderscoreIdentity(_) => Reject::BadRequest(e.to_string()),
            HeaderError::UnsupportedTransferCoding(_) => Reject::NotImplemented(e.to_string()),
            HeaderError::InvalidValue(_) => Reject::Internal(e.to_string()),
        }
    }
}

/// An upstream that cannot be reached is 502, one that does not answer in time 504; a failure
/// of the client's own request body is the client's: 408 when it stalled, 400 when malformed.
impl From<ForwardError> for Reject {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::ClientBody(BodyFault::Stalled) => Reject::RequestTimeout,
            ForwardError::ClientBody(fault @ BodyFault::Malformed) => {
                Reject::BadRequest(fault.to_string())
            }
            ForwardError::Timeout => Reject::GatewayTimeout,
            ForwardError::Connect(chain) => Reject::BadGateway(chain),
        }
    }
}

/// A JSON response with `Cache-Control: no-store`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let check = |r: Reject, want: u16| {
            assert_eq!(r.status().as_u16(), want, "{r:?}");
            assert_eq!(r.response().status().as_u16(), want, "{r:?}");
        };
        let at = |n| StatusCode::from_u16(n).unwrap();
        check(Reject::Expired(Expiry::Unauthorised, at(401)), 401);
        check(Reject::Expired(Expiry::TryRefreshToken, at(440)), 440);
        check(Reject::Expired(Expiry::TokenTheft, at(440)), 440);
        check(Reject::StoreUnavailable, 503);
        check(Reject::BadSessionControl("x".into()), 502);
        check(Reject::GatewayTimeout, 504);
        check(Reject::BadRequest("x".into()), 400);
        check(Reject::ForbiddenOrigin("x".into()), 403);
        check(Reject::Forbidden, 403);
        check(Reject::UntrustedPeer, 403);
        check(Reject::MethodNotAllowed("POST"), 405);
        check(Reject::NotImplemented("x".into()), 501);
        check(Reject::RequestTimeout, 408);
        check(Reject::RateLimited(3), 429);
        let r = Reject::RateLimited(3).response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn store_unavailable_has_retry_after() {
        let r = Reject::StoreUnavailable.response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    /// The rescue: each lower-layer error → (status, `error` code).
    #[test]
    fn rescue() {
        let check = |r: Reject, status: u16, code: &str| {
            assert_eq!((r.status().as_u16(), r.code()), (status, code), "{r:?}");
        };
        let store = || StoreError::Unavailable("down".into());
        check(store().into(), 503, "store_unavailable");
        check(
            SessionError::Store(store()).into(),
            503,
            "store_unavailable",
        );
        check(
            SessionError::Keys(KeyCacheError::NotLoaded).into(),
            503,
            "store_unavailable",
        );
        check(
            SessionError::Keys(KeyCacheError::Store(store())).into(),
            503,
            "store_unavailable",
        );
        check(
            SessionError::InvalidInput("user_id".into()).into(),
            400,
            "bad_request",
        );
        check(SessionError::Sign("x".into()).into(), 500, "internal");
        check(KeyCacheError::StaticKey.into(), 400, "bad_request");
        check(KeyCacheError::NotLoaded.into(), 503, "store_unavailable");
        check(PathError::Params.into(), 400, "bad_request");
        check(HostError::Missing.into(), 400, "bad_request");
        check(
            HeaderError::UnderscoreIdentity("x_user_id".into()).into(),
            400,
            "bad_request",
        );
        check(
            HeaderError::UnsupportedTransferCoding("gzip".into()).into(),
            501,
            "not_implemented",
        );
        check(
            HeaderError::InvalidValue("x-user-id".into()).into(),
            500,
            "internal",
        );
    }
}
