//! Real front proxies for the forward-auth tests: Debian's nginx and Caddy as child
//! processes, each in its own temp directory (configuration, pid file, logs, temp and data
//! directories), on a free port, without the admin API (Caddy) or anything on :80, killed on
//! drop. The site configuration is the caller's (the README's, with its ports replaced).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::config::free_port;

pub const NGINX: &str = "/usr/sbin/nginx";
pub const CADDY: &str = "/usr/bin/caddy";

/// A running front proxy listening on 127.0.0.1:`port`.
pub struct FrontProxy {
    pub port: u16,
    child: Child,
    /// Where the proxy writes its error log (nginx) or its output (Caddy), for failures.
    log: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for FrontProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FrontProxy {
    /// nginx with `site` (a `server { … }` block listening on `port`) inside an `http` block
    /// whose every path is in the temp directory; one process (`master_process off`), in the
    /// foreground.
    pub fn nginx(site: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             default_type application/octet-stream;\n\
             {site}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts (Debian package nginx)");
        let log = dir.path().join("error.log");
        Self::ready(port, child, log, dir)
    }

    /// Caddy running `caddyfile` (with a global block turning the admin API off prepended),
    /// HOME and XDG directories in the temp directory.
    pub fn caddy(caddyfile: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, format!("{{\n\tadmin off\n}}\n\n{caddyfile}")).unwrap();
        let log = dir.path().join("caddy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("caddy starts (Debian package caddy)");
        Self::ready(port, child, log, dir)
    }

    /// Waits until the proxy accepts connections on `port` (30 s), or fails with its log.
    fn ready(port: u16, mut child: Child, log: std::path::PathBuf, dir: tempfile::TempDir) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    port,
                    child,
                    log,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("front proxy exited ({status}):\n{}", read(&log));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "front proxy not listening on {port} after 30 s:\n{}",
                    read(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy's log so far (for assertion messages).
    pub fn log(&self) -> String {
        read(&self.log)
    }

    #[allow(dead_code)] // kept for debugging a failing run
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A free port for a front proxy.
pub fn port() -> u16 {
    free_port()
}
