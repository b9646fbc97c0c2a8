//! Property tests of the parsers and the token core (issue 8, item 13): cookie parsing,
//! refresh-token parsing and access-token (JWT) verification never panic on arbitrary input,
//! find what they should, and never accept a forged or altered token.
//!
//! Each property runs 10,000 cases in a plain `cargo test`, except the EdDSA one (200:
//! Ed25519 is very slow in an unoptimised build; the HS256 properties cover the same
//! verification path for the bulk).
//! `PROPTEST_CASES` sets the count for every property, e.g. a million:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release --test it fuzz_core::
//! ```
//!
//! Pure functions only: no sockets, no store, no clock (time is a parameter).

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use http::header::{HeaderMap, HeaderValue, COOKIE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};
use sessiongate::config::SigningAlgorithm;
use sessiongate::http::cookies::{self, cookie};
use sessiongate::keys::fresh_secret;
use sessiongate::keys::ring::{new_access_key, new_refresh_key};
use sessiongate::keys::{KeyRing, RefreshKey};
use sessiongate::session::access::{self, AccessClaims, AccessError};
use sessiongate::session::refresh::{RefreshToken, RefreshTokenError, SessionHandle};
use sessiongate::store::StoredKey;

/// `now` for every verification: 2023-11-14.
const NOW: i64 = 1_700_000_000_000;

/// Cases per property: `$PROPTEST_CASES`, else `default`.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure is shrunk and printed; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------------

/// Headers holding `values` as separate `Cookie` headers (HTTP/2 sends crumbs this way);
/// values that are not valid header bytes are skipped, as hyper would refuse them.
fn cookie_headers<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(COOKIE, v);
        }
    }
    h
}

/// Strings of `len` characters drawn from `alphabet`. (Proptest's regex strategies are slow
/// in an unoptimised build; these are not.)
fn text_of(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(prop::sample::select(chars), len).prop_map(String::from_iter)
}

/// Strings of `len` arbitrary characters (any Unicode scalar value).
fn any_text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), len).prop_map(String::from_iter)
}

const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Visible ASCII.
fn visible() -> String {
    (' '..='~').collect()
}

/// A cookie name or value fragment as browsers and attackers send them: any visible ASCII
/// but `;`, plus spaces, tabs and some UTF-8.
fn crumb() -> impl Strategy<Value = String> {
    let alphabet: String = visible()
        .chars()
        .filter(|c| *c != ';')
        .chain(['\t', 'é', '☃'])
        .collect();
    text_of(&alphabet, 0..25)
}

/// A value the gateway would have written: base64url / JWT text.
fn token_value() -> impl Strategy<Value = String> {
    text_of(&format!("{B64URL}."), 0..201)
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn cookie_parsing_never_panics(
        headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4),
        name in text_of(&visible(), 0..17),
    ) {
        let h = cookie_headers(headers.iter().map(Vec::as_slice));
        for n in [cookies::ACCESS, cookies::REFRESH, cookies::ID_REFRESH, name.as_str()] {
            let _ = cookie(&h, n);
        }
    }

    #[test]
    fn cookie_is_found_among_arbitrary_others(
        others in prop::collection::vec((crumb(), prop::option::of(crumb())), 0..12),
        position in any::<prop::sample::Index>(),
        split in any::<prop::sample::Index>(),
        value in token_value(),
        which in 0usize..3,
        quoted in any::<bool>(),
    ) {
        let name = [cookies::ACCESS, cookies::REFRESH, cookies::ID_REFRESH][which];
        // Other cookies, and junk without `=`; none named like the one we look for.
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(n, _)| n.trim_matches([' ', '\t']) != name)
            .map(|(n, v)| match v {
                Some(v) => format!("{n}={v}"),
                None => n.replace('=', ""),
            })
            .collect();
        let shown = if quoted { format!("\"{value}\"") } else { value.clone() };
        pairs.insert(position.index(pairs.len() + 1), format!("{name}={shown}"));
        // Spread over one or two Cookie headers.
        let cut = split.index(pairs.len() + 1);
        let (a, b) = pairs.split_at(cut);
        let (a, b) = (a.join("; "), b.join("; "));
        let h = cookie_headers([a.as_bytes(), b.as_bytes()].into_iter().filter(|s| !s.is_empty()));
        prop_assert_eq!(cookie(&h, name), Some(Cow::Borrowed(value.as_str())));
    }

    #[test]
    fn cookie_names_are_matched_exactly(
        others in prop::collection::vec((crumb(), crumb()), 0..6),
        decoy in prop::sample::select(vec![
            "sRefreshTokenX", "XsRefreshToken", "sRefreshToken_", "srefreshtoken",
            "SREFRESHTOKEN", "sRefreshToke", "RefreshToken", "sRefresh Token",
            "sRefreshToken\u{e9}", "sAccessToken", "sIdRefreshToken", "sRefreshToken%00",
        ]),
        decoy_value in token_value(),
        genuine in prop::option::of(token_value()),
        genuine_first in any::<bool>(),
    ) {
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(n, _)| n.trim_matches([' ', '\t']) != cookies::REFRESH)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.push(format!("{decoy}={decoy_value}"));
        if let Some(g) = &genuine {
            let at = if genuine_first { 0 } else { pairs.len() };
            pairs.insert(at, format!("{}={g}", cookies::REFRESH));
        }
        let line = pairs.join("; ");
        let h = cookie_headers([line.as_bytes()]);
        prop_assert_eq!(cookie(&h, cookies::REFRESH), genuine.as_deref().map(Cow::Borrowed));
    }
}

// ---------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------

fn refresh_key(bytes: [u8; 32]) -> RefreshKey {
    RefreshKey::from_bytes(&bytes).unwrap()
}

/// A valid token text: a root token and `generations` rotations.
fn refresh_token(key: &RefreshKey, handle: [u8; 16], secret: [u8; 16], generations: u8) -> String {
    let mut t = RefreshToken::root(key, SessionHandle(handle), secret);
    for _ in 0..generations {
        t = t.child(key);
    }
    t.to_text()
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn refresh_parse_never_panics(text in any::<String>(), b64 in text_of(B64URL, 98..99)) {
        let key = refresh_key([7; 32]);
        let _ = RefreshToken::parse(&text, &key);
        // Right length and alphabet, so parsing reaches decoding and the MAC.
        prop_assert!(RefreshToken::parse(&b64, &key).is_err());
    }

    #[test]
    fn refresh_token_alterations_are_refused(
        key in any::<[u8; 32]>(),
        handle in any::<[u8; 16]>(),
        secret in any::<[u8; 16]>(),
        generations in 0u8..4,
        at in any::<prop::sample::Index>(),
        replacement in any::<char>(),
        cut in any::<prop::sample::Index>(),
        extra in prop_oneof![any_text(1..9), text_of(B64URL, 1..9)],
    ) {
        let key = refresh_key(key);
        let text = refresh_token(&key, handle, secret, generations);
        let genuine = RefreshToken::parse(&text, &key).unwrap();
        prop_assert_eq!(genuine.handle, SessionHandle(handle));
        prop_assert_eq!(genuine.generation, u64::from(generations));

        // One character replaced by any other character.
        let mut chars: Vec<char> = text.chars().collect();
        let i = at.index(chars.len());
        if chars[i] != replacement {
            chars[i] = replacement;
            let mutated: String = chars.iter().collect();
            prop_assert!(RefreshToken::parse(&mutated, &key).is_err(), "{}", mutated);
        }
        // Truncated, extended, or with a character removed.
        let truncated = &text[..cut.index(text.len())];
        prop_assert_eq!(RefreshToken::parse(truncated, &key), Err(RefreshTokenError::Malformed));
        let extended = format!("{text}{extra}");
        prop_assert_eq!(RefreshToken::parse(&extended, &key), Err(RefreshTokenError::Malformed));
        let mut removed = text.clone();
        removed.remove(at.index(text.len()));
        prop_assert_eq!(RefreshToken::parse(&removed, &key), Err(RefreshTokenError::Malformed));
    }

    #[test]
    fn refresh_token_of_another_key_is_refused(
        key in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        handle in any::<[u8; 16]>(),
        secret in any::<[u8; 16]>(),
    ) {
        prop_assume!(key != other);
        let text = refresh_token(&refresh_key(other), handle, secret, 0);
        prop_assert_eq!(
            RefreshToken::parse(&text, &refresh_key(key)),
            Err(RefreshTokenError::BadMac)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Access tokens (JWT)
// ---------------------------------------------------------------------------------------

/// A ring with access keys `k1` (older) and `k2` (signing) of `alg`, and the rows behind it
/// (the tests need the secrets to sign with).
fn ring(alg: SigningAlgorithm) -> (KeyRing, Vec<StoredKey>) {
    let rows = vec![
        new_refresh_key(0, fresh_secret()),
        new_access_key(1, alg, 0, fresh_secret()),
        new_access_key(2, alg, 1, fresh_secret()),
    ];
    (KeyRing::from_stored(&rows).unwrap(), rows)
}

struct Rings {
    hs: KeyRing,
    hs_rows: Vec<StoredKey>,
    /// Same `kid`s and algorithm, other secrets: another deployment.
    other: KeyRing,
    ed: KeyRing,
}

fn rings() -> &'static Rings {
    static RINGS: std::sync::OnceLock<Rings> = std::sync::OnceLock::new();
    RINGS.get_or_init(|| {
        let (hs, hs_rows) = ring(SigningAlgorithm::Hs256);
        Rings {
            hs,
            hs_rows,
            other: ring(SigningAlgorithm::Hs256).0,
            ed: ring(SigningAlgorithm::EdDsa).0,
        }
    })
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any_text(0..13).prop_map(serde_json::Value::from),
    ]
}

fn json_object() -> impl Strategy<Value = serde_json::Value> {
    let value = json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any_text(0..7), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(any_text(0..9), value, 0..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

prop_compose! {
    /// Claims valid at [`NOW`] (expiry 1 s to 1 day ahead).
    fn live_claims()(
        sub in any_text(1..41),
        sid in text_of(B64URL, 22..23),
        age in 0i64..86_400,
        ttl in 1i64..86_400,
        anti_csrf in prop::option::of(text_of(B64URL, 43..44)),
        payload in json_object(),
    ) -> AccessClaims {
        let now_s = NOW / 1000;
        AccessClaims { sub, sid, iat: now_s - age, exp: now_s + ttl, anti_csrf, payload }
    }
}

/// Decodes base64url leniently (trailing bits allowed, padding optional): what a sloppy
/// decoder would read, to tell a real change from one that only touches unused bits.
fn lenient_decode(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

/// Whether `forged` differs from `genuine` only in the signature's unused trailing bits: the
/// same header and payload text and the same signature bytes, so it is the genuine token
/// spelled differently, not a forgery. Any other change alters the signed text or the
/// signature and must be refused.
fn same_token(genuine: &str, forged: &str) -> bool {
    let g: Vec<&str> = genuine.split('.').collect();
    let f: Vec<&str> = forged.split('.').collect();
    g.len() == 3
        && f.len() == 3
        && g[..2] == f[..2]
        && matches!((lenient_decode(g[2]), lenient_decode(f[2])), (Some(x), Some(y)) if x == y)
}

/// `token` with the byte at `at` replaced by `replacement` (the case is rejected when that
/// byte is already `replacement`), or `None` when the result is still the same token
/// (see [`same_token`]): what a single-byte forgery of `token` looks like.
fn flipped(
    token: &str,
    at: prop::sample::Index,
    replacement: u8,
) -> Result<Option<String>, TestCaseError> {
    let mut bytes = token.as_bytes().to_vec();
    let i = at.index(bytes.len());
    prop_assume!(bytes[i] != replacement);
    bytes[i] = replacement;
    let flipped = String::from_utf8(bytes).unwrap();
    Ok((!same_token(token, &flipped)).then_some(flipped))
}

fn header_json(alg: &str, kid: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"JWT","alg":"{alg}","kid":"{kid}"}}"#))
}

fn with_segment(token: &str, i: usize, seg: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = seg;
    parts.join(".")
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn jwt_verify_never_panics(
        text in any::<String>(),
        segments in prop::collection::vec(text_of(&format!("{B64URL}=+/"), 0..61), 0..5),
        header in any_text(0..81),
    ) {
        let r = rings();
        let _ = access::verify(&text, &r.hs, NOW);
        let _ = access::verify(&segments.join("."), &r.hs, NOW);
        // A decodable header with arbitrary JSON-ish content.
        let crafted = format!("{}.e30.AAAA", URL_SAFE_NO_PAD.encode(&header));
        let _ = access::verify(&crafted, &r.hs, NOW);
        prop_assert!(access::verify(&text, &r.hs, NOW).is_err());
    }

    #[test]
    fn jwt_genuine_verifies_and_every_byte_flip_is_refused(
        claims in live_claims(),
        signer in 1usize..3,
        at in any::<prop::sample::Index>(),
        replacement in 0x20u8..0x7f,
    ) {
        let r = rings();
        let key = r.hs.verifying_key(&format!("k{signer}")).unwrap();
        let token = access::mint(&claims, key).unwrap();
        prop_assert_eq!(access::verify(&token, &r.hs, NOW), Ok(claims.clone()));
        // Expiry is checked against `now`, cached or not.
        prop_assert_eq!(
            access::verify(&token, &r.hs, claims.expires_at_ms()),
            Err(AccessError::Expired)
        );

        if let Some(flipped) = flipped(&token, at, replacement)? {
            prop_assert!(access::verify(&flipped, &r.hs, NOW).is_err(), "{}", flipped);
        }
    }

    #[test]
    fn jwt_forgeries_are_refused(
        claims in live_claims(),
        evil_sub in any_text(1..21),
        wrong_secret in prop::collection::vec(any::<u8>(), 32..64),
        alg in prop::sample::select(vec!["none", "None", "HS384", "HS512", "EdDSA", "RS256", "ES256", "PS256", "", "hs256"]),
        kid in prop::sample::select(vec!["k1", "k3", "", "k2 ", "K2", "s-000000000000", "../k2"]),
        compact in any::<bool>(),
    ) {
        let r = rings();
        let signer = r.hs.signing_key().unwrap();
        let token = access::mint(&claims, signer).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // Random claims signed with a wrong key, under the real kid.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(signer.kid.clone());
        let wrong = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&wrong_secret)).unwrap();
        prop_assert_eq!(access::verify(&wrong, &r.hs, NOW), Err(AccessError::BadSignature));
        // A genuine token of another deployment (same kids, other secrets).
        prop_assert_eq!(access::verify(&token, &r.other, NOW), Err(AccessError::BadSignature));

        // The header's alg swapped, keeping payload and signature; and, for the HMAC family,
        // re-signed with the real secret under the other algorithm.
        let swapped = with_segment(&token, 0, &header_json(alg, &signer.kid));
        prop_assert!(access::verify(&swapped, &r.hs, NOW).is_err());
        let unsigned = format!("{}.{}.", header_json(alg, &signer.kid), parts[1]);
        prop_assert!(access::verify(&unsigned, &r.hs, NOW).is_err());
        let secret = &r.hs_rows.iter().find(|k| k.kid == signer.kid).unwrap().secret;
        let mut h = Header::new(if compact { Algorithm::HS384 } else { Algorithm::HS512 });
        h.kid = Some(signer.kid.clone());
        let resigned = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap();
        prop_assert_eq!(access::verify(&resigned, &r.hs, NOW), Err(AccessError::AlgorithmMismatch));

        // The kid changed, signature kept.
        if kid != signer.kid {
            let rekeyed = with_segment(&token, 0, &header_json("HS256", kid));
            prop_assert!(access::verify(&rekeyed, &r.hs, NOW).is_err());
        }

        // The payload re-encoded (claims changed, or the same claims spelled differently)
        // with the original signature.
        let mut evil = claims.clone();
        evil.sub = evil_sub;
        let json = if compact {
            serde_json::to_string(&evil).unwrap()
        } else {
            serde_json::to_string_pretty(&claims).unwrap()
        };
        let payload = URL_SAFE_NO_PAD.encode(json);
        if payload != parts[1] {
            let tampered = with_segment(&token, 1, &payload);
            prop_assert_eq!(access::verify(&tampered, &r.hs, NOW), Err(AccessError::BadSignature));
        }
    }
}

proptest! {
    // Ed25519 verification takes ~20-50 ms in an unoptimised build (50 µs optimised): 200
    // cases by default; HS256 above covers the shared verification path 10,000 times.
    #![proptest_config(cases(200))]

    #[test]
    fn jwt_eddsa_genuine_verifies_and_flips_are_refused(
        claims in live_claims(),
        at in any::<prop::sample::Index>(),
        replacement in 0x20u8..0x7f,
    ) {
        let r = rings();
        let token = access::mint(&claims, r.ed.signing_key().unwrap()).unwrap();
        prop_assert_eq!(access::verify(&token, &r.ed, NOW), Ok(claims.clone()));
        // An EdDSA token presented to an HS256 ring, and the reverse.
        prop_assert!(access::verify(&token, &r.hs, NOW).is_err());
        let hs_token = access::mint(&claims, r.hs.signing_key().unwrap()).unwrap();
        prop_assert!(access::verify(&hs_token, &r.ed, NOW).is_err());

        if let Some(flipped) = flipped(&token, at, replacement)? {
            prop_assert!(access::verify(&flipped, &r.ed, NOW).is_err(), "{}", flipped);
        }
    }
}
