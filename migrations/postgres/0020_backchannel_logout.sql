-- OpenID Connect Back-Channel Logout 1.0 §2.2 `backchannel_logout_uri` client metadata:
-- where the client is sent a logout token when someone it signed in signs out.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- The `sid` the browser session's sign-in put in ID tokens, so the session's end can be
-- told to the clients signed in from it (the grants of that sid). None while nobody is
-- signed in.
ALTER TABLE browser_sessions ADD COLUMN sid TEXT;
-- Sessions signed in before this migration: their sid is in their data (the web
-- layer's `auth` entry), so their end can be told too.
-- Read with a pattern rather than as JSON: PostgreSQL's JSON types refuse a \u0000
-- escape, which a session's pending request can hold (a `state` sent with a NUL), and
-- one such row would stop the migration. The `auth` entry holds no nested object, and
-- a sid is base64url.
UPDATE browser_sessions
   SET sid = substring(data from '"auth":\{[^{}]*"sid":"([A-Za-z0-9_-]+)"')
 WHERE user_id IS NOT NULL;

-- The clients a user signed in to, of one session or all (`list_signed_in`), are read
-- from the user's grants by user and sid at each sign-out. This index serves that and
-- every read of grants by user alone, so it replaces `grants_user_id`.
CREATE INDEX grants_user_id_sid ON grants (user_id, sid);
DROP INDEX grants_user_id;
