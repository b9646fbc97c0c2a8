//! Validation. Placeholder.
