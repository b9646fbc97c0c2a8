//! Real-browser end-to-end tests, run as part of `cargo test`.
//!
//! The tests themselves live in `tests/browser/run.mjs` (Node, playwright-core, Debian's
//! Chromium, the `supertokens-website` 4.2.0 SDK); this harness makes sure their toolchain is
//! present, installing what is missing when it can (`npm ci`, and `apt-get install chromium`
//! when running as root), then runs them against the `sessiongate` binary Cargo just built,
//! streaming their output. A missing toolchain that cannot be installed is a failure with a
//! message saying what to install, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

/// Runs `cmd` with inherited output; `Err` describes how it failed.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("[browser.rs] {what}: {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("{what} could not start: {e}")),
    }
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{CHROMIUM} is missing and this user cannot install it: run `sudo apt-get install -y chromium`"
        ));
    }
    let install = || {
        run(
            Command::new("apt-get")
                .args(["install", "-y", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "installing Chromium",
        )
    };
    if install().is_err() {
        run(
            Command::new("apt-get").arg("update"),
            "refreshing apt indexes",
        )?;
        install()?;
    }
    if Path::new(CHROMIUM).exists() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed chromium but {CHROMIUM} is still missing"
        ))
    }
}

fn ensure_node_modules(dir: &Path) -> Result<(), String> {
    if dir.join("node_modules").join("playwright-core").exists()
        && dir
            .join("node_modules")
            .join("supertokens-website")
            .exists()
        && dir.join("node_modules").join("esbuild").exists()
    {
        return Ok(());
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
        "installing tests/browser's node modules (npm ci)",
    )
    .map_err(|e| {
        format!(
            "{e}; the npm registry must be reachable, or run `npm ci` in {}",
            dir.display()
        )
    })
}

#[test]
fn browser_end_to_end() -> Result<(), String> {
    let dir = browser_dir();
    for tool in ["node", "npm"] {
        if !runs(tool) {
            return Err(format!(
                "`{tool}` is not installed; the browser tests need Node.js 18+ and npm (apt-get install -y nodejs npm)"
            ));
        }
    }
    ensure_chromium()?;
    ensure_node_modules(&dir)?;
    let started = Instant::now();
    let result = run(
        Command::new("node")
            .arg(dir.join("run.mjs"))
            .env("SESSIONGATE_BIN", env!("CARGO_BIN_EXE_sessiongate"))
            .current_dir(&dir),
        "running the browser tests",
    );
    eprintln!(
        "[browser.rs] browser suite finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result.map_err(|e| {
        format!(
            "{e}; failing tests left screenshots in {}",
            dir.join("test-results").display()
        )
    })
}
