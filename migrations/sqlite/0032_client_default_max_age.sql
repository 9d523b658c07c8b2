-- OIDC Registration §2 `default_max_age`: seconds after which the person must sign in
-- again when a request of the client names no `max_age`; NULL for none.
ALTER TABLE clients ADD COLUMN default_max_age INTEGER;
