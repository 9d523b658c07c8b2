-- Refresh rotation inserts a token per refresh; its foreign keys were most of what that
-- insert cost PostgreSQL beyond the row itself (issue 7). Each checked its parent row
-- with a KEY SHARE lock, a WAL record, and for a client's row shared by all of the
-- client's concurrent refreshes, a MultiXact.
--
-- A refresh token's client is its grant's client, and grants already cascade with their
-- client: the client key and its index (never read) go.
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_client_id_fkey;
DROP INDEX refresh_tokens_client_id;

-- Tokens are inserted only together with their live grant (code redemption, rotation),
-- so the grant key's check guarded nothing the statements do not; its cascade stays, as
-- this trigger. A rotation racing the deletion of its grant's client can leave a row
-- whose grant is gone; no statement finds a token without its grant, so such a row is
-- never usable.
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_grant_id_fkey;
CREATE FUNCTION refresh_tokens_follow_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM refresh_tokens WHERE grant_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER grants_delete_refresh_tokens AFTER DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION refresh_tokens_follow_grant();
