-- Pushed authorization requests (RFC 9126), by the SHA-256 of their request_uri's
-- random part: validated when pushed, used once, gone when they expire.
CREATE TABLE pushed_requests (
    request_hash BYTEA PRIMARY KEY CHECK (length(request_hash) = 32),
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request      TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);
