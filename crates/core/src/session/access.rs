//! Access tokens: standard JWTs (jsonwebtoken) with `kid` in the header and the claims
//! `sub`, `sid`, `iat`, `exp`, `anti_csrf` and `payload`.
//!
//! Verification never trusts the token's `alg`: the `kid` picks the key, the key fixes the
//! algorithm, and a header that names any other algorithm is refused (no `none`, no HS256
//! signed with an EdDSA public key). Expiry is checked against the `now` passed in, not the
//! system clock. Pure: no I/O.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyRing, SigningAlgorithm, SigningKey};
use crate::Millis;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session handle.
    pub sid: String,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// Expires at, epoch seconds; the token is valid while `now < exp`.
    pub exp: i64,
    /// The anti-CSRF token the request header must repeat (absent when anti-CSRF is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_csrf: Option<String>,
    /// The user's JWT payload (any JSON object).
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl AccessClaims {
    /// Expiry in epoch milliseconds.
    pub fn expires_at_ms(&self) -> Millis {
        self.exp.saturating_mul(1000)
    }
}

/// Why an access token was refused. Every variant means "try refresh" to the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("access token is malformed")]
    Malformed,
    #[error("access token names an unknown key")]
    UnknownKey,
    #[error("access token names an algorithm its key does not use")]
    AlgorithmMismatch,
    #[error("access token signature is invalid")]
    BadSignature,
    #[error("access token has expired")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("could not sign access token: {0}")]
pub struct MintError(String);

fn jwt_alg(a: SigningAlgorithm) -> Algorithm {
    match a {
        SigningAlgorithm::Hs256 => Algorithm::HS256,
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// Signs `claims` with `key`.
pub fn mint(claims: &AccessClaims, key: &SigningKey) -> Result<String, MintError> {
    let mut header = Header::new(jwt_alg(key.algorithm));
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| MintError(e.to_string()))
}

/// The claims of a valid token. `Err(UnknownKey)` tells the caller a reload of the ring may
/// help (another instance may have rotated).
pub fn verify(token: &str, ring: &KeyRing, now: Millis) -> Result<AccessClaims, AccessError> {
    let claims = verify_ignoring_expiry(token, ring)?;
    if now >= claims.expires_at_ms() {
        return Err(AccessError::Expired);
    }
    Ok(claims)
}

/// The claims of a token that is genuine — signed by a key in `ring`, with that key's
/// algorithm, untampered — whether or not it has expired. Every rule of [`verify`] except
/// expiry. Only for learning which session to end (logout, `sessiongate-revoke`): it must
/// never authorise a request.
pub fn verify_ignoring_expiry(token: &str, ring: &KeyRing) -> Result<AccessClaims, AccessError> {
    if token.len() > 16 * 1024 {
        return Err(AccessError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| AccessError::Malformed)?;
    let kid = header.kid.as_deref().ok_or(AccessError::UnknownKey)?;
    let key = ring.verifying_key(kid).ok_or(AccessError::UnknownKey)?;
    let alg = jwt_alg(key.algorithm);
    if header.alg != alg {
        return Err(AccessError::AlgorithmMismatch);
    }
    let mut validation = Validation::new(alg);
    // Time is checked below against `now`; jsonwebtoken would read the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AccessError::BadSignature,
            _ => AccessError::Malformed,
        },
    )?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ring::tests::ring_with;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;

    const NOW: Millis = 1_700_000_000_000;

    fn claims() -> AccessClaims {
        AccessClaims {
            sub: "user-1".into(),
            sid: "handle-1".into(),
            iat: NOW / 1000,
            exp: NOW / 1000 + 3600,
            anti_csrf: Some("csrf-1".into()),
            payload: serde_json::json!({"role": "admin"}),
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        B64URL.encode(serde_json::to_vec(v).unwrap())
    }

    /// Replaces one dot-separated segment of a token.
    fn with_segment(token: &str, i: usize, seg: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[i] = seg.to_string();
        parts.join(".")
    }

    #[test]
    fn table() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 1]);
        let (ed_ring, _) = ring_with(SigningAlgorithm::EdDsa, &[0]);
        let (other_ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 1]);
        let signer = ring.signing_key().unwrap();
        let good = mint(&claims(), signer).unwrap();
        let old_key_token = mint(&claims(), ring.verifying_key("k1").unwrap()).unwrap();
        let ed_token = mint(&claims(), ed_ring.signing_key().unwrap()).unwrap();

        // Tampered payload: same header and signature, user changed.
        let mut evil = claims();
        evil.sub = "admin".into();
        let tampered = with_segment(&good, 1, &b64(&serde_json::to_value(&evil).unwrap()));
        // alg: none with no signature.
        let none_header = b64(&serde_json::json!({"alg": "none", "kid": "k2", "typ": "JWT"}));
        let alg_none = format!("{none_header}.{}.", good.split('.').nth(1).unwrap());
        // Algorithm confusion: HS256 keyed with the EdDSA public key, naming the EdDSA kid.
        let ed_public = ed_ring.signing_key().unwrap().public.clone();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let confused = jsonwebtoken::encode(
            &h,
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(&ed_public),
        )
        .unwrap();
        // Unknown kid, and a token from another deployment with the same kid.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k99".into());
        let unknown_kid = jsonwebtoken::encode(&h, &claims(), &signer.encoding).unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = None;
        let no_kid = jsonwebtoken::encode(&h, &claims(), &signer.encoding).unwrap();
        let foreign = mint(&claims(), other_ring.signing_key().unwrap()).unwrap();
        let exp_ms = claims().expires_at_ms();

        type Case<'a> = (
            &'a str,
            &'a KeyRing,
            &'a str,
            Millis,
            Result<(), AccessError>,
        );
        let cases: Vec<Case> = vec![
            ("valid", &ring, &good, NOW, Ok(())),
            (
                "signed by an older key in the ring",
                &ring,
                &old_key_token,
                NOW,
                Ok(()),
            ),
            ("EdDSA", &ed_ring, &ed_token, NOW, Ok(())),
            ("last valid millisecond", &ring, &good, exp_ms - 1, Ok(())),
            (
                "expired exactly",
                &ring,
                &good,
                exp_ms,
                Err(AccessError::Expired),
            ),
            (
                "expired by one second",
                &ring,
                &good,
                exp_ms + 1000,
                Err(AccessError::Expired),
            ),
            (
                "tampered payload",
                &ring,
                &tampered,
                NOW,
                Err(AccessError::BadSignature),
            ),
            (
                "alg none (jsonwebtoken has no such algorithm)",
                &ring,
                &alg_none,
                NOW,
                Err(AccessError::Malformed),
            ),
            (
                "HS256 with EdDSA public key",
                &ed_ring,
                &confused,
                NOW,
                Err(AccessError::AlgorithmMismatch),
            ),
            (
                "unknown kid",
                &ring,
                &unknown_kid,
                NOW,
                Err(AccessError::UnknownKey),
            ),
            ("no kid", &ring, &no_kid, NOW, Err(AccessError::UnknownKey)),
            (
                "other deployment's key",
                &ring,
                &foreign,
                NOW,
                Err(AccessError::BadSignature),
            ),
            (
                "garbage",
                &ring,
                "not a jwt",
                NOW,
                Err(AccessError::Malformed),
            ),
            ("empty", &ring, "", NOW, Err(AccessError::Malformed)),
            (
                "EdDSA token on HS ring",
                &ring,
                &ed_token,
                NOW,
                Err(AccessError::AlgorithmMismatch),
            ),
        ];
        for (name, ring, token, now, want) in cases {
            let got = verify(token, ring, now).map(|c| assert_eq!(c, claims(), "{name}"));
            assert_eq!(got, want, "{name}");
        }
    }

    /// `verify_ignoring_expiry` keeps every rule but the clock: a genuine token long past its
    /// expiry is accepted, anything forged, confused or from an unknown key is not.
    #[test]
    fn ignoring_expiry_table() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 1]);
        let (ed_ring, _) = ring_with(SigningAlgorithm::EdDsa, &[0]);
        let (other_ring, _) = ring_with(SigningAlgorithm::Hs256, &[0, 1]);
        let expired = AccessClaims {
            iat: NOW / 1000 - 7200,
            exp: NOW / 1000 - 3600,
            ..claims()
        };
        let signer = ring.signing_key().unwrap();
        let genuine = mint(&expired, signer).unwrap();
        let old_key = mint(&expired, ring.verifying_key("k1").unwrap()).unwrap();
        let ed_genuine = mint(&expired, ed_ring.signing_key().unwrap()).unwrap();
        // Another session's handle spliced into a genuine expired token.
        let victim = AccessClaims {
            sid: "victim-handle".into(),
            ..expired.clone()
        };
        let tampered = with_segment(&genuine, 1, &b64(&serde_json::to_value(&victim).unwrap()));
        let none_header = b64(&serde_json::json!({"alg": "none", "kid": "k2", "typ": "JWT"}));
        let alg_none = format!(
            "{none_header}.{}.",
            b64(&serde_json::to_value(&victim).unwrap())
        );
        let ed_public = ed_ring.signing_key().unwrap().public.clone();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let confused = jsonwebtoken::encode(
            &h,
            &victim,
            &jsonwebtoken::EncodingKey::from_secret(&ed_public),
        )
        .unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k99".into());
        let unknown_kid = jsonwebtoken::encode(&h, &expired, &signer.encoding).unwrap();
        let foreign = mint(&victim, other_ring.signing_key().unwrap()).unwrap();

        let cases: Vec<(&str, &KeyRing, &str, Result<(), AccessError>)> = vec![
            ("expired but genuine", &ring, &genuine, Ok(())),
            ("expired, older key in the ring", &ring, &old_key, Ok(())),
            ("expired EdDSA", &ed_ring, &ed_genuine, Ok(())),
            (
                "tampered sid",
                &ring,
                &tampered,
                Err(AccessError::BadSignature),
            ),
            ("alg none", &ring, &alg_none, Err(AccessError::Malformed)),
            (
                "HS256 with EdDSA public key",
                &ed_ring,
                &confused,
                Err(AccessError::AlgorithmMismatch),
            ),
            (
                "unknown kid",
                &ring,
                &unknown_kid,
                Err(AccessError::UnknownKey),
            ),
            (
                "other deployment's key",
                &ring,
                &foreign,
                Err(AccessError::BadSignature),
            ),
            ("garbage", &ring, "a.b.c", Err(AccessError::Malformed)),
        ];
        for (name, ring, token, want) in cases {
            let got = verify_ignoring_expiry(token, ring).map(|c| assert_eq!(c, expired, "{name}"));
            assert_eq!(got, want, "{name}");
        }
        // The same genuine token is still refused by the ordinary check.
        assert_eq!(verify(&genuine, &ring, NOW), Err(AccessError::Expired));
    }

    #[test]
    fn header_carries_kid_and_alg() {
        let (ring, _) = ring_with(SigningAlgorithm::EdDsa, &[0]);
        let t = mint(&claims(), ring.signing_key().unwrap()).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::EdDSA, Some("k1")));
    }

    #[test]
    fn claims_without_anti_csrf_omit_it() {
        let (ring, _) = ring_with(SigningAlgorithm::Hs256, &[0]);
        let c = AccessClaims {
            anti_csrf: None,
            ..claims()
        };
        let t = mint(&c, ring.signing_key().unwrap()).unwrap();
        let body = B64URL.decode(t.split('.').nth(1).unwrap()).unwrap();
        assert!(!String::from_utf8(body).unwrap().contains("anti_csrf"));
        assert_eq!(verify(&t, &ring, NOW).unwrap(), c);
    }
}
