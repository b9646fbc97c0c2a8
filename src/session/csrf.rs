//! Anti-CSRF: when a request must carry the `anti-csrf` header, and whether it matches the
//! token bound into the access token. Pure; compares in constant time.

use crate::config::AntiCsrfMode;
use subtle::ConstantTimeEq;

/// Whether a request with `method` on a route with `mode` must present the anti-CSRF token.
/// `enabled` is `tokens.enable_anti_csrf`.
pub fn required(enabled: bool, mode: AntiCsrfMode, method: &http::Method) -> bool {
    if !enabled {
        return false;
    }
    match mode {
        AntiCsrfMode::Never => false,
        AntiCsrfMode::Always => true,
        AntiCsrfMode::NonGet => !matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ),
    }
}

/// Whether `presented` (the request header) equals `expected` (the access token's claim).
/// A token that has no claim never matches: it was minted with anti-CSRF off.
pub fn matches(expected: Option<&str>, presented: Option<&str>) -> bool {
    match (expected, presented) {
        (Some(e), Some(p)) => bool::from(e.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn when_required() {
        let check = |enabled, mode, method: Method, want: bool| {
            assert_eq!(
                required(enabled, mode, &method),
                want,
                "{enabled} {mode:?} {method}"
            );
        };
        check(true, AntiCsrfMode::NonGet, Method::GET, false);
        check(true, AntiCsrfMode::NonGet, Method::HEAD, false);
        check(true, AntiCsrfMode::NonGet, Method::OPTIONS, false);
        check(true, AntiCsrfMode::NonGet, Method::POST, true);
        check(true, AntiCsrfMode::NonGet, Method::DELETE, true);
        check(true, AntiCsrfMode::Always, Method::GET, true);
        check(true, AntiCsrfMode::Never, Method::POST, false);
        check(false, AntiCsrfMode::Always, Method::POST, false);
    }

    #[test]
    fn matching() {
        assert!(matches(Some("abc"), Some("abc")));
        assert!(!matches(Some("abc"), Some("abd")));
        assert!(!matches(Some("abc"), Some("abcd")));
        assert!(!matches(Some("abc"), None));
        assert!(!matches(None, Some("abc")));
        assert!(!matches(None, None));
    }
}
