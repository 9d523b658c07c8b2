-- The operator account that created each API key, by id: a key answers to that account
-- only, not to a later account of the same name. NULL for keys made before this column.
ALTER TABLE api_keys ADD COLUMN created_by_id UUID;
