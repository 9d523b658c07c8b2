-- Device authorization requests (RFC 8628), by the SHA-256 of their device code and of
-- their normalised user code: pending until the person decides, then redeemed once by
-- the client's polling; gone a day after they expire. A poll sooner than `interval_secs` after
-- `last_polled_at` lengthens the interval (§3.5 slow_down).
CREATE TABLE device_authorizations (
    device_code_hash BLOB PRIMARY KEY CHECK (length(device_code_hash) = 32),
    user_code_hash   BLOB NOT NULL UNIQUE CHECK (length(user_code_hash) = 32),
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope            TEXT NOT NULL,
    resource         TEXT,
    -- The address the device asked from, shown on the verification page.
    requested_from   TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    last_polled_at   INTEGER,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    -- Who approved it, when they signed in, in which browser session: set exactly when
    -- it is approved.
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    auth_time        INTEGER,
    sid              TEXT,
    -- The scope the person was shown and allowed.
    approved_scope   TEXT,
    redeemed_at      INTEGER,
    -- The grant the redemption made: a second redemption revokes it (as a code's does).
    grant_id         TEXT   ,
    CHECK ((status = 'approved') = (user_id IS NOT NULL AND auth_time IS NOT NULL AND sid IS NOT NULL
                                    AND approved_scope IS NOT NULL))
) STRICT;
CREATE INDEX device_authorizations_expires_at ON device_authorizations (expires_at);
CREATE INDEX device_authorizations_client_id ON device_authorizations (client_id);
CREATE INDEX device_authorizations_user_id ON device_authorizations (user_id);
