-- OIDC Registration §2 `tos_uri`: where the client's terms of service are, linked on the
-- consent page beside its privacy policy (`policy_uri`).
ALTER TABLE clients ADD COLUMN tos_uri TEXT;
