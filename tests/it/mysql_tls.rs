//! TLS to MySQL (issue 9 item 6), against a MariaDB this test starts itself: a fresh data
//! directory, a CA and a server certificate for 127.0.0.1/localhost made with rcgen, and
//! `--require-secure-transport=ON`. With the right CA (`ssl_ca=…`) the gateway migrates,
//! creates and refreshes sessions through it; with another CA, or without TLS, the store is
//! refused quickly with an error that says why. Needs `mariadbd` and `mariadb-install-db`
//! (Debian's mariadb-server); without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use sessiongate::clock::Clock;
use sessiongate::config::TableNames;
use sessiongate::store::mysql::MysqlStore;
use sessiongate::store::Maintenance;

use crate::support::db;
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

/// A mariadbd that requires TLS, killed when dropped.
struct TlsMariadb {
    child: Child,
    port: u16,
    /// The data directory and log; removed after the server is killed.
    _dir: tempfile::TempDir,
}

impl Drop for TlsMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_cert = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca, ca_key) = ca_cert("sessiongate test CA");
    let (other, _) = ca_cert("some other CA");
    let mut sp =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    sp.distinguished_name
        .push(DnType::CommonName, "mariadb test server");
    let server_key = KeyPair::generate().unwrap();
    let server = sp.signed_by(&server_key, &ca, &ca_key).unwrap();
    let pki = Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("server-cert.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.other_ca, other.pem()).unwrap();
    std::fs::write(&pki.cert, server.pem()).unwrap();
    std::fs::write(&pki.key, server_key.serialize_pem()).unwrap();
    pki
}

/// Starts mariadbd with TLS required; waits (at most 45 s) until it is ready.
fn start_tls_mariadb(dir: tempfile::TempDir, pki: &Pki) -> TlsMariadb {
    let (child, port) = db::spawn_mariadbd(
        dir.path(),
        &[
            format!("--ssl-ca={}", pki.ca.display()),
            format!("--ssl-cert={}", pki.cert.display()),
            format!("--ssl-key={}", pki.key.display()),
            "--require-secure-transport=ON".to_string(),
        ],
    );
    let log = dir.path().join("mariadbd.log");
    let mut server = TlsMariadb {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ready for connections") {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("mariadbd exited ({status}) before it was ready:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "mariadbd was not ready within 45 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("SSL error") && !text.contains("Failed to setup SSL"),
        "mariadbd did not take the certificate:\n{text}"
    );
    server
}

fn store(url: &str) -> MysqlStore {
    MysqlStore::open(url, 4, &TableNames::default()).expect("store opens (lazily)")
}

/// `ping` on a fresh store, bounded: the store's own acquire timeout is 5 s.
async fn ping_error(url: &str) -> String {
    let s = store(url);
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), s.ping())
        .await
        .expect("a refused TLS connection must not hang");
    s.close().await;
    let err = match r {
        Ok(()) => panic!("{url}: the connection should have been refused"),
        Err(e) => e.to_string(),
    };
    eprintln!("{url}: refused in {:?}: {err}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "refusal took {:?}",
        started.elapsed()
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_over_tls_with_the_right_ca_works_and_is_refused_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path());
    let server = {
        let pki = pki.clone();
        tokio::task::spawn_blocking(move || start_tls_mariadb(dir, &pki))
            .await
            .unwrap()
    };
    let base = format!("mysql://root@127.0.0.1:{}", server.port);

    // The database, made over TLS with the right CA (the server refuses anything else).
    let admin = store(&format!("{base}/mysql?ssl_ca={}", pki.ca.display()));
    admin
        .ping()
        .await
        .expect("TLS connection with the right CA");
    admin.close().await;
    let pool_url = format!("{base}/mysql?require_ssl=true&verify_ca=false");
    {
        use mysql_async::prelude::Queryable;
        let pool = mysql_async::Pool::new(
            sessiongate::store::mysql::parse_url(&pool_url)
                .unwrap()
                .opts,
        );
        let mut c = pool
            .get_conn()
            .await
            .expect("TLS connection (CA not checked)");
        c.query_drop("CREATE DATABASE sg").await.unwrap();
        let cipher: Option<(String, String)> = c
            .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .await
            .unwrap();
        assert!(
            cipher.is_some_and(|(_, v)| !v.is_empty()),
            "the connection is not encrypted"
        );
        drop(c);
        pool.disconnect().await.unwrap();
    }

    // Right CA, identity verified against the IP address in the certificate: the gateway
    // migrates, creates a session and refreshes it.
    let good = format!("{base}/sg?ssl_ca={}&verify_identity=true", pki.ca.display());
    let upstream = TestUpstream::start().await;
    let gw = start_gateway(test_config(&good, &upstream.url(), ""), Clock::system()).await;
    let mut b = Browser::new(gw.public_addr);
    b.login("alice").await;
    assert_eq!(b.get("/api/me").await.status, 200);
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "refresh over TLS MySQL: {}", r.text());
    assert_eq!(b.get("/api/me").await.status, 200);
    gw.stop().await;

    // Another CA: the server's certificate is refused, quickly and saying so.
    let err = ping_error(&format!("{base}/sg?ssl_ca={}", pki.other_ca.display())).await;
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "wrong CA: {err}"
    );

    // TLS with only the built-in (public) roots: a private CA is not trusted either.
    let err = ping_error(&format!("{base}/sg?require_ssl=true")).await;
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "built-in roots only: {err}"
    );

    // No TLS parameters: the server refuses the plain connection of the same user that got
    // in over TLS above. (MySQL says "insecure transport"; MariaDB 10.11 says only "Access
    // denied" — without --require-secure-transport the same plain connection gets in.)
    let err = ping_error(&format!("{base}/sg")).await;
    assert!(
        err.contains("insecure transport") || err.contains("Access denied"),
        "plain connection: {err}"
    );
    drop(server);
}
