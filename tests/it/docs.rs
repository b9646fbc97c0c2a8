//! The README's configuration reference and the shipped gateway.toml cannot drift from the
//! configuration code: every key the code renders must appear in both, the README's Default
//! column must be what the code renders for an empty configuration, and its integer defaults
//! and ranges must be the key table's (`config::validate::int_keys`, which the validator
//! enforces). The operator sections name every admin endpoint.

use std::collections::BTreeMap;

use sessiongate::config::load::{load_with_env, ConfigSource};
use sessiongate::config::validate::int_keys;
use sessiongate::config::{load_from_str, render_masked};

/// Full key paths rendered by the config code for a config that sets every optional key.
fn rendered_keys() -> Vec<String> {
    let text = r#"
tokens.refresh_token.renew_path = "/auth/refresh"
session.logout_path = "/auth/logout"
cookie.domain = "example.com"
admin.api_key = "0123456789abcdef0123"
server.trusted_proxies = ["127.0.0.1/32"]
forward_auth.path = "/.sessiongate/verify"
[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
host = "app.example.com"
login_redirect = "/login"
require_claims = { role = ["admin"] }
"#;
    let cfg = load_from_str(text).unwrap();
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in render_masked(&cfg).lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = format!("{s}[]");
        } else if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, _)) = line.split_once(" = ") {
            if !line.starts_with('#') {
                keys.push(format!("{section}.{k}"));
            }
        }
    }
    assert!(keys.len() > 30, "{keys:?}");
    keys
}

#[test]
fn readme_documents_every_key() {
    let readme = include_str!("../../README.md");
    let missing: Vec<String> = rendered_keys()
        .into_iter()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "README.md lacks {missing:?}");
}

#[test]
fn gateway_toml_documents_every_key() {
    let shipped = include_str!("../../gateway.toml");
    let missing: Vec<String> = rendered_keys()
        .into_iter()
        .filter(|k| {
            let leaf = k.rsplit('.').next().unwrap();
            !shipped.contains(&format!("{leaf} ="))
        })
        .collect();
    assert!(missing.is_empty(), "gateway.toml lacks {missing:?}");
}

/// The smallest valid file: only what has no default.
const MINIMAL: &str = r#"
tokens.refresh_token.renew_path = "/auth/refresh"
[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
"#;
/// Keys MINIMAL sets (their README default is "required").
const SET_BY_MINIMAL: &[&str] = &[
    "tokens.refresh_token.renew_path",
    "routes[].name",
    "routes[].upstream",
];

/// Rendered `key → value` (quotes removed) for MINIMAL, plus `key → None` for keys the
/// rendering reports as unset (`# domain unset: …`).
fn rendered_defaults() -> BTreeMap<String, Option<String>> {
    let cfg = load_from_str(MINIMAL).unwrap();
    let mut section = String::new();
    let mut out = BTreeMap::new();
    for line in render_masked(&cfg).lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = format!("{s}[]");
        } else if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some(c) = line.strip_prefix("# ") {
            if let Some((k, _)) = c.split_once(" unset") {
                let k = k.rsplit('.').next().unwrap();
                out.insert(format!("{section}.{k}"), None);
            }
        } else if let Some((k, v)) = line.split_once(" = ") {
            out.insert(
                format!("{section}.{k}"),
                Some(v.trim_matches('"').to_string()),
            );
        }
    }
    out
}

/// The README's configuration table: key → (default cell, rule cell). A row naming two keys
/// (`a` / `b`) gives both.
fn readme_table() -> BTreeMap<String, (String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Configuration reference")
        .expect("the README has a configuration reference");
    let mut rows = BTreeMap::new();
    for line in readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
    {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1] == "key" || cells[1].starts_with("---") {
            continue;
        }
        for key in cells[1].split('`').skip(1).step_by(2) {
            rows.insert(
                key.to_string(),
                (cells[2].to_string(), cells[3].to_string()),
            );
        }
    }
    assert!(rows.len() > 40, "{rows:?}");
    rows
}

/// A default cell as a value: `` `x` `` → `x`, `30` → `30`, `0 (no limit)` → `0`.
fn default_value(cell: &str) -> String {
    let plain = cell.split(" (").next().unwrap_or(cell);
    plain.trim().trim_matches('`').to_string()
}

#[test]
fn readme_defaults_are_the_rendered_defaults() {
    let table = readme_table();
    let mut wrong = Vec::new();
    for (key, value) in rendered_defaults() {
        if SET_BY_MINIMAL.contains(&key.as_str()) {
            let (cell, _) = &table[&key];
            assert!(cell.contains("required"), "{key}: {cell}");
            continue;
        }
        // `server.tls` is rendered as one unset section; the README names its two files.
        let lookup = if key == "server.tls" {
            "server.tls.cert".to_string()
        } else {
            key.clone()
        };
        let Some((cell, _)) = table.get(&lookup) else {
            wrong.push(format!("{key}: not in the README table"));
            continue;
        };
        match value {
            None if cell.starts_with("unset") => {}
            Some(v) if default_value(cell) == v => {}
            v => wrong.push(format!(
                "{key}: README says {cell:?}, the code renders {v:?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `SESSIONGATE_…` name of a dotted key (`server.max_connections` →
/// `SESSIONGATE_SERVER__MAX_CONNECTIONS`).
fn env_name(key: &str) -> String {
    format!(
        "SESSIONGATE_{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// The validator's rule for an integer key outside the key table, learnt by giving it a
/// far-out value: (whether it says "out of range", the allowed text).
fn validator_rule(key: &str) -> (bool, String) {
    let err = load_with_env(
        ConfigSource::Toml(MINIMAL),
        [(env_name(key), "1000000000000".to_string())],
    )
    .expect_err(key);
    let p = err.problem(key).unwrap_or_else(|| panic!("{key}: {err}"));
    (
        p.message.contains("out of range"),
        p.allowed.clone().unwrap(),
    )
}

/// The README's Default and rule columns of every integer key are the key table's (the
/// validator and the renderer read the same table; the config suite checks the validator
/// enforces it), and every integer the code renders is in the table or is a set of values
/// the README states.
#[test]
fn readme_integer_keys_are_the_key_table() {
    let table = readme_table();
    let mut wrong = Vec::new();
    for key in int_keys::ALL {
        let Some((cell, rule)) = table.get(key.path) else {
            wrong.push(format!("{}: not in the README table", key.path));
            continue;
        };
        if default_value(cell) != key.default.to_string() {
            wrong.push(format!(
                "{}: README default {cell:?}, the key table {}",
                key.path, key.default
            ));
        }
        if !rule.starts_with(&key.range()) {
            wrong.push(format!(
                "{}: README rule {rule:?}, the key table {}",
                key.path,
                key.range()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    for (key, value) in rendered_defaults() {
        let Some(Ok(_)) = value.as_deref().map(str::parse::<i64>) else {
            continue;
        };
        if key.starts_with("routes[]") || int_keys::ALL.iter().any(|k| k.path == key) {
            continue;
        }
        let (is_range, allowed) = validator_rule(&key);
        assert!(!is_range, "{key} has a range: add it to the key table");
        let (_, rule) = &table[&key];
        assert!(
            rule.contains(&allowed),
            "{key}: {allowed} vs README {rule:?}"
        );
    }
}

/// The admin router's endpoints, read from src/admin.rs's match arms:
/// `(Method::GET, "/healthz")` and `(Method::PUT, ["sessions", handle, "data"])` (under `/v1`;
/// a binding is any one segment). Returns (methods, path segments with `None` for a binding).
fn admin_endpoints() -> Vec<(Vec<String>, Vec<Option<String>>)> {
    let admin = include_str!("../../src/admin.rs");
    let mut out = Vec::new();
    for line in admin.lines() {
        let Some(rest) = line.trim().strip_prefix('(') else {
            continue;
        };
        if !rest.starts_with("Method::") {
            continue;
        }
        let Some((methods, pattern)) = rest.split_once(", ") else {
            continue;
        };
        let methods: Vec<String> = methods
            .split('|')
            .map(|m| m.trim().trim_start_matches("Method::").to_string())
            .collect();
        let segments: Vec<Option<String>> = if let Some(list) = pattern.strip_prefix('[') {
            let list = &list[..list.find(']').unwrap()];
            std::iter::once(Some("v1".to_string()))
                .chain(list.split(", ").map(|seg| {
                    seg.strip_prefix('"')
                        .and_then(|q| q.strip_suffix('"'))
                        .map(str::to_string)
                }))
                .collect()
        } else {
            let path = pattern.split('"').nth(1).unwrap();
            path.trim_start_matches('/')
                .split('/')
                .map(|x| Some(x.to_string()))
                .collect()
        };
        out.push((methods, segments));
    }
    out
}

/// A README `curl` line's method and path segments.
fn curl_line(line: &str) -> Option<(String, Vec<String>)> {
    if !line.starts_with("curl ") {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let method = words
        .iter()
        .position(|w| *w == "-X")
        .map(|i| words[i + 1].to_string())
        .or_else(|| words.contains(&"-I").then(|| "HEAD".to_string()))
        .unwrap_or_else(|| "GET".to_string());
    let url = words
        .iter()
        .find(|w| w.contains("http://") && w.contains(":9090/"))?;
    let url = url.trim_matches(|c| c == '"' || c == '\'');
    let path = url.split_once("://")?.1.split_once('/')?.1;
    let path = path.split('?').next().unwrap();
    Some((method, path.split('/').map(str::to_string).collect()))
}

#[test]
fn readme_documents_the_admin_api_and_operations() {
    let readme = include_str!("../../README.md");
    let endpoints = admin_endpoints();
    assert!(endpoints.len() >= 13, "{endpoints:?}");
    let curls: Vec<(String, Vec<String>)> = readme.lines().filter_map(curl_line).collect();
    // Every endpoint (each of its methods) has a curl line in the README…
    for (methods, segs) in &endpoints {
        for m in methods {
            if m == "HEAD" && methods.iter().any(|x| x == "GET") {
                continue; // the GET line covers it
            }
            let found = curls.iter().any(|(cm, cs)| {
                cm == m
                    && cs.len() == segs.len()
                    && cs
                        .iter()
                        .zip(segs)
                        .all(|(c, s)| s.as_ref().is_none_or(|s| s == c))
            });
            assert!(found, "README has no curl line for {m} {segs:?}");
        }
    }
    // …and every curl line names an endpoint that exists.
    for (cm, cs) in &curls {
        let exists = endpoints.iter().any(|(methods, segs)| {
            methods.contains(cm)
                && cs.len() == segs.len()
                && cs
                    .iter()
                    .zip(segs)
                    .all(|(c, s)| s.as_ref().is_none_or(|s| s == c))
        });
        assert!(
            exists,
            "README curl line for {cm} /{} matches no endpoint",
            cs.join("/")
        );
    }
    for heading in [
        "## Admin API",
        "## Behind a load balancer",
        "## Reloading the configuration",
        "## TLS to MySQL",
        "## Running in containers and Kubernetes",
        "### How identity values are encoded",
    ] {
        assert!(readme.contains(heading), "README lacks {heading:?}");
    }
    for must in [
        "migrate --create-database",
        "?next=",
        "sessiongate-revoke",
        "sessiongate health",
        "enableServiceLinks",
    ] {
        assert!(readme.contains(must), "README does not mention {must:?}");
    }
}

/// Every metric `src/metrics.rs` registers (the name after `&r,` in each registration call) is
/// a row of the README's metrics table.
#[test]
fn readme_metrics_table_names_every_metric() {
    let source = include_str!("../../src/metrics.rs");
    let names: Vec<String> = source
        .split("&r,")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
        .map(|n| format!("sessiongate_{n}"))
        .collect();
    assert!(names.len() > 20, "{names:?}");
    let readme = include_str!("../../README.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("| `{n}` |")))
        .collect();
    assert!(missing.is_empty(), "README metrics table lacks {missing:?}");
}
