//! One conformance suite, run against both stores: MySQL (real MariaDB, a database per test)
//! and SQLite (a temp file per test). Each check is written once, generic over `FullStore`
//! (every store operation), and instantiated for both by `conformance!`. The tests outside it
//! are MySQL-only (pool sizes, locks and keys across instances, custom table names, an
//! unreachable server), and opening by config URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiongate::config::{StoreConfig, StoreUrl, TableNames, TheftAction};
use sessiongate::session::rotation::{Presented, RotationPolicy, TokenHash, UnauthorisedReason};
use sessiongate::store::mysql::MysqlStore;
use sessiongate::store::sqlite::SqliteStore;
use sessiongate::store::{
    AnyStore, FullStore, KeyPurpose, KeyStore, Maintenance, NewSession, RefreshOutcome,
    RefreshRequest, SessionStore, StoredKey,
};

use crate::support::config::free_port;
use crate::support::db::{TestMysql, TestSqlite};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const POLICY: RotationPolicy = RotationPolicy {
    grace_ms: 30_000,
    validity_ms: 24 * HOUR,
};

/// Test "tokens": the hash of generation g of session s is [s, g, 0, …]; a child is g+1.
fn h(session: u8, generation: u8) -> TokenHash {
    let mut x = [0u8; 32];
    x[0] = session;
    x[1] = generation;
    x
}

fn new_session(handle: &str, user: &str, s: u8, expires_at: i64) -> NewSession {
    NewSession {
        handle: handle.into(),
        user_id: user.into(),
        refresh_hash: h(s, 0),
        session_data: serde_json::json!({"n": s}),
        jwt_payload: serde_json::json!({"role": "r"}),
        created_at: T0,
        expires_at,
    }
}

fn req(handle: &str, s: u8, generation: u8, now: i64, action: TheftAction) -> RefreshRequest {
    RefreshRequest {
        handle: handle.into(),
        presented: Presented {
            generation: generation as u64,
            hash: h(s, generation),
        },
        child_hash: h(s, generation + 1),
        now,
        policy: POLICY,
        theft_action: action,
    }
}

fn key(kid: &str, purpose: KeyPurpose, seq: u64, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        purpose,
        seq,
        algorithm: "HS256".into(),
        secret: vec![seq as u8; 32],
        public: vec![],
        created_at,
    }
}

// ---- the checks, each generic over the store ----

async fn migrate_is_idempotent<S: FullStore>(s: &Arc<S>) {
    // Already migrated by the fixture.
    assert_eq!(s.migrate().await.unwrap(), 0);
    assert_eq!(s.migrate().await.unwrap(), 0);
    s.ping().await.unwrap();
}

async fn create_and_read<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    let r = s.session("h1", T0).await.unwrap().expect("live");
    assert_eq!((r.user_id.as_str(), r.generation), ("alice", 0));
    assert_eq!(r.current_hash, h(1, 0));
    assert_eq!(r.previous_hash, None);
    assert_eq!(r.session_data, serde_json::json!({"n": 1}));
    assert_eq!(r.jwt_payload, serde_json::json!({"role": "r"}));
    assert_eq!(
        (r.created_at, r.expires_at, r.rotated_at),
        (T0, T0 + HOUR, T0)
    );
    assert!(s.session("nope", T0).await.unwrap().is_none());
    // A duplicate handle is an error, never an overwrite.
    assert!(s
        .create_session(new_session("h1", "mallory", 9, T0 + HOUR))
        .await
        .is_err());
    assert_eq!(s.session("h1", T0).await.unwrap().unwrap().user_id, "alice");
}

async fn expiry_edges<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    assert!(s.session("h1", T0 + HOUR - 1).await.unwrap().is_some());
    assert!(s.session("h1", T0 + HOUR).await.unwrap().is_none());
    assert!(s
        .user_sessions("alice", T0 + HOUR)
        .await
        .unwrap()
        .is_empty());
    assert!(!s
        .update_session_data("h1", serde_json::json!(1), T0 + HOUR)
        .await
        .unwrap());
    assert!(!s
        .update_jwt_payload("h1", serde_json::json!({}), T0 + HOUR)
        .await
        .unwrap());
    // An expired session cannot be refreshed, and its expiry is not extended.
    let out = s
        .refresh(req("h1", 1, 0, T0 + HOUR, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Unauthorised(UnauthorisedReason::Expired)
    );
    assert!(s.session("h1", T0 + HOUR - 1).await.unwrap().is_some());
}

async fn refresh_rules<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    let now = T0 + 1000;
    // Rule 1: rotate.
    let RefreshOutcome::Rotated(r) = s
        .refresh(req("h1", 1, 0, now, TheftAction::RevokeSession))
        .await
        .unwrap()
    else {
        panic!("expected rotation");
    };
    assert_eq!(
        (r.generation, r.current_hash, r.previous_hash),
        (1, h(1, 1), Some(h(1, 0)))
    );
    assert_eq!(
        (r.rotated_at, r.expires_at),
        (now, now + POLICY.validity_ms)
    );
    assert_eq!(s.session("h1", now).await.unwrap().unwrap(), r);
    // Rule 2: the parent again within the grace window: same row, unchanged.
    let out = s
        .refresh(req("h1", 1, 0, now + 30_000, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::GraceReplay(r.clone()));
    assert_eq!(s.session("h1", now).await.unwrap().unwrap(), r);
    // Rule 4: an unknown generation revokes nothing.
    let out = s
        .refresh(req("h1", 1, 5, now, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownToken)
    );
    let out = s
        .refresh(req("zz", 1, 0, now, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownSession)
    );
    assert!(s.session("h1", now).await.unwrap().is_some());
    // Rule 3: the parent after the grace window is theft: revoked and fed.
    let head = s.revocation_head().await.unwrap();
    let out = s
        .refresh(req("h1", 1, 0, now + 30_001, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Theft {
            handle: "h1".into(),
            user_id: "alice".into(),
            revoked: 1
        }
    );
    assert!(s.session("h1", now).await.unwrap().is_none());
    let feed = s.revocations_since(head, 100).await.unwrap();
    assert_eq!(
        feed.iter().map(|r| r.handle.as_str()).collect::<Vec<_>>(),
        vec!["h1"]
    );
    // The child is refused afterwards too (the session is gone).
    let out = s
        .refresh(req("h1", 1, 1, now + 30_002, TheftAction::RevokeSession))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownSession)
    );
}

async fn theft_revokes_all_user_sessions<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("a1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    s.create_session(new_session("a2", "alice", 2, T0 + HOUR))
        .await
        .unwrap();
    s.create_session(new_session("b1", "bob", 3, T0 + HOUR))
        .await
        .unwrap();
    let now = T0 + 1000;
    for g in 0..2 {
        assert!(matches!(
            s.refresh(req("a1", 1, g, now, TheftAction::RevokeAllUserSessions))
                .await
                .unwrap(),
            RefreshOutcome::Rotated(_)
        ));
    }
    // Generation 0 is two behind: theft regardless of the grace window.
    let out = s
        .refresh(req("a1", 1, 0, now, TheftAction::RevokeAllUserSessions))
        .await
        .unwrap();
    assert_eq!(
        out,
        RefreshOutcome::Theft {
            handle: "a1".into(),
            user_id: "alice".into(),
            revoked: 2
        }
    );
    assert!(s.user_sessions("alice", now).await.unwrap().is_empty());
    assert_eq!(s.user_sessions("bob", now).await.unwrap(), vec!["b1"]);
    let fed: Vec<String> = s
        .revocations_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.handle)
        .collect();
    assert!(fed.contains(&"a1".to_string()) && fed.contains(&"a2".to_string()));
    assert!(!fed.contains(&"b1".to_string()));
}

async fn user_sessions_and_revocation<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("a1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    s.create_session(new_session("a2", "alice", 2, T0 + 2 * HOUR))
        .await
        .unwrap();
    s.create_session(new_session("a3", "alice", 3, T0 + 10))
        .await
        .unwrap();
    s.create_session(new_session("b1", "bob", 4, T0 + HOUR))
        .await
        .unwrap();
    assert_eq!(
        s.user_sessions("alice", T0 + 10).await.unwrap(),
        vec!["a1", "a2"]
    );
    assert!(s.revoke_session("a1", T0).await.unwrap());
    assert!(!s.revoke_session("a1", T0).await.unwrap());
    assert_eq!(s.user_sessions("alice", T0 + 10).await.unwrap(), vec!["a2"]);
    // Revoke-all counts every row of the user (the expired one too) and spares others.
    assert_eq!(s.revoke_user_sessions("alice", T0).await.unwrap(), 2);
    assert_eq!(s.revoke_user_sessions("alice", T0).await.unwrap(), 0);
    assert_eq!(s.user_sessions("bob", T0).await.unwrap(), vec!["b1"]);
    let fed: Vec<String> = s
        .revocations_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.handle)
        .collect();
    assert_eq!(fed.len(), 3);
    assert_eq!(fed[0], "a1");
    assert_eq!(
        s.revocation_head().await.unwrap(),
        s.revocations_since(0, 100).await.unwrap()[2].id
    );
    assert_eq!(s.revocations_since(0, 1).await.unwrap().len(), 1);
}

async fn updates<S: FullStore>(s: &Arc<S>) {
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    assert!(s
        .update_session_data("h1", serde_json::json!({"cart": [1, 2]}), T0)
        .await
        .unwrap());
    // Writing the same value again still reports the live session.
    assert!(s
        .update_session_data("h1", serde_json::json!({"cart": [1, 2]}), T0)
        .await
        .unwrap());
    assert!(s
        .update_jwt_payload("h1", serde_json::json!({"role": "admin"}), T0)
        .await
        .unwrap());
    let r = s.session("h1", T0).await.unwrap().unwrap();
    assert_eq!(r.session_data, serde_json::json!({"cart": [1, 2]}));
    assert_eq!(r.jwt_payload, serde_json::json!({"role": "admin"}));
    assert!(!s
        .update_session_data("nope", serde_json::json!(1), T0)
        .await
        .unwrap());
    assert!(!s
        .update_jwt_payload("nope", serde_json::json!({}), T0)
        .await
        .unwrap());
}

async fn purge<S: FullStore>(s: &Arc<S>) {
    for i in 0..7u8 {
        let exp = if i < 5 { T0 + i as i64 } else { T0 + HOUR };
        s.create_session(new_session(&format!("h{i}"), "u", i, exp))
            .await
            .unwrap();
    }
    s.revoke_session("h6", T0 - 5000).await.unwrap();
    s.create_session(new_session("h7", "u", 7, T0 + HOUR))
        .await
        .unwrap();
    s.revoke_session("h7", T0).await.unwrap();
    // Batches of 2 at T0+4: rows h0..h4 (expires <= T0+4) go, live ones stay.
    let now = T0 + 4;
    assert_eq!(s.purge_expired(now, T0 - 1000, 2).await.unwrap(), 2);
    assert_eq!(s.purge_expired(now, T0 - 1000, 2).await.unwrap(), 2);
    assert_eq!(s.purge_expired(now, T0 - 1000, 2).await.unwrap(), 1);
    assert_eq!(s.purge_expired(now, T0 - 1000, 2).await.unwrap(), 0);
    assert!(s.session("h5", now).await.unwrap().is_some());
    // The feed entry older than feed_before is gone, the newer one stays.
    let fed: Vec<String> = s
        .revocations_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.handle)
        .collect();
    assert_eq!(fed, vec!["h7"]);
}

async fn keys<S: FullStore>(s: &Arc<S>) {
    assert!(s
        .insert_key(key("r1", KeyPurpose::Refresh, 0, T0))
        .await
        .unwrap());
    assert!(!s
        .insert_key(key("r1", KeyPurpose::Refresh, 0, T0 + 1))
        .await
        .unwrap());
    assert!(s
        .insert_key(key("k2", KeyPurpose::Access, 2, T0 + 2000))
        .await
        .unwrap());
    assert!(s
        .insert_key(key("k1", KeyPurpose::Access, 1, T0 + 1000))
        .await
        .unwrap());
    assert!(s
        .insert_key(key("k3", KeyPurpose::Access, 3, T0 + 3000))
        .await
        .unwrap());
    let ks = s.keys().await.unwrap();
    assert_eq!(
        ks.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        vec!["r1", "k1", "k2", "k3"]
    );
    assert_eq!(ks[1], key("k1", KeyPurpose::Access, 1, T0 + 1000));
    // Deleting everything before a far future time still keeps the newest access key and
    // the refresh key.
    assert_eq!(s.delete_access_keys_before(T0 + 99_999).await.unwrap(), 2);
    let ks = s.keys().await.unwrap();
    assert_eq!(
        ks.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        vec!["r1", "k3"]
    );
}

async fn concurrent_same_token<S: FullStore>(s: &Arc<S>, n: usize) {
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.refresh(req("h1", 1, 0, T0 + 1000, TheftAction::RevokeSession))
                    .await
            })
        })
        .collect();
    let (mut rotated, mut replayed) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RefreshOutcome::Rotated(r) => {
                rotated += 1;
                assert_eq!(r.current_hash, h(1, 1));
            }
            RefreshOutcome::GraceReplay(r) => {
                replayed += 1;
                assert_eq!(r.current_hash, h(1, 1));
            }
            other => panic!("concurrent refresh got {other:?}"),
        }
    }
    assert_eq!((rotated, replayed), (1, n - 1));
    let r = s.session("h1", T0 + 1000).await.unwrap().unwrap();
    assert_eq!(
        (r.generation, r.current_hash, r.previous_hash),
        (1, h(1, 1), Some(h(1, 0)))
    );
}

async fn fifty_concurrent_refreshes_of_one_token<S: FullStore>(s: &Arc<S>) {
    concurrent_same_token(s, 50).await;
}

async fn concurrent_many_sessions<S: FullStore>(s: &Arc<S>) {
    for i in 0..200u32 {
        s.create_session(new_session(
            &format!("h{i}"),
            &format!("u{i}"),
            (i % 250) as u8,
            T0 + HOUR,
        ))
        .await
        .unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.refresh(req(
                    &format!("h{i}"),
                    (i % 250) as u8,
                    0,
                    T0 + 1000,
                    TheftAction::RevokeSession,
                ))
                .await
            })
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap());
        }
        out
    })
    .await
    .expect("200 concurrent refreshes finish within 60 s (no deadlock)");
    assert!(all.iter().all(|o| matches!(o, RefreshOutcome::Rotated(_))));
    eprintln!(
        "200 concurrent refreshes of 200 sessions: {:?}",
        started.elapsed()
    );
}

/// Thefts detected at once on several sessions of one user, each revoking all of the user's
/// sessions: every session is revoked exactly once and no call fails (InnoDB deadlocks between
/// the revoke-all transactions are retried by the store).
async fn concurrent_user_thefts<S: FullStore>(s: &Arc<S>) {
    let n = 8u8;
    for i in 0..n {
        s.create_session(new_session(&format!("t{i}"), "victim", i, T0 + HOUR))
            .await
            .unwrap();
        // Rotate twice so generation 0 is a stolen, older token.
        for g in 0..2 {
            s.refresh(req(
                &format!("t{i}"),
                i,
                g,
                T0 + 1,
                TheftAction::RevokeAllUserSessions,
            ))
            .await
            .unwrap();
        }
    }
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.refresh(req(
                    &format!("t{i}"),
                    i,
                    0,
                    T0 + 2,
                    TheftAction::RevokeAllUserSessions,
                ))
                .await
            })
        })
        .collect();
    let mut revoked = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RefreshOutcome::Theft { revoked: r, .. } => revoked += r,
            RefreshOutcome::Unauthorised(UnauthorisedReason::UnknownSession) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(revoked, n as u64, "each session revoked exactly once");
    assert!(s.user_sessions("victim", T0 + 2).await.unwrap().is_empty());
}

// ---- fixtures ----

async fn sqlite_store(db: &TestSqlite) -> SqliteStore {
    let s = SqliteStore::open(Some(&db.path()), &TableNames::default())
        .await
        .unwrap();
    assert_eq!(
        s.migrate().await.unwrap(),
        sessiongate::store::migrate::SQLITE.len()
    );
    s
}

async fn mysql_store(db: &TestMysql, limit: u32) -> MysqlStore {
    let s = MysqlStore::open(&db.url(), limit, &TableNames::default()).unwrap();
    assert!(s.migrate().await.unwrap() <= sessiongate::store::migrate::MYSQL.len());
    s
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = TestSqlite::new();
                    let s = Arc::new(sqlite_store(&db).await);
                    super::$name(&s).await;
                }
            )*
        }
        mod mysql {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = TestMysql::new();
                    let s = Arc::new(mysql_store(&db, 10).await);
                    super::$name(&s).await;
                    s.close().await;
                }
            )*
        }
    };
}

conformance!(
    migrate_is_idempotent,
    create_and_read,
    expiry_edges,
    refresh_rules,
    theft_revokes_all_user_sessions,
    user_sessions_and_revocation,
    updates,
    purge,
    keys,
    concurrent_user_thefts,
    fifty_concurrent_refreshes_of_one_token,
    concurrent_many_sessions,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_job_lock_with_one_connection_does_not_deadlock() {
    let db = TestMysql::new();
    let s = Arc::new(mysql_store(&db, 1).await);
    let inner = s.clone();
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        s.with_job_lock(
            "purge",
            async move { inner.purge_expired(T0, T0, 10).await },
        ),
    )
    .await
    .expect("no deadlock with connection_limit = 1");
    assert_eq!(got.unwrap(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_50_concurrent_refreshes_of_one_token() {
    let db = TestMysql::new();
    // A pool larger than the concurrency (the suite's MySQL pool has 10 connections).
    concurrent_same_token(&Arc::new(mysql_store(&db, 60).await), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_migration_creates_indexes() {
    let db = TestMysql::new();
    let _s = mysql_store(&db, 2).await;
    let idx = db.query(&format!(
        "SELECT column_name FROM information_schema.statistics WHERE table_schema = '{}' \
         AND table_name = 'refresh_token' AND index_name <> 'PRIMARY' ORDER BY column_name",
        db.db
    ));
    let cols: Vec<&str> = idx.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(cols, vec!["expires_at_ms", "user_id"]);
    let tables = db.query(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' ORDER BY table_name",
        db.db
    ));
    let names: Vec<&str> = tables.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "refresh_token",
            "sessiongate_legacy_conversions",
            "sessiongate_migrations",
            "sessiongate_revocation",
            "signing_key"
        ]
    );
    let before = db.query("SELECT version, applied_at_ms FROM sessiongate_migrations");
    let s2 = mysql_store(&db, 2).await;
    assert_eq!(s2.migrate().await.unwrap(), 0);
    assert_eq!(
        db.query("SELECT version, applied_at_ms FROM sessiongate_migrations"),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_custom_table_names() {
    let db = TestMysql::new();
    let t = TableNames {
        signing_key: "sk_custom".into(),
        refresh_tokens: "rt_custom".into(),
    };
    let s = MysqlStore::open(&db.url(), 4, &t).unwrap();
    assert_eq!(
        s.migrate().await.unwrap(),
        sessiongate::store::migrate::MYSQL.len()
    );
    s.create_session(new_session("h1", "alice", 1, T0 + HOUR))
        .await
        .unwrap();
    assert_eq!(
        db.query("SELECT user_id FROM rt_custom"),
        vec![vec!["alice".to_string()]]
    );
    assert!(s
        .insert_key(key("r1", KeyPurpose::Refresh, 0, T0))
        .await
        .unwrap());
    assert_eq!(
        db.query("SELECT kid FROM sk_custom"),
        vec![vec!["r1".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_two_instances_insert_one_key() {
    let db = TestMysql::new();
    let a = Arc::new(mysql_store(&db, 4).await);
    let b = Arc::new(mysql_store(&db, 4).await);
    for round in 0..10u64 {
        let (ra, rb) = tokio::join!(
            a.insert_key(key(&format!("k{round}"), KeyPurpose::Access, round, T0)),
            b.insert_key(key(&format!("k{round}"), KeyPurpose::Access, round, T0 + 1)),
        );
        assert!(
            ra.unwrap() ^ rb.unwrap(),
            "exactly one insert wins in round {round}"
        );
    }
    assert_eq!(a.keys().await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_job_lock_excludes_a_second_instance() {
    let db = TestMysql::new();
    let a = Arc::new(mysql_store(&db, 4).await);
    let b = Arc::new(mysql_store(&db, 4).await);
    let name = format!("sgtest_lock_{}", db.db);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let a2 = a.clone();
    let n2 = name.clone();
    let holder = tokio::spawn(async move {
        a2.with_job_lock(&n2, async move {
            let _ = held_tx.send(());
            let _ = rx.await;
            Ok(1)
        })
        .await
    });
    held_rx.await.unwrap();
    assert_eq!(b.with_job_lock(&name, async { Ok(2) }).await.unwrap(), None);
    tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), Some(1));
    assert_eq!(
        b.with_job_lock(&name, async { Ok(3) }).await.unwrap(),
        Some(3)
    );
}

/// `GET_LOCK` names are server-wide: the store prefixes them with the database name, so two
/// gateways on different databases of one server each run their own jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_job_locks_of_other_databases_do_not_exclude_each_other() {
    let (db_a, db_b) = (TestMysql::new(), TestMysql::new());
    let a = Arc::new(mysql_store(&db_a, 2).await);
    let b = Arc::new(mysql_store(&db_b, 2).await);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let a2 = a.clone();
    let holder = tokio::spawn(async move {
        a2.with_job_lock("purge", async move {
            let _ = held_tx.send(());
            let _ = rx.await;
            Ok(1)
        })
        .await
    });
    held_rx.await.unwrap();
    assert_eq!(
        b.with_job_lock("purge", async { Ok(2) }).await.unwrap(),
        Some(2),
        "a lock held on another database must not exclude this one"
    );
    tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_unreachable_is_unavailable_quickly() {
    // A port nothing listens on.
    let port = free_port();
    let s = MysqlStore::open(
        &format!("mysql://root@127.0.0.1:{port}/x"),
        4,
        &TableNames::default(),
    )
    .unwrap();
    let started = Instant::now();
    let e = s.ping().await.unwrap_err();
    assert!(
        matches!(e, sessiongate::store::StoreError::Unavailable(_)),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn open_by_config_url() {
    let db = TestSqlite::new();
    let cfg = StoreConfig {
        url: StoreUrl::Sqlite(db.path()),
        connection_limit: 5,
        auto_migrate: true,
        tables: TableNames::default(),
    };
    let s = sessiongate::store::open(&cfg).await.unwrap();
    assert!(matches!(s, AnyStore::Sqlite(_)));
    assert_eq!(
        s.migrate().await.unwrap(),
        sessiongate::store::migrate::SQLITE.len()
    );
    let mem = sessiongate::store::open(&StoreConfig {
        url: StoreUrl::SqliteMemory,
        ..cfg
    })
    .await
    .unwrap();
    assert_eq!(
        mem.migrate().await.unwrap(),
        sessiongate::store::migrate::SQLITE.len()
    );
    mem.create_session(new_session("m", "u", 1, T0 + HOUR))
        .await
        .unwrap();
    assert!(mem.session("m", T0).await.unwrap().is_some());
}
