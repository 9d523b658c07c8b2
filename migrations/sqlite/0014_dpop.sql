-- DPoP (RFC 9449). An authorization code asked for with `dpop_jkt` (§10), or pushed with
-- a DPoP proof (§10.1), is bound to that key: only a token request whose proof is signed
-- with it can redeem it.
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;

-- A public client's grant obtained with a DPoP proof is bound to the proof's key (§5):
-- its refresh tokens work only with proofs signed by that key. Confidential clients'
-- grants are not bound (they authenticate).
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT;

-- The `jti` of each DPoP proof accepted is kept in `client_assertions`, with its key's
-- thumbprint, under the client id `dpop proofs` (which no client can have), until no
-- node would accept the proof again (§11.1).

-- RFC 9449 §5.2 `dpop_bound_access_tokens`: the client's token requests must carry a
-- DPoP proof.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
