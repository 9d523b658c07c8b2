-- Signing keys per algorithm: access tokens are signed with the configured algorithm,
-- ID tokens always with RS256 (OIDC Core §15.1), so a server configured for ES256 or
-- EdDSA keeps an active and a next key for each of the two. One active and one next key
-- per algorithm, as 0001 had one of each overall.
DROP INDEX signing_keys_one_active;
DROP INDEX signing_keys_one_next;
CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next_per_alg ON signing_keys (alg) WHERE state = 'next';
