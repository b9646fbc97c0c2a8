//! Route policies on claims (`routes[].require_claims`): whether a verified session's JWT
//! payload meets its route's rules. Pure: the caller counts the decision and answers 403.
//!
//! A rule holds when the payload's claim is a scalar equal to one of the allowed values, or
//! an array sharing at least one value with them. A missing claim, `null`, an object, or a
//! value of another type holds no rule. Numbers compare by value (`1` and `1.0` are equal);
//! strings exactly (case-sensitive). Every rule of the route must hold.

use serde_json::Value;

use crate::config::ClaimRule;

/// Whether `payload` (the session's JWT payload) meets every rule.
pub(crate) fn allows(rules: &[ClaimRule], payload: &Value) -> bool {
    rules.iter().all(|rule| {
        let Some(claim) = payload.get(&rule.claim) else {
            return false;
        };
        match claim {
            Value::Array(values) => values.iter().any(|v| allowed(rule, v)),
            scalar => allowed(rule, scalar),
        }
    })
}

fn allowed(rule: &ClaimRule, v: &Value) -> bool {
    rule.allowed.iter().any(|a| same(a, v))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::String(_) | Value::Bool(_), _) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(claim: &str, allowed: Value) -> ClaimRule {
        let Value::Array(allowed) = allowed else {
            panic!("allowed values are a list")
        };
        ClaimRule {
            claim: claim.into(),
            allowed,
        }
    }

    #[test]
    fn claims_table() {
        let roles = [rule("role", json!(["admin", "owner"]))];
        let cases: &[(&[ClaimRule], Value, bool)] = &[
            (&roles, json!({"role": "admin"}), true),
            (&roles, json!({"role": "owner"}), true),
            (&roles, json!({"role": "Admin"}), false),
            (&roles, json!({"role": "user"}), false),
            (&roles, json!({"role": ["user", "owner"]}), true),
            (&roles, json!({"role": ["user"]}), false),
            (&roles, json!({"role": []}), false),
            (&roles, json!({"role": null}), false),
            (&roles, json!({"role": {"admin": true}}), false),
            (&roles, json!({"roles": "admin"}), false),
            (&roles, json!({}), false),
            (&roles, json!(null), false),
            (&[rule("tier", json!([2, 3]))], json!({"tier": 2}), true),
            (&[rule("tier", json!([2, 3]))], json!({"tier": 2.0}), true),
            (&[rule("tier", json!([2, 3]))], json!({"tier": "2"}), false),
            (&[rule("tier", json!([2.5]))], json!({"tier": 2.5}), true),
            (
                &[rule("staff", json!([true]))],
                json!({"staff": true}),
                true,
            ),
            (
                &[rule("staff", json!([true]))],
                json!({"staff": "true"}),
                false,
            ),
            (
                &[rule("staff", json!([true]))],
                json!({"staff": [false, true]}),
                true,
            ),
            (
                &[rule("role", json!(["admin"])), rule("org", json!(["acme"]))],
                json!({"role": "admin", "org": "acme"}),
                true,
            ),
            (
                &[rule("role", json!(["admin"])), rule("org", json!(["acme"]))],
                json!({"role": "admin", "org": "other"}),
                false,
            ),
            (&[], json!({}), true),
        ];
        for (rules, payload, want) in cases {
            assert_eq!(allows(rules, payload), *want, "{rules:?} on {payload}");
        }
    }
}
