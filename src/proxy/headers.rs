//! Header hygiene on the proxy path. Pure: works on `http::HeaderMap`, no I/O.
//!
//! - Spoofing: every client header that names an identity header (case-insensitive, `_` read
//!   as `-`) or starts with `sessiongate-` is removed; one spelled with `_` is refused (400),
//!   since some upstream stacks fold `_` into `-` and would read it as ours.
//! - Hop-by-hop (RFC 9110 §7.6.1): `Connection` and every header it names, `Keep-Alive`,
//!   `Proxy-Connection`, `Transfer-Encoding`, `TE` (except `TE: trailers`), `Trailer`, and
//!   `Upgrade` (kept only for WebSocket upgrades). `Proxy-Authorization` is not hop-by-hop in
//!   RFC 9110 and is passed on. The caller strips hop-by-hop headers *before* adding identity
//!   headers, so `Connection: x-user-id` cannot remove them.
//! - `X-Forwarded-*` are set by the gateway; client values are kept only from trusted proxies.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {0} imitates a gateway identity header")]
    UnderscoreIdentity(String),
    #[error("identity value for {0} is not a valid header value")]
    InvalidValue(String),
}

/// `name` lower-cased with `_` read as `-`.
fn canonical(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

fn is_identity(canon: &str, id: &IdentityConfig) -> bool {
    canon == id.user_id_header
        || canon == id.session_handle_header
        || canon == id.jwt_payload_header
        || canon.starts_with("sessiongate-")
}

/// Removes client copies of identity and `sessiongate-*` headers.
pub fn strip_spoofed(headers: &mut HeaderMap, id: &IdentityConfig) -> Result<(), HeaderError> {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let canon = canonical(name.as_str());
        if is_identity(&canon, id) {
            if name.as_str().contains('_') {
                return Err(HeaderError::UnderscoreIdentity(name.as_str().to_string()));
            }
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(&name);
    }
    Ok(())
}

/// The comma-separated tokens of every `Connection` header, lower-cased.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    connection_tokens(headers).iter().any(|t| t == "upgrade")
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Removes hop-by-hop headers (see the module doc). With `keep_websocket_upgrade`, a WebSocket
/// upgrade keeps `Upgrade: websocket` and gets `Connection: upgrade` back.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_websocket_upgrade: bool) {
    let websocket = keep_websocket_upgrade && is_websocket_upgrade(headers);
    for token in connection_tokens(headers) {
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            if websocket && name == header::UPGRADE {
                continue;
            }
            headers.remove(&name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TRANSFER_ENCODING,
        header::TRAILER,
    ] {
        headers.remove(&name);
    }
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` (see the module doc). `Forwarded` from an untrusted
/// client is dropped too.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    proto: &str,
    host: Option<&str>,
    client_is_trusted_proxy: bool,
) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfh = HeaderName::from_static("x-forwarded-host");
    let ip = client_ip.to_canonical().to_string();
    if client_is_trusted_proxy {
        let prior: Vec<String> = headers
            .get_all(&xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let mut list = prior.join(", ");
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(&ip);
        if let Ok(v) = HeaderValue::from_str(&list) {
            headers.insert(xff, v);
        }
        if !headers.contains_key(&xfp) {
            if let Ok(v) = HeaderValue::from_str(proto) {
                headers.insert(xfp, v);
            }
        }
        if !headers.contains_key(&xfh) {
            if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
                headers.insert(xfh, v);
            }
        }
    } else {
        headers.remove(header::FORWARDED);
        headers.remove(&xfh);
        if let Ok(v) = HeaderValue::from_str(&ip) {
            headers.insert(xff, v);
        }
        if let Ok(v) = HeaderValue::from_str(proto) {
            headers.insert(xfp, v);
        }
        if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(xfh, v);
        }
    }
}

/// Removes cookie `name` from every `Cookie` header, keeping the others byte for byte.
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    for v in values {
        let kept: Vec<&[u8]> = v
            .as_bytes()
            .split(|b| *b == b';')
            .filter(|pair| {
                let n = pair.split(|b| *b == b'=').next().unwrap_or(b"");
                n.trim_ascii() != name.as_bytes()
            })
            .map(|p| p.trim_ascii())
            .filter(|p| !p.is_empty())
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.append(header::COOKIE, v);
        }
    }
}

/// Percent-encodes bytes outside visible ASCII (and `%`), so any user id fits a header value.
/// ASCII ids pass unchanged; upstreams percent-decode to get UTF-8 back.
pub fn encode_identity_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Adds the identity headers (after [`strip_hop_by_hop`] and [`strip_spoofed`]).
pub fn add_identity(
    headers: &mut HeaderMap,
    id: &IdentityConfig,
    user_id: &str,
    handle: &str,
    payload_json: &str,
) -> Result<(), HeaderError> {
    for (name, value) in [
        (&id.user_id_header, user_id),
        (&id.session_handle_header, handle),
        (&id.jwt_payload_header, payload_json),
    ] {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HeaderError::InvalidValue(name.clone()))?;
        let v = HeaderValue::from_str(&encode_identity_value(value))
            .map_err(|_| HeaderError::InvalidValue(name.clone()))?;
        headers.insert(n, v);
    }
    Ok(())
}

/// Session-control headers taken from an upstream response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionControl {
    pub create: Option<HeaderValue>,
    pub revoke: Option<HeaderValue>,
    pub update_payload: Option<HeaderValue>,
    /// A control header appeared more than once (malformed).
    pub duplicated: bool,
}

/// Removes every `sessiongate-*` header from a response and returns the control ones.
pub fn take_session_control(headers: &mut HeaderMap) -> SessionControl {
    let mut c = SessionControl::default();
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("sessiongate-"))
        .cloned()
        .collect();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        let slot = match name.as_str() {
            "sessiongate-create" => &mut c.create,
            "sessiongate-revoke" => &mut c.revoke,
            "sessiongate-update-payload" => &mut c.update_payload,
            _ => continue,
        };
        if values.len() > 1 {
            c.duplicated = true;
        }
        *slot = values.into_iter().next();
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> IdentityConfig {
        IdentityConfig {
            user_id_header: "x-user-id".into(),
            session_handle_header: "x-session-handle".into(),
            jwt_payload_header: "x-jwt-payload".into(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn spoofing() {
        let check = |pairs: &[(&str, &str)], want: Result<Vec<&str>, &str>| {
            let mut h = map(pairs);
            let got = strip_spoofed(&mut h, &id()).map(|()| names(&h));
            let want = want
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .map_err(|n| HeaderError::UnderscoreIdentity(n.to_string()));
            assert_eq!(got, want, "{pairs:?}");
        };
        check(
            &[("x-user-id", "evil"), ("accept", "*/*")],
            Ok(vec!["accept"]),
        );
        check(&[("X-User-Id", "evil")], Ok(vec![]));
        check(
            &[("X-SESSION-HANDLE", "h"), ("x-jwt-payload", "{}")],
            Ok(vec![]),
        );
        check(
            &[("sessiongate-create", "{}"), ("SessionGate-Anything", "x")],
            Ok(vec![]),
        );
        check(&[("x_user_id", "evil")], Err("x_user_id"));
        check(&[("X-USER_ID", "evil")], Err("x-user_id"));
        check(&[("sessiongate_create", "{}")], Err("sessiongate_create"));
        check(
            &[("x-user-idx", "fine"), ("x-user", "fine")],
            Ok(vec!["x-user", "x-user-idx"]),
        );
    }

    #[test]
    fn hop_by_hop() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Custom"),
            ("connection", "x-user-id"),
            ("keep-alive", "timeout=5"),
            ("x-custom", "1"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("trailer", "x-t"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(names(&h), vec!["accept", "proxy-authorization"]);
        // Identity headers are added after stripping, so Connection cannot remove them.
        add_identity(&mut h, &id(), "alice", "h1", "{}").unwrap();
        assert_eq!(h["x-user-id"], "alice");

        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn websocket() {
        let ws = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ];
        assert!(is_websocket_upgrade(&map(&ws)));
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
        let mut h = map(&ws);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(
            (h["connection"].as_bytes(), h["upgrade"].as_bytes()),
            (&b"upgrade"[..], &b"websocket"[..])
        );
        let mut h = map(&ws);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(names(&h), vec!["sec-websocket-key"]);
    }

    #[test]
    fn forwarded() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let spoofed = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
        ];
        let mut h = map(&spoofed);
        set_forwarded(&mut h, ip, "http", Some("gw.example"), false);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert!(!h.contains_key("forwarded"));
        let mut h = map(&spoofed);
        set_forwarded(&mut h, ip, "http", Some("gw.example"), true);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil");
        let mut h = HeaderMap::new();
        set_forwarded(
            &mut h,
            "::ffff:127.0.0.1".parse().unwrap(),
            "https",
            None,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn cookie_stripping() {
        let check = |cookies: &[&str], want: &[&str]| {
            let pairs: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", *c)).collect();
            let mut h = map(&pairs);
            strip_cookie(&mut h, "sRefreshToken");
            let got: Vec<&str> = h
                .get_all("cookie")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, want, "{cookies:?}");
        };
        check(&["a=1; sRefreshToken=x; b=2"], &["a=1; b=2"]);
        check(&["sRefreshToken=x"], &[]);
        check(&["a=1", "sRefreshToken=x;c=3"], &["a=1", "c=3"]);
        check(&["sRefreshTokenX=1; a=b=c"], &["sRefreshTokenX=1; a=b=c"]);
    }

    #[test]
    fn identity_values() {
        let mut h = HeaderMap::new();
        add_identity(&mut h, &id(), "jöhn\n", "h", "{\"a\":1}").unwrap();
        assert_eq!(h["x-user-id"], "j%C3%B6hn%0A");
        assert_eq!(h["x-jwt-payload"], "{\"a\":1}");
        assert_eq!(encode_identity_value("100%"), "100%25");
    }

    #[test]
    fn session_control() {
        let mut h = map(&[
            ("sessiongate-create", "{}"),
            ("sessiongate-other", "x"),
            ("content-type", "text/html"),
        ]);
        let c = take_session_control(&mut h);
        assert_eq!(c.create.unwrap(), "{}");
        assert!(!c.duplicated);
        assert_eq!(names(&h), vec!["content-type"]);
        let mut h = map(&[
            ("sessiongate-revoke", "session"),
            ("sessiongate-revoke", "user"),
        ]);
        assert!(take_session_control(&mut h).duplicated);
        assert!(h.is_empty());
    }
}
