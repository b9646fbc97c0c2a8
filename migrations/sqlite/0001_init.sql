-- Sessions, signing keys and the revocation feed (SQLite).
-- {{refresh_tokens}} and {{signing_key}} are replaced by store.tables.* (validated names).
CREATE TABLE IF NOT EXISTS {{refresh_tokens}} (
    session_handle TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    current_hash BLOB NOT NULL,
    previous_hash BLOB,
    rotated_at_ms INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    jwt_payload TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {{refresh_tokens}}_user_id_idx ON {{refresh_tokens}} (user_id);
CREATE INDEX IF NOT EXISTS {{refresh_tokens}}_expires_at_idx ON {{refresh_tokens}} (expires_at_ms);
CREATE TABLE IF NOT EXISTS {{signing_key}} (
    kid TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    seq INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    secret BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessiongate_revocation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_handle TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessiongate_revocation_at_idx ON sessiongate_revocation (revoked_at_ms);
