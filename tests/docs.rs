//! The README's configuration reference and the shipped gateway.toml cannot drift from the
//! configuration code: every key the code renders must appear in both.

use sessiongate::config::{load_from_str, render_masked};

/// Full key paths rendered by the config code for a config that sets every optional key.
fn rendered_keys() -> Vec<String> {
    let text = r#"
tokens.refresh_token.renew_path = "/auth/refresh"
session.logout_path = "/auth/logout"
cookie.domain = "example.com"
admin.api_key = "0123456789abcdef0123"
[[routes]]
name = "app"
upstream = "http://127.0.0.1:3000"
host = "app.example.com"
login_redirect = "/login"
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
    let readme = include_str!("../README.md");
    let missing: Vec<String> = rendered_keys()
        .into_iter()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "README.md lacks {missing:?}");
}

#[test]
fn gateway_toml_documents_every_key() {
    let shipped = include_str!("../gateway.toml");
    let missing: Vec<String> = rendered_keys()
        .into_iter()
        .filter(|k| {
            let leaf = k.rsplit('.').next().unwrap();
            !shipped.contains(&format!("{leaf} ="))
        })
        .collect();
    assert!(missing.is_empty(), "gateway.toml lacks {missing:?}");
}
