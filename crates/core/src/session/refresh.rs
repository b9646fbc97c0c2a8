//! Refresh tokens: opaque, self-authenticating, naming their session and generation.
//!
//! Layout (then base64url without padding):
//! `version(1) ‖ session handle(16) ‖ generation(8, big-endian) ‖ secret(16) ‖ MAC(32)`,
//! the MAC being HMAC-SHA256 with the refresh key over everything before it. A root token's
//! secret is 128 bits from the OS CSPRNG; a child's secret is a keyed MAC of its parent, so the
//! same parent always yields the same child (concurrent refreshes never fork a session). The
//! anti-CSRF token and the `sIdRefreshToken` value are derived from the refresh token the same
//! way, so a grace replay answers with exactly the tokens of the first answer.
//!
//! Pure: randomness comes from the caller for roots, no I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::keys::RefreshKey;
use crate::session::rotation::{Presented, TokenHash};

const VERSION: u8 = 1;
/// A token of a session taken over from the original library (`crate::legacy`): the same
/// layout, but the 16 handle bytes are the library's UUID and the handle's text is that UUID.
const VERSION_UUID: u8 = 2;
const CONVERT_LABEL: &[u8] = b"sessiongate/legacy-convert/v1";
const BODY_LEN: usize = 1 + 16 + 8 + 16;
const TOKEN_LEN: usize = BODY_LEN + 32;
const MAC_LABEL: &[u8] = b"sessiongate/refresh-token/v1";
const CHILD_LABEL: &[u8] = b"sessiongate/refresh-child/v1";
const CSRF_LABEL: &[u8] = b"sessiongate/anti-csrf/v1";
const ID_REFRESH_LABEL: &[u8] = b"sessiongate/id-refresh/v1";

/// A session handle: 128 CSPRNG bits, shown as 22 base64url characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionHandle(pub [u8; 16]);

impl SessionHandle {
    pub fn to_text(&self) -> String {
        B64URL.encode(self.0)
    }
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 22 {
            return None;
        }
        let bytes = B64URL.decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// A refresh token whose MAC checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub handle: SessionHandle,
    pub generation: u64,
    raw: [u8; TOKEN_LEN],
}

/// Why a presented refresh token was refused before any store lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefreshTokenError {
    #[error("refresh token is malformed")]
    Malformed,
    #[error("refresh token MAC is invalid")]
    BadMac,
}

impl RefreshToken {
    /// The first token of a new session; `secret` must come from a CSPRNG.
    pub fn root(key: &RefreshKey, handle: SessionHandle, secret: [u8; 16]) -> Self {
        Self::assemble(key, VERSION, handle, 0, secret)
    }

    /// The first native token of a session converted from the original library: its handle
    /// is the library's UUID (shown as that UUID, see [`RefreshToken::handle_text`]) and its
    /// secret a keyed MAC of the library token it replaces, so converting the same library
    /// token again yields the same token.
    pub fn converted(key: &RefreshKey, uuid: [u8; 16], legacy_token: &str) -> Self {
        let mac = key.mac(CONVERT_LABEL, &[legacy_token.as_bytes()]);
        let secret: [u8; 16] = mac[..16].try_into().expect("16 bytes");
        Self::assemble(key, VERSION_UUID, SessionHandle(uuid), 0, secret)
    }

    /// The handle as the store names the session: base64url, or the UUID text for a session
    /// converted from the original library.
    pub fn handle_text(&self) -> String {
        if self.raw[0] == VERSION_UUID {
            crate::legacy::uuid_text(&self.handle.0)
        } else {
            self.handle.to_text()
        }
    }

    fn assemble(
        key: &RefreshKey,
        version: u8,
        handle: SessionHandle,
        generation: u64,
        secret: [u8; 16],
    ) -> Self {
        let mut raw = [0u8; TOKEN_LEN];
        raw[0] = version;
        raw[1..17].copy_from_slice(&handle.0);
        raw[17..25].copy_from_slice(&generation.to_be_bytes());
        raw[25..41].copy_from_slice(&secret);
        let mac = key.mac(MAC_LABEL, &[&raw[..BODY_LEN]]);
        raw[BODY_LEN..].copy_from_slice(&mac);
        Self {
            handle,
            generation,
            raw,
        }
    }

    /// Parses and authenticates a token from a cookie.
    pub fn parse(text: &str, key: &RefreshKey) -> Result<Self, RefreshTokenError> {
        if text.len() != (TOKEN_LEN * 4).div_ceil(3) {
            return Err(RefreshTokenError::Malformed);
        }
        let bytes = B64URL
            .decode(text)
            .map_err(|_| RefreshTokenError::Malformed)?;
        let raw: [u8; TOKEN_LEN] = bytes.try_into().map_err(|_| RefreshTokenError::Malformed)?;
        if raw[0] != VERSION && raw[0] != VERSION_UUID {
            return Err(RefreshTokenError::Malformed);
        }
        if !key.verify(MAC_LABEL, &[&raw[..BODY_LEN]], &raw[BODY_LEN..]) {
            return Err(RefreshTokenError::BadMac);
        }
        let handle = SessionHandle(raw[1..17].try_into().expect("16 bytes"));
        let generation = u64::from_be_bytes(raw[17..25].try_into().expect("8 bytes"));
        Ok(Self {
            handle,
            generation,
            raw,
        })
    }

    /// The token that replaces this one: next generation, secret derived from this token.
    pub fn child(&self, key: &RefreshKey) -> Self {
        let mac = key.mac(CHILD_LABEL, &[&self.raw]);
        let secret: [u8; 16] = mac[..16].try_into().expect("16 bytes");
        Self::assemble(key, self.raw[0], self.handle, self.generation + 1, secret)
    }

    pub fn to_text(&self) -> String {
        B64URL.encode(self.raw)
    }

    /// What the store keeps instead of the token.
    pub fn hash(&self) -> TokenHash {
        Sha256::digest(self.to_text().as_bytes()).into()
    }

    pub fn presented(&self) -> Presented {
        Presented {
            generation: self.generation,
            hash: self.hash(),
        }
    }

    /// The anti-CSRF token issued alongside this refresh token.
    pub fn anti_csrf(&self, key: &RefreshKey) -> String {
        B64URL.encode(&key.mac(CSRF_LABEL, &[&self.raw])[..16])
    }

    /// The `sIdRefreshToken` value issued alongside this refresh token (no authority).
    pub fn id_refresh(&self, key: &RefreshKey) -> String {
        B64URL.encode(&key.mac(ID_REFRESH_LABEL, &[&self.raw])[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> RefreshKey {
        RefreshKey::from_bytes(&[b; 32]).unwrap()
    }

    const H: SessionHandle = SessionHandle([9; 16]);

    #[test]
    fn round_trip_and_children() {
        let k = key(1);
        let root = RefreshToken::root(&k, H, [3; 16]);
        let parsed = RefreshToken::parse(&root.to_text(), &k).unwrap();
        assert_eq!(parsed, root);
        assert_eq!((parsed.handle, parsed.generation), (H, 0));
        let c1 = root.child(&k);
        assert_eq!(c1.generation, 1);
        assert_eq!(c1, root.child(&k), "children are deterministic");
        assert_ne!(c1.to_text(), root.to_text());
        assert_ne!(c1.child(&k).to_text(), c1.to_text());
        assert_ne!(root.anti_csrf(&k), c1.anti_csrf(&k));
        assert_eq!(c1.anti_csrf(&k), root.child(&k).anti_csrf(&k));
        assert_ne!(c1.anti_csrf(&k), c1.id_refresh(&k));
        assert_eq!(root.to_text().len(), 98);
    }

    #[test]
    fn refusals() {
        let k = key(1);
        let root = RefreshToken::root(&k, H, [3; 16]);
        let text = root.to_text();
        // A token for the same (real) handle made with another key: bad MAC.
        let forged = RefreshToken::root(&key(2), H, [3; 16]).to_text();
        // One flipped bit in the generation field.
        let mut raw = B64URL.decode(&text).unwrap();
        raw[24] ^= 1;
        let bumped = B64URL.encode(&raw);
        let mut raw = B64URL.decode(&text).unwrap();
        raw[0] = 3;
        let wrong_version = B64URL.encode(&raw);
        let check = |t: &str, want: RefreshTokenError| {
            assert_eq!(RefreshToken::parse(t, &k).unwrap_err(), want, "{t}");
        };
        check(&forged, RefreshTokenError::BadMac);
        check(&bumped, RefreshTokenError::BadMac);
        check(&wrong_version, RefreshTokenError::Malformed);
        check("", RefreshTokenError::Malformed);
        check(&text[..97], RefreshTokenError::Malformed);
        check(&format!("{}=", &text[..97]), RefreshTokenError::Malformed);
        check(&"é".repeat(49), RefreshTokenError::Malformed);
    }

    #[test]
    fn converted_tokens_keep_the_uuid_handle() {
        let k = key(1);
        let uuid = crate::legacy::uuid_bytes("1a1de700-e9d1-11f1-909a-37e6c8fceaa4").unwrap();
        let t = RefreshToken::converted(&k, uuid, "legacy.token");
        assert_eq!(t, RefreshToken::converted(&k, uuid, "legacy.token"));
        assert_ne!(t, RefreshToken::converted(&k, uuid, "legacy.other"));
        let parsed = RefreshToken::parse(&t.to_text(), &k).unwrap();
        assert_eq!(parsed.handle_text(), "1a1de700-e9d1-11f1-909a-37e6c8fceaa4");
        let child = parsed.child(&k);
        assert_eq!(child.handle_text(), "1a1de700-e9d1-11f1-909a-37e6c8fceaa4");
        assert_eq!(child.generation, 1);
        let native = RefreshToken::root(&k, H, [3; 16]);
        assert_eq!(native.handle_text(), H.to_text());
    }

    #[test]
    fn handles() {
        let h = SessionHandle([0xab; 16]);
        assert_eq!(SessionHandle::parse(&h.to_text()), Some(h));
        assert_eq!(SessionHandle::parse("short"), None);
        assert_eq!(SessionHandle::parse(&"!".repeat(22)), None);
    }
}
