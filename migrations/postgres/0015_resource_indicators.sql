-- Resource indicators (RFC 8707): the APIs (absolute URIs) a client may ask for access
-- tokens to (`resource`), as a JSON list; the one an authorization code and its grant
-- were asked for, which their access tokens carry as `aud`.
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE auth_codes ADD COLUMN resource TEXT;
ALTER TABLE grants ADD COLUMN resource TEXT;
