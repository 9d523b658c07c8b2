-- RFC 7591 §3 initial access tokens: with registration = "token", a client registers
-- itself only with one of these, which an operator hands out. Stored as SHA-256 digests;
-- each expires, and may be limited to a number of registrations (NULL: no limit).
CREATE TABLE initial_access_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    uses_left  INTEGER CHECK (uses_left >= 0),
    revoked_at INTEGER
) STRICT;
CREATE INDEX initial_access_tokens_created_at ON initial_access_tokens (created_at DESC);
