//! Header hygiene on the proxy path. Pure: works on `http::HeaderMap`, no I/O.
//!
//! - Framing (RFC 9112 §6.1): the only transfer coding accepted is a single `chunked`;
//!   anything else is refused (501) by [`check_transfer_coding`].
//! - Host (RFC 9112 §3.2, RFC 9113 §8.3.1): [`request_host`] computes the one canonical host
//!   of a request (lower case, no trailing dot, port as sent, IPv6 in its shortest form) from
//!   the request-target authority (absolute-form or `:authority`) and the `Host` header, and
//!   refuses a missing (HTTP/1.1, HTTP/2), duplicate, userinfo-carrying, invalid or
//!   disagreeing host. The gateway routes on it and sends it upstream as `Host`.
//! - Spoofing: every client header that names an identity header or starts with
//!   `sessiongate-` is removed, comparing canonical forms on both sides (case-insensitive, `_`
//!   read as `-`); one spelled with `_` is refused (400), since some upstream stacks fold `_`
//!   into `-` and would read it as ours.
//! - Hop-by-hop (RFC 9110 §7.6.1): `Connection` and every header it names, `Keep-Alive`,
//!   `Proxy-Connection`, `Transfer-Encoding`, `TE` (except `TE: trailers`), `Trailer`, and
//!   `Upgrade` (kept only for WebSocket upgrades). `Proxy-Authorization` is not hop-by-hop in
//!   RFC 9110 and is passed on. The caller strips hop-by-hop headers *before* adding identity
//!   headers, so `Connection: x-user-id` cannot remove them.
//! - `X-Forwarded-*` are set by the gateway; client values are kept only from trusted proxies.
//!   From a trusted proxy, [`forwarded_origin`] reads the scheme and host the browser used
//!   (first element of `Forwarded`, else `X-Forwarded-Proto/-Host`) and [`client_addr`] the
//!   client's address (right-most untrusted `X-Forwarded-For` entry).
//! - `X-Request-Id` ([`REQUEST_ID`]): a trusted proxy's value is kept when
//!   [`valid_request_id`]; the gateway replaces every other one.
//!   From other peers [`strip_untrusted`] also drops the headers upstream frameworks read as
//!   client address, URL or method overrides ([`PROXY_ONLY_HEADERS`]) and every header whose
//!   name contains `_` (as nginx does).
//! - Cookies: the refresh-token cookie is removed and every remaining pair is sent in one
//!   `Cookie` header (HTTP/2 clients send one field per cookie; HTTP/1.1 upstreams expect one).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {0} imitates a gateway identity header")]
    UnderscoreIdentity(String),
    #[error("identity value for {0} is not a valid header value")]
    InvalidValue(String),
    #[error("transfer coding {0:?} is not supported (only chunked)")]
    UnsupportedTransferCoding(String),
}

/// Why a request's host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no Host header")]
    Missing,
    #[error("the request has more than one Host header")]
    Duplicate,
    #[error("the host carries user information")]
    Userinfo,
    #[error("the host is not a valid host name")]
    Invalid,
    #[error("the request-target authority and the Host header disagree")]
    Mismatch,
}

/// Refuses any transfer coding other than one `chunked` (RFC 9112 §6.1: 501 for a coding the
/// server does not understand). hyper already answers 400 when `chunked` is not last (and for
/// any coding on HTTP/1.0); what reaches here is e.g. `gzip, chunked` or `chunked, chunked`.
pub fn check_transfer_coding(headers: &HeaderMap) -> Result<(), HeaderError> {
    let values = headers.get_all(header::TRANSFER_ENCODING);
    if values.iter().next().is_none() {
        return Ok(());
    }
    let mut codings = Vec::new();
    for v in values {
        let text = String::from_utf8_lossy(v.as_bytes());
        codings.extend(
            text.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        );
    }
    match codings.as_slice() {
        [one] if one.eq_ignore_ascii_case("chunked") => Ok(()),
        _ => Err(HeaderError::UnsupportedTransferCoding(codings.join(", "))),
    }
}

/// The canonical form of one host (`Host` value or request-target authority): lower case,
/// one trailing dot removed, an IPv6 literal in its shortest form, the port kept as sent.
/// Host names may use letters, digits, `-` and `_` in dot-separated labels.
pub fn canonical_host(raw: &str) -> Result<String, HostError> {
    if raw.contains('@') {
        return Err(HostError::Userinfo);
    }
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(HostError::Invalid)?;
        let ip: std::net::Ipv6Addr = inside.parse().map_err(|_| HostError::Invalid)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::Invalid)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match raw.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (raw, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(HostError::Invalid);
        }
        (name.to_ascii_lowercase(), port)
    };
    match port {
        None => Ok(name),
        Some(p) => {
            let digits = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            if !digits || p.parse::<u16>().is_err() {
                return Err(HostError::Invalid);
            }
            Ok(format!("{name}:{p}"))
        }
    }
}

/// The one canonical host of a request, from the request-target `authority` (absolute-form on
/// HTTP/1.1, `:authority` on HTTP/2) and the `Host` header(s); see the module doc. `None`
/// only for an HTTP/1.0 request that names no host at all.
pub fn request_host(
    version: http::Version,
    authority: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<String>, HostError> {
    let mut values = headers.get_all(header::HOST).iter();
    let host = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => {
            let text = v.to_str().map_err(|_| HostError::Invalid)?;
            Some(canonical_host(text)?)
        }
        (Some(_), Some(_)) => return Err(HostError::Duplicate),
    };
    let target = authority.map(canonical_host).transpose()?;
    let old = matches!(version, http::Version::HTTP_09 | http::Version::HTTP_10);
    match (target, host) {
        (Some(t), Some(h)) if t == h => Ok(Some(h)),
        (Some(_), Some(_)) => Err(HostError::Mismatch),
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400, even in absolute-form.
        (Some(_), None) if version == http::Version::HTTP_11 => Err(HostError::Missing),
        (Some(t), None) => Ok(Some(t)),
        (None, Some(h)) => Ok(Some(h)),
        (None, None) if old => Ok(None),
        (None, None) => Err(HostError::Missing),
    }
}

/// A header-name byte in canonical form: lower case, `_` read as `-`.
fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Whether two header names have the same canonical form.
fn same_canonical(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// Whether `name` is, in canonical form, an identity header or a `sessiongate-*` header.
/// Both sides are folded, so a configured name spelled with `_` is matched too.
fn is_identity(name: &str, id: &IdentityConfig) -> bool {
    let n = name.as_bytes();
    let prefix = b"sessiongate-";
    [
        &id.user_id_header,
        &id.session_handle_header,
        &id.jwt_payload_header,
    ]
    .iter()
    .any(|h| same_canonical(n, h.as_bytes()))
        || n.get(..prefix.len())
            .is_some_and(|p| same_canonical(p, prefix))
}

/// Removes client copies of identity and `sessiongate-*` headers.
pub fn strip_spoofed(headers: &mut HeaderMap, id: &IdentityConfig) -> Result<(), HeaderError> {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_identity(name.as_str(), id) {
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

/// Headers only a trusted proxy may send: upstream frameworks read them as the client address,
/// the request URL or the method.
pub const PROXY_ONLY_HEADERS: &[&str] = &[
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// For a client outside `server.trusted_proxies`: drops [`PROXY_ONLY_HEADERS`] and every
/// header whose name contains `_`.
pub fn strip_untrusted(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_') || PROXY_ONLY_HEADERS.contains(&n.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
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

/// The scheme and host the client-facing hop saw, as reported by a trusted proxy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForwardedOrigin {
    /// `http` or `https`.
    pub proto: Option<&'static str>,
    /// A canonical host ([`canonical_host`]).
    pub host: Option<String>,
}

/// Reads the client-facing scheme and host from `Forwarded` (RFC 7239: `proto=`, `host=`) and
/// `X-Forwarded-Proto` / `X-Forwarded-Host`. Call it only for a peer in
/// `server.trusted_proxies`.
///
/// When a list has several elements (several proxies appended to it), the **first** one is
/// read: it was written by the hop the browser connected to, and the `Origin` the browser
/// sends names that hop. `Forwarded` wins over `X-Forwarded-*`, field by field. A value that
/// is not `http`/`https` or not a valid host is ignored, as if absent.
pub fn forwarded_origin(headers: &HeaderMap) -> ForwardedOrigin {
    let mut out = ForwardedOrigin::default();
    if let Some(element) = first_forwarded_element(headers) {
        for pair in split_unquoted(&element, ';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match name.trim().to_ascii_lowercase().as_str() {
                "proto" if out.proto.is_none() => out.proto = scheme(&value),
                "host" if out.host.is_none() => out.host = canonical_host(&value).ok(),
                _ => {}
            }
        }
    }
    let first_value = |name: &str| {
        let v = headers.get(name)?.to_str().ok()?;
        Some(v.split(',').next().unwrap_or("").trim().to_string())
    };
    if out.proto.is_none() {
        out.proto = first_value("x-forwarded-proto").and_then(|v| scheme(&v));
    }
    if out.host.is_none() {
        out.host = first_value("x-forwarded-host").and_then(|v| canonical_host(&v).ok());
    }
    out
}

fn scheme(v: &str) -> Option<&'static str> {
    if v.eq_ignore_ascii_case("https") {
        Some("https")
    } else if v.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// The first element of the `Forwarded` field (all its lines joined by `,`).
fn first_forwarded_element(headers: &HeaderMap) -> Option<String> {
    let line = headers.get(header::FORWARDED)?.to_str().ok()?;
    split_unquoted(line, ',').into_iter().next()
}

/// Splits at `sep` outside quoted strings (RFC 9110 §5.6.4, with `\` escapes).
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        let cur = parts.last_mut().expect("never empty");
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(String::new());
            continue;
        }
        cur.push(c);
    }
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(c);
            }
            out
        }
        None => v.to_string(),
    }
}

/// The origin `scheme://host` a browser writes for `host` (canonical) under `scheme`: the
/// scheme's default port (`:443`, `:80`) is left out.
pub fn origin(scheme: &str, host: &str) -> String {
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    let host = match host.strip_suffix(default) {
        Some(h) if !default.is_empty() => h,
        _ => host,
    };
    format!("{scheme}://{host}")
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries right of it were
/// appended by trusted hops; left of it, anyone could have written them). An unparseable
/// entry stops the walk at the last trusted hop.
pub fn client_addr(headers: &HeaderMap, peer: IpAddr, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let parsed = entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|a| a.ip()));
        let Ok(ip) = parsed.map(|ip| ip.to_canonical()) else {
            break;
        };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

/// The request-id header: kept from trusted proxies when valid, set by the gateway
/// otherwise, sent upstream and returned to the client.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id kept from a trusted proxy.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Whether a request id from a trusted proxy is kept: 1 to [`MAX_REQUEST_ID_BYTES`] bytes of
/// visible ASCII (no spaces, no control bytes).
pub fn valid_request_id(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&v.len()) && v.iter().all(|b| (0x21..0x7f).contains(b))
}

/// Removes cookie `name` from the `Cookie` header(s) and joins every other pair, in order and
/// byte for byte, into one `Cookie` header (`; ` between pairs): HTTP/2 clients send one field
/// per cookie (RFC 9113 §8.2.3), HTTP/1.1 upstreams expect a single header.
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    let kept: Vec<&[u8]> = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter(|pair| {
            let n = pair.split(|b| *b == b'=').next().unwrap_or(b"");
            n.trim_ascii() != name.as_bytes()
        })
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .collect();
    if kept.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
        headers.insert(header::COOKIE, v);
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
        check(&[("sessiongate", "x"), ("sessiongatex", "y")], {
            Ok(vec!["sessiongate", "sessiongatex"])
        });
    }

    /// A configured name spelled with `_` (refused by config validation) still protects:
    /// canonical forms are compared on both sides.
    #[test]
    fn spoofing_with_an_underscore_identity_name() {
        let mut cfg = id();
        cfg.user_id_header = "x_user_id".into();
        let mut h = map(&[("x-user-id", "admin"), ("X-USER-ID", "root")]);
        strip_spoofed(&mut h, &cfg).unwrap();
        assert!(h.is_empty(), "{h:?}");
        let mut h = map(&[("x_user_id", "admin")]);
        assert_eq!(
            strip_spoofed(&mut h, &cfg),
            Err(HeaderError::UnderscoreIdentity("x_user_id".into()))
        );
    }

    #[test]
    fn transfer_codings() {
        let check = |values: &[&str], ok: bool| {
            let pairs: Vec<(&str, &str)> =
                values.iter().map(|v| ("transfer-encoding", *v)).collect();
            assert_eq!(
                check_transfer_coding(&map(&pairs)).is_ok(),
                ok,
                "{values:?}"
            );
        };
        check(&[], true);
        check(&["chunked"], true);
        check(&["Chunked"], true);
        check(&[" chunked , "], true);
        check(&["gzip, chunked"], false);
        check(&["chunked, chunked"], false);
        check(&["gzip", "chunked"], false);
        check(&["identity"], false);
        check(&["chunked, identity"], false);
        check(&[""], false);
    }

    #[test]
    fn hosts() {
        let check = |raw: &str, want: Result<&str, HostError>| {
            let got = canonical_host(raw);
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{raw:?}");
        };
        check("example.com", Ok("example.com"));
        check("ADMIN.Example.COM.", Ok("admin.example.com"));
        check("example.com.:8443", Ok("example.com:8443"));
        check("example.com:080", Ok("example.com:080"));
        check("127.0.0.1:8080", Ok("127.0.0.1:8080"));
        check("[::1]:8080", Ok("[::1]:8080"));
        check("[0:0:0:0:0:0:0:1]", Ok("[::1]"));
        check("[FE80::A]", Ok("[fe80::a]"));
        check("my_host.internal", Ok("my_host.internal"));
        check("user@example.com", Err(HostError::Userinfo));
        check("user:pw@example.com:80", Err(HostError::Userinfo));
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "example.com..",
            "example.com:",
            "example.com:65536",
            "example.com:123456",
            "example.com:8a",
            "example.com:80:80",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[fe80::1%25eth0]",
            "exa mple.com",
            "a,b",
            "a/b",
            "a%2eb",
            "é.example",
        ] {
            check(bad, Err(HostError::Invalid));
        }
        let long = format!("{}.com", "a".repeat(64));
        check(&long, Err(HostError::Invalid));
    }

    #[test]
    fn request_hosts() {
        use http::Version;
        let check = |version: Version,
                     authority: Option<&str>,
                     hosts: &[&str],
                     want: Result<Option<&str>, HostError>| {
            let pairs: Vec<(&str, &str)> = hosts.iter().map(|h| ("host", *h)).collect();
            let got = request_host(version, authority, &map(&pairs));
            assert_eq!(
                got.as_ref().map(|o| o.as_deref()),
                want.as_ref().map(|o| o.as_deref()),
                "{version:?} {authority:?} {hosts:?}"
            );
        };
        let h11 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        let h10 = Version::HTTP_10;
        check(h11, None, &["A.example."], Ok(Some("a.example")));
        check(h11, None, &[], Err(HostError::Missing));
        check(
            h11,
            None,
            &["a.example", "a.example"],
            Err(HostError::Duplicate),
        );
        check(h11, None, &["u@a.example"], Err(HostError::Userinfo));
        check(
            h11,
            Some("a.example"),
            &["A.EXAMPLE."],
            Ok(Some("a.example")),
        );
        check(
            h11,
            Some("a.example"),
            &["b.example"],
            Err(HostError::Mismatch),
        );
        check(
            h11,
            Some("a.example:80"),
            &["a.example"],
            Err(HostError::Mismatch),
        );
        check(h11, Some("a.example"), &[], Err(HostError::Missing));
        check(
            h11,
            Some("u@a.example"),
            &["a.example"],
            Err(HostError::Userinfo),
        );
        check(h2, Some("a.example"), &[], Ok(Some("a.example")));
        check(h2, None, &["a.example"], Ok(Some("a.example")));
        check(
            h2,
            Some("a.example"),
            &["b.example"],
            Err(HostError::Mismatch),
        );
        check(h2, None, &[], Err(HostError::Missing));
        check(h10, None, &[], Ok(None));
        check(h10, None, &["a.example"], Ok(Some("a.example")));
        check(h10, None, &["a", "b"], Err(HostError::Duplicate));
        check(h10, Some("a.example"), &[], Ok(Some("a.example")));
    }

    #[test]
    fn untrusted_headers() {
        let mut h = map(&[
            ("x-real-ip", "1.2.3.4"),
            ("X-Client-IP", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x_forwarded_for", "6.6.6.6"),
            ("some_header", "x"),
            ("accept", "*/*"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-request-id", "r1"),
        ]);
        strip_untrusted(&mut h);
        assert_eq!(names(&h), vec!["accept", "x-forwarded-for", "x-request-id"]);
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
        check(&["sRefreshToken=x", "sRefreshToken=y"], &[]);
        // HTTP/2 crumbs become one header, in order.
        check(&["a=1", "sRefreshToken=x;c=3"], &["a=1; c=3"]);
        check(&["a=1", "b=2", "c=3"], &["a=1; b=2; c=3"]);
        check(&["sRefreshTokenX=1; a=b=c"], &["sRefreshTokenX=1; a=b=c"]);
        check(&[" a=1 ;; ", "b=2"], &["a=1; b=2"]);
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

    #[test]
    fn forwarded_origins() {
        let check = |pairs: &[(&str, &str)], proto: Option<&str>, host: Option<&str>| {
            let got = forwarded_origin(&map(pairs));
            assert_eq!(got.proto, proto, "{pairs:?}");
            assert_eq!(got.host.as_deref(), host, "{pairs:?}");
        };
        check(&[], None, None);
        check(
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "App.Example.com"),
            ],
            Some("https"),
            Some("app.example.com"),
        );
        check(&[("x-forwarded-proto", "HTTPS, http")], Some("https"), None);
        check(&[("x-forwarded-proto", "ftp")], None, None);
        check(
            &[("x-forwarded-host", "a.example, b.example")],
            None,
            Some("a.example"),
        );
        check(&[("x-forwarded-host", "user@evil")], None, None);
        check(
            &[("forwarded", "for=10.0.0.1;proto=https;host=app.example.com")],
            Some("https"),
            Some("app.example.com"),
        );
        check(
            &[("forwarded", "Proto=HTTPS;Host=\"app.example.com:8443\"")],
            Some("https"),
            Some("app.example.com:8443"),
        );
        // The first element is the client-facing hop.
        check(
            &[(
                "forwarded",
                "proto=https;host=app.example, proto=http;host=internal:8080",
            )],
            Some("https"),
            Some("app.example"),
        );
        check(
            &[
                ("forwarded", "proto=https;host=\"a,b\""),
                ("forwarded", "proto=http"),
            ],
            Some("https"),
            None,
        );
        // Forwarded wins, field by field.
        check(
            &[
                ("forwarded", "proto=https"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "app.example"),
            ],
            Some("https"),
            Some("app.example"),
        );
        check(&[("forwarded", "for=\"[::1]\";proto=gopher")], None, None);
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https", "a.example:443"), "https://a.example");
        assert_eq!(origin("https", "a.example:80"), "https://a.example:80");
        assert_eq!(origin("http", "a.example:80"), "http://a.example");
        assert_eq!(origin("http", "[::1]:8080"), "http://[::1]:8080");
        assert_eq!(origin("http", "a.example:8080"), "http://a.example:8080");
    }

    #[test]
    fn client_addresses() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let check = |peer: &str, xff: &[&str], want: &str| {
            let pairs: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
            let got = client_addr(&map(&pairs), peer.parse().unwrap(), trusted);
            assert_eq!(got.to_string(), want, "{peer} {xff:?}");
        };
        check("192.0.2.1", &["203.0.113.9"], "192.0.2.1");
        check("10.0.0.1", &[], "10.0.0.1");
        check("10.0.0.1", &["203.0.113.9"], "203.0.113.9");
        check(
            "10.0.0.1",
            &["1.1.1.1, 203.0.113.9, 10.0.0.2"],
            "203.0.113.9",
        );
        check("10.0.0.1", &["1.1.1.1", "203.0.113.9"], "203.0.113.9");
        check("10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3");
        check("10.0.0.1", &["203.0.113.9, garbage"], "10.0.0.1");
        check("10.0.0.1", &["203.0.113.9:5555"], "203.0.113.9");
        check("::ffff:10.0.0.1", &["2001:db8::1"], "2001:db8::1");
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abc-123"));
        assert!(valid_request_id(&[b'x'; 128]));
        assert!(!valid_request_id(&[b'x'; 129]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"has space"));
        assert!(!valid_request_id(b"tab\t"));
        assert!(!valid_request_id("caf\u{e9}".as_bytes()));
    }
}
