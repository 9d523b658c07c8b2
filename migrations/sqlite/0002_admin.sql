-- Admin surface (issue 4). Keep in step with migrations/postgres/0002_admin.sql.
--
-- Admin API keys: the value is shown once and stored only as its SHA-256 digest
-- (DESIGN §2). Revoked and expired keys stay listed so operators see what existed.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX api_keys_created_at ON api_keys (created_at DESC);
