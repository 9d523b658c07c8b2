-- RFC 9701 §6: the algorithm of the JWTs that answer the client at /introspect when it
-- asks for application/token-introspection+jwt; NULL for the default, RS256.
ALTER TABLE clients ADD COLUMN introspection_signed_response_alg TEXT;
