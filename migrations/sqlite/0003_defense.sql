-- Defense in depth (issue 6). Keep in step with migrations/postgres/0003_defense.sql.
--
-- Failed sign-ins per (realm, username, address), keyed by a SHA-256 digest so that
-- mistyped usernames (often passwords) are never stored.
CREATE TABLE login_failures (
    key_hash        BLOB PRIMARY KEY CHECK (length(key_hash) = 32),
    failures        INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failures_last_failure_at ON login_failures (last_failure_at);

-- Event webhooks. The secret is sealed (AES-256-GCM) under the key-encryption key: the
-- server signs with it, so it cannot be a digest.
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    url              TEXT NOT NULL,
    event_types      TEXT NOT NULL,
    secret_encrypted BLOB NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at       INTEGER NOT NULL
) STRICT;

-- One row per delivery attempt: the delivery log. A retry is a new row.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt > 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    response_code   INTEGER,
    error           TEXT,
    payload         TEXT NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);
