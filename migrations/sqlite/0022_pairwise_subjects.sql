-- OIDC Core §8.1: a client with a sector sees each person under a pairwise subject
-- identifier computed from the sector and the person's id; NULL for the public
-- identifier (the user id), the same for every client.
ALTER TABLE clients ADD COLUMN pairwise_sector TEXT;
-- Secrets of the server itself (the key pairwise subject identifiers are computed with),
-- sealed with the key-encryption key as signing keys are; created once, at first start.
CREATE TABLE server_secrets (
    name             TEXT PRIMARY KEY,
    secret_encrypted BLOB NOT NULL,
    created_at       INTEGER NOT NULL
);
