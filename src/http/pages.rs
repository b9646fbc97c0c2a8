//! The HTML pages the gateway answers browser navigations with.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

/// The page a browser navigation gets instead of `try_refresh_token`: it POSTs to the renew
/// path and reloads, so a page load survives access-token expiry.
pub fn refresh_page(renew_path: &str, status: StatusCode) -> Response<Body> {
    let expired = status.as_u16();
    let renew = serde_json::to_string(renew_path).unwrap_or_else(|_| "\"/\"".into());
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Refreshing session…</title></head>\
<body><p id=\"m\">Refreshing your session…</p>\
<noscript><form method=\"post\" action={renew}><button>Continue</button></form></noscript>\
<script>fetch({renew},{{method:\"POST\",credentials:\"same-origin\"}}).then(function(r){{\
if(r.status===200||r.status==={expired}){{location.reload();}}else{{document.getElementById(\"m\").textContent=\"The session service is unavailable; please retry shortly.\";}}\
}},function(){{document.getElementById(\"m\").textContent=\"Network error; please retry.\";}});</script>\
</body></html>"
    );
    let mut resp = Response::new(body::full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A page that sends the browser to `location` (a login page), for answers whose status
/// cannot be a redirect (the forward-auth endpoint's 401).
pub fn redirect_page(location: &str) -> String {
    let escaped = location
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0;url={escaped}\"><title>Sign in</title></head>\
<body><p><a href=\"{escaped}\">Sign in</a></p></body></html>"
    )
}
