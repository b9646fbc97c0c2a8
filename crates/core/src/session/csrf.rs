//! Anti-CSRF: when a request must carry the `anti-csrf` header, and whether it matches the
//! token bound into the access token. Pure; compares in constant time.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// When a route requires the anti-CSRF header (a route's `anti_csrf`; the serde names are the
/// config spellings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AntiCsrfMode {
    /// Every method except the safe ones (GET, HEAD, OPTIONS).
    #[default]
    NonGet,
    Always,
    Never,
}

/// Whether a request on a route with `mode` must present the anti-CSRF token. `enabled` is
/// `tokens.enable_anti_csrf`; `safe_method` is whether the request's method is GET, HEAD or
/// OPTIONS (the HTTP layer decides that; this crate has no HTTP types).
pub fn required(enabled: bool, mode: AntiCsrfMode, safe_method: bool) -> bool {
    if !enabled {
        return false;
    }
    match mode {
        AntiCsrfMode::Never => false,
        AntiCsrfMode::Always => true,
        AntiCsrfMode::NonGet => !safe_method,
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

    #[test]
    fn when_required() {
        let check = |enabled, mode, safe_method: bool, want: bool| {
            assert_eq!(
                required(enabled, mode, safe_method),
                want,
                "{enabled} {mode:?} safe={safe_method}"
            );
        };
        check(true, AntiCsrfMode::NonGet, true, false);
        check(true, AntiCsrfMode::NonGet, false, true);
        check(true, AntiCsrfMode::Always, true, true);
        check(true, AntiCsrfMode::Always, false, true);
        check(true, AntiCsrfMode::Never, false, false);
        check(false, AntiCsrfMode::Always, false, false);
        check(false, AntiCsrfMode::NonGet, false, false);
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
