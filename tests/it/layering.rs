//! The dependency rules of ARCHITECTURE.md. The token core's boundary (the first invariant):
//! the compiler already refuses I/O in `crates/core` because its Cargo.toml names no crate
//! that does any; this suite keeps that Cargo.toml honest, and checks the parts of `std` a
//! dependency list cannot exclude (the clock, files, sockets, the environment, threads). And
//! the module edges that once ran both ways now run one way only. The other structural
//! invariants are source scans of the shipped code (unit-test modules left out): SQL only in
//! the store, error statuses only in `error.rs`, CORS only from `finish` and the preflight,
//! no store calls from the admin API or the gateway, no string literals as metric labels.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;

/// Crates the core must never depend on, under any name or in any dependency table: an async
/// runtime, the HTTP stack, the SQL drivers, a randomness source.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "mysql_async",
    "rusqlite",
    "rand",
    "rand_core",
    "getrandom",
];

/// `std` items that read the clock or do I/O, which no dependency rule can keep out.
const FORBIDDEN_STD: &[&str] = &[
    "SystemTime",
    "Instant",
    "std::fs",
    "std::net",
    "std::env",
    "std::thread",
    "std::process",
    "std::io",
];

fn core_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core")
}

/// Every dependency the manifest declares, as (table, key, crate name): the crate name is
/// `package = …` when the dependency is renamed.
fn declared_dependencies(manifest: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut tables: Vec<(String, &serde_json::Value)> = Vec::new();
    for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(kind) {
            tables.push((kind.to_string(), t));
        }
        if let Some(targets) = manifest.get("target").and_then(|t| t.as_object()) {
            for (cfg, t) in targets {
                if let Some(t) = t.get(kind) {
                    tables.push((format!("target.{cfg}.{kind}"), t));
                }
            }
        }
    }
    let mut deps = Vec::new();
    for (table, t) in tables {
        for (key, spec) in t.as_object().expect("a dependency table") {
            let name = spec
                .get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(key)
                .to_string();
            deps.push((table.clone(), key.clone(), name));
        }
    }
    deps
}

#[test]
fn core_manifest_names_no_io_runtime_or_randomness() {
    let manifest: serde_json::Value = Figment::from(Toml::file(core_dir().join("Cargo.toml")))
        .extract()
        .expect("crates/core/Cargo.toml parses");
    assert_eq!(manifest["package"]["name"], "sessiongate-core");
    let deps = declared_dependencies(&manifest);
    assert!(
        deps.iter().any(|(_, _, name)| name == "jsonwebtoken"),
        "the parser found the dependency table: {deps:?}"
    );
    let bad: Vec<_> = deps
        .iter()
        .filter(|(_, _, name)| {
            FORBIDDEN.contains(&name.replace('_', "-").as_str())
                || FORBIDDEN.contains(&name.as_str())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "crates/core must not depend on {bad:?}: the token core does no I/O and draws no \
         randomness (ARCHITECTURE.md, invariants)"
    );
}

#[test]
fn core_sources_read_no_clock_and_do_no_io() {
    let mut files = vec![core_dir().join("src")];
    let mut found = Vec::new();
    let mut read = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        read += 1;
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for item in FORBIDDEN_STD {
                if code.contains(item) {
                    found.push(format!("{}:{}: {item}", p.display(), i + 1));
                }
            }
        }
    }
    assert!(read >= 7, "read the core's sources ({read} files)");
    assert!(
        found.is_empty(),
        "the token core takes time as `now` and does no I/O:\n{}",
        found.join("\n")
    );
}

/// Lines of `src/<path>` (a file, or every file under a directory) outside comments that
/// name `needle`.
fn mentions(path: &str, needle: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join(path)];
    let mut found = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.split("//").next().unwrap_or("").contains(needle) {
                found.push(format!("{}:{}", p.display(), i + 1));
            }
        }
    }
    found
}

#[test]
fn module_edges_run_one_way() {
    // (module, what it must not import, why)
    let rules = [
        (
            "demo.rs",
            "crate::cli",
            "cli runs the demo; both set up logging through `logging`",
        ),
        (
            "logging.rs",
            "crate::cli",
            "`logging` sits below `cli` and `demo`",
        ),
        (
            "server.rs",
            "crate::gateway",
            "the gateway handles what the server accepts (`Peer` is the server's)",
        ),
        (
            "proxy",
            "crate::error",
            "forwarding returns `ForwardError`; only `error.rs` picks statuses",
        ),
        (
            "proxy",
            "crate::gateway",
            "the gateway drives the proxy, not the other way",
        ),
    ];
    let broken: Vec<String> = rules
        .iter()
        .flat_map(|(module, needle, why)| {
            mentions(module, needle)
                .into_iter()
                .map(move |at| format!("{at}: {module} names {needle} ({why})"))
        })
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Every `.rs` file under `dir` (relative to the workspace root), as (path relative to the
/// root with `/` separators, its text up to its first `#[cfg(test)]`): the code that ships.
/// Unit-test modules sit at the end of their files, and the configuration suite is its own
/// file (`tests_*.rs`), so neither is shipped code.
fn shipped_sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join(dir)];
    let mut out = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy();
        if p.extension().is_none_or(|e| e != "rs") || name.starts_with("tests_") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let shipped = match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        out.push((rel, shipped));
    }
    out.sort();
    out
}

/// The code of a line: what precedes a `//` comment (a `//` inside a string literal cuts the
/// line short too, which can only hide a needle, never invent one).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// Whether a string literal starts at `at` (`"`, or a raw `r"` / `r#"`) and its text begins
/// with `keyword`; `ignore_case` for the multi-word keywords, which prose does not start
/// with.
fn literal_starts_with(line: &str, keyword: &str, ignore_case: bool) -> bool {
    line.match_indices('"').any(|(i, _)| {
        let text = &line[i + 1..];
        match text.get(..keyword.len()) {
            Some(head) if ignore_case => head.eq_ignore_ascii_case(keyword),
            Some(head) => head == keyword,
            None => false,
        }
    })
}

/// SQL statements as a string literal starts them: (keyword, compared ignoring case).
const SQL_STARTS: &[(&str, bool)] = &[
    ("SELECT ", false),
    ("UPDATE ", false),
    ("INSERT INTO", true),
    ("REPLACE INTO", true),
    ("DELETE FROM", true),
    ("CREATE TABLE", true),
    ("CREATE INDEX", true),
    ("CREATE DATABASE", true),
    ("ALTER TABLE", true),
    ("DROP TABLE", true),
];

#[test]
fn sql_lives_only_in_the_store() {
    let sources: Vec<_> = shipped_sources("src")
        .into_iter()
        .chain(shipped_sources("crates/core/src"))
        .collect();
    let mut found = Vec::new();
    let mut in_store = 0;
    for (path, text) in &sources {
        for (i, line) in text.lines().enumerate() {
            for (keyword, ignore_case) in SQL_STARTS {
                if literal_starts_with(code_of(line), keyword, *ignore_case) {
                    if path.starts_with("src/store/") {
                        in_store += 1;
                    } else {
                        found.push(format!("{path}:{}: {}", i + 1, line.trim()));
                    }
                }
            }
        }
    }
    // The scan sees the store's own SQL, so it would see SQL anywhere else.
    assert!(in_store >= 10, "found the store's SQL ({in_store} lines)");
    assert!(
        found.is_empty(),
        "SQL exists only under src/store/ and migrations/ (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

/// `StatusCode` constants of the successes a flow produces itself.
const SUCCESS_STATUSES: &[&str] = &[
    "OK",
    "CREATED",
    "NO_CONTENT",
    "FOUND",
    "SEE_OTHER",
    "SWITCHING_PROTOCOLS",
];

/// The honest exceptions to "error statuses are chosen in error.rs": (file, what it names,
/// why).
const STATUS_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "src/config/validate.rs",
        "UNAUTHORIZED",
        "the default of `session.expired_status` (401, or 440 by configuration)",
    ),
    (
        "src/config/validate.rs",
        "from_u16",
        "`session.expired_status` read from the configuration",
    ),
    (
        "src/demo.rs",
        "UNAUTHORIZED",
        "the demo upstream app answers a bad login itself",
    ),
    (
        "src/demo.rs",
        "NOT_FOUND",
        "the demo upstream app's own 404 page",
    ),
    (
        "src/demo.rs",
        "INTERNAL_SERVER_ERROR",
        "the demo upstream app without its SDK bundle",
    ),
];

#[test]
fn error_statuses_are_chosen_in_error_rs() {
    let mut found = Vec::new();
    let mut seen = 0;
    for (path, text) in shipped_sources("src") {
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (at, _) in code.match_indices("StatusCode::") {
                seen += 1;
                let name: String = code[at + "StatusCode::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let allowed = path == "src/error.rs"
                    || SUCCESS_STATUSES.contains(&name.as_str())
                    || STATUS_EXCEPTIONS
                        .iter()
                        .any(|(file, n, _)| *file == path && *n == name);
                if !allowed {
                    found.push(format!("{path}:{}: StatusCode::{name}", i + 1));
                }
            }
        }
    }
    assert!(seen >= 20, "found the status codes ({seen})");
    assert!(
        found.is_empty(),
        "error statuses are chosen in error.rs (`Reject`), not at call sites \
         (ARCHITECTURE.md; exceptions: STATUS_EXCEPTIONS):\n{}",
        found.join("\n")
    );
}

#[test]
fn cors_headers_are_added_only_by_finish_and_the_preflight() {
    let mut allow = Vec::new();
    let mut adds = Vec::new();
    for (path, text) in shipped_sources("src") {
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            if code.contains("ACCESS_CONTROL_ALLOW_") && path != "src/http/cors.rs" {
                allow.push(format!("{path}:{}", i + 1));
            }
            if code.contains("cors::add(") {
                adds.push(format!("{path}:{}", i + 1));
            }
        }
    }
    assert!(
        allow.is_empty(),
        "only http/cors.rs writes Access-Control-Allow-* headers:\n{}",
        allow.join("\n")
    );
    assert_eq!(
        adds.len(),
        1,
        "`cors::add` is called once, by `gateway::finish`: {adds:?}"
    );
    assert!(adds[0].starts_with("src/gateway/mod.rs:"), "{adds:?}");
    let gateway =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway/mod.rs"))
            .unwrap();
    let finish = gateway.find("\nfn finish(").expect("gateway::finish");
    let next = gateway[finish + 1..]
        .find("\nfn ")
        .map_or(gateway.len(), |n| finish + 1 + n);
    assert!(
        gateway[finish..next].contains("cors::add("),
        "`cors::add` is called inside `finish`"
    );
}

#[test]
fn admin_and_gateway_reach_sessions_only_through_sessions() {
    let mut found = Vec::new();
    let mut callers = std::collections::BTreeSet::new();
    for (path, text) in shipped_sources("src") {
        let front = path == "src/admin.rs" || path.starts_with("src/gateway/");
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            if code.contains(".store()") {
                callers.insert(path.clone());
            }
            for needle in [".store()", "crate::store", "state::Store"] {
                if front && code.contains(needle) {
                    found.push(format!("{path}:{}: {needle}", i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the admin API and the gateway make no store calls; they use `Sessions`:\n{}",
        found.join("\n")
    );
    let maintenance = ["src/app.rs", "src/jobs.rs", "src/startup.rs"];
    let other: Vec<_> = callers
        .iter()
        .filter(|p| !maintenance.contains(&p.as_str()))
        .collect();
    assert!(
        other.is_empty(),
        "`Sessions::store()` is for maintenance (startup, jobs, closing it at shutdown), \
         not for {other:?}"
    );
    assert!(
        callers.contains("src/jobs.rs"),
        "found the callers: {callers:?}"
    );
}

#[test]
fn metric_labels_are_never_string_literals_at_call_sites() {
    let mut found = Vec::new();
    let mut calls = 0;
    for (path, text) in shipped_sources("src") {
        if path == "src/metrics.rs" {
            continue;
        }
        let code: String = text.lines().map(|l| format!("{}\n", code_of(l))).collect();
        for (at, _) in code.match_indices("with_label_values(") {
            calls += 1;
            let args = &code[at..];
            let end = args.find(']').unwrap_or(args.len());
            if args[..end].contains('"') {
                let line = code[..at].lines().count();
                found.push(format!("{path}:{line}: {}", &args[..end + 1]));
            }
        }
    }
    assert!(calls >= 3, "found the labelled metrics ({calls})");
    assert!(
        found.is_empty(),
        "label values are route names, status codes, store operations or the typed enums of \
         metrics.rs, never string literals:\n{}",
        found.join("\n")
    );
}

/// Who reads files, and what: (module, the files it reads).
const FILE_READERS: &[(&str, &str)] = &[
    (
        "src/config/load.rs",
        "the config file and every file it names (secrets read once, here)",
    ),
    ("src/server.rs", "the TLS certificate and key"),
    (
        "src/app.rs",
        "the TLS files again, on reload and when they change",
    ),
    (
        "src/store/mysql.rs",
        "a MySQL URL's `ssl_ca`, when the store opens (and when validation checks it)",
    ),
    ("src/demo.rs", "the demo's `--sdk-bundle`"),
];

#[test]
fn files_are_read_only_by_their_owners() {
    let mut found = Vec::new();
    let mut readers = std::collections::BTreeSet::new();
    for (path, text) in shipped_sources("src") {
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            if ["fs::read", "File::open", "read_to_string(", "OpenOptions"]
                .iter()
                .any(|n| code.contains(n))
            {
                readers.insert(path.clone());
                if !FILE_READERS.iter().any(|(p, _)| *p == path) {
                    found.push(format!("{path}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        readers.contains("src/config/load.rs"),
        "found the readers: {readers:?}"
    );
    assert!(
        found.is_empty(),
        "a secret file is read once, by the config loader, and the key cache takes its bytes \
         from the config; files are read only where FILE_READERS says:\n{}",
        found.join("\n")
    );
}
