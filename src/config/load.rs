//! Loading: finds the configuration file, layers TOML file < `SESSIONGATE_…` environment
//! overrides (the defaults are the validator's), deserializes the result into the
//! all-optional [`RawConfig`] and hands it to the pure [`validate`](super::validate::validate).
//!
//! Figment only parses the TOML into a value tree and deserializes that tree with key paths in
//! its errors. The environment layer is this module's own: figment's `Env` cannot address
//! array elements (`SESSIONGATE_ROUTES__0__UPSTREAM`), and serde stops at the first error, so
//! `deserialize_raw` drops each bad value and deserializes again until every problem is
//! listed.
//!
//! Owns path resolution, the environment-override syntax, turning parse errors (unknown
//! keys, wrong types, words that are not one of an enum's, bad TOML) into [`ConfigProblem`]s
//! that name their key path, and the few checks that need the filesystem: it reads the key
//! files (`signing_key.secret_file`, `admin.api_key_file`) into the raw form, once, and checks
//! the TLS and `ssl_ca` files. It must not bind ports, open the store, or apply validation
//! rules itself.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::Deserialize;

use super::raw::RawConfig;
use super::Config;

pub use super::problem::{ConfigError, ConfigProblem};

/// The environment variable that names the configuration file.
pub const CONFIG_PATH_ENV: &str = "SESSIONGATE_CONFIG";
/// The prefix of environment overrides; levels are separated by `__`.
pub const ENV_PREFIX: &str = "SESSIONGATE_";
/// The top-level sections of the configuration ([`RawConfig`]'s fields). Only a
/// `SESSIONGATE_…` variable that names one of them (see [`env_override`]) is an override.
pub const SECTIONS: [&str; 15] = [
    "server",
    "store",
    "tokens",
    "cookie",
    "session",
    "identity",
    "cors",
    "admin",
    "logging",
    "tracing",
    "forward_auth",
    "routes",
    "events",
    "rate_limits",
    "legacy",
];

/// What a `SESSIONGATE_…` environment variable is to the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvName {
    /// Not a configuration override: no `SESSIONGATE_` prefix, `SESSIONGATE_CONFIG` (the file's
    /// path), or a name without `__` that is not a section (`SESSIONGATE_PORT`,
    /// `SESSIONGATE_SERVICE_HOST`, … that Kubernetes injects for a Service named
    /// `sessiongate`; `SESSIONGATE_SDK_BUNDLE`; the test suite's variables).
    Ignored,
    /// An override: its first level (lower-cased) is a section, either alone
    /// (`SESSIONGATE_ROUTES`) or followed by `__` (`SESSIONGATE_SERVER__LISTEN`). Unknown keys
    /// inside it are errors like unknown keys in the file.
    Override,
    /// Has `__` but its first level is not a section (`SESSIONGATE_SERVERR__LISTEN`): meant as
    /// an override and misspelt, so an error naming it rather than silently ignored.
    UnknownSection,
}

/// Classifies an environment variable name; see [`EnvName`].
pub fn env_override(name: &str) -> EnvName {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return EnvName::Ignored;
    };
    if name == CONFIG_PATH_ENV {
        return EnvName::Ignored;
    }
    let is_section = |s: &str| SECTIONS.iter().any(|k| k.eq_ignore_ascii_case(s));
    match rest.split_once("__") {
        Some((first, _)) if is_section(first) => EnvName::Override,
        Some(_) => EnvName::UnknownSection,
        None if is_section(rest) => EnvName::Override,
        None => EnvName::Ignored,
    }
}

/// The file used when neither `--config` nor `$SESSIONGATE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "gateway.toml";

/// Where the TOML layer comes from.
#[derive(Clone, Copy, Debug)]
pub enum ConfigSource<'a> {
    /// A file to read; a missing file is a problem naming the path.
    File(&'a Path),
    /// TOML text (tests, embedded configurations).
    Toml(&'a str),
}

/// The configuration file to use: `--config`, else `$SESSIONGATE_CONFIG`, else
/// `./gateway.toml`.
pub fn config_path(cli: Option<PathBuf>) -> PathBuf {
    resolve_config_path(cli, std::env::var_os(CONFIG_PATH_ENV))
}

/// [`config_path`] with the environment value passed in.
pub fn resolve_config_path(cli: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    cli.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Loads the file at `path` (or the one [`config_path`] picks) with the process environment's
/// `SESSIONGATE_…` overrides on top.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| config_path(None));
    let mut env = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if env_override(k) == EnvName::Ignored {
            continue;
        }
        match v.into_string() {
            Ok(v) => env.push((k.to_string(), v)),
            Err(_) => problems.push(ConfigProblem::bare(
                k,
                "environment variable is not valid UTF-8",
            )),
        }
    }
    load_inner(ConfigSource::File(&path), env, problems)
}

/// Loads TOML text with no environment overrides (for tests and tools).
pub fn load_from_str(toml: &str) -> Result<Config, ConfigError> {
    load_with_env(ConfigSource::Toml(toml), Vec::<(String, String)>::new())
}

/// Loads `source` with `env` as the environment (only the entries [`env_override`] does not
/// ignore are used). Lets tests exercise overrides without touching the process environment.
pub fn load_with_env<I, K, V>(source: ConfigSource<'_>, env: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    load_inner(source, env, Vec::new())
}

fn load_inner(
    source: ConfigSource<'_>,
    env: Vec<(String, String)>,
    mut problems: Vec<ConfigProblem>,
) -> Result<Config, ConfigError> {
    let (text, origin) = match source {
        ConfigSource::Toml(s) => (s.to_string(), "<toml string>".to_string()),
        ConfigSource::File(path) => match std::fs::read_to_string(path) {
            Ok(s) => (s, path.display().to_string()),
            Err(e) => {
                problems.push(
                    ConfigProblem::bare(
                        path.display().to_string(),
                        format!("cannot read the configuration file: {e}"),
                    )
                    .allowing(
                        "a readable TOML file named by --config, $SESSIONGATE_CONFIG or ./gateway.toml",
                    ),
                );
                return Err(ConfigError { problems });
            }
        },
    };

    // Layer 1 (defaults) lives in the validator; layer 2 is the file.
    let mut tree = match Figment::from(Toml::string(&text)).extract::<Dict>() {
        Ok(dict) => Value::from(dict),
        Err(e) => {
            problems.push(ConfigProblem::bare(
                origin,
                format!("not valid TOML: {}", one_line(&e.kind.to_string())),
            ));
            return Err(ConfigError { problems });
        }
    };

    // Layer 3: the environment.
    let overrides = apply_env(&mut tree, env, &mut problems);

    let (raw, mut poisoned) = deserialize_raw(tree, &overrides, &mut problems);
    let Some(mut raw) = raw else {
        return Err(ConfigError { problems });
    };

    check_files(&mut raw, &mut problems, &mut poisoned);

    match super::validate::validate(raw) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(ConfigError { problems }),
        Err(e) => {
            // A key that failed to parse was dropped, so the validator may report it as
            // missing or defaulted; the parse problem is the one to show. Likewise for a key
            // file the loader could not use.
            problems.extend(
                e.problems
                    .into_iter()
                    .filter(|p| !poisoned.iter().any(|bad| is_under(&p.key, bad))),
            );
            Err(ConfigError { problems })
        }
    }
}

/// Key paths set from the environment: path → (variable name, raw text).
type Overrides = HashMap<Vec<String>, (String, String)>;

/// Applies `SESSIONGATE_A__B__C=value` overrides to `tree`. Values are parsed like figment's
/// `Env` provider does (numbers, booleans, `[arrays]`, `{tables}`, else strings); a numeric
/// level addresses an existing array element (`SESSIONGATE_ROUTES__0__UPSTREAM`).
fn apply_env(
    tree: &mut Value,
    mut env: Vec<(String, String)>,
    problems: &mut Vec<ConfigProblem>,
) -> Overrides {
    env.sort();
    let mut overrides = Overrides::new();
    for (var, text) in env {
        let rest = match env_override(&var) {
            EnvName::Ignored => continue,
            EnvName::Override => &var[ENV_PREFIX.len()..],
            EnvName::UnknownSection => {
                let first = var[ENV_PREFIX.len()..]
                    .split("__")
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                // The value is not shown: a misspelt store URL would print its password.
                problems.push(
                    ConfigProblem::bare(
                        var.as_str(),
                        format!("environment variable names no configuration section ({first:?})"),
                    )
                    .allowing(format!(
                        "SESSIONGATE_ followed by one of {} (in capitals), then __ and the key path; \
                         names without __ (SESSIONGATE_PORT, SESSIONGATE_SERVICE_HOST, …) are ignored",
                        SECTIONS.join(", ")
                    )),
                );
                continue;
            }
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(
                ConfigProblem::new(
                    var.as_str(),
                    "malformed override name",
                    format!("{var:?}"),
                    "SESSIONGATE_ followed by the key path with __ between levels, e.g. SESSIONGATE_STORE__URL",
                ),
            );
            continue;
        }
        let value: Value = text.parse().unwrap_or_else(|_| Value::from(text.clone()));
        match set_path(tree, &path, value) {
            Ok(()) => {
                overrides.insert(path, (var, text));
            }
            Err(why) => problems.push(ConfigProblem::new(
                key_of(&path),
                format!("cannot apply {var}: {why}"),
                format!("{text:?}"),
                "a key path that exists in the configuration schema",
            )),
        }
    }
    overrides
}

fn is_index(seg: &str) -> bool {
    !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())
}

fn set_path(tree: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut node = tree;
    for (depth, seg) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let here = key_of(&path[..depth]);
        node = match node {
            Value::Dict(_, dict) => {
                if last {
                    dict.insert(seg.clone(), value);
                    return Ok(());
                }
                if !dict.contains_key(seg) {
                    if path.get(depth + 1).is_some_and(|s| is_index(s)) {
                        return Err(format!(
                            "{} is not set, so element {} cannot be overridden",
                            key_of(&path[..=depth]),
                            path[depth + 1]
                        ));
                    }
                    dict.insert(seg.clone(), Value::from(Dict::new()));
                }
                match dict.get_mut(seg) {
                    Some(next) => next,
                    None => return Err("internal: key vanished".into()),
                }
            }
            Value::Array(_, items) => {
                let len = items.len();
                let Some(item) = seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) else {
                    return Err(format!(
                        "{here} has {len} entries; {seg:?} is not one of their indexes"
                    ));
                };
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            _ => return Err(format!("{here} is a single value, not a table")),
        };
    }
    Ok(())
}

/// Deserializes the merged tree, collecting every unknown key and type error: after each
/// error the offending value is dropped (or, when it came from the environment and a string
/// or list was expected, re-read as one) and deserialization is retried.
fn deserialize_raw(
    mut tree: Value,
    overrides: &Overrides,
    problems: &mut Vec<ConfigProblem>,
) -> (Option<RawConfig>, Vec<String>) {
    let mut poisoned = Vec::new();
    let mut coerced: HashSet<Vec<String>> = HashSet::new();
    // Every round removes or rewrites one value, so the tree's size bounds the rounds.
    for _ in 0..10_000 {
        let err = match RawConfig::deserialize(&tree) {
            Ok(raw) => return (Some(raw), poisoned),
            Err(e) => e,
        };
        let path = err.path.clone();
        let origin = (0..=path.len())
            .rev()
            .find_map(|n| overrides.get_key_value(&path[..n]));

        // Environment values are untyped text: if the schema wanted a string or a list,
        // read the text that way before calling it an error.
        if let Some((opath, (_, text))) = origin {
            if matches!(err.kind, Kind::InvalidType(..)) && coerced.insert(opath.clone()) {
                let expected = match &err.kind {
                    Kind::InvalidType(_, exp) => exp.as_str(),
                    _ => "",
                };
                let value = if expected.contains("sequence") && opath.len() == path.len() {
                    let items: Vec<Value> = text
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::from(s.to_string()))
                        .collect();
                    Value::from(items)
                } else {
                    Value::from(text.clone())
                };
                if set_path(&mut tree, opath, value).is_ok() {
                    continue;
                }
            }
        }

        problems.push(problem_from(&err, origin.map(|(_, (var, _))| var.as_str())));
        if path.is_empty() {
            return (None, poisoned);
        }
        let dropped = drop_path(&mut tree, &path);
        let key = key_of(dropped);
        if !poisoned.contains(&key) {
            poisoned.push(key);
        }
    }
    problems.push(ConfigProblem::bare("<config>", "too many problems to list"));
    (None, poisoned)
}

/// Removes the value at `path`; an array element takes its whole array with it (so later
/// indexes do not shift). Returns the path actually removed.
fn drop_path<'p>(tree: &mut Value, path: &'p [String]) -> &'p [String] {
    let cut = match path.iter().position(|s| is_index(s)) {
        Some(i) if i + 1 == path.len() => i,
        _ => path.len(),
    };
    let target = &path[..cut.max(1)];
    let (parent, last) = target.split_at(target.len() - 1);
    let mut node = tree;
    for seg in parent {
        node = match node {
            Value::Dict(_, d) => match d.get_mut(seg) {
                Some(n) => n,
                None => return target,
            },
            Value::Array(_, a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return target,
            },
            _ => return target,
        };
    }
    if let Value::Dict(_, d) = node {
        d.remove(&last[0]);
    }
    target
}

fn problem_from(err: &figment::Error, env_var: Option<&str>) -> ConfigProblem {
    let key = if err.path.is_empty() {
        "<config>".to_string()
    } else {
        key_of(&err.path)
    };
    let from = env_var
        .map(|v| format!(" (from environment variable {v})"))
        .unwrap_or_default();
    match &err.kind {
        Kind::UnknownField(name, expected) => ConfigProblem::new(
            key,
            format!("unknown key{from}"),
            format!("{name:?}"),
            if expected.is_empty() {
                "no keys here".to_string()
            } else {
                format!("one of {}", expected.join(", "))
            },
        ),
        // The same line whether the word came from the file or the environment.
        Kind::UnknownVariant(word, allowed) => ConfigProblem::new(
            key,
            "not one of the allowed values",
            format!("{word:?}"),
            allowed
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(" | "),
        ),
        Kind::InvalidType(actual, expected) => ConfigProblem::new(
            key,
            format!("wrong type{from}"),
            actual.to_string(),
            type_name(expected),
        ),
        Kind::InvalidValue(actual, expected) => ConfigProblem::new(
            key,
            format!("invalid value{from}"),
            actual.to_string(),
            type_name(expected),
        ),
        other => ConfigProblem::bare(key, format!("{}{from}", one_line(&other.to_string()))),
    }
}

/// Serde's expected-type wording in the operator's terms.
fn type_name(expected: &str) -> String {
    match expected {
        "i64" | "u64" | "i32" | "u32" => "an integer".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" => "a string".into(),
        "a sequence" => "an array".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e => e.into(),
    }
}

/// `["routes", "0", "upstream"]` → `routes[0].upstream`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for seg in path {
        if is_index(seg) && !key.is_empty() {
            key.push('[');
            key.push_str(seg);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(seg);
        }
    }
    key
}

fn is_under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Multi-line parser messages (TOML's caret diagrams) folded into one line.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|') && *l != "^")
        .collect::<Vec<_>>()
        .join("; ")
}

/// The contents of a key file as the key: its exact bytes, minus one trailing `\n` or `\r\n`
/// (the newline editors and `echo` add). Nothing else is trimmed or decoded: a binary secret
/// is used as it is.
pub fn read_secret_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(bytes)
}

/// The signing secret in `file`, or the problem that makes it unusable.
fn read_signing_secret(file: &str) -> Result<Vec<u8>, ConfigProblem> {
    const KEY: &str = "tokens.access_token.signing_key.secret_file";
    let min = sessiongate_core::keys::ring::MIN_STATIC_SECRET_BYTES;
    match read_secret_file(Path::new(file)) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Err(ConfigProblem::new(
            KEY,
            "key file is empty",
            format!("{file:?}"),
            "a non-empty key file",
        )),
        Ok(bytes) if bytes.len() < min => Err(ConfigProblem::new(
            KEY,
            format!("key file holds {} bytes", bytes.len()),
            format!("{file:?}"),
            format!("a key file of at least {min} bytes (one trailing newline is not counted)"),
        )),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(ConfigProblem::new(
            KEY,
            format!("cannot read key file: {e}"),
            format!("{file:?}"),
            "a readable, non-empty key file",
        )),
    }
}

/// The checks that need the filesystem: key files must be readable and hold a usable key,
/// TLS files readable. Reads both key files (the signing secret and the admin key) into the
/// raw form for the validator, so nothing reads them again. The key of a signing secret that
/// could not be used goes into `unusable`: its problem is reported here, not again by the
/// validator.
fn check_files(raw: &mut RawConfig, problems: &mut Vec<ConfigProblem>, unusable: &mut Vec<String>) {
    let signing_key = raw
        .tokens
        .as_mut()
        .and_then(|t| t.access_token.as_mut())
        .and_then(|a| a.signing_key.as_mut());
    if let Some(sk) = signing_key {
        if let Some(file) = sk.secret_file.as_deref().filter(|s| !s.trim().is_empty()) {
            match read_signing_secret(file) {
                Ok(key) => sk.secret_from_file = Some(key),
                Err(problem) => {
                    unusable.push(problem.key.clone());
                    problems.push(problem);
                }
            }
        }
    }

    // Only a complete pair is worth opening; a half pair is the validator's to report.
    let tls = raw.server.as_ref().and_then(|s| s.tls.as_ref());
    if let Some(tls) = tls.filter(|t| t.cert.is_some() && t.key.is_some()) {
        for (key, file) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
            let Some(file) = file.as_deref().filter(|f| !f.is_empty()) else {
                continue;
            };
            if let Err(e) = std::fs::File::open(file) {
                problems.push(ConfigProblem::new(
                    key,
                    format!("cannot read PEM file: {e}"),
                    format!("{file:?}"),
                    "a readable PEM file",
                ));
            }
        }
        // Both readable: they must also make the TLS configuration `serve` builds.
        let (cert, key) = (tls.cert.as_deref(), tls.key.as_deref());
        if let (Some(cert), Some(key)) = (cert, key) {
            let readable = |f: &str| !f.is_empty() && std::fs::File::open(f).is_ok();
            if readable(cert) && readable(key) {
                if let Err(e) = crate::server::tls_acceptor(Path::new(cert), Path::new(key)) {
                    let why = format!("{e:#}");
                    let (k, file) = if why.contains("private key") || why.contains("do not match") {
                        ("server.tls.key", key)
                    } else {
                        ("server.tls.cert", cert)
                    };
                    problems.push(ConfigProblem::new(
                        k,
                        format!("unusable certificate or key: {}", one_line(&why)),
                        format!("{file:?}"),
                        "a PEM certificate chain (server.tls.cert) and its PEM private key (server.tls.key)",
                    ));
                }
            }
        }
    }

    // The CA file of a MySQL URL's `ssl_ca`: the store reads it at start, so check it now.
    let url = raw.store.as_ref().and_then(|s| s.url.as_deref());
    if let Some(url) = url.filter(|u| u.starts_with("mysql://")) {
        let ca = crate::store::mysql::parse_url(url)
            .ok()
            .and_then(|p| p.ca_file);
        if let Some(err) = ca.and_then(|f| crate::store::mysql::read_ca_file(&f).err()) {
            problems.push(ConfigProblem::new(
                "store.url",
                format!("unusable ssl_ca file: {err}"),
                format!("{:?}", crate::config::mask_url_password(url)),
                "ssl_ca=PATH naming a readable PEM file of CA certificates",
            ));
        }
    }

    if let Some(admin) = raw.admin.as_mut() {
        if let (Some(file), None) = (admin.api_key_file.clone(), admin.api_key.as_ref()) {
            let key = "admin.api_key_file";
            // On failure the file is forgotten, so the validator does not report it again.
            match std::fs::read_to_string(&file) {
                Ok(text) if text.trim().is_empty() => {
                    admin.api_key_file = None;
                    problems.push(ConfigProblem::new(
                        key,
                        "key file is empty",
                        format!("{file:?}"),
                        "a file holding the admin API key (surrounding whitespace is trimmed)",
                    ))
                }
                Ok(text) => admin.api_key_from_file = Some(text.trim().to_string()),
                Err(e) => {
                    admin.api_key_file = None;
                    problems.push(ConfigProblem::new(
                        key,
                        format!("cannot read key file: {e}"),
                        format!("{file:?}"),
                        "a readable file holding the admin API key",
                    ))
                }
            }
        }
    }
    read_webhook_secret(raw, problems);
}

/// The shortest webhook signing secret accepted, in bytes.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

/// Reads `events.webhook_secret_file` into the raw form; on failure the file is forgotten
/// (so the validator does not report it again) and the problem reported here.
fn read_webhook_secret(raw: &mut RawConfig, problems: &mut Vec<ConfigProblem>) {
    let Some(events) = raw.events.as_mut() else {
        return;
    };
    let Some(file) = events.webhook_secret_file.clone() else {
        return;
    };
    let problem = match read_secret_file(Path::new(&file)) {
        Ok(bytes) if bytes.len() >= MIN_WEBHOOK_SECRET_BYTES => {
            let placeholder = std::str::from_utf8(&bytes)
                .is_ok_and(crate::config::validate::is_shipped_placeholder);
            if !placeholder {
                events.secret_from_file = Some(bytes);
                return;
            }
            "key file holds a shipped placeholder".to_string()
        }
        Ok(bytes) => format!("key file holds {} bytes", bytes.len()),
        Err(e) => format!("cannot read key file: {e}"),
    };
    events.webhook_secret_file = None;
    problems.push(ConfigProblem::new(
        "events.webhook_secret_file",
        problem,
        format!("{file:?}"),
        format!("a readable file holding at least {MIN_WEBHOOK_SECRET_BYTES} bytes of secret"),
    ));
}
