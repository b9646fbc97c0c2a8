//! The error type of configuration loading and validation: one [`ConfigProblem`] per broken
//! key, all collected into a single [`ConfigError`].
//!
//! Owns the wording of the one-line-per-problem report `check-config` prints. It must not
//! decide what is valid (that is `validate.rs`) nor hold secret values: callers put masked
//! text in `got`.

use std::fmt;

/// One thing wrong with the configuration, tied to the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key path, e.g. `tokens.access_token.validity_secs` or `routes[0].upstream`; for a
    /// file that cannot be read or parsed, the file path.
    pub key: String,
    /// What is wrong, e.g. `out of range`.
    pub message: String,
    /// The offending value as the operator wrote it (secrets masked), when there is one.
    pub got: Option<String>,
    /// The allowed range or rule, when there is one.
    pub allowed: Option<String>,
}

impl ConfigProblem {
    /// A problem with the offending value and the rule it breaks.
    pub fn new(
        key: impl Into<String>,
        message: impl Into<String>,
        got: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            got: Some(got.into()),
            allowed: Some(allowed.into()),
        }
    }

    /// A problem that has no single offending value (a missing required key, a read error).
    pub fn bare(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            got: None,
            allowed: None,
        }
    }

    /// Adds the rule to a [`bare`](Self::bare) problem.
    pub fn allowing(mut self, allowed: impl Into<String>) -> Self {
        self.allowed = Some(allowed.into());
        self
    }
}

/// `<key.path>: <what is wrong> (got <value>; allowed <range/rule>)`
impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        match (&self.got, &self.allowed) {
            (Some(got), Some(allowed)) => write!(f, " (got {got}; allowed {allowed})"),
            (Some(got), None) => write!(f, " (got {got})"),
            (None, Some(allowed)) => write!(f, " (allowed {allowed})"),
            (None, None) => Ok(()),
        }
    }
}

/// Every problem found in one pass over the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// The problem reported for `key`, if any (handy in tests and tooling).
    pub fn problem(&self, key: &str) -> Option<&ConfigProblem> {
        self.problems.iter().find(|p| p.key == key)
    }
}

/// One line per problem, in the order found.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
