-- Defense in depth (issue 6). Keep in step with migrations/sqlite/0003_defense.sql.
--
-- Failed sign-ins per (realm, username, address), keyed by a SHA-256 digest so that
-- mistyped usernames (often passwords) are never stored.
CREATE TABLE login_failures (
    key_hash        BYTEA PRIMARY KEY CHECK (length(key_hash) = 32),
    failures        INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_last_failure_at ON login_failures (last_failure_at);

-- Event webhooks. The secret is sealed (AES-256-GCM) under the key-encryption key: the
-- server signs with it, so it cannot be a digest.
CREATE TABLE webhooks (
    id               UUID PRIMARY KEY,
    url              TEXT NOT NULL,
    event_types      TEXT NOT NULL,
    secret_encrypted BYTEA NOT NULL,
    enabled          BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- One row per delivery attempt: the delivery log. A retry is a new row.
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    webhook_id      UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt > 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    response_code   INTEGER,
    error           TEXT,
    payload         TEXT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);
