//! The one place that turns a refusal or failure into an HTTP status and JSON body.
//!
//! Every response the gateway itself produces for an error goes through [`Reject::response`],
//! so status codes are picked here and nowhere else. Bodies are `{"error": "...",
//! "message": "..."}`; the session-expiry ones keep the exact `{"error": "..."}` shape the
//! frontend SDK contract uses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, Body};

/// Why the gateway answers instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No session, or a session that is gone: the caller adds clearing cookies.
    #[error("unauthorised")]
    Unauthorised,
    /// The access token is missing, expired, badly signed or the anti-CSRF check failed.
    #[error("try refresh token")]
    TryRefreshToken,
    #[error("token theft detected")]
    TokenTheft,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no route for this request")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("origin not allowed: {0}")]
    ForbiddenOrigin(String),
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
}

/// Seconds a client should wait before retrying when the store is down.
pub const RETRY_AFTER_SECS: u32 = 2;

impl Reject {
    /// Status code for this refusal; `expired_status` is `session.expired_status`.
    pub fn status(&self, expired_status: u16) -> StatusCode {
        let expired = StatusCode::from_u16(expired_status).unwrap_or(StatusCode::UNAUTHORIZED);
        match self {
            Reject::Unauthorised | Reject::TryRefreshToken | Reject::TokenTheft => expired,
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::NoRoute | Reject::NotFound(_) => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reject::ForbiddenOrigin(_) | Reject::AdminForbidden(_) => StatusCode::FORBIDDEN,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Reject::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::StoreUnavailable | Reject::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Reject::BadGateway(_) | Reject::BadSessionControl(_) => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::AdminUnauthorised(_) => StatusCode::UNAUTHORIZED,
        }
    }

    /// The machine-readable `error` value.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Unauthorised => "unauthorised",
            Reject::TryRefreshToken => "try_refresh_token",
            Reject::TokenTheft => "token_theft_detected",
            Reject::BadRequest(_) => "bad_request",
            Reject::NoRoute | Reject::NotFound(_) => "not_found",
            Reject::MethodNotAllowed(_) => "method_not_allowed",
            Reject::ForbiddenOrigin(_) => "forbidden_origin",
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
        }
    }

    /// The JSON response. Session-expiry refusals carry only `error` (the SDK contract);
    /// the others add a human `message`. Internal details are never echoed to clients.
    pub fn response(&self, expired_status: u16) -> Response<Body> {
        let body = match self {
            Reject::Unauthorised | Reject::TryRefreshToken | Reject::TokenTheft => {
                serde_json::json!({ "error": self.code() })
            }
            Reject::Internal(_) => {
                serde_json::json!({ "error": self.code(), "message": "internal error" })
            }
            Reject::BadGateway(_) => {
                serde_json::json!({ "error": self.code(), "message": "upstream unavailable" })
            }
            other => serde_json::json!({ "error": other.code(), "message": other.to_string() }),
        };
        let mut resp = json_response(self.status(expired_status), &body);
        match self {
            Reject::StoreUnavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Reject::MethodNotAllowed(allow) => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
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
        let check = |r: Reject, expired: u16, want: u16| {
            assert_eq!(r.status(expired).as_u16(), want, "{r:?}");
        };
        check(Reject::Unauthorised, 401, 401);
        check(Reject::TryRefreshToken, 440, 440);
        check(Reject::TokenTheft, 440, 440);
        check(Reject::StoreUnavailable, 401, 503);
        check(Reject::BadSessionControl("x".into()), 401, 502);
        check(Reject::GatewayTimeout, 401, 504);
        check(Reject::BadRequest("x".into()), 401, 400);
        check(Reject::ForbiddenOrigin("x".into()), 401, 403);
        check(Reject::MethodNotAllowed("POST"), 401, 405);
        check(Reject::NotImplemented("x".into()), 401, 501);
        check(Reject::RequestTimeout, 401, 408);
    }

    #[test]
    fn store_unavailable_has_retry_after() {
        let r = Reject::StoreUnavailable.response(401);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
