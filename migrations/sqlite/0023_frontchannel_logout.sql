-- OpenID Connect Front-Channel Logout 1.0 §2: the page of the client (on the origin of
-- one of its redirect URIs) that a sign-out here loads in a hidden iframe, with `iss`
-- and `sid`, so the client ends its own session of that browser; NULL for none.
ALTER TABLE clients ADD COLUMN frontchannel_logout_uri TEXT;
