-- A client's revision counts every change to its row. A write names the revision it read
-- and is refused if another write came first, so an edit, a secret rotation and a disable
-- running at the same time never undo each other (a rotated secret cannot come back).
ALTER TABLE clients ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
