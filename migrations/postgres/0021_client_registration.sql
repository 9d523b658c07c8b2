-- RFC 7591 / RFC 7592: a client that registered itself at /register keeps the SHA-256 of
-- its registration access token, with which it reads, updates and deletes its
-- registration; NULL for clients an operator registered.
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;
-- The client registered itself: its name and URIs are its own word, whoever manages it
-- now (an operator's edit ends the registration access token, never this).
ALTER TABLE clients ADD COLUMN self_registered BOOLEAN NOT NULL DEFAULT FALSE;
