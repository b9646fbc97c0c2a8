//! Migrations. Placeholder.
