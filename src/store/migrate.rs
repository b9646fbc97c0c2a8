//! Versioned schema migrations, embedded from `migrations/{mysql,sqlite}/NNNN_name.sql`.
//!
//! Each file is applied once, in version order, and recorded in `sessiongate_migrations`.
//! Table names from config replace `{{refresh_tokens}}` / `{{signing_key}}` (names are checked
//! by [`super::checked_tables`] first). The stores run the statements; this module lists and
//! renders them and picks the pending ones, so both stores share one loop: read the applied
//! versions, run each pending migration's statements, record it.

use crate::clock::Millis;
use crate::config::TableNames;

use super::StoreError;

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    sql: &'static str,
}

pub const MYSQL: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/mysql/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "legacy_conversions",
        sql: include_str!("../../migrations/mysql/0002_legacy_conversions.sql"),
    },
];

pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "legacy_conversions",
        sql: include_str!("../../migrations/sqlite/0002_legacy_conversions.sql"),
    },
];

impl Migration {
    /// The migration's statements with table names filled in, comments removed.
    pub fn statements(&self, tables: &TableNames) -> Vec<String> {
        let sql: String = self
            .sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("{{refresh_tokens}}", &tables.refresh_tokens)
            .replace("{{signing_key}}", &tables.signing_key);
        sql.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The migrations of `set` whose version is not in `applied`, in version order.
pub fn pending<'a>(set: &'a [Migration], applied: &[u32]) -> Vec<&'a Migration> {
    set.iter()
        .filter(|m| !applied.contains(&m.version))
        .collect()
}

impl Migration {
    /// A statement of this migration failed.
    pub fn failed(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Migration(format!("{} ({}): {e}", self.version, self.name))
    }

    /// The parameters of [`super::sql::MIGRATION_RECORD`]: version, name, applied at.
    pub fn record(&self, now: Millis) -> (u32, &'static str, Millis) {
        (self.version, self.name, now)
    }
}

/// The table that records applied migrations (same DDL for both dialects).
pub const MIGRATIONS_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS sessiongate_migrations (\
     version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(128) NOT NULL, applied_at_ms BIGINT NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_rendered() {
        for set in [MYSQL, SQLITE] {
            assert!(set.windows(2).all(|w| w[0].version < w[1].version));
            let t = TableNames {
                signing_key: "keys_x".into(),
                refresh_tokens: "sess_y".into(),
            };
            let stmts = set[0].statements(&t);
            assert!(stmts.len() >= 3);
            assert!(stmts.iter().all(|s| !s.contains("{{")));
            assert!(stmts.iter().any(|s| s.contains("sess_y")));
            assert!(stmts.iter().any(|s| s.contains("keys_x")));
            assert_eq!(pending(set, &[]).len(), set.len());
            assert!(pending(set, &[1]).iter().all(|m| m.version != 1));
        }
    }
}
