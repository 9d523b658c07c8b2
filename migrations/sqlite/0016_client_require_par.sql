-- RFC 9126 §6 `require_pushed_authorization_requests` client metadata: this client's
-- authorization requests are taken only through /par.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests INTEGER NOT NULL DEFAULT 0;
