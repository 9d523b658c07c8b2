-- Retention: cleanup (crates/core/src/service.rs) deletes refresh tokens and grants a day
-- after they expire, and audit events older than `audit_retention_days`, in bounded
-- batches: DELETE … WHERE rowid IN (SELECT rowid … WHERE expires_at < $1
-- ORDER BY expires_at LIMIT $2). Without an index on the cut-off column each batch would
-- scan the whole table for its rows while holding the single writer.
--
-- The price (issue 7): one more B-tree insert per code redemption (the grant) and per
-- refresh rotation (the successor token), each on a small, near-monotonic key. A grant's
-- is its creation time plus a lifetime, so grants insert at the index's right edge. A
-- successor token takes its grant's expiry (or now plus the client's refresh lifetime,
-- if sooner), so a rotation inserts beside its grant's earlier tokens: within the range
-- of live grants' expiries rather than only at the right edge.
--
-- The token index also keeps grant deletion small: tokens never outlive their grant and
-- are deleted first, so a grant's delete (and the ON DELETE CASCADE that takes its tokens
-- along) no longer finds the thousands of used tokens a long-lived grant accumulates, and
-- a batch of grants stays a bounded amount of work.
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX grants_expires_at ON grants (expires_at);

-- audit_events needs none: its range `at < $1` is read from audit_events_at
-- (at DESC, seq DESC), which the audit log's listing already keeps.
