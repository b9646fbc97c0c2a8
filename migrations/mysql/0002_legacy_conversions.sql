-- Sessions taken over from the original library ([legacy], issue 14): one row per converted
-- library session, keyed by the SHA-256 of the library refresh token that converted it, so a
-- second refresh with that token within reuse_grace_secs gets the same answer and a later one
-- is recognised as theft. `sessiongate legacy status` reads the newest converted_at_ms.
CREATE TABLE IF NOT EXISTS sessiongate_legacy_conversions (
    token_hash BINARY(32) NOT NULL,
    session_handle VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    converted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (token_hash),
    KEY sessiongate_legacy_conversions_handle_idx (session_handle),
    KEY sessiongate_legacy_conversions_at_idx (converted_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
