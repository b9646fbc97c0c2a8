//! The dependency rules of ARCHITECTURE.md. The token core's boundary (the first invariant):
//! the compiler already refuses I/O in `crates/core` because its Cargo.toml names no crate
//! that does any; this suite keeps that Cargo.toml honest, and checks the parts of `std` a
//! dependency list cannot exclude (the clock, files, sockets, the environment, threads). And
//! the module edges that once ran both ways now run one way only.

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
