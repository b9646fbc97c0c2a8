-- Kept in step with migrations/mysql/0002: [legacy] needs a MySQL store, so SQLite never
-- writes this table; it exists so both stores share one version list.
CREATE TABLE IF NOT EXISTS sessiongate_legacy_conversions (
    token_hash BLOB NOT NULL PRIMARY KEY,
    session_handle TEXT NOT NULL,
    user_id TEXT NOT NULL,
    converted_at_ms INTEGER NOT NULL
);
