-- OIDC Registration §2 `userinfo_signed_response_alg`: the UserInfo endpoint answers the
-- client with a JWT signed with this algorithm (`application/jwt`); NULL for plain JSON.
ALTER TABLE clients ADD COLUMN userinfo_signed_response_alg TEXT;
