-- OIDC Registration §2 id_token_signed_response_alg: NULL is the default, RS256.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT;
