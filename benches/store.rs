//! Store benchmark (`cargo bench --bench store`): sequential refreshes along one real token
//! chain (each refresh presents the child of the previous one), per backend: SQLite in a temp
//! file and MySQL (a fresh database on `SESSIONGATE_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`, or the throwaway `mariadbd` the tests start when none
//! answers). Prints the time and the rate; every refresh must rotate.
//!
//! Bounded: at most `STORE_REFRESHES` refreshes (default 1000) or `STORE_SECS` seconds
//! (default 10) per backend, whichever comes first.

use std::time::{Duration, Instant};

use sessiongate::config::{TableNames, TheftAction};
use sessiongate::session::rotation::{Presented, RotationPolicy};
use sessiongate::store::mysql::MysqlStore;
use sessiongate::store::sqlite::SqliteStore;
use sessiongate::store::{Maintenance, NewSession, RefreshOutcome, RefreshRequest, SessionStore};

// The tests' databases (and the free_port they use), so the bench runs where the tests run.
#[allow(dead_code)] // shared with the tests; the bench uses a part
#[path = "../tests/it/support/config.rs"]
mod config;
#[allow(dead_code)] // shared with the tests; the bench uses a part
#[path = "../tests/it/support/db.rs"]
mod db;

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const POLICY: RotationPolicy = RotationPolicy {
    grace_ms: 30_000,
    validity_ms: 24 * HOUR,
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The hash presented at `generation` of the chain (generation 0 is the session's own).
fn chain_hash(generation: u64) -> [u8; 32] {
    let mut x = [0u8; 32];
    x[..8].copy_from_slice(&generation.to_be_bytes());
    x[8] = 0xc4;
    x
}

async fn sequential_refreshes<S: SessionStore>(s: &S, label: &str, max: u64, within: Duration) {
    s.create_session(NewSession {
        handle: "chain".into(),
        user_id: "alice".into(),
        refresh_hash: chain_hash(0),
        session_data: serde_json::json!({}),
        jwt_payload: serde_json::json!({"role": "r"}),
        created_at: T0,
        expires_at: T0 + HOUR,
    })
    .await
    .expect("create the session");
    let started = Instant::now();
    let mut done = 0u64;
    while done < max && started.elapsed() < within {
        let out = s
            .refresh(RefreshRequest {
                handle: "chain".into(),
                presented: Presented {
                    generation: done,
                    hash: chain_hash(done),
                },
                child_hash: chain_hash(done + 1),
                now: T0 + 1000 + done as i64,
                policy: POLICY,
                theft_action: TheftAction::RevokeSession,
            })
            .await
            .expect("refresh");
        assert!(
            matches!(out, RefreshOutcome::Rotated(_)),
            "refresh {done}: {out:?}"
        );
        done += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "{label:<7} {done} sequential refreshes in {elapsed:?} ({:.0}/s, {:.3} ms each)",
        done as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / done.max(1) as f64
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let max = env_or("STORE_REFRESHES", 1000u64);
    let within = Duration::from_secs_f64(env_or("STORE_SECS", 10.0));

    let sqlite = db::TestSqlite::new();
    let store = SqliteStore::open(Some(&sqlite.path()), &TableNames::default())
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    sequential_refreshes(&store, "sqlite", max, within).await;

    // `TestMysql` blocks on its own runtime thread; keep it off this runtime's workers.
    let mysql = tokio::task::spawn_blocking(db::TestMysql::new)
        .await
        .expect("MySQL test database");
    let store = MysqlStore::open(&mysql.url(), 10, &TableNames::default()).expect("open MySQL");
    store.migrate().await.expect("migrate MySQL");
    sequential_refreshes(&store, "mysql", max, within).await;
    store.close().await;
    tokio::task::spawn_blocking(move || drop(mysql))
        .await
        .unwrap();
}
