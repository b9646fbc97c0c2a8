//! Child processes of the e2e bench: finding (or installing) the external tools, stopping a
//! process together with the children it forked, running a command with a hard time limit,
//! and the two nginx instances (the static upstream and the plain `proxy_pass` proxy).

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::config::free_port;

/// `path`, installing Debian package `package` with apt-get first when it is missing and the
/// bench runs as root; otherwise a panic that says what to install.
pub fn require_tool(path: &str, package: &str) -> String {
    if Path::new(path).exists() {
        return path.to_string();
    }
    assert!(
        running_as_root(),
        "{path} is missing: install the Debian package `{package}` (apt-get install -y {package}) \
         or run the bench as root so it can install it"
    );
    eprintln!("{path} is missing: apt-get install -y {package}");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", "--no-install-recommends", package];
    // Package lists may be missing (e.g. in a fresh container): update once and retry.
    let installed = apt(&install) || (apt(&["update"]) && apt(&install));
    assert!(
        installed && Path::new(path).exists(),
        "apt-get install -y {package} failed or did not provide {path}"
    );
    path.to_string()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// The processes whose parent is `pid` (read from /proc), e.g. nginx's workers.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                // The fields after the parenthesised command name: state, ppid, ...
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops `child`: SIGTERM, up to `grace` for it to exit, then SIGKILL; then SIGKILL to any
/// process it had forked (nginx workers outlive a killed master).
pub fn stop_child(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let forked = children_of(child.id());
    signal("-TERM", child.id());
    let deadline = Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    for pid in forked {
        if Path::new(&format!("/proc/{pid}")).exists() {
            signal("-KILL", pid);
        }
    }
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after `limit`.
/// Returns (stdout, stderr, exited on its own with success).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (String, String, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            break status.success();
        }
        if Instant::now() > deadline {
            eprintln!("!! {cmd:?} overran {limit:?}: killed");
            stop_child(&mut child, Duration::from_millis(500));
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (out.join().unwrap(), err.join().unwrap(), ok)
}

/// One nginx (1.22 from Debian) in a child process with its own prefix directory: config,
/// pid file, error log and every temp path inside it, `daemon off`, listening on 127.0.0.1.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// The static upstream both the gateway and the nginx proxy forward to: `{"ok":true}` for
    /// every path, plus, for paths ending in `/login`, the `sessiongate-create` header asking
    /// the gateway to create a session for user `u` (the query argument).
    pub fn upstream(bin: &str) -> Self {
        Self::start(bin, "upstream", |addr| {
            format!(
                "server {{\n\
                 \x20   listen {addr};\n\
                 \x20   default_type application/json;\n\
                 \x20   location ~ /login$ {{\n\
                 \x20       add_header sessiongate-create '{{\"user_id\":\"$arg_u\",\"jwt_payload\":{{}}}}' always;\n\
                 \x20       return 200 '{{\"ok\":true}}';\n\
                 \x20   }}\n\
                 \x20   location / {{\n\
                 \x20       return 200 '{{\"ok\":true}}';\n\
                 \x20   }}\n\
                 }}\n"
            )
        })
    }

    /// Plain `proxy_pass` to `upstream` through an `upstream` pool with `keepalive 128`, as the
    /// issue measured it.
    pub fn proxy(bin: &str, upstream: SocketAddr) -> Self {
        Self::start(bin, "proxy", |addr| {
            format!(
                "upstream backend {{\n\
                 \x20   server {upstream};\n\
                 \x20   keepalive 128;\n\
                 }}\n\
                 server {{\n\
                 \x20   listen {addr};\n\
                 \x20   location / {{\n\
                 \x20       proxy_pass http://backend;\n\
                 \x20       proxy_http_version 1.1;\n\
                 \x20       proxy_set_header Connection \"\";\n\
                 \x20   }}\n\
                 }}\n"
            )
        })
    }

    fn start(bin: &str, name: &str, servers: impl Fn(SocketAddr) -> String) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sg-e2e-nginx-{name}-"))
            .tempdir()
            .unwrap();
        // Workers run as `nobody` when the master is root: let them reach the temp paths.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
        let d = dir.path().display().to_string();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = format!(
            "worker_processes auto;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{\n\
             \x20   worker_connections 4096;\n\
             }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/client_body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             {}\
             }}\n",
            servers(addr)
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(format!("{d}/"))
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(format!("{d}/error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut n = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = n.child.try_wait().ok().flatten() {
                panic!("nginx ({name}) exited with {status}:\n{}", n.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx ({name}) did not listen on {addr}:\n{}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    /// The error log's contents (warnings included).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}
