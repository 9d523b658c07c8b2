-- OIDC Core §5.1 `given_name` and `family_name`, released with the `profile` scope
-- beside `name`. NULL for none, and for the users made before these columns.
ALTER TABLE users ADD COLUMN given_name TEXT;
ALTER TABLE users ADD COLUMN family_name TEXT;
