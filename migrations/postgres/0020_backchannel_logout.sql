-- OpenID Connect Back-Channel Logout 1.0 §2.2 `backchannel_logout_uri` client metadata:
-- where the client is sent a logout token when someone it signed in signs out.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- The `sid` the browser session's sign-in put in ID tokens, so the session's end can be
-- told to the clients signed in from it (the grants of that sid). None while nobody is
-- signed in.
ALTER TABLE browser_sessions ADD COLUMN sid TEXT;
-- Sessions signed in before this migration: their sid is in their data (the web
-- layer's `auth` entry), so their end can be told too.
UPDATE browser_sessions SET sid = data::jsonb -> 'auth' ->> 'sid' WHERE user_id IS NOT NULL;

-- The clients a user signed in to, of one session or all (`list_signed_in`), are read
-- from the user's grants by user and sid at each sign-out. This index serves that and
-- every read of grants by user alone, so it replaces `grants_user_id`.
CREATE INDEX grants_user_id_sid ON grants (user_id, sid);
DROP INDEX grants_user_id;
