//! Micro-benchmarks of the pure session core (`cargo bench --bench core`): access-token mint
//! and verify (HS256 and EdDSA), refresh-token parse + child derivation, the rotation
//! decision. Plain timing loops (harness = false), median of 5 rounds, nanoseconds per op.

use std::hint::black_box;
use std::time::Instant;

use sessiongate::config::SigningAlgorithm;
use sessiongate::keys::ring::{new_access_key, new_refresh_key};
use sessiongate::keys::KeyRing;
use sessiongate::session::access::{self, AccessClaims};
use sessiongate::session::refresh::{RefreshToken, SessionHandle};
use sessiongate::session::rotation::{decide, Presented, RotationPolicy, RotationState};

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
        let rows = vec![new_refresh_key(0), new_access_key(1, alg, 0)];
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
    let ring = KeyRing::from_stored(&[new_refresh_key(0)]).unwrap();
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
}
