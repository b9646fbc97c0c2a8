//! Micro-benchmarks of the pure session core (`cargo bench --bench core`): access-token mint
//! and verify (HS256 and EdDSA), refresh-token parse + child derivation, the rotation
//! decision, the verified-token cache (hit, and memory after 200,000 distinct tokens). Plain
//! timing loops (harness = false), median of 5 rounds, nanoseconds per op.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use sessiongate::config::SigningAlgorithm;
use sessiongate::keys::fresh_secret;
use sessiongate::keys::ring::{new_access_key, new_refresh_key};
use sessiongate::keys::KeyRing;
use sessiongate::session::access::{self, AccessClaims};
use sessiongate::session::refresh::{RefreshToken, SessionHandle};
use sessiongate::session::rotation::{decide, Presented, RotationPolicy, RotationState};
use sessiongate::sessions::{VerifiedTokens, VERIFIED_CACHE_BYTES};

fn median_ns(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    rounds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rounds[2]
}

fn main() {
    let now = 1_700_000_000_000;
    let claims = AccessClaims {
        sub: "user-123".into(),
        sid: "AbCdEfGhIjKlMnOpQrStUv".into(),
        iat: now / 1000,
        exp: now / 1000 + 3600,
        anti_csrf: Some("csrf-token-abcdefghij".into()),
        payload: serde_json::json!({"role": "member", "tenant": 42}),
    };
    println!("{:<40} {:>12}", "operation", "ns/op");
    for alg in [SigningAlgorithm::Hs256, SigningAlgorithm::EdDsa] {
        let rows = vec![
            new_refresh_key(0, fresh_secret()),
            new_access_key(1, alg, 0, fresh_secret()),
        ];
        let ring = KeyRing::from_stored(&rows).unwrap();
        let key = ring.signing_key().unwrap();
        let token = access::mint(&claims, key).unwrap();
        let mint = median_ns(20_000, || {
            black_box(access::mint(black_box(&claims), key).unwrap());
        });
        let verify = median_ns(20_000, || {
            black_box(access::verify(black_box(&token), &ring, now).unwrap());
        });
        println!(
            "{:<40} {:>12.0}",
            format!("access token mint ({})", alg.as_str()),
            mint
        );
        println!(
            "{:<40} {:>12.0}",
            format!("access token verify ({})", alg.as_str()),
            verify
        );
    }
    let ring = KeyRing::from_stored(&[new_refresh_key(0, fresh_secret())]).unwrap();
    let rk = ring.refresh_key();
    let root = RefreshToken::root(rk, SessionHandle([7; 16]), [9; 16]);
    let text = root.to_text();
    let parse_child = median_ns(50_000, || {
        let t = RefreshToken::parse(black_box(&text), rk).unwrap();
        black_box(t.child(rk).hash());
    });
    println!(
        "{:<40} {:>12.0}",
        "refresh token parse + child + hash", parse_child
    );
    let state = RotationState {
        generation: 3,
        current_hash: [3; 32],
        previous_hash: Some([2; 32]),
        rotated_at: now - 1000,
        expires_at: now + 1_000_000,
    };
    let presented = Presented {
        generation: 3,
        hash: [3; 32],
    };
    let policy = RotationPolicy {
        grace_ms: 30_000,
        validity_ms: 3_600_000,
    };
    let d = median_ns(1_000_000, || {
        black_box(decide(
            Some(black_box(&state)),
            black_box(&presented),
            now,
            policy,
        ));
    });
    println!("{:<40} {:>12.1}", "rotation decision", d);
    verified_cache(&claims, now);
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// What `Sessions::verify` does on a miss, for tokens `range` (each distinct): verify, then
/// remember.
fn fill(
    cache: &VerifiedTokens,
    ring: &KeyRing,
    template: &AccessClaims,
    now: i64,
    range: std::ops::Range<usize>,
) {
    let key = ring.signing_key().unwrap();
    for i in range {
        let c = AccessClaims {
            sub: format!("user-{i}"),
            ..template.clone()
        };
        let token = access::mint(&c, key).unwrap();
        let verified = access::verify(&token, ring, now).unwrap();
        cache.insert(&token, Arc::new(verified));
    }
}

/// The cache's hit cost and memory: with the default bound after 200,000 distinct tokens
/// (first, on a fresh heap), then the weight estimate against measured RSS growth per entry
/// (a cache with room for everything, between 50,000 and 100,000 entries).
fn verified_cache(template: &AccessClaims, now: i64) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let ring = KeyRing::from_stored(&[
        new_refresh_key(0, fresh_secret()),
        new_access_key(1, SigningAlgorithm::Hs256, 0, fresh_secret()),
    ])
    .unwrap();
    let token = access::mint(template, ring.signing_key().unwrap()).unwrap();

    let cache = VerifiedTokens::default();
    let before = rss_bytes();
    fill(&cache, &ring, template, now, 0..200_000);
    let grown = rss_bytes().saturating_sub(before);
    cache.insert(&token, Arc::new(template.clone()));
    let hit = median_ns(1_000_000, || {
        black_box(cache.get(black_box(&token), now));
    });
    println!("{:<40} {:>12.0}", "verified-token cache hit", hit);
    // What a hit cost before the cache was bounded in bytes: a read-locked HashMap.
    let map: std::sync::RwLock<std::collections::HashMap<Box<str>, Arc<AccessClaims>>> =
        Default::default();
    for i in 0..10_000 {
        map.write()
            .unwrap()
            .insert(format!("{token}{i}").into(), Arc::new(template.clone()));
    }
    map.write()
        .unwrap()
        .insert(token.as_str().into(), Arc::new(template.clone()));
    let old_hit = median_ns(1_000_000, || {
        let m = map.read().unwrap();
        black_box(
            m.get(black_box(token.as_str()))
                .filter(|c| now < c.expires_at_ms())
                .cloned(),
        );
    });
    println!(
        "{:<40} {:>12.0}",
        "  (before: RwLock<HashMap> hit)", old_hit
    );
    drop(map);
    println!(
        "200,000 distinct tokens, bound {:.0} MiB: {} entries, weight {:.2} MiB, RSS +{:.1} MiB",
        mib(VERIFIED_CACHE_BYTES),
        cache.len(),
        mib(cache.weight()),
        mib(grown),
    );
    drop(cache);

    let roomy = VerifiedTokens::new(1 << 30);
    fill(&roomy, &ring, template, now, 1_000_000..1_050_000);
    let (rss_a, len_a, weight_a) = (rss_bytes(), roomy.len(), roomy.weight());
    fill(&roomy, &ring, template, now, 1_050_000..1_100_000);
    let entries = (roomy.len() - len_a) as u64;
    println!(
        "token {} B: estimated {} B/entry, measured {} B/entry (RSS growth over {entries} entries)",
        token.len(),
        (roomy.weight() - weight_a) / entries,
        rss_bytes().saturating_sub(rss_a) / entries,
    );
}
