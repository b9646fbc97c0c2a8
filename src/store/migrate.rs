//! Versioned schema migrations, embedded from `migrations/{mysql,sqlite}/NNNN_name.sql`.
//!
//! Each file is applied once, in version order, and recorded in `sessiongate_migrations`.
//! Table names from config replace `{{refresh_tokens}}` / `{{signing_key}}` (names are checked
//! by [`super::checked_tables`] first). The stores run the statements; this module only lists
//! and renders them.

use crate::config::TableNames;

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    sql: &'static str,
}

pub const MYSQL: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/mysql/0001_init.sql"),
}];

pub const SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/sqlite/0001_init.sql"),
}];

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
        }
    }
}
