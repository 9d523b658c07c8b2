-- PostgreSQL's 0005 drops the foreign keys of refresh_tokens: there each check took a
-- KEY SHARE lock on the parent row, a WAL record per refresh (issue 7). SQLite checks a
-- foreign key with an index lookup and no lock, so its keys and their cascades stay.
-- This file keeps the two migration folders in step (DESIGN §1).
SELECT 1;
