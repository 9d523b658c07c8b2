-- RFC 7591 / RFC 7592: a client that registered itself at /register keeps the SHA-256 of
-- its registration access token, with which it reads, updates and deletes its
-- registration; NULL for clients an operator registered.
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;
