-- OIDC Registration §2 `request_uris`: the URLs a client registered to send its request
-- objects by reference from (OIDC Core §6.2), as a JSON array of strings.
ALTER TABLE clients ADD COLUMN request_uris TEXT NOT NULL DEFAULT '[]';
