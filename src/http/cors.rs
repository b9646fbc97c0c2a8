//! CORS for the public listener: which origins are allowed, the preflight answer, and the
//! headers an allowed origin's responses carry. Pure: the allowed list is a parameter.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::http::cookies::EXPOSE;

/// Whether `origin` is one of `allowed` (`cors.allowed_origins`), ASCII case-insensitively.
pub fn allowed(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// Adds the CORS headers of an allowed `origin` to a response.
pub fn add(allowed_origins: &[String], origin: Option<&str>, resp: &mut Response<Body>) {
    if let Some(origin) = origin.filter(|o| allowed(allowed_origins, o)) {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(header::VARY, HeaderValue::from_static("Origin"));
            if !h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE),
                );
            }
        }
    }
}

/// The answer to a preflight from an allowed origin.
pub fn preflight(origin: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "anti-csrf, supertokens-sdk-name, supertokens-sdk-version, content-type, authorization, st-auth-mode",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<String> {
        vec!["https://app.example".to_string()]
    }

    #[test]
    fn only_listed_origins_get_cors_headers() {
        assert!(allowed(&list(), "HTTPS://App.Example"));
        assert!(!allowed(&list(), "https://app.example.evil"));
        assert!(!allowed(&[], "https://app.example"));

        let mut resp = Response::new(body::empty());
        add(&list(), Some("https://evil.example"), &mut resp);
        add(&list(), None, &mut resp);
        assert!(resp.headers().is_empty());

        add(&list(), Some("https://app.example"), &mut resp);
        let h = resp.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::VARY], "Origin");
        assert_eq!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS], EXPOSE);
    }

    #[test]
    fn preflight_answers_with_no_content() {
        let resp = preflight("https://app.example");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let h = resp.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("anti-csrf"));
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    }
}
