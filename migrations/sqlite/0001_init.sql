-- Portcullis schema for SQLite. Keep in step with migrations/postgres/0001_init.sql:
-- same tables, columns and constraints; only the column types differ. Here instants are
-- unix seconds (INTEGER), UUIDs hyphenated lowercase TEXT, digests BLOB, booleans 0/1.
-- STRICT tables so a value of the wrong type is refused rather than stored.
--
-- Secrets are stored only as SHA-256 digests (DESIGN §2). Lists are JSON arrays of
-- strings in TEXT columns; scope sets are space-separated strings.

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash               BLOB CHECK (secret_hash IS NULL OR length(secret_hash) = 32),
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    first_party               INTEGER NOT NULL,
    require_pkce              INTEGER NOT NULL,
    access_token_ttl          INTEGER,
    refresh_token_ttl         INTEGER,
    cors_origins              TEXT NOT NULL,
    logo_uri                  TEXT,
    policy_uri                TEXT,
    disabled                  INTEGER NOT NULL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    email          TEXT,
    email_verified INTEGER NOT NULL,
    name           TEXT,
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
-- "alice" and "Alice" are the same account name: no look-alike accounts.
-- (SQLite's lower() folds ASCII only; PostgreSQL's folds all of Unicode.)
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE admins (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX admins_username_key ON admins (lower(username));

CREATE TABLE signing_keys (
    kid                   TEXT PRIMARY KEY,
    alg                   TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    private_key_encrypted BLOB NOT NULL,
    public_jwk            TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    activated_at          INTEGER,
    retired_at            INTEGER,
    publish_until         INTEGER
) STRICT;
-- At most one signing key and one next key.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Consumed codes stay until they expire so that a replay can be detected and the grant
-- the first redemption produced revoked (RFC 6749 §4.1.2).
CREATE TABLE auth_codes (
    code_hash             BLOB PRIMARY KEY CHECK (length(code_hash) = 32),
    client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit INTEGER NOT NULL,
    scope                 TEXT NOT NULL,
    code_challenge        TEXT,
    nonce                 TEXT,
    auth_time             INTEGER NOT NULL,
    sid                   TEXT NOT NULL,
    expires_at            INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    consumed_at           INTEGER,
    -- The grant the redemption produced; no foreign key because it is set in the same
    -- statement that consumes the code, before the grant row exists.
    grant_id              TEXT
) STRICT;
CREATE INDEX auth_codes_client_id ON auth_codes (client_id);
CREATE INDEX auth_codes_user_id ON auth_codes (user_id);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    sid        TEXT NOT NULL,
    nonce      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_user_id ON grants (user_id);

-- Used tokens stay so that reuse can be detected (RFC 9700 §4.14.2); they go with their grant.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);

-- The revocation log nodes follow by `seq` (DESIGN §3). AUTOINCREMENT so a `seq` is never
-- handed out twice, even after the newest entry is deleted. One row per target: revoking
-- a target again moves it to a new `seq` and keeps the later expiry.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (kind, value)
) STRICT;
CREATE INDEX revocations_expires_at ON revocations (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE browser_sessions (
    id_hash    BLOB PRIMARY KEY CHECK (length(id_hash) = 32),
    data       TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT,
    ip         TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- No foreign keys: the audit log outlives the users and clients it mentions.
-- `seq` orders events written within the same second.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    at         INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    actor      TEXT,
    user_id    TEXT,
    client_id  TEXT,
    ip         TEXT,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_at ON audit_events (at DESC, seq DESC);
CREATE INDEX audit_events_user_id ON audit_events (user_id, at DESC);
CREATE INDEX audit_events_client_id ON audit_events (client_id, at DESC);
CREATE INDEX audit_events_event_type ON audit_events (event_type, at DESC);
