//! The refresh-token rotation rules of SPEC §6, as one pure decision.
//!
//! The store locks the session row, hands its state here with the presented token, and
//! applies the [`Decision`] in the same transaction. No I/O, no clock: `now` is a parameter.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// SHA-256 of a refresh token; the store keeps only these.
pub type TokenHash = [u8; 32];

/// What the store knows about a session's refresh tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationState {
    pub generation: u64,
    pub current_hash: TokenHash,
    pub previous_hash: Option<TokenHash>,
    /// When `current_hash` replaced `previous_hash`.
    pub rotated_at: Millis,
    pub expires_at: Millis,
}

/// A refresh token that has already passed its MAC check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    pub generation: u64,
    pub hash: TokenHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long after a rotation the previous token still returns the same child.
    pub grace_ms: Millis,
    /// Session lifetime from the latest rotation.
    pub validity_ms: Millis,
}

/// Why a refresh is refused without revoking anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthorisedReason {
    /// No such session (never existed, revoked or purged).
    UnknownSession,
    /// The session's expiry has passed.
    Expired,
    /// Genuine MAC but a generation or hash the session never issued.
    UnknownToken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Rule 1: the current token. Store the child as current, the presented one as previous.
    Rotate {
        new_generation: u64,
        new_expires_at: Millis,
    },
    /// Rule 2: the previous token within the grace window. Answer with the current child
    /// (derived again from the presented parent); change nothing.
    GraceReplay,
    /// Rule 3: an older genuine token, or the previous one after the grace window.
    Theft,
    /// Rules 4 and 5: refuse and revoke nothing.
    Unauthorised(UnauthorisedReason),
}

/// What a detected token theft ([`Decision::Theft`]) revokes (`session.theft_action`; the
/// serde names are the config spellings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TheftAction {
    #[default]
    RevokeSession,
    RevokeAllUserSessions,
}

/// Decide what a refresh with `presented` does to the session in `state` at `now`.
pub fn decide(
    state: Option<&RotationState>,
    presented: &Presented,
    now: Millis,
    policy: RotationPolicy,
) -> Decision {
    use subtle::ConstantTimeEq;
    let Some(state) = state else {
        return Decision::Unauthorised(UnauthorisedReason::UnknownSession);
    };
    if state.expires_at <= now {
        return Decision::Unauthorised(UnauthorisedReason::Expired);
    }
    let is_current = presented.generation == state.generation
        && bool::from(presented.hash.ct_eq(&state.current_hash));
    if is_current {
        return Decision::Rotate {
            new_generation: state.generation + 1,
            new_expires_at: now.saturating_add(policy.validity_ms),
        };
    }
    let is_previous = state.generation > 0
        && presented.generation == state.generation - 1
        && state
            .previous_hash
            .is_some_and(|prev| bool::from(presented.hash.ct_eq(&prev)));
    if is_previous {
        return if now - state.rotated_at <= policy.grace_ms {
            Decision::GraceReplay
        } else {
            Decision::Theft
        };
    }
    if presented.generation < state.generation {
        // A genuine (MAC-checked) token this session issued before: a copy of it is in use.
        Decision::Theft
    } else {
        Decision::Unauthorised(UnauthorisedReason::UnknownToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H0: TokenHash = [0; 32];
    const H1: TokenHash = [1; 32];
    const H2: TokenHash = [2; 32];
    const POLICY: RotationPolicy = RotationPolicy {
        grace_ms: 30_000,
        validity_ms: 3_600_000,
    };

    fn state() -> RotationState {
        RotationState {
            generation: 2,
            current_hash: H2,
            previous_hash: Some(H1),
            rotated_at: 1_000_000,
            expires_at: 5_000_000,
        }
    }

    fn check(
        state: Option<RotationState>,
        generation: u64,
        hash: TokenHash,
        now: Millis,
        want: Decision,
    ) {
        let got = decide(state.as_ref(), &Presented { generation, hash }, now, POLICY);
        assert_eq!(got, want, "gen {generation}, now {now}");
    }

    #[test]
    fn rules() {
        use Decision::*;
        use UnauthorisedReason::*;
        let rotate = |now: Millis| Rotate {
            new_generation: 3,
            new_expires_at: now + POLICY.validity_ms,
        };
        // Rule 1: current token rotates and the expiry slides.
        check(Some(state()), 2, H2, 1_500_000, rotate(1_500_000));
        // Rule 2: previous token inside the grace window, up to and including its last ms.
        check(Some(state()), 1, H1, 1_000_001, GraceReplay);
        check(Some(state()), 1, H1, 1_030_000, GraceReplay);
        // Rule 3: previous token after the window; any older generation.
        check(Some(state()), 1, H1, 1_030_001, Theft);
        check(Some(state()), 0, H0, 1_000_001, Theft);
        // Rule 4: unknown generation or a hash this session never had.
        check(Some(state()), 3, H0, 1_000_001, Unauthorised(UnknownToken));
        check(Some(state()), 2, H1, 1_000_001, Unauthorised(UnknownToken));
        check(None, 2, H2, 1_000_001, Unauthorised(UnknownSession));
        // Rule 5: expiry is checked first, for every token, and never extended.
        check(Some(state()), 2, H2, 5_000_000, Unauthorised(Expired));
        check(Some(state()), 1, H1, 5_000_000, Unauthorised(Expired));
        check(Some(state()), 0, H0, 5_000_001, Unauthorised(Expired));
    }

    #[test]
    fn previous_with_wrong_hash_is_not_grace() {
        // Same generation number as the previous token but another hash: not issued here.
        let got = decide(
            Some(&state()),
            &Presented {
                generation: 1,
                hash: H0,
            },
            1_000_001,
            POLICY,
        );
        // Older than current by generation, genuine MAC: theft.
        assert_eq!(got, Decision::Theft);
    }

    #[test]
    fn zero_grace_window_still_accepts_the_same_millisecond() {
        let policy = RotationPolicy {
            grace_ms: 0,
            ..POLICY
        };
        let p = Presented {
            generation: 1,
            hash: H1,
        };
        assert_eq!(
            decide(Some(&state()), &p, 1_000_000, policy),
            Decision::GraceReplay
        );
        assert_eq!(
            decide(Some(&state()), &p, 1_000_001, policy),
            Decision::Theft
        );
    }
}
