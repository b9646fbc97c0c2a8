-- Sessions, signing keys and the revocation feed (MySQL / MariaDB, InnoDB).
-- {{refresh_tokens}} and {{signing_key}} are replaced by store.tables.* (validated names).
CREATE TABLE IF NOT EXISTS `{{refresh_tokens}}` (
    session_handle VARCHAR(64) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    generation BIGINT UNSIGNED NOT NULL,
    current_hash BINARY(32) NOT NULL,
    previous_hash BINARY(32) NULL,
    rotated_at_ms BIGINT NOT NULL,
    session_data MEDIUMTEXT NOT NULL,
    jwt_payload MEDIUMTEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (session_handle),
    KEY `{{refresh_tokens}}_user_id_idx` (user_id),
    KEY `{{refresh_tokens}}_expires_at_idx` (expires_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS `{{signing_key}}` (
    kid VARCHAR(64) NOT NULL,
    purpose VARCHAR(16) NOT NULL,
    seq BIGINT UNSIGNED NOT NULL,
    algorithm VARCHAR(32) NOT NULL,
    secret VARBINARY(255) NOT NULL,
    public_key VARBINARY(255) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS sessiongate_revocation (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    session_handle VARCHAR(64) NOT NULL,
    revoked_at_ms BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY sessiongate_revocation_at_idx (revoked_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
