//! Session control: the `sessiongate-*` headers of an upstream response on a session-control
//! route (create, revoke, update the payload).

use http::{header, HeaderMap, HeaderValue, Response};

use super::{expired, header_mode, session_to_end};
use crate::body::Body;
use crate::config::Route;
use crate::error::{Expiry, Reject};
use crate::http::cookies;
use crate::metrics::RevokeReason;
use crate::proxy::headers;
use crate::session::access::AccessClaims;
use crate::sessions::{NewSessionRequest, SessionError};
use crate::state::AppState;

/// The session tokens a request carried (the gateway's bearer token, else cookies), kept for
/// acting on the session after the request itself has been forwarded.
pub(super) struct Presented {
    pub(super) access_token: Option<String>,
    /// `sIdRefreshToken` or the gateway's bearer token was sent: the client believes it has
    /// a session.
    pub(super) browser_session: bool,
    /// Tokens go back in headers, not cookies (`header_mode`).
    pub(super) in_headers: bool,
}

impl Presented {
    pub(super) async fn read(state: &AppState, route: &Route, h: &HeaderMap) -> Self {
        let own = header_mode::own_access_token(state, route.token_transfer, h).await;
        Self {
            browser_session: own.is_some() || cookies::cookie(h, cookies::ID_REFRESH).is_some(),
            in_headers: header_mode::answers_in_headers(state, route.token_transfer, h).await,
            access_token: own
                .or_else(|| cookies::cookie(h, cookies::ACCESS).map(|t| t.into_owned())),
        }
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum RevokeScope {
    Session,
    User,
}

/// What an upstream response asks for, parsed and checked; nothing done yet.
#[derive(Debug)]
pub(super) struct Control {
    create: Option<NewSessionRequest>,
    revoke: Option<RevokeScope>,
    update: Option<serde_json::Value>,
}

/// Parses the `sessiongate-*` headers taken from an upstream response. Pure: everything is
/// checked here, before anything is done, so a malformed header creates nothing. Refuses
/// (`bad_session_control`) bad JSON, a non-object payload, an unknown revoke scope, a
/// duplicated header, and create with revoke.
pub(super) fn parse(control: &headers::SessionControl) -> Result<Control, Reject> {
    let bad = |what: &str| Reject::BadSessionControl(what.to_string());
    let parse_json = |v: &HeaderValue, what: &str| -> Result<serde_json::Value, Reject> {
        serde_json::from_slice(v.as_bytes()).map_err(|e| bad(&format!("{what}: {e}")))
    };
    let create = match &control.create {
        Some(v) => {
            let c: NewSessionRequest = serde_json::from_value(parse_json(v, "sessiongate-create")?)
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
    Ok(Control {
        create,
        revoke,
        update,
    })
}

/// Acts on parsed session control: revoke, then create or update the payload, setting or
/// clearing the session cookies on `resp`. `session` is the request's valid session (as on
/// an optional route); revoke also ends the session of a genuine but expired access token in
/// `presented`.
pub(super) async fn apply(
    state: &AppState,
    session: Option<&AccessClaims>,
    presented: &Presented,
    control: Control,
    resp: &mut Response<Body>,
    client: std::net::IpAddr,
) -> Result<(), Reject> {
    let bad = |what: &str| Reject::BadSessionControl(what.to_string());
    let Control {
        create,
        revoke,
        update,
    } = control;

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
                expired(state, Expiry::TryRefreshToken)
            } else {
                bad("sessiongate-revoke on a request without a session")
            });
        };
        let sessions = &state.sessions;
        match scope {
            RevokeScope::Session => {
                sessions.revoke(&handle, RevokeReason::Upstream).await?;
            }
            RevokeScope::User => {
                sessions
                    .revoke_user(&user_id, RevokeReason::Upstream)
                    .await?;
            }
        }
        header_mode::clear(state, resp.headers_mut(), presented.in_headers);
    }
    if let Some(c) = create {
        state
            .rate_limits
            .check(crate::ratelimit::Endpoint::SessionCreate, client)?;
        let issued = state.sessions.create(c).await.map_err(upstream_caused)?;
        header_mode::issue(state, resp.headers_mut(), &issued, presented.in_headers);
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
            .map_err(upstream_caused)?
        {
            if header_mode::reissue_access(resp.headers_mut(), &token, presented.in_headers) {
                return Ok(());
            }
            let now = state.clock.now_ms();
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookies::access_cookie(&state.cookies, &token, expires, now),
            );
        }
    }
    Ok(())
}

/// A session request the upstream made is refused as the upstream's mistake (502
/// `bad_session_control`), not the browser's; other failures are rescued as usual.
fn upstream_caused(e: SessionError) -> Reject {
    match e {
        SessionError::InvalidInput(m) => Reject::BadSessionControl(m),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(
        create: Option<&str>,
        revoke: Option<&str>,
        update: Option<&str>,
    ) -> headers::SessionControl {
        let v = |s: Option<&str>| s.map(|s| HeaderValue::from_str(s).unwrap());
        headers::SessionControl {
            create: v(create),
            revoke: v(revoke),
            update_payload: v(update),
            duplicated: false,
        }
    }

    fn refused(c: &headers::SessionControl) -> String {
        match parse(c) {
            Err(Reject::BadSessionControl(why)) => why,
            other => panic!("expected bad_session_control, got {other:?}"),
        }
    }

    #[test]
    fn parses_each_instruction() {
        let c = parse(&control(
            Some(r#"{"user_id":"alice","jwt_payload":{"role":"x"}}"#),
            None,
            None,
        ))
        .unwrap();
        let create = c.create.unwrap();
        assert_eq!(create.user_id, "alice");
        assert_eq!(create.jwt_payload, serde_json::json!({"role": "x"}));
        assert_eq!(create.session_data, serde_json::json!({}));
        let c = parse(&control(None, Some("session"), Some(r#"{"a":1}"#))).unwrap();
        assert_eq!(c.revoke, Some(RevokeScope::Session));
        assert_eq!(c.update, Some(serde_json::json!({"a": 1})));
        assert_eq!(
            parse(&control(None, Some("user"), None)).unwrap().revoke,
            Some(RevokeScope::User)
        );
        let none = parse(&control(None, None, None)).unwrap();
        assert!(none.create.is_none() && none.revoke.is_none() && none.update.is_none());
    }

    #[test]
    fn refuses_malformed_control() {
        let mut dup = control(None, Some("session"), None);
        dup.duplicated = true;
        assert!(refused(&dup).contains("more than once"));
        let both = control(Some(r#"{"user_id":"alice"}"#), Some("session"), None);
        assert!(refused(&both).contains("together"));
        assert!(refused(&control(Some("{not json"), None, None)).starts_with("sessiongate-create"));
        assert!(
            refused(&control(Some(r#"{"user_id":"a","extra":1}"#), None, None))
                .starts_with("sessiongate-create")
        );
        assert!(refused(&control(
            Some(r#"{"user_id":"a","jwt_payload":[1]}"#),
            None,
            None
        ))
        .contains("jwt_payload must be an object"));
        assert!(refused(&control(None, None, Some("[1,2]"))).contains("JSON object"));
        assert!(
            refused(&control(None, None, Some("{bad"))).starts_with("sessiongate-update-payload")
        );
        assert!(refused(&control(None, Some("everyone"), None)).contains("`session` or `user`"));
        assert!(refused(&control(None, Some("Session"), None)).contains("`session` or `user`"));
    }
}
