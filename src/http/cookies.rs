//! Cookies: reading them from requests and writing the `Set-Cookie` values of SPEC §4.
//! Pure: no I/O; `now` is a parameter.
//!
//! Written cookies carry `Expires` (for old clients) and `Max-Age` (so a client clock that is
//! off does not change the lifetime). Values are written as they are: every token the gateway
//! issues is base64url or JWT text, which needs no escaping. Read values are percent-decoded,
//! like npm `cookie.parse`, so cookies written by the original library still parse.

use http::header::{self, HeaderMap, HeaderValue};

use crate::config::{CookieConfig, SameSite};

pub const ACCESS: &str = "sAccessToken";
pub const REFRESH: &str = "sRefreshToken";
pub const ID_REFRESH: &str = "sIdRefreshToken";
/// The request and response header carrying the anti-CSRF token.
pub const ANTI_CSRF: &str = "anti-csrf";
/// The response header carrying the id-refresh value (or `remove`).
pub const ID_REFRESH_HEADER: &str = "id-refresh-token";
/// `Access-Control-Expose-Headers` for the two session headers above and the token headers
/// of `http::bearer`.
pub const EXPOSE: &str = "id-refresh-token, anti-csrf, st-access-token, st-refresh-token";

/// The first cookie called `name` across all `Cookie` headers, percent-decoded.
/// Borrows from the header when the value has no percent-escapes (the usual case).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    for v in headers.get_all(header::COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            let mut value = pair[eq + 1..].trim_ascii();
            if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                value = &value[1..value.len() - 1];
            }
            return Some(percent_encoding::percent_decode(value).decode_utf8_lossy());
        }
    }
    None
}

/// Attributes shared by the three session cookies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieSettings {
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
    pub access_path: String,
    pub refresh_path: String,
}

impl CookieSettings {
    pub fn from_config(c: &CookieConfig, access_path: &str, refresh_path: &str) -> Self {
        Self {
            domain: c.domain.clone(),
            secure: c.secure,
            same_site: c.same_site,
            access_path: access_path.to_string(),
            refresh_path: refresh_path.to_string(),
        }
    }
}

/// IMF-fixdate for epoch milliseconds (clamped at the epoch).
fn http_date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

fn build(
    s: &CookieSettings,
    name: &str,
    value: &str,
    path: &str,
    expires_ms: i64,
    max_age_secs: i64,
    http_only: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}");
    if let Some(d) = &s.domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    c.push_str("; Path=");
    c.push_str(path);
    c.push_str("; Expires=");
    c.push_str(&http_date(expires_ms));
    c.push_str(&format!("; Max-Age={}", max_age_secs.max(0)));
    if http_only {
        c.push_str("; HttpOnly");
    }
    if s.secure {
        c.push_str("; Secure");
    }
    c.push_str("; SameSite=");
    c.push_str(s.same_site.as_attr());
    // Tokens and configured attributes are validated ASCII; fall back to a clearing value
    // rather than panic if one ever is not.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn secs_until(expires_ms: i64, now_ms: i64) -> i64 {
    (expires_ms - now_ms).max(0) / 1000
}

/// The `sAccessToken` cookie alone (used when only the access token changes).
pub fn access_cookie(s: &CookieSettings, token: &str, expires_ms: i64, now_ms: i64) -> HeaderValue {
    build(
        s,
        ACCESS,
        token,
        &s.access_path,
        expires_ms,
        secs_until(expires_ms, now_ms),
        true,
    )
}

/// The three cookies of session creation and refresh, in the SPEC's order.
pub fn session_cookies(
    s: &CookieSettings,
    access_token: &str,
    access_expires_ms: i64,
    refresh_token: &str,
    id_refresh: &str,
    session_expires_ms: i64,
    now_ms: i64,
) -> [HeaderValue; 3] {
    let session_secs = secs_until(session_expires_ms, now_ms);
    [
        access_cookie(s, access_token, access_expires_ms, now_ms),
        build(
            s,
            REFRESH,
            refresh_token,
            &s.refresh_path,
            session_expires_ms,
            session_secs,
            true,
        ),
        build(
            s,
            ID_REFRESH,
            id_refresh,
            &s.access_path,
            session_expires_ms,
            session_secs,
            false,
        ),
    ]
}

/// The three clearing cookies: empty values, expired, same attributes as when set.
pub fn clearing_cookies(s: &CookieSettings) -> [HeaderValue; 3] {
    [
        build(s, ACCESS, "", &s.access_path, 0, 0, true),
        build(s, REFRESH, "", &s.refresh_path, 0, 0, true),
        build(s, ID_REFRESH, "", &s.access_path, 0, 0, false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domain: Option<&str>, secure: bool, same_site: SameSite) -> CookieSettings {
        CookieSettings {
            domain: domain.map(str::to_string),
            secure,
            same_site,
            access_path: "/".into(),
            refresh_path: "/auth/refresh".into(),
        }
    }

    #[test]
    fn reading() {
        let check = |cookies: &[&str], name: &str, want: Option<&str>| {
            let mut h = HeaderMap::new();
            for c in cookies {
                h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
            }
            assert_eq!(cookie(&h, name).as_deref(), want, "{cookies:?} {name}");
        };
        check(&["a=1; sAccessToken=tok; b=2"], "sAccessToken", Some("tok"));
        check(
            &["a=1", "sAccessToken=second"],
            "sAccessToken",
            Some("second"),
        );
        check(
            &["sAccessToken=first; sAccessToken=dup"],
            "sAccessToken",
            Some("first"),
        );
        check(
            &["  sAccessToken = spaced ;x=1"],
            "sAccessToken",
            Some("spaced"),
        );
        check(&["sAccessToken=\"quoted\""], "sAccessToken", Some("quoted"));
        check(
            &["sRefreshToken=q2f%2B%2F%3D.87"],
            "sRefreshToken",
            Some("q2f+/=.87"),
        );
        check(&["xsAccessToken=1"], "sAccessToken", None);
        check(&["sAccessToken"], "sAccessToken", None);
        check(&["sAccessToken="], "sAccessToken", Some(""));
        check(&[], "sAccessToken", None);
        check(&["sAccessToken=%ZZ%"], "sAccessToken", Some("%ZZ%"));
    }

    #[test]
    fn writing() {
        let now = 1_700_000_000_000;
        let s = settings(Some("example.com"), true, SameSite::Lax);
        let [a, r, i] = session_cookies(
            &s,
            "AT",
            now + 3_600_000,
            "RT",
            "IDR",
            now + 86_400_000,
            now,
        );
        assert_eq!(a, "sAccessToken=AT; Domain=example.com; Path=/; Expires=Tue, 14 Nov 2023 23:13:20 GMT; Max-Age=3600; HttpOnly; Secure; SameSite=Lax");
        assert_eq!(r, "sRefreshToken=RT; Domain=example.com; Path=/auth/refresh; Expires=Wed, 15 Nov 2023 22:13:20 GMT; Max-Age=86400; HttpOnly; Secure; SameSite=Lax");
        assert_eq!(i, "sIdRefreshToken=IDR; Domain=example.com; Path=/; Expires=Wed, 15 Nov 2023 22:13:20 GMT; Max-Age=86400; Secure; SameSite=Lax");
        let s = settings(None, false, SameSite::Strict);
        let [a, r, i] = clearing_cookies(&s);
        assert_eq!(a, "sAccessToken=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; SameSite=Strict");
        assert_eq!(r, "sRefreshToken=; Path=/auth/refresh; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; SameSite=Strict");
        assert_eq!(i, "sIdRefreshToken=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; SameSite=Strict");
        // Already expired at issue time: Max-Age 0, never negative.
        let c = access_cookie(&s, "AT", now - 5000, now);
        assert!(c.to_str().unwrap().contains("Max-Age=0;"));
    }
}
