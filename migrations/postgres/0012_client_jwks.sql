-- private_key_jwt (RFC 7523 §2.2, OIDC Core §9): a confidential client may register its
-- public keys (a JWK Set, JSON) instead of having a secret.
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- The `jti` of each client assertion accepted, until the assertion expires: one seen
-- again is a replay (RFC 7523 §3 item 7).
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expires_at ON client_assertions (expires_at);
