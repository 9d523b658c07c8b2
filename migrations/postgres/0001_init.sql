-- Portcullis schema for PostgreSQL. Keep in step with migrations/sqlite/0001_init.sql:
-- same tables, columns and constraints; only the column types differ (TIMESTAMPTZ, UUID,
-- BYTEA here; unix seconds, TEXT and BLOB there).
--
-- Secrets are stored only as SHA-256 digests (DESIGN §2). Lists are JSON arrays of
-- strings in TEXT columns; scope sets are space-separated strings.

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash               BYTEA CHECK (secret_hash IS NULL OR length(secret_hash) = 32),
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    first_party               BOOLEAN NOT NULL,
    require_pkce              BOOLEAN NOT NULL,
    access_token_ttl          BIGINT,
    refresh_token_ttl         BIGINT,
    cors_origins              TEXT NOT NULL,
    logo_uri                  TEXT,
    policy_uri                TEXT,
    disabled                  BOOLEAN NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL,
    email          TEXT,
    email_verified BOOLEAN NOT NULL,
    name           TEXT,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- "alice" and "Alice" are the same account name: no look-alike accounts.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE admins (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX admins_username_key ON admins (lower(username));

CREATE TABLE signing_keys (
    kid                   TEXT PRIMARY KEY,
    alg                   TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    private_key_encrypted BYTEA NOT NULL,
    public_jwk            TEXT NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    activated_at          TIMESTAMPTZ,
    retired_at            TIMESTAMPTZ,
    publish_until         TIMESTAMPTZ
);
-- At most one signing key and one next key, even when several nodes bootstrap at once.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Consumed codes stay until they expire so that a replay can be detected and the grant
-- the first redemption produced revoked (RFC 6749 §4.1.2).
CREATE TABLE auth_codes (
    code_hash             BYTEA PRIMARY KEY CHECK (length(code_hash) = 32),
    client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id               UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit BOOLEAN NOT NULL,
    scope                 TEXT NOT NULL,
    code_challenge        TEXT,
    nonce                 TEXT,
    auth_time             TIMESTAMPTZ NOT NULL,
    sid                   TEXT NOT NULL,
    expires_at            TIMESTAMPTZ NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    consumed_at           TIMESTAMPTZ,
    -- The grant the redemption produced; no foreign key because it is set in the same
    -- statement that consumes the code, before the grant row exists.
    grant_id              UUID
);
CREATE INDEX auth_codes_client_id ON auth_codes (client_id);
CREATE INDEX auth_codes_user_id ON auth_codes (user_id);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
    id         UUID PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    auth_time  TIMESTAMPTZ NOT NULL,
    sid        TEXT NOT NULL,
    nonce      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_user_id ON grants (user_id);

-- Used tokens stay so that reuse can be detected (RFC 9700 §4.14.2); they go with their grant.
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id   UUID NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);

-- The revocation log nodes follow by `seq` (DESIGN §3). One row per target: revoking a
-- target again moves it to a new `seq` and keeps the later expiry.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    UNIQUE (kind, value)
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

CREATE TABLE consents (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE browser_sessions (
    id_hash    BYTEA PRIMARY KEY CHECK (length(id_hash) = 32),
    data       TEXT NOT NULL,
    user_id    UUID REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT,
    ip         TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- No foreign keys: the audit log outlives the users and clients it mentions.
-- `seq` orders events written within the same instant.
CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    at         TIMESTAMPTZ NOT NULL,
    event_type TEXT NOT NULL,
    actor      TEXT,
    user_id    UUID,
    client_id  TEXT,
    ip         TEXT,
    detail     JSONB NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at DESC, seq DESC);
CREATE INDEX audit_events_user_id ON audit_events (user_id, at DESC);
CREATE INDEX audit_events_client_id ON audit_events (client_id, at DESC);
CREATE INDEX audit_events_event_type ON audit_events (event_type, at DESC);
