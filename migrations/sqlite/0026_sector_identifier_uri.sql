-- OpenID Connect Core §8.1 and Registration §2: the https URL of the JSON array of
-- redirect URIs a pairwise client registered itself with, read and checked when it
-- registered; its host is the client's sector (`pairwise_sector`). NULL for none.
ALTER TABLE clients ADD COLUMN sector_identifier_uri TEXT;
