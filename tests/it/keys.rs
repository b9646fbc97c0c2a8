//! The key ring against real stores: first start creates keys once, concurrent rotation by
//! two instances on one MySQL database creates exactly one key, both instances verify tokens
//! signed by either, old keys keep verifying after a rotation, and a static secret file works.

use std::sync::Arc;
use std::time::Duration;

use sessiongate::clock::Clock;
use sessiongate::config::{SigningAlgorithm, TableNames};
use sessiongate::keys::{KeyCache, KeyPolicy};
use sessiongate::session::access::{self, AccessClaims, AccessError};
use sessiongate::store::mysql::MysqlStore;
use sessiongate::store::sqlite::SqliteStore;
use sessiongate::store::{KeyPurpose, KeyStore, Maintenance};

use crate::support::db;

fn policy(alg: SigningAlgorithm) -> KeyPolicy {
    KeyPolicy {
        dynamic: true,
        interval_ms: 3_600_000,
        algorithm: alg,
        max_validity_ms: 600_000,
        static_secret: None,
    }
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        sub: "u".into(),
        sid: "s".into(),
        iat: now / 1000,
        exp: now / 1000 + 600,
        anti_csrf: None,
        payload: serde_json::json!({}),
    }
}

async fn mysql(db: &db::TestMysql) -> Arc<MysqlStore> {
    let s = MysqlStore::open(&db.url(), 4, &TableNames::default()).unwrap();
    s.migrate().await.unwrap();
    Arc::new(s)
}

fn sign(cache: &KeyCache<impl KeyStore>, now: i64) -> String {
    access::mint(&claims(now), cache.ring().unwrap().signing_key().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_start_and_rotate_together_on_mysql() {
    for alg in [SigningAlgorithm::Hs256, SigningAlgorithm::EdDsa] {
        let db = db::TestMysql::new();
        let (sa, sb) = (mysql(&db).await, mysql(&db).await);
        let clock = Clock::system();
        // Both start on an empty table at the same moment.
        let (a, b) = tokio::join!(
            KeyCache::load(sa.clone(), policy(alg), clock.clone()),
            KeyCache::load(sb.clone(), policy(alg), clock.clone()),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let count = |purpose: KeyPurpose, keys: &[sessiongate::store::StoredKey]| {
            keys.iter().filter(|k| k.purpose == purpose).count()
        };
        let keys = sa.keys().await.unwrap();
        assert_eq!(
            (
                count(KeyPurpose::Refresh, &keys),
                count(KeyPurpose::Access, &keys)
            ),
            (1, 1)
        );
        assert_eq!(
            a.ring().unwrap().signing_key().unwrap().kid,
            b.ring().unwrap().signing_key().unwrap().kid
        );

        let now = clock.now_ms();
        let old_token = sign(&a, now);
        // A forced rotation on one instance; the other picks the key up when a token names it.
        let forced = a.force_rotate().await.unwrap();
        assert_eq!(count(KeyPurpose::Access, &sa.keys().await.unwrap()), 2);
        let from_a = sign(&a, now);
        assert_eq!(
            access::verify(&from_a, &b.ring().unwrap(), now),
            Err(AccessError::UnknownKey),
            "b has not loaded {forced} yet"
        );
        b.reload().await.unwrap();
        access::verify(&from_a, &b.ring().unwrap(), now).unwrap();
        // The pre-rotation token keeps verifying on both: no client is refused.
        for cache in [&a, &b] {
            access::verify(&old_token, &cache.ring().unwrap(), now).unwrap();
        }
        // Both are due for a scheduled rotation later, at the same moment: one more key.
        clock.advance(Duration::from_secs(3601));
        let (ra, rb) = tokio::join!(a.rotate_if_due(), b.rotate_if_due());
        let created = [ra.unwrap(), rb.unwrap()]
            .iter()
            .filter(|c| c.is_some())
            .count();
        assert_eq!(created, 1, "exactly one instance created the key");
        // k1 stopped signing an hour ago (tokens live 10 min): pruned; k2 and k3 remain.
        let kids: Vec<String> = sa
            .keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.purpose == KeyPurpose::Access)
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, vec!["k2", "k3"]);
        // Tokens signed by either instance verify on both.
        let now = clock.now_ms();
        let (ta, tb) = (sign(&a, now), sign(&b, now));
        for cache in [&a, &b] {
            for t in [&ta, &tb] {
                access::verify(t, &cache.ring().unwrap(), now).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_keys_are_dropped_only_after_their_tokens_expired() {
    let dir = db::TestSqlite::new();
    let store = Arc::new(
        SqliteStore::open(Some(&dir.path()), &TableNames::default())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let clock = Clock::system();
    let cache = KeyCache::load(
        store.clone(),
        policy(SigningAlgorithm::Hs256),
        clock.clone(),
    )
    .await
    .unwrap();
    let t0 = clock.now_ms();
    let first = sign(&cache, t0);
    clock.advance(Duration::from_secs(3600));
    assert!(cache.rotate_if_due().await.unwrap().is_some());
    // Right after the rotation the old token (10 min validity) still verifies.
    clock.advance(Duration::from_secs(60));
    let rotated_at = clock.now_ms();
    assert!(cache.rotate_if_due().await.unwrap().is_none());
    assert!(cache.ring().unwrap().verifying_key("k1").is_some());
    assert!(access::verify(&first, &cache.ring().unwrap(), t0 + 1000).is_ok());
    // Validity (10 min) plus the minute of margin later, k1 is gone.
    clock.advance(Duration::from_secs(11 * 60 + 1));
    cache.rotate_if_due().await.unwrap();
    assert!(cache.ring().unwrap().verifying_key("k1").is_none());
    assert_eq!(
        access::verify(&first, &cache.ring().unwrap(), rotated_at),
        Err(AccessError::UnknownKey)
    );
    assert_eq!(cache.ring().unwrap().kids(), vec!["k2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(None, &TableNames::default())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let p = KeyPolicy {
        static_secret: Some(b"an operator-managed secret of at least 32 bytes".to_vec()),
        ..policy(SigningAlgorithm::Hs256)
    };
    let a = KeyCache::load(store.clone(), p.clone(), Clock::system())
        .await
        .unwrap();
    let b = KeyCache::load(store.clone(), p, Clock::system())
        .await
        .unwrap();
    let now = Clock::system().now_ms();
    access::verify(&sign(&a, now), &b.ring().unwrap(), now).unwrap();
    assert!(
        a.force_rotate().await.is_err(),
        "static keys are not rotated"
    );
    assert!(
        store.keys().await.unwrap().is_empty(),
        "no secret written to the store"
    );
    let short = KeyPolicy {
        static_secret: Some(b"short".to_vec()),
        ..policy(SigningAlgorithm::Hs256)
    };
    assert!(KeyCache::load(store, short, Clock::system()).await.is_err());
    drop(dir);
}
