-- OIDC Registration §2 `jwks_uri`: where a private_key_jwt client publishes its public
-- keys, instead of registering them inline (`jwks`).
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
