-- OIDC Registration §2 and Back-Channel Logout §2.2, as a client registers them: the
-- algorithm its client assertions (`token_endpoint_auth_signing_alg`) and its request
-- objects (`request_object_signing_alg`) must be signed with, NULL for any the server
-- takes; and whether its logout tokens must name a session (`sid`), so that the end of
-- all a person's sessions is told to it one session at a time.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_signing_alg TEXT;
ALTER TABLE clients ADD COLUMN request_object_signing_alg TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required INTEGER NOT NULL DEFAULT 0;
