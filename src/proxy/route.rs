//! Path normalisation and route matching. Pure: no I/O.
//!
//! The path is normalised once (percent-decoding of unreserved characters, dot segments
//! resolved per RFC 3986 §5.2.4, `//` merged; encoded `/`, `\` and NUL refused), and that same
//! form is used to pick the route and to build the upstream URI, so `/public/../private` is
//! matched, and forwarded, as `/private`.

use crate::config::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path contains an encoded backslash (%5C)")]
    EncodedBackslash,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path is not absolute")]
    NotAbsolute,
    #[error("the path contains a malformed percent-escape")]
    InvalidEncoding,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escapes of unreserved characters, upper-cases the others, refuses the dangerous.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len());
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
                    v if is_unreserved(v) => out.push(v as char),
                    v => {
                        out.push('%');
                        out.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            c => {
                // The request line is ASCII (hyper checks); keep any byte as it came.
                out.push(c as char);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Normalises the path of a request URI (no query).
pub fn normalise_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(raw)?;
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut segs: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// Whether `path` is under `prefix` on a segment boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/');
    match path.strip_prefix(p) {
        Some("") => true,
        Some(rest) => rest.starts_with('/'),
        None => false,
    }
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
                host_ok && prefix_matches(&r.path_prefix, path)
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
                normalise_path(raw).as_deref().map_err(|e| *e),
                want,
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
        check("", Err(PathError::NotAbsolute));
        check("*", Err(PathError::NotAbsolute));
        check("a/b", Err(PathError::NotAbsolute));
    }

    fn route(name: &str, prefix: &str, host: Option<&str>) -> Route {
        Route {
            name: name.into(),
            path_prefix: prefix.into(),
            host: host.map(str::to_string),
            upstream: "http://127.0.0.1:1".parse().unwrap(),
            auth: AuthMode::Required,
            anti_csrf: AntiCsrfMode::NonGet,
            session_control: false,
            login_redirect: None,
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
