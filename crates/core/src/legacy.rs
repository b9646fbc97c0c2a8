//! The original library's tokens (`supertokens-node-mysql-ref-jwt` 5.x), for taking over its
//! sessions: reading its access tokens, decrypting its refresh tokens, and its rotation rule.
//! Built to `shared/reference/seed-library-behaviour.md` §4–§6.
//!
//! - Access token: `HEADER "." base64(JSON claims) "." hex(HMAC-SHA256)`, the header a fixed
//!   literal, the payload standard base64 with padding, the signature lowercase hex; the HMAC
//!   key is the UTF-8 text of the library's base64 key (not its decoded bytes). Claims
//!   `sessionHandle, userId, rt, antiCsrfToken?, prt?, expiryTime (ms), userPayload?`; valid
//!   while `expiryTime >= now`.
//! - Refresh token: `base64(salt64 ‖ iv16 ‖ tag16 ‖ ciphertext) "." nonce`, AES-256-GCM under
//!   PBKDF2-HMAC-SHA512(key text, salt, 100 iterations, 32 bytes), plaintext JSON
//!   `{sessionHandle, userId, prt?, nonce}` whose nonce must equal the suffix.
//! - Rotation rule: the row stores `hash2 = sha256hex(sha256hex(parent RT))`; a token is the
//!   parent, a child of the parent (`sha256hex(prt) == hash2`), or neither (theft).
//!
//! Pure like the rest of the crate: keys come in as the stored text, time as `now`, the
//! random parts of a token made here (for tests) as bytes. Signatures are compared in
//! constant time.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::Millis;

/// The library's only access-token header: base64 of `{"alg":"HS256","typ":"JWT"}`.
pub const ACCESS_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The library's key rows (`signing_key.key_name`).
pub const ACCESS_KEY_NAME: &str = "access_token_signing_key";
pub const REFRESH_KEY_NAME: &str = "refresh_token_key";

const SALT_LEN: usize = 64;
const IV_LEN: usize = 16;
const TAG_LEN: usize = 16;
const PBKDF2_ROUNDS: u32 = 100;

/// AES-256-GCM with the library's 16-byte IV.
type LegacyGcm = AesGcm<Aes256, U16>;

/// Lowercase hex SHA-256 of a string's UTF-8 bytes (the library's `hash`).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `hash2` of a refresh token: what the library's row stores.
pub fn hash2(refresh_token: &str) -> String {
    sha256_hex(&sha256_hex(refresh_token))
}

/// Whether an access token is in the library's shape (its fixed header and a 64-hex-digit
/// signature). The gateway's own tokens never are: their header is base64url and names a `kid`.
pub fn is_legacy_access_token(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(ACCESS_HEADER) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((_, sig)) => sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Whether a refresh token is in the library's shape (base64 "." 64 hex digits). The gateway's
/// own refresh tokens are base64url without a dot.
pub fn is_legacy_refresh_token(token: &str) -> bool {
    match token.split_once('.') {
        Some((b64, nonce)) => {
            !b64.is_empty()
                && nonce.len() == 64
                && nonce.bytes().all(|b| b.is_ascii_hexdigit())
                && !nonce.contains('.')
        }
        None => false,
    }
}

/// The claims of a genuine legacy access token.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyAccess {
    pub session_handle: String,
    /// A JSON string or number, as the library gave it.
    pub user_id: Value,
    pub rt: String,
    pub anti_csrf: Option<String>,
    /// Present on a child access token (issued by a refresh, not yet promoted).
    pub prt: Option<String>,
    pub expiry_ms: Millis,
    pub user_payload: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LegacyAccessError {
    #[error("not a legacy access token")]
    Malformed,
    #[error("legacy access token signature is invalid")]
    BadSignature,
    #[error("legacy access token claims are invalid")]
    BadClaims,
    #[error("legacy access token has expired")]
    Expired,
}

/// The claims as the library writes them, in its key order; absent claims are omitted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAccess {
    session_handle: Value,
    user_id: Value,
    rt: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anti_csrf_token: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prt: Option<Value>,
    expiry_time: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_payload: Option<Value>,
}

fn hmac_hex(key_text: &str, msg: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key_text.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A trimmed string claim, or `None` when the claim is not a string.
fn text(v: &Value) -> Option<String> {
    v.as_str().map(|s| s.trim().to_string())
}

/// A user id as the library accepts it: a number, or a string (trimmed).
fn user_id(v: &Value) -> Option<Value> {
    match v {
        Value::Number(_) => Some(v.clone()),
        Value::String(s) => Some(Value::String(s.trim().to_string())),
        _ => None,
    }
}

/// Verifies a legacy access token with the library's access key text: signature first
/// (`BadSignature` is the caller's cue to reload the key once), then the claims, then
/// expiry (valid while `expiryTime >= now`). `anti_csrf_on`: the claim is then required.
pub fn verify_access(
    token: &str,
    key_text: &str,
    now: Millis,
    anti_csrf_on: bool,
) -> Result<LegacyAccess, LegacyAccessError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LegacyAccessError::Malformed);
    };
    if header != ACCESS_HEADER || sig.len() != 64 {
        return Err(LegacyAccessError::Malformed);
    }
    let expected = hmac_hex(key_text, &format!("{header}.{payload}"));
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LegacyAccessError::BadSignature);
    }
    let json = B64
        .decode(payload)
        .map_err(|_| LegacyAccessError::BadClaims)?;
    let wire: WireAccess =
        serde_json::from_slice(&json).map_err(|_| LegacyAccessError::BadClaims)?;
    let bad = LegacyAccessError::BadClaims;
    let anti_csrf = match wire.anti_csrf_token {
        Some(v) => Some(text(&v).ok_or(bad)?),
        None if anti_csrf_on => return Err(bad),
        None => None,
    };
    let prt = match wire.prt {
        Some(v) => Some(text(&v).ok_or(bad)?),
        None => None,
    };
    let expiry_ms = match &wire.expiry_time {
        Value::Number(n) => n.as_f64().ok_or(bad)? as Millis,
        _ => return Err(bad),
    };
    let claims = LegacyAccess {
        session_handle: text(&wire.session_handle).ok_or(bad)?,
        user_id: user_id(&wire.user_id).ok_or(bad)?,
        rt: text(&wire.rt).ok_or(bad)?,
        anti_csrf,
        prt,
        expiry_ms,
        user_payload: wire.user_payload,
    };
    if claims.expiry_ms < now {
        return Err(LegacyAccessError::Expired);
    }
    Ok(claims)
}

/// Mints a legacy access token as the library does (for tests and test vectors).
pub fn mint_access(claims: &LegacyAccess, key_text: &str) -> String {
    let wire = WireAccess {
        session_handle: Value::String(claims.session_handle.clone()),
        user_id: claims.user_id.clone(),
        rt: Value::String(claims.rt.clone()),
        anti_csrf_token: claims.anti_csrf.clone().map(Value::String),
        prt: claims.prt.clone().map(Value::String),
        expiry_time: Value::from(claims.expiry_ms),
        user_payload: claims.user_payload.clone(),
    };
    let json = serde_json::to_string(&wire).expect("claims serialize");
    let signed = format!("{ACCESS_HEADER}.{}", B64.encode(json));
    let sig = hmac_hex(key_text, &signed);
    format!("{signed}.{sig}")
}

/// The content of a genuine legacy refresh token.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyRefresh {
    pub session_handle: String,
    /// A JSON string (trimmed) or number.
    pub user_id: Value,
    /// `hash1` of the parent token, on a child.
    pub prt: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LegacyRefreshError {
    #[error("not a legacy refresh token")]
    Malformed,
    /// Does not decrypt under the library's key, or its content is wrong: forged, garbled or
    /// made with another key. The library answers UNAUTHORISED; nothing is revoked.
    #[error("legacy refresh token does not decrypt")]
    Undecryptable,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRefresh {
    session_handle: Value,
    user_id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prt: Option<Value>,
    nonce: Value,
}

fn aes_key(key_text: &str, salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha512>(key_text.as_bytes(), salt, PBKDF2_ROUNDS, &mut key);
    key
}

/// Decrypts and checks a legacy refresh token with the library's refresh key text.
pub fn decrypt_refresh(token: &str, key_text: &str) -> Result<LegacyRefresh, LegacyRefreshError> {
    if !is_legacy_refresh_token(token) {
        return Err(LegacyRefreshError::Malformed);
    }
    let (b64, nonce) = token.split_once('.').expect("checked above");
    let bad = LegacyRefreshError::Undecryptable;
    let raw = B64.decode(b64).map_err(|_| bad)?;
    if raw.len() < SALT_LEN + IV_LEN + TAG_LEN {
        return Err(bad);
    }
    let (salt, rest) = raw.split_at(SALT_LEN);
    let (iv, rest) = rest.split_at(IV_LEN);
    let (tag, ct) = rest.split_at(TAG_LEN);
    let cipher = LegacyGcm::new(&aes_key(key_text, salt).into());
    let mut sealed = Vec::with_capacity(ct.len() + TAG_LEN);
    sealed.extend_from_slice(ct);
    sealed.extend_from_slice(tag);
    let plain = cipher
        .decrypt(iv.into(), sealed.as_slice())
        .map_err(|_| bad)?;
    let wire: WireRefresh = serde_json::from_slice(&plain).map_err(|_| bad)?;
    if wire.nonce.as_str() != Some(nonce) {
        return Err(bad);
    }
    let prt = match wire.prt {
        Some(v) => Some(text(&v).ok_or(bad)?),
        None => None,
    };
    Ok(LegacyRefresh {
        session_handle: text(&wire.session_handle).ok_or(bad)?,
        user_id: user_id(&wire.user_id).ok_or(bad)?,
        prt,
    })
}

/// Encrypts a legacy refresh token as the library does, from caller-drawn `salt`, `iv` and
/// `nonce` (64 hex digits); for tests and test vectors.
pub fn encrypt_refresh(
    content: &LegacyRefresh,
    key_text: &str,
    salt: &[u8; SALT_LEN],
    iv: &[u8; IV_LEN],
    nonce: &str,
) -> String {
    let wire = WireRefresh {
        session_handle: Value::String(content.session_handle.clone()),
        user_id: content.user_id.clone(),
        prt: content.prt.clone().map(Value::String),
        nonce: Value::String(nonce.to_string()),
    };
    let plain = serde_json::to_vec(&wire).expect("content serializes");
    let cipher = LegacyGcm::new(&aes_key(key_text, salt).into());
    let sealed = cipher
        .encrypt(iv.into(), plain.as_slice())
        .expect("AES-GCM encrypts");
    let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut raw = Vec::with_capacity(SALT_LEN + IV_LEN + sealed.len());
    raw.extend_from_slice(salt);
    raw.extend_from_slice(iv);
    raw.extend_from_slice(tag);
    raw.extend_from_slice(ct);
    format!("{}.{nonce}", B64.encode(raw))
}

/// Where a genuine refresh token stands against its session row (library §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyStanding {
    /// The row's current parent.
    Parent,
    /// A child of the row's parent (its access token was never used).
    ChildOfParent,
    /// Neither: an older or a losing token. The library reports theft.
    Theft,
}

/// The library's parent/child rule for `token` (the presented text) against the row's
/// `refresh_token_hash_2`.
pub fn standing(token: &str, content: &LegacyRefresh, row_hash2: &str) -> LegacyStanding {
    let eq = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
    if eq(&hash2(token), row_hash2) {
        LegacyStanding::Parent
    } else if content
        .prt
        .as_deref()
        .is_some_and(|prt| eq(&sha256_hex(prt), row_hash2))
    {
        LegacyStanding::ChildOfParent
    } else {
        LegacyStanding::Theft
    }
}

/// A `user_id` column value decoded as the library does: a one-key object `{"i": x}` is `x`
/// (numbers round-trip that way), anything else is the string itself.
pub fn decode_user_id(column: &str) -> Value {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(column) {
        if m.len() == 1 {
            if let Some(v) = m.get("i") {
                return v.clone();
            }
        }
    }
    Value::String(column.to_string())
}

/// A `session_info` / `jwt_user_payload` column: `""` is undefined (`None`), anything else
/// JSON; `Err` for text that is not JSON.
pub fn decode_json_column(column: &str) -> Result<Option<Value>, serde_json::Error> {
    if column.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(column).map(Some)
}

/// A user id as the gateway names users: a string as is, a number as its JSON text.
pub fn user_id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The 16 bytes of a UUID in its canonical hyphenated text (the library's session handles),
/// or `None` for anything else.
pub fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let digits: String = s.chars().filter(|&c| c != '-').collect();
    if digits.len() != 32 || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if digits.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(digits).ok()?.try_into().ok()
}

/// The canonical lowercase hyphenated text of 16 UUID bytes.
pub fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "dTprPP7d+V7gLwamdtlD8a4BM8g4jwIwnyrVQZUpJJ4=";
    const HANDLE: &str = "1a1de700-e9d1-11f1-909a-37e6c8fceaa4";

    fn claims() -> LegacyAccess {
        LegacyAccess {
            session_handle: HANDLE.into(),
            user_id: json!("user-1"),
            rt: "41c0".into(),
            anti_csrf: Some("1a1e0e10-e9d1-11f1-909a-37e6c8fceaa4".into()),
            prt: None,
            expiry_ms: 1_795_725_572_081,
            user_payload: Some(json!({"role": "admin"})),
        }
    }

    #[test]
    fn access_token_layout_matches_the_library() {
        let t = mint_access(&claims(), KEY);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts[0], ACCESS_HEADER);
        assert_eq!(
            String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap(),
            format!(
                r#"{{"sessionHandle":"{HANDLE}","userId":"user-1","rt":"41c0","antiCsrfToken":"1a1e0e10-e9d1-11f1-909a-37e6c8fceaa4","expiryTime":1795725572081,"userPayload":{{"role":"admin"}}}}"#
            )
        );
        // The signature is HMAC-SHA256 keyed with the key's base64 *text*, in lowercase hex.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(parts[2], hex::encode(mac.finalize().into_bytes()));
        assert!(is_legacy_access_token(&t));
    }

    #[test]
    fn access_verification_table() {
        let now = 1_795_725_572_081;
        let good = mint_access(&claims(), KEY);
        let child = mint_access(
            &LegacyAccess {
                prt: Some("ab".into()),
                ..claims()
            },
            KEY,
        );
        let numeric = mint_access(
            &LegacyAccess {
                user_id: json!(123),
                anti_csrf: None,
                user_payload: None,
                ..claims()
            },
            KEY,
        );
        let mut tampered = good.clone();
        tampered.replace_range(40..41, "A");
        type Case = (
            &'static str,
            String,
            Millis,
            bool,
            Result<(), LegacyAccessError>,
        );
        let cases: Vec<Case> = vec![
            (
                "valid at exactly expiryTime",
                good.clone(),
                now,
                true,
                Ok(()),
            ),
            (
                "expired 1 ms later",
                good.clone(),
                now + 1,
                true,
                Err(LegacyAccessError::Expired),
            ),
            ("child token verifies", child.clone(), now, true, Ok(())),
            (
                "other key",
                mint_access(&claims(), "b3RoZXI="),
                now,
                true,
                Err(LegacyAccessError::BadSignature),
            ),
            (
                "payload changed",
                tampered,
                now,
                true,
                Err(LegacyAccessError::BadSignature),
            ),
            (
                "no csrf claim, csrf on",
                numeric.clone(),
                now,
                true,
                Err(LegacyAccessError::BadClaims),
            ),
            (
                "no csrf claim, csrf off",
                numeric.clone(),
                now,
                false,
                Ok(()),
            ),
            (
                "two parts",
                format!("{ACCESS_HEADER}.abc"),
                now,
                true,
                Err(LegacyAccessError::Malformed),
            ),
            (
                "gateway-like header",
                good.replacen(ACCESS_HEADER, "eyJraWQiOiJ4In0", 1),
                now,
                true,
                Err(LegacyAccessError::Malformed),
            ),
            (
                "empty",
                String::new(),
                now,
                true,
                Err(LegacyAccessError::Malformed),
            ),
        ];
        for (name, token, at, csrf, want) in cases {
            let got = verify_access(&token, KEY, at, csrf).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
        let c = verify_access(&numeric, KEY, now, false).unwrap();
        assert_eq!(user_id_text(&c.user_id), "123");
        assert_eq!(c.user_payload, None);
        assert_eq!(
            verify_access(&child, KEY, now, true)
                .unwrap()
                .prt
                .as_deref(),
            Some("ab")
        );
    }

    #[test]
    fn bad_claim_types_are_refused_after_the_signature() {
        let sign = |json: &str| {
            let signed = format!("{ACCESS_HEADER}.{}", B64.encode(json));
            format!("{signed}.{}", hmac_hex(KEY, &signed))
        };
        for json in [
            r#"{"sessionHandle":1,"userId":"u","rt":"r","expiryTime":5}"#,
            r#"{"sessionHandle":"h","userId":true,"rt":"r","expiryTime":5}"#,
            r#"{"sessionHandle":"h","userId":"u","rt":"r","expiryTime":"5"}"#,
            r#"{"sessionHandle":"h","userId":"u","expiryTime":5}"#,
            r#"not json"#,
        ] {
            assert_eq!(
                verify_access(&sign(json), KEY, 0, false),
                Err(LegacyAccessError::BadClaims),
                "{json}"
            );
        }
        let ok = verify_access(
            &sign(r#"{"sessionHandle":" h ","userId":" u ","rt":"r","expiryTime":5}"#),
            KEY,
            5,
            false,
        )
        .unwrap();
        assert_eq!((ok.session_handle.as_str(), ok.user_id), ("h", json!("u")));
    }

    fn content(prt: Option<&str>) -> LegacyRefresh {
        LegacyRefresh {
            session_handle: HANDLE.into(),
            user_id: json!("user-1"),
            prt: prt.map(str::to_string),
        }
    }

    const NONCE: &str = "87e0a8c0d8a3b3c6b0a6b2a0c4e4f0a1b2c3d4e5f60718293a4b5c6d7e8f6799";

    #[test]
    fn refresh_token_round_trip_and_refusals() {
        let t = encrypt_refresh(&content(None), KEY, &[7; 64], &[9; 16], NONCE);
        // 64+16+16+ciphertext, standard base64, then the nonce: 393 characters for this user id.
        assert_eq!(t.len(), 393);
        assert!(is_legacy_refresh_token(&t));
        assert_eq!(decrypt_refresh(&t, KEY), Ok(content(None)));
        let undecryptable = Err(LegacyRefreshError::Undecryptable);
        assert_eq!(decrypt_refresh(&t, "b3RoZXI="), undecryptable, "other key");
        let other_nonce = format!("{}{}", &t[..t.len() - 64], "0".repeat(64));
        assert_eq!(
            decrypt_refresh(&other_nonce, KEY),
            undecryptable,
            "suffix swapped"
        );
        let mut flipped = t.clone().into_bytes();
        flipped[150] = if flipped[150] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(decrypt_refresh(&flipped, KEY), undecryptable, "bit flipped");
        assert_eq!(
            decrypt_refresh(&format!("Z2FyYmFnZQ==.{NONCE}"), KEY),
            undecryptable,
            "short"
        );
        assert_eq!(
            decrypt_refresh("garbage.abc", KEY),
            Err(LegacyRefreshError::Malformed)
        );
        assert_eq!(
            decrypt_refresh("AAAA", KEY),
            Err(LegacyRefreshError::Malformed)
        );
        // The gateway's own refresh tokens are base64url without a dot.
        assert!(!is_legacy_refresh_token(&"A".repeat(98)));
    }

    #[test]
    fn parent_child_rule() {
        let parent = encrypt_refresh(&content(None), KEY, &[1; 64], &[1; 16], NONCE);
        let child_content = content(Some(&sha256_hex(&parent)));
        let child = encrypt_refresh(&child_content, KEY, &[2; 64], &[2; 16], NONCE);
        let row = hash2(&parent);
        assert_eq!(
            standing(&parent, &content(None), &row),
            LegacyStanding::Parent
        );
        assert_eq!(
            standing(&child, &child_content, &row),
            LegacyStanding::ChildOfParent
        );
        // After the child was promoted, the old parent is theft.
        assert_eq!(
            standing(&parent, &content(None), &hash2(&child)),
            LegacyStanding::Theft
        );
        assert_eq!(
            standing(&child, &child_content, &hash2(&child)),
            LegacyStanding::Parent
        );
    }

    #[test]
    fn columns_and_handles() {
        assert_eq!(decode_user_id(r#"{"i":123}"#), json!(123));
        assert_eq!(decode_user_id("123"), json!("123"));
        assert_eq!(
            decode_user_id(r#"{"i":1,"j":2}"#),
            json!(r#"{"i":1,"j":2}"#)
        );
        assert_eq!(decode_json_column("").unwrap(), None);
        assert_eq!(decode_json_column("null").unwrap(), Some(Value::Null));
        assert!(decode_json_column("{").is_err());
        let b = uuid_bytes(HANDLE).unwrap();
        assert_eq!(uuid_text(&b), HANDLE);
        assert_eq!(uuid_bytes("1A1DE700-e9d1-11f1-909a-37e6c8fceaa4"), None);
        assert_eq!(uuid_bytes("not-a-uuid"), None);
        assert_eq!(sha256_hex("a").len(), 64);
    }

    /// Captured from the real library (5.0.4 on MariaDB) by the tests' harness
    /// (`tests/legacy/server.js`): keys, tokens and the row they belong to.
    mod real_library {
        use super::*;

        const ACCESS_KEY: &str = "4P5V14hF4FGAQczByminjNt5PpMNPShv0GayLFd08cw=";
        const REFRESH_KEY: &str = "RsEFE9rGwoBfx7dJF/3u69Tc009/uLfHZyN+kzCmpOc=";
        const HANDLE: &str = "39262d40-ec53-11f1-8abd-dd16999bbd8e";
        const ROW_HASH2: &str = "3c377dd00c701e093b9b4fd1357a22b8e9c63aef72982bd6c6f66d09d2ee41b8";
        const AT1: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXNzaW9uSGFuZGxlIjoiMzkyNjJkNDAtZWM1My0xMWYxLThhYmQtZGQxNjk5OWJiZDhlIiwidXNlcklkIjoidXNlci0xIiwicnQiOiJkMDkyNTZjNWRiOTRlZmFlNWFkMmMyOTlmZjJjMDBjMWUyN2U3ZWQ3MTliMjgzN2MwM2JhYjYyNzU4MzM3YmQxIiwiYW50aUNzcmZUb2tlbiI6IjM5MjczZWIwLWVjNTMtMTFmMS04YWJkLWRkMTY5OTliYmQ4ZSIsImV4cGlyeVRpbWUiOjE3OTU5OTc3NjMwNTEsInVzZXJQYXlsb2FkIjp7InJvbGUiOiJhZG1pbiIsIm4iOjF9fQ==.677659258888c08677e98c4d26044e9da87761214fb505473e6fa5135ce9f1f8";
        const RT1: &str = "9MMARgHCv2rP7nVG+NY2s+mp5L01VlEfNYie3IZkYSWMPbPRR6elu9itAWWIGfRMkzCT2hNevvdwModdkLJ6Wl1+MChLdJLYjoSzF3/3bhr6YNHhtJqj6AQzbBVgb1eE4Qv17mNVp+/iQiFpiQ1D2p8JSg3ZKHpEq/s856FzAfiRtEjurXDUGwJFGwsNKjVZXbe5w1Y7HGtlBWX9sgB+ycXOzckzzOvOo/PphEmoRwizKuOnX+OZA8ddt2kC+pF1qzNnCpnjyZnAuWqFvnfd4BqurA9qe7hjkDchx/SrsaNmCv+Hnf3na3nRNoIxg+yaAes1dGQ=.133f94d9d44e9c87b34bc075ba4dcff2ce503dbb1b021855cf59df8b52eff480";
        const AT2: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXNzaW9uSGFuZGxlIjoiMzkyNjJkNDAtZWM1My0xMWYxLThhYmQtZGQxNjk5OWJiZDhlIiwidXNlcklkIjoidXNlci0xIiwicnQiOiIwNjM3MmU4ZTZiMGRjNDY2MmZhYjk5ODFjYmQ4MDA4NjAzNThkOGI4Mjk1ZGM0YjI3YjIyYjE3ZDg1OWFmYjBjIiwiYW50aUNzcmZUb2tlbiI6IjNiZDhjYTIwLWVjNTMtMTFmMS04YWJkLWRkMTY5OTliYmQ4ZSIsInBydCI6ImQwOTI1NmM1ZGI5NGVmYWU1YWQyYzI5OWZmMmMwMGMxZTI3ZTdlZDcxOWIyODM3YzAzYmFiNjI3NTgzMzdiZDEiLCJleHBpcnlUaW1lIjoxNzk1OTk3NzY3NTcwLCJ1c2VyUGF5bG9hZCI6eyJyb2xlIjoiYWRtaW4iLCJuIjoxfX0=.b299d3e3c6c0086102f096d423c582aa2174e0fc7d72cb1d7c524265c2390529";
        const RT2: &str = "AdCS80WSIqgCklHsHnNAeXcPwjqkN48faflHBoK9bLhzapom5b8MJa3aGfHhig6faXN7dgfTiGM2Q3VIs1fPZUoHvZm2Enr5d3PgN6kB7MiLY7J/izI0B7VORlaVAQy2DHpua+KwROxAc8Fh5F4ouVSDis+tY1FaPod3vvrF+fTyaqqCa/BRSbvYi61xhkHU6iM4ggT29/wuM3nmhoTGCMuJ7MJiuxVHNVACH+/6DfmITd65iGEfuFv/+ZdSF45A9CX369g0ZQIXcPNK8PQStb4sF96DtfWKolca8xszqIX2UiXaSkF5t4AHcauj926JR/qg0hKS3tVmPV6JafC3iAg5S4opyMum1y9SDPaRaOjykd8VaZ8Eo+kduJKKwSGQ74UevpOOuVeBmArPg8/NL/++sijOOeJFeORSbuZf.03f2066a6c4db182b8dc9baef147b1645d99b4c402ed2a7fdcfab2a248518913";
        const AT3: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXNzaW9uSGFuZGxlIjoiM2JkYmZlNzAtZWM1My0xMWYxLThhYmQtZGQxNjk5OWJiZDhlIiwidXNlcklkIjo0MiwicnQiOiJiMjNlODAzYzY1ZmQ3NmMxNzU5MTRhZjAyODhjNTRmNGI4OTcwNzhjYzhkNmMwNDZmNzU3YTExYjgyMTk3NDIyIiwiYW50aUNzcmZUb2tlbiI6IjNiZGJmZTcyLWVjNTMtMTFmMS04YWJkLWRkMTY5OTliYmQ4ZSIsImV4cGlyeVRpbWUiOjE3OTU5OTc3Njc1OTF9.d3a069d1729bbc14ba25332fdaccdaf3584c56a8c5589cb2d0968dd96e8a7ae8";
        const RT3: &str = "0o/zkDqpXQ7pDIf3q5SXrRPQQeDwaih+CAPOg3v5xl4ZUhjN2kofrYIqdQB0/kdU+jHdrFPTKrQEaebw5O9FwipyqxIxd3hiJ8SQ6y4fdxQilia0u28MjUiwaAKMCWrk0GvedGM8vWYoEBlWeNMQnvH7/yXf+GD088XxiSeKyrgO6asHT/KSrAwqWBOwXOnMYPUJYcoy7rzwCTpc4Nsq68KI+kxOX76PzMTyw4QKfPFMzXCUT4ExEjS2VZblmrSwWOLZkh2Jb3M2szDXRWIZvDjRzmifSnxIMPr73POOrn37SXjaDNXCY/eFEaNF5+A=.d36622fcbe15740525c61f4e694f84250a0f699544d27d82b350324d136529c3";

        #[test]
        fn access_tokens_verify() {
            assert!(is_legacy_access_token(AT1));
            let c = verify_access(AT1, ACCESS_KEY, 1_795_997_763_051, true).unwrap();
            assert_eq!(c.session_handle, HANDLE);
            assert_eq!(c.user_id, json!("user-1"));
            assert_eq!(
                c.anti_csrf.as_deref(),
                Some("39273eb0-ec53-11f1-8abd-dd16999bbd8e")
            );
            assert_eq!(c.user_payload, Some(json!({"role": "admin", "n": 1})));
            assert_eq!(c.prt, None);
            assert_eq!(c.rt, sha256_hex(RT1));
            assert_eq!(
                verify_access(AT1, ACCESS_KEY, 1_795_997_763_052, true),
                Err(LegacyAccessError::Expired)
            );
            assert_eq!(
                verify_access(AT1, REFRESH_KEY, 0, true),
                Err(LegacyAccessError::BadSignature)
            );
            let child = verify_access(AT2, ACCESS_KEY, 0, true).unwrap();
            assert_eq!(child.prt, Some(sha256_hex(RT1)));
            let numeric = verify_access(AT3, ACCESS_KEY, 0, true).unwrap();
            assert_eq!(user_id_text(&numeric.user_id), "42");
            assert_eq!(numeric.user_payload, None);
            // Our minting reproduces the library's bytes (a payload's keys in the order
            // serde_json keeps them, which is sorted; this one has no object payload).
            assert_eq!(mint_access(&numeric, ACCESS_KEY), AT3);
        }

        #[test]
        fn refresh_tokens_decrypt_and_follow_the_rule() {
            let parent = decrypt_refresh(RT1, REFRESH_KEY).unwrap();
            assert_eq!(parent.session_handle, HANDLE);
            assert_eq!(parent.user_id, json!("user-1"));
            assert_eq!(parent.prt, None);
            assert_eq!(hash2(RT1), ROW_HASH2);
            assert_eq!(standing(RT1, &parent, ROW_HASH2), LegacyStanding::Parent);
            let child = decrypt_refresh(RT2, REFRESH_KEY).unwrap();
            assert_eq!(child.prt, Some(sha256_hex(RT1)));
            assert_eq!(
                standing(RT2, &child, ROW_HASH2),
                LegacyStanding::ChildOfParent
            );
            assert_eq!(
                standing(RT1, &parent, &hash2(RT2)),
                LegacyStanding::Theft,
                "the old parent after the child was promoted"
            );
            let numeric = decrypt_refresh(RT3, REFRESH_KEY).unwrap();
            assert_eq!(numeric.user_id, json!(42));
            assert_eq!(decode_user_id(r#"{"i":42}"#), numeric.user_id);
            assert_eq!(
                hash2(RT3),
                "3545bca7b75f58505f1aad3919d3ff79b1e55b0528efb02e322fb0896cfaba48"
            );
            assert_eq!(
                decrypt_refresh(RT1, ACCESS_KEY),
                Err(LegacyRefreshError::Undecryptable)
            );
            assert!(uuid_bytes(HANDLE).is_some());
        }
    }
}
