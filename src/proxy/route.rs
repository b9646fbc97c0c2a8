//! Path normalisation and route matching. Pure: no I/O.
//!
//! The path is normalised once, and that same form is used to pick the route and to build the
//! upstream URI: the authorised path is the forwarded path. Normalising means:
//!
//! - escapes of unreserved characters are decoded, all other escapes upper-cased; raw bytes a
//!   URI may not hold (non-ASCII, controls, space, …) are percent-encoded (`/café` is forwarded
//!   as `/caf%C3%A9`, never as mojibake);
//! - refused: encoded `/`, `\`, `;` and NUL, a raw `\` or NUL, malformed escapes, escapes that
//!   do not decode to valid UTF-8 (overlong forms such as `%C0%AE`), and a `%25` that
//!   double-encodes `.`, `/`, `\`, `;` or NUL (`%252e`);
//! - every segment's `;` parameters are removed (`/api;x/a` → `/api/a`, `..;x` → `..`), as
//!   servlet containers do before they match, and [`Normalised::had_params`] remembers it so
//!   the route can refuse such requests (`routes[].path_params`, default `reject`);
//! - dot segments are resolved per RFC 3986 §5.2.4 and `//` merged, so `/public/../private`
//!   is matched, and forwarded, as `/private`.
//!
//! Route prefixes match on segment boundaries, byte for byte or, for a route with
//! `case_insensitive`, ignoring ASCII case.

use crate::config::{PathParams, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path contains an encoded backslash (%5C)")]
    EncodedBackslash,
    #[error("the path contains an encoded semicolon (%3B)")]
    EncodedSemicolon,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path is not absolute")]
    NotAbsolute,
    #[error("the path contains a malformed percent-escape")]
    InvalidEncoding,
    #[error("the path's percent-escapes are not valid UTF-8 (e.g. an overlong form)")]
    InvalidUtf8,
    #[error("the path contains a double-encoded ., /, \\, ; or NUL (%25 followed by its escape)")]
    DoubleEncoded,
    #[error(
        "the path contains ;-parameters (refused unless the route has path_params = \"strip\")"
    )]
    Params,
}

/// A request path in the one form used to route, authorise and forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// The routed path, which is also the forwarded path.
    pub path: String,
    /// Whether `;` parameters were removed from some segment.
    pub had_params: bool,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// ASCII bytes kept raw in a normalised path: what `http::Uri` accepts in a path, minus `?`,
/// `#`, `%` (always the start of an escape here) and `\` (refused).
fn is_kept_raw(b: u8) -> bool {
    matches!(b, b'!' | b'$'..=b';' | b'=' | b'@'..=b'[' | b']'..=b'_' | b'a'..=b'z' | b'|' | b'~' | b'"' | b'{' | b'}')
        && b != b'%'
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escape(out: &mut String, v: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(v >> 4)] as char);
    out.push(HEX[usize::from(v & 15)] as char);
}

/// Decodes escapes of unreserved characters, upper-cases the others, encodes raw bytes a URI
/// may not hold, and refuses the dangerous. The result is ASCII.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len());
    // The path with every escape decoded: what must be valid UTF-8.
    let mut decoded: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::InvalidEncoding);
                };
                let v = h * 16 + l;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0 => return Err(PathError::Nul),
                    // Containers disagree on whether `%3B` splits off parameters (Tomcat
                    // strips `;…` before decoding, others decode first), so no single routing
                    // of it is right for every upstream: refuse it, like `%2F`.
                    b';' => return Err(PathError::EncodedSemicolon),
                    v if is_unreserved(v) => out.push(v as char),
                    v => push_escape(&mut out, v),
                }
                decoded.push(v);
                i += 3;
            }
            c => {
                if is_kept_raw(c) {
                    out.push(c as char);
                } else {
                    push_escape(&mut out, c);
                }
                decoded.push(c);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    if double_encoded(&out) {
        return Err(PathError::DoubleEncoded);
    }
    Ok(out)
}

/// Whether `s` (escapes upper-cased, unreserved ones decoded) holds `%25`, possibly repeated,
/// followed by the escape of `.`, `/`, `\`, `;` or NUL: a path that turns dangerous when
/// an upstream decodes it once more.
fn double_encoded(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(at) = b[i..].windows(3).position(|w| w == b"%25") {
        let mut j = i + at + 3;
        while b[j..].starts_with(b"25") {
            j += 2;
        }
        let next = b.get(j..j + 2).map(|h| h.to_ascii_uppercase());
        if matches!(next.as_deref(), Some(b"2E" | b"2F" | b"5C" | b"3B" | b"00")) {
            return true;
        }
        i += at + 3;
    }
    false
}

/// Normalises the path of a request URI (no query). See the module doc for what that means.
pub fn normalise_path(raw: &str) -> Result<Normalised, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(raw)?;
    let mut had_params = false;
    let mut segs: Vec<&str> = Vec::new();
    let mut last = "";
    for seg in decoded.split('/') {
        let seg = match seg.split_once(';') {
            Some((name, _)) => {
                had_params = true;
                name
            }
            None => seg,
        };
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
        last = seg;
    }
    let trailing = matches!(last, "" | "." | "..");
    let mut path = String::with_capacity(decoded.len());
    for s in &segs {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() || trailing {
        path.push('/');
    }
    Ok(Normalised { path, had_params })
}

/// Whether a request with this normalised path may be forwarded on `route`: one whose path
/// carried `;` parameters is refused unless the route strips them.
pub fn admit(route: &Route, had_params: bool) -> Result<(), PathError> {
    match (had_params, route.path_params) {
        (true, PathParams::Reject) => Err(PathError::Params),
        _ => Ok(()),
    }
}

/// Whether `path` is under `prefix` on a segment boundary.
fn prefix_matches(prefix: &str, path: &str, case_insensitive: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    let Some(head) = path.get(..p.len()) else {
        return false;
    };
    let same = if case_insensitive {
        head.eq_ignore_ascii_case(p)
    } else {
        head == p
    };
    same && matches!(path.get(p.len()), None | Some(b'/'))
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// Routes sorted so the first match is the best: longest prefix, then host-specific first.
#[derive(Debug, Clone)]
pub struct Router {
    /// (original index, route), in match order.
    routes: Vec<(usize, Route)>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut routes: Vec<(usize, Route)> = routes.into_iter().enumerate().collect();
        routes.sort_by(|(ia, a), (ib, b)| {
            let la = a.path_prefix.trim_end_matches('/').len();
            let lb = b.path_prefix.trim_end_matches('/').len();
            lb.cmp(&la)
                .then(b.host.is_some().cmp(&a.host.is_some()))
                .then(ia.cmp(ib))
        });
        Self { routes }
    }

    /// The route for a request: its index in the configured list and the route.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<(usize, &Route)> {
        let req_host = host.map(host_without_port);
        self.routes
            .iter()
            .find(|(_, r)| {
                let host_ok = match (&r.host, req_host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                    (Some(_), None) => false,
                };
                host_ok && prefix_matches(&r.path_prefix, path, r.case_insensitive)
            })
            .map(|(i, r)| (*i, r))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the upstream URI: {0}")]
pub struct UpstreamUriError(String);

/// The upstream URI for a request: the upstream's base path joined with the normalised path,
/// and the query verbatim.
pub fn join_upstream_uri(
    upstream: &http::Uri,
    normalised_path: &str,
    query: Option<&str>,
) -> Result<http::Uri, UpstreamUriError> {
    let base = upstream.path().trim_end_matches('/');
    let mut pq = String::with_capacity(base.len() + normalised_path.len() + 1);
    pq.push_str(base);
    pq.push_str(normalised_path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = Some(
        pq.parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamUriError(e.to_string()))?,
    );
    http::Uri::from_parts(parts).map_err(|e| UpstreamUriError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AntiCsrfMode, AuthMode};

    #[test]
    fn normalisation() {
        let check = |raw: &str, want: Result<&str, PathError>| {
            assert_eq!(
                normalise_path(raw).map(|n| n.path),
                want.map(str::to_string),
                "{raw:?}"
            );
        };
        check("/", Ok("/"));
        check("/public/../private", Ok("/private"));
        check("/a//b", Ok("/a/b"));
        check("//a///b//", Ok("/a/b/"));
        check("/%61pi", Ok("/api"));
        check("/a%7e", Ok("/a~"));
        check("/a%7E", Ok("/a~"));
        check("/a/%2e%2E/b", Ok("/b"));
        check("/%2e%2e/%2e%2e/etc", Ok("/etc"));
        check("/../x", Ok("/x"));
        check("/.", Ok("/"));
        check("/a/./", Ok("/a/"));
        check("/a/b/..", Ok("/a/"));
        check("/a/b/", Ok("/a/b/"));
        check("/caf%C3%A9", Ok("/caf%C3%A9"));
        check("/caf%c3%a9", Ok("/caf%C3%A9"));
        check("/a%20b", Ok("/a%20b"));
        check("/a%2fb", Err(PathError::EncodedSlash));
        check("/a%2Fb", Err(PathError::EncodedSlash));
        check("/a\\b", Err(PathError::Backslash));
        check("/a%5cb", Err(PathError::EncodedBackslash));
        check("/a%00", Err(PathError::Nul));
        check("/a\0", Err(PathError::Nul));
        check("/a%zz", Err(PathError::InvalidEncoding));
        check("/a%4", Err(PathError::InvalidEncoding));
        check("/a%", Err(PathError::InvalidEncoding));
        check("/a%u002e", Err(PathError::InvalidEncoding));
        check("", Err(PathError::NotAbsolute));
        check("*", Err(PathError::NotAbsolute));
        check("a/b", Err(PathError::NotAbsolute));
    }

    #[test]
    fn path_parameters_are_removed_before_routing() {
        let check = |raw: &str, want: &str| {
            assert_eq!(
                normalise_path(raw),
                Ok(Normalised {
                    path: want.into(),
                    had_params: true
                }),
                "{raw:?}"
            );
        };
        check("/api;x/secret", "/api/secret");
        check("/api;/secret", "/api/secret");
        check("/api;a=1;b=2/secret;jsessionid=X", "/api/secret");
        check("/login/..;/app/secret", "/app/secret");
        check("/login/..;x/app", "/app");
        check("/login/.;x/app", "/login/app");
        check("/a/%2e%2e;x/b", "/b");
        check("/a/.%2e;/b", "/b");
        check("/;x", "/");
        check("/a/;x", "/a/");
        check("/a/b/..;x", "/a/");
        check("/api;x", "/api");
        assert_eq!(
            normalise_path("/api/secret").map(|n| n.had_params),
            Ok(false)
        );
        // An encoded `;` is neither a delimiter nor data: refused (see decode_unreserved).
        assert_eq!(
            normalise_path("/api%3Bx/secret"),
            Err(PathError::EncodedSemicolon)
        );
        assert_eq!(
            normalise_path("/api%3bx/secret"),
            Err(PathError::EncodedSemicolon)
        );
    }

    #[test]
    fn double_encoding_and_bad_utf8_are_refused() {
        let check = |raw: &str, want: Result<&str, PathError>| {
            assert_eq!(
                normalise_path(raw).map(|n| n.path),
                want.map(str::to_string),
                "{raw:?}"
            );
        };
        check("/%252e%252e/etc", Err(PathError::DoubleEncoded));
        check("/a/%252E%252E/b", Err(PathError::DoubleEncoded));
        check("/a%252fb", Err(PathError::DoubleEncoded));
        check("/a%255Cb", Err(PathError::DoubleEncoded));
        check("/a%2500", Err(PathError::DoubleEncoded));
        check("/a%253Bb", Err(PathError::DoubleEncoded));
        check("/a%25252e", Err(PathError::DoubleEncoded));
        check("/a%25%252e", Err(PathError::DoubleEncoded));
        // Escapes of unreserved characters are decoded first, so they cannot hide one.
        check("/a%25%32%65", Err(PathError::DoubleEncoded));
        // Other double escapes are data.
        check("/a%2541", Ok("/a%2541"));
        check("/100%25", Ok("/100%25"));
        check("/a%25/b", Ok("/a%25/b"));
        check("/a%25.", Ok("/a%25."));
        // Overlong, truncated, stray continuation and surrogate UTF-8.
        check("/%C0%AE%C0%AE/etc", Err(PathError::InvalidUtf8));
        check("/%c0%ae", Err(PathError::InvalidUtf8));
        check("/%E0%80%AE", Err(PathError::InvalidUtf8));
        check("/%F0%80%80%AE", Err(PathError::InvalidUtf8));
        check("/%C1%9C", Err(PathError::InvalidUtf8));
        check("/%C3", Err(PathError::InvalidUtf8));
        check("/%A9", Err(PathError::InvalidUtf8));
        check("/%ED%A0%80", Err(PathError::InvalidUtf8));
        check("/%FF", Err(PathError::InvalidUtf8));
        check("/%C3é", Err(PathError::InvalidUtf8));
        check("/%F0%9F%A6%80", Ok("/%F0%9F%A6%80"));
    }

    #[test]
    fn raw_bytes_are_forwarded_percent_encoded() {
        let check = |raw: &str, want: &str| {
            assert_eq!(
                normalise_path(raw).map(|n| n.path).as_deref(),
                Ok(want),
                "{raw:?}"
            );
        };
        check("/café", "/caf%C3%A9");
        check("/日本", "/%E6%97%A5%E6%9C%AC");
        check("/a b", "/a%20b");
        check("/a?b#c", "/a%3Fb%23c");
        check("/a\u{7f}\u{1}", "/a%7F%01");
        check("/a<b>`", "/a%3Cb%3E%60");
        // What http::Uri accepts raw stays raw.
        check("/a!$&'()*+,=:@[]^_|~\"{}", "/a!$&'()*+,=:@[]^_|~\"{}");
    }

    fn route(name: &str, prefix: &str, host: Option<&str>) -> Route {
        Route {
            name: name.into(),
            path_prefix: prefix.into(),
            host: host.map(str::to_string),
            upstream: Some("http://127.0.0.1:1".parse().unwrap()),
            auth: AuthMode::Required,
            anti_csrf: AntiCsrfMode::NonGet,
            session_control: false,
            login_redirect: None,
            path_params: PathParams::Reject,
            case_insensitive: false,
            require_claims: Vec::new(),
            token_transfer: Default::default(),
        }
    }

    #[test]
    fn matching() {
        let router = Router::new(vec![
            route("root", "/", None),
            route("api", "/api", None),
            route("api-v2", "/api/v2/", None),
            route("admin-host", "/api", Some("admin.example.com")),
            route("host-root", "/", Some("other.example.com")),
        ]);
        let check = |host: Option<&str>, path: &str, want: &str| {
            let got = router.route(host, path).map(|(_, r)| r.name.as_str());
            assert_eq!(got, Some(want), "{host:?} {path}");
        };
        check(None, "/", "root");
        check(None, "/api", "api");
        check(None, "/api/", "api");
        check(None, "/api/x", "api");
        check(None, "/apix", "root");
        check(None, "/api/v2", "api-v2");
        check(None, "/api/v2/x", "api-v2");
        check(None, "/api/v20", "api");
        check(Some("admin.example.com"), "/api/x", "admin-host");
        check(Some("ADMIN.example.com:8443"), "/api/x", "admin-host");
        check(Some("admin.example.com"), "/other", "root");
        check(Some("other.example.com"), "/x", "host-root");
        check(Some("other.example.com"), "/api", "api");
        check(Some("[::1]:8080"), "/", "root");
        let only_host = Router::new(vec![route("h", "/", Some("a.example"))]);
        assert!(only_host.route(None, "/").is_none());
        assert!(only_host.route(Some("b.example"), "/").is_none());
        assert_eq!(
            only_host.route(Some("a.example"), "/x").map(|(i, _)| i),
            Some(0)
        );
    }

    #[test]
    fn case_insensitive_routes() {
        let ci = |name: &str, prefix: &str| Route {
            case_insensitive: true,
            ..route(name, prefix, None)
        };
        let router = Router::new(vec![
            route("root", "/", None),
            ci("api", "/api"),
            route("docs", "/Docs/", None),
            ci("v2", "/api/V2"),
        ]);
        let check = |path: &str, want: &str| {
            let got = router.route(None, path).map(|(_, r)| r.name.as_str());
            assert_eq!(got, Some(want), "{path}");
        };
        check("/api/secret", "api");
        check("/API/secret", "api");
        check("/Api", "api");
        check("/aPi/", "api");
        check("/APIx", "root");
        check("/ap", "root");
        check("/api/v2/x", "v2");
        check("/API/v2", "v2");
        check("/Docs/x", "docs");
        check("/docs/x", "root");
    }

    #[test]
    fn admission() {
        let strip = Route {
            path_params: PathParams::Strip,
            ..route("s", "/", None)
        };
        let reject = route("r", "/", None);
        assert_eq!(admit(&reject, false), Ok(()));
        assert_eq!(admit(&reject, true), Err(PathError::Params));
        assert_eq!(admit(&strip, false), Ok(()));
        assert_eq!(admit(&strip, true), Ok(()));
    }

    #[test]
    fn upstream_uris() {
        let check = |up: &str, path: &str, q: Option<&str>, want: &str| {
            let got = join_upstream_uri(&up.parse().unwrap(), path, q).unwrap();
            assert_eq!(got.to_string(), want);
        };
        check("http://app:3000", "/a/b", None, "http://app:3000/a/b");
        check(
            "http://app:3000/",
            "/a",
            Some("x=1&y=%2F"),
            "http://app:3000/a?x=1&y=%2F",
        );
        check("http://app:3000/base", "/a", None, "http://app:3000/base/a");
        check("https://app/base/", "/", None, "https://app/base/");
    }
}
