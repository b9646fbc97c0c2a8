//! Tokens in headers, the wire part: reading `Authorization: Bearer <token>` and
//! `st-auth-mode: header` from requests, and writing (or clearing) the `st-access-token` and
//! `st-refresh-token` response headers. The header names are declared here, once. Pure: no
//! I/O; whether a bearer token is the gateway's is decided by `gateway::header_mode`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request header a client sends (`header`) to get its tokens in response headers.
pub const AUTH_MODE: &str = "st-auth-mode";
/// The response header carrying a new access token (empty: drop the one you hold).
pub const ACCESS_TOKEN: &str = "st-access-token";
/// The response header carrying a new refresh token (empty: drop the one you hold).
pub const REFRESH_TOKEN: &str = "st-refresh-token";

/// The token of the request's `Authorization: Bearer <token>` header: the scheme in any case
/// (RFC 9110 §11.1), one space or more, then the token. `None` when there is no such header,
/// when `Authorization` appears more than once, or for another scheme or an empty token.
pub fn token(h: &HeaderMap) -> Option<&str> {
    let mut values = h.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = rest.trim_matches(' ');
    (!t.is_empty() && !t.contains(' ')).then_some(t)
}

/// The request sent `st-auth-mode: header` (the value in any case).
pub fn asks_for_headers(h: &HeaderMap) -> bool {
    h.get_all(AUTH_MODE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"header"))
}

/// Writes a new access token and, when there is one, a new refresh token.
pub fn set_tokens(h: &mut HeaderMap, access: &str, refresh: Option<&str>) {
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put(ACCESS_TOKEN, access);
    if let Some(r) = refresh {
        put(REFRESH_TOKEN, r);
    }
}

/// Both token headers with empty values: the client drops the tokens it holds.
pub fn clear_tokens(h: &mut HeaderMap) {
    h.insert(ACCESS_TOKEN, HeaderValue::from_static(""));
    h.insert(REFRESH_TOKEN, HeaderValue::from_static(""));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn reading_the_bearer_token() {
        let check = |pairs: &[(&str, &str)], want: Option<&str>| {
            assert_eq!(token(&headers(pairs)), want, "{pairs:?}");
        };
        check(&[("authorization", "Bearer abc.def")], Some("abc.def"));
        check(&[("authorization", "bearer abc")], Some("abc"));
        check(&[("authorization", "BEARER  abc ")], Some("abc"));
        check(&[("authorization", "Basic dXNlcjpwdw==")], None);
        check(&[("authorization", "Bearer")], None);
        check(&[("authorization", "Bearer ")], None);
        check(&[("authorization", "Bearer a b")], None);
        check(&[("authorization", "Bearerabc")], None);
        check(
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            None,
        );
        check(&[], None);
    }

    #[test]
    fn reading_the_auth_mode() {
        assert!(asks_for_headers(&headers(&[("st-auth-mode", "header")])));
        assert!(asks_for_headers(&headers(&[("st-auth-mode", "Header ")])));
        assert!(!asks_for_headers(&headers(&[("st-auth-mode", "cookie")])));
        assert!(!asks_for_headers(&headers(&[])));
    }

    #[test]
    fn writing_and_clearing() {
        let mut h = HeaderMap::new();
        set_tokens(&mut h, "AT", Some("RT"));
        assert_eq!(h[ACCESS_TOKEN], "AT");
        assert_eq!(h[REFRESH_TOKEN], "RT");
        set_tokens(&mut h, "AT2", None);
        assert_eq!(h[ACCESS_TOKEN], "AT2");
        assert_eq!(h[REFRESH_TOKEN], "RT");
        clear_tokens(&mut h);
        assert_eq!(h[ACCESS_TOKEN], "");
        assert_eq!(h[REFRESH_TOKEN], "");
    }
}
