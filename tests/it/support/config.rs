//! The one gateway-config builder, shared by the integration tests (in-process gateways and the
//! real binary) and by `benches/e2e.rs` (which includes this file with `#[path]`), and the one
//! `free_port`. It writes TOML text only; loading it into a `Config` is the caller's business.
//!
//! [`GatewayToml::new`] starts from the settings every test gateway shares (plain-http cookies,
//! listeners on 127.0.0.1 port 0, the refresh and logout paths, the admin key) and the test
//! routes; callers replace single keys with [`GatewayToml::set`], add raw root-level dotted
//! keys with [`GatewayToml::extra`], and narrow the routes with [`GatewayToml::only_routes`].

use std::net::SocketAddr;

/// The admin API key of every gateway the tests and the bench start.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A free TCP port on 127.0.0.1 (bound then released; another process could take it in
/// between, which would make the gateway fail to start loudly, not pass wrongly).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `[[routes]]` entry: its name, path prefix, and further `key = value` lines.
struct Route {
    name: &'static str,
    prefix: &'static str,
    attrs: Vec<String>,
}

/// A gateway.toml under construction.
pub struct GatewayToml {
    /// Root-level dotted keys with their TOML values, in output order; each key at most once.
    keys: Vec<(String, String)>,
    /// More root-level dotted keys, written verbatim after `keys`.
    extra: String,
    routes: Vec<Route>,
}

impl GatewayToml {
    /// The test gateway for `store_url`, forwarding to `upstream` (a URL), with routes
    /// `/api` (required), `/public` (public), `/auth/login` (public, session control),
    /// `/opt` (optional), `/app` (required, login redirect), `/` (required, session control).
    pub fn new(store_url: &str, upstream: &str) -> Self {
        let keys = [
            ("server.listen", quoted("127.0.0.1:0")),
            ("server.admin_listen", quoted("127.0.0.1:0")),
            ("server.upstream_timeout_secs", "2".into()),
            ("server.shutdown_grace_secs", "5".into()),
            ("store.url", quoted(store_url)),
            ("store.connection_limit", "20".into()),
            ("tokens.access_token.validity_secs", "60".into()),
            ("tokens.refresh_token.renew_path", quoted("/auth/refresh")),
            ("tokens.refresh_token.reuse_grace_secs", "10".into()),
            ("cookie.secure", "false".into()),
            ("session.logout_path", quoted("/auth/logout")),
            ("admin.api_key", quoted(ADMIN_KEY)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let route = |name, prefix, attrs: &[&str]| Route {
            name,
            prefix,
            attrs: std::iter::once(format!("upstream = {}", quoted(upstream)))
                .chain(attrs.iter().map(|a| a.to_string()))
                .collect(),
        };
        let routes = vec![
            route("api", "/api", &[]),
            route("public", "/public", &["auth = \"public\""]),
            route(
                "login",
                "/auth/login",
                &["auth = \"public\"", "session_control = true"],
            ),
            route("opt", "/opt", &["auth = \"optional\""]),
            route("app", "/app", &["login_redirect = \"/auth/login-page\""]),
            route("control", "/", &["session_control = true"]),
        ];
        Self {
            keys,
            extra: String::new(),
            routes,
        }
    }

    /// Listens on these addresses instead of port 0.
    pub fn listen(self, public: SocketAddr, admin: SocketAddr) -> Self {
        self.set("server.listen", &quoted(&public.to_string()))
            .set("server.admin_listen", &quoted(&admin.to_string()))
    }

    /// Sets root-level dotted key `key` to the TOML value `value` (replacing an earlier one).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.keys.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Leaves `key` out, so the gateway's default applies.
    #[allow(dead_code)] // only benches/e2e.rs needs it
    pub fn unset(mut self, key: &str) -> Self {
        self.keys.retain(|(k, _)| k != key);
        self
    }

    /// Appends root-level dotted keys written as TOML lines, e.g.
    /// `tokens.access_token.blacklisting = true`; they must not repeat a key already set.
    pub fn extra(mut self, lines: &str) -> Self {
        self.extra.push_str(lines);
        self.extra.push('\n');
        self
    }

    /// Keeps only the routes with these names, in their original order.
    pub fn only_routes(mut self, names: &[&str]) -> Self {
        self.routes.retain(|r| names.contains(&r.name));
        self
    }

    /// Adds a route called `name` at `prefix` with these `key = value` lines (no upstream
    /// unless a line names one), before the others, so it is listed first.
    #[allow(dead_code)] // not every user of this file adds routes
    pub fn add_route(mut self, name: &'static str, prefix: &'static str, lines: &[&str]) -> Self {
        let attrs = lines.iter().map(|l| l.to_string()).collect();
        self.routes.insert(
            0,
            Route {
                name,
                prefix,
                attrs,
            },
        );
        self
    }

    /// Adds a `key = value` line to the route called `name`.
    #[allow(dead_code)] // only benches/e2e.rs needs it
    pub fn route_attr(mut self, name: &str, line: &str) -> Self {
        let route = self
            .routes
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no route {name}"));
        route.attrs.push(line.to_string());
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.keys {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out.push_str(&self.extra);
        for r in &self.routes {
            out.push_str(&format!(
                "\n[[routes]]\nname = \"{}\"\npath_prefix = \"{}\"\n",
                r.name, r.prefix
            ));
            for a in &r.attrs {
                out.push_str(a);
                out.push('\n');
            }
        }
        out
    }
}

/// `s` as a TOML basic string.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}
