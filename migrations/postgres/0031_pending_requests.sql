-- Authorization requests waiting for the person to sign in or consent, one row each:
-- kept in the browser session's data, two requests of one browser at once (two tabs)
-- each wrote the whole session back and one lost its request. `owner` is the SHA-256 of
-- a random key held in the browser session; `id` travels in the login and consent
-- pages' URLs; `seq` orders a browser's requests, so the oldest go first.
CREATE TABLE pending_requests (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    owner      BYTEA NOT NULL CHECK (length(owner) = 32),
    request    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_requests_owner ON pending_requests (owner, seq);
CREATE INDEX pending_requests_expires_at ON pending_requests (expires_at);
