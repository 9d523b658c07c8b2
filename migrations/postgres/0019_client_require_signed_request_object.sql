-- RFC 9101 §10.5 `require_signed_request_object` client metadata: this client's
-- authorization requests are taken only as request objects it signs.
ALTER TABLE clients ADD COLUMN require_signed_request_object BOOLEAN NOT NULL DEFAULT FALSE;
