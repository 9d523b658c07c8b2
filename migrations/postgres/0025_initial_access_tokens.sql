-- RFC 7591 §3 initial access tokens: with registration = "token", a client registers
-- itself only with one of these, which an operator hands out. Stored as SHA-256 digests;
-- each expires, and may be limited to a number of registrations (NULL: no limit).
CREATE TABLE initial_access_tokens (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    uses_left  BIGINT CHECK (uses_left >= 0),
    revoked_at TIMESTAMPTZ
);
CREATE INDEX initial_access_tokens_created_at ON initial_access_tokens (created_at DESC);
