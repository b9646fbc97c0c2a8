//! The one cookie jar, shared by the tests' `Browser` and by `benches/e2e.rs` (which includes
//! this file with `#[path]`): cookies kept the way a browser keeps them for one origin (paths
//! ignored except that the refresh cookie goes only to the refresh path) plus the frontend
//! SDK's habit of echoing the `anti-csrf` header.

use std::collections::BTreeMap;

use http::HeaderMap;
use sessiongate::http::cookies;

/// The refresh path of every gateway [`super::config::GatewayToml`] writes.
pub const REFRESH_PATH: &str = "/auth/refresh";

/// Cookies by name, and the last anti-CSRF token the gateway sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Jar {
    pub cookies: BTreeMap<String, String>,
    pub anti_csrf: Option<String>,
}

impl Jar {
    /// Applies a response's `Set-Cookie` headers (an empty value or `Max-Age=0` clears the
    /// cookie) and its `anti-csrf` header.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for c in headers.get_all("set-cookie") {
            let c = String::from_utf8_lossy(c.as_bytes());
            let first = c.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            if value.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.to_string());
            }
        }
        if let Some(t) = headers.get(cookies::ANTI_CSRF) {
            self.anti_csrf = Some(String::from_utf8_lossy(t.as_bytes()).into_owned());
        }
    }

    /// The `Cookie` header for a request to `path`, if any cookie goes there.
    pub fn cookie_header(&self, path: &str) -> Option<String> {
        let sent: Vec<String> = self
            .cookies
            .iter()
            .filter(|(k, _)| k.as_str() != cookies::REFRESH || path.starts_with(REFRESH_PATH))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (!sent.is_empty()).then(|| sent.join("; "))
    }
}
