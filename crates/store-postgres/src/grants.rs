//! `GrantRepo` and `RefreshRepo` on PostgreSQL, and the grant revocation steps the
//! code, user and refresh use cases share.

use async_trait::async_trait;
use portcullis_core::model::{Digest, Grant, RefreshToken, Revocation, RevocationTarget, User};
use portcullis_core::repo::{GrantRepo, RefreshRepo, RefreshRotation, StoreResult};
use portcullis_protocol::ClientId;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{FromRow, PgConnection, Postgres};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
use crate::codec;
use crate::error::ResultExt;
use crate::revocations;
use crate::rotation::{Rotation, Rotator};

macro_rules! grant_columns {
    () => {
        "id, client_id, user_id, scope, auth_time, sid, nonce, created_at, expires_at, revoked_at, dpop_jkt, resource"
    };
}

#[derive(FromRow)]
pub(crate) struct GrantRow {
    id: Uuid,
    client_id: String,
    user_id: Uuid,
    scope: String,
    auth_time: OffsetDateTime,
    sid: String,
    nonce: Option<String>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    dpop_jkt: Option<String>,
    resource: Option<String>,
}

impl GrantRow {
    fn into_grant(self) -> StoreResult<Grant> {
        Ok(Grant {
            id: self.id,
            client_id: codec::client_id("grants.client_id", &self.client_id)?,
            user_id: self.user_id,
            scope: codec::scope("grants.scope", &self.scope)?,
            auth_time: self.auth_time,
            sid: self.sid,
            nonce: self.nonce,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            dpop_jkt: self.dpop_jkt,
            resource: self.resource,
        })
    }
}

/// A refresh token joined with its grant; token columns carry an `rt_` prefix.
#[derive(FromRow)]
struct RefreshRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    rt_token_hash: Vec<u8>,
    rt_grant_id: Uuid,
    rt_client_id: String,
    rt_scope: String,
    rt_created_at: OffsetDateTime,
    rt_expires_at: OffsetDateTime,
    rt_used_at: Option<OffsetDateTime>,
}

impl RefreshRow {
    fn into_pair(self) -> StoreResult<(RefreshToken, Grant)> {
        let token = RefreshToken {
            token_hash: codec::digest("refresh_tokens.token_hash", &self.rt_token_hash)?,
            grant_id: self.rt_grant_id,
            client_id: codec::client_id("refresh_tokens.client_id", &self.rt_client_id)?,
            scope: codec::scope("refresh_tokens.scope", &self.rt_scope)?,
            created_at: self.rt_created_at,
            expires_at: self.rt_expires_at,
            used_at: self.rt_used_at,
        };
        Ok((token, self.grant.into_grant()?))
    }
}

/// A refresh row with the grant's user (`u_` columns; the user's id is the grant's).
#[derive(FromRow)]
pub(crate) struct RefreshUserRow {
    #[sqlx(flatten)]
    refresh: RefreshRow,
    u_username: String,
    u_email: Option<String>,
    u_email_verified: bool,
    u_name: Option<String>,
    u_given_name: Option<String>,
    u_family_name: Option<String>,
    u_password_hash: String,
    u_disabled: bool,
    u_created_at: OffsetDateTime,
    u_updated_at: OffsetDateTime,
}

impl RefreshUserRow {
    /// The digest of the row's refresh token: after a rotation, the successor's.
    pub(crate) fn successor_hash(&self) -> &[u8] {
        &self.refresh.rt_token_hash
    }

    pub(crate) fn into_triple(self) -> StoreResult<(RefreshToken, Grant, User)> {
        let (token, grant) = self.refresh.into_pair()?;
        let user = User {
            id: grant.user_id,
            username: self.u_username,
            email: self.u_email,
            email_verified: self.u_email_verified,
            name: self.u_name,
            given_name: self.u_given_name,
            family_name: self.u_family_name,
            password_hash: self.u_password_hash,
            disabled: self.u_disabled,
            created_at: self.u_created_at,
            updated_at: self.u_updated_at,
        };
        Ok((token, grant, user))
    }
}

/// Marks one grant revoked and deletes its refresh tokens. True if it was not revoked before.
pub(crate) async fn revoke_one(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(done.rows_affected() > 0)
}

/// The rest of a statement whose first CTE, `consumed`, yields one row when an
/// authorization code or a device authorization was just used up: it inserts the new grant
/// ($3 to $14) and its first refresh token ($15 to $19; none when $15 is null), and answers
/// the grant's id. Bind them with `bind_new_grant`. One statement is one round trip, atomic
/// as any (issue 7); the refresh token's foreign key is checked at its end, when the grant
/// row exists.
macro_rules! insert_new_grant {
    () => {
        "g AS ( \
             INSERT INTO grants (id, client_id, user_id, scope, auth_time, sid, nonce, created_at, \
                                 expires_at, revoked_at, dpop_jkt, resource) \
             SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM consumed \
             RETURNING id), \
         r AS ( \
             INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at, \
                                         used_at) \
             SELECT $15, id, $16, $17, $18, $19, NULL FROM g WHERE $15::bytea IS NOT NULL) \
         SELECT id FROM g"
    };
}
pub(crate) use insert_new_grant;

/// Binds $3 to $19 of `insert_new_grant`: `grant` and `refresh`.
pub(crate) fn bind_new_grant<'q, O>(
    query: QueryScalar<'q, Postgres, O, PgArguments>,
    grant: &'q Grant,
    refresh: Option<&'q RefreshToken>,
) -> QueryScalar<'q, Postgres, O, PgArguments> {
    query
        .bind(grant.id)
        .bind(grant.client_id.as_str())
        .bind(grant.user_id)
        .bind(grant.scope.as_string())
        .bind(grant.auth_time)
        .bind(&grant.sid)
        .bind(&grant.nonce)
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .bind(grant.revoked_at)
        .bind(&grant.dpop_jkt)
        .bind(&grant.resource)
        .bind(refresh.map(|r| r.token_hash.as_slice()))
        .bind(refresh.map(|r| r.client_id.as_str()))
        .bind(refresh.map(|r| r.scope.as_string()))
        .bind(refresh.map(|r| r.created_at))
        .bind(refresh.map(|r| r.expires_at))
}

/// Revokes a grant because a code or refresh token was presented twice, recording a
/// grant revocation that lives until `expires_at` whatever the grant's earlier state.
pub(crate) async fn revoke_for_replay(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> StoreResult<()> {
    revoke_one(conn, id, now).await?;
    revocations::record(
        conn,
        &[Revocation {
            target: RevocationTarget::Grant(id),
            expires_at,
        }],
    )
    .await
}

/// Revokes every live grant of a user, deletes the refresh tokens of all their grants,
/// their browser sessions and their codes and device approvals not yet redeemed, and
/// records `given` — plus a
/// grant revocation for each grant revoked here that `given` misses (one created after
/// the caller listed them).
pub(crate) async fn revoke_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
    given: &[Revocation],
) -> StoreResult<()> {
    // Unused codes first, as in `revoke_client`: a redemption racing with this holds its
    // code's row lock until it commits, so once this delete has waited for it, the grant
    // it made is visible to the statements below (READ COMMITTED) and ends with the others.
    // Device approvals not yet redeemed likewise (RFC 8628): a device must not sign in
    // with an approval the person's password change or disable came after.
    for sql in [
        "DELETE FROM auth_codes WHERE user_id = $1 AND consumed_at IS NULL",
        "DELETE FROM device_authorizations WHERE user_id = $1 AND redeemed_at IS NULL",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await.db()?;
    }
    let revoked: Vec<(Uuid, OffsetDateTime)> = sqlx::query_as(
        "UPDATE grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id, expires_at",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1)")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .db()?;
    revocations::record(conn, &codec::cover_grants(given, &revoked)).await
}

/// Revokes every grant of a client being disabled, deletes their refresh tokens and the
/// client's unused codes, and records `given` plus a revocation for each grant.
pub(crate) async fn revoke_client(
    conn: &mut PgConnection,
    client_id: &str,
    now: OffsetDateTime,
    given: &[Revocation],
) -> StoreResult<()> {
    // Unused codes first: a redemption racing with this holds its code's row lock until it
    // commits, so once this delete has waited for it, the grant and refresh token it made
    // are visible to the statements below (READ COMMITTED) and end with the others.
    for sql in [
        "DELETE FROM auth_codes WHERE client_id = $1 AND consumed_at IS NULL",
        "DELETE FROM device_authorizations WHERE client_id = $1 AND redeemed_at IS NULL",
    ] {
        sqlx::query(sql).bind(client_id).execute(&mut *conn).await.db()?;
    }
    let revoked: Vec<(Uuid, OffsetDateTime)> = sqlx::query_as(
        "UPDATE grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL RETURNING id, expires_at",
    )
    .bind(client_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)")
        .bind(client_id)
        .execute(&mut *conn)
        .await
        .db()?;
    revocations::record(conn, &codec::cover_grants(given, &revoked)).await
}

#[async_trait]
impl GrantRepo for PgStore {
    async fn get_grant(&self, id: Uuid) -> StoreResult<Option<Grant>> {
        sqlx::query_as::<_, GrantRow>(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db()?
            .map(GrantRow::into_grant)
            .transpose()
    }

    async fn list_grants_for_user(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<Vec<Grant>> {
        sqlx::query_as::<_, GrantRow>(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(GrantRow::into_grant)
        .collect()
    }

    async fn list_signed_in(
        &self,
        user_id: Uuid,
        sid: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(ClientId, String)>> {
        // Every grant still stored, whatever its state; the grant's own client and sid
        // are what the sign-in told the client. Ties on time are broken by name so the
        // order (and which pairs a limit leaves out) does not depend on the plan.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT client_id, sid FROM grants WHERE user_id = $1 AND ($2::text IS NULL OR sid = $2) \
             AND position(' openid ' in ' ' || scope || ' ') > 0 \
             GROUP BY client_id, sid ORDER BY max(created_at) DESC, client_id, sid LIMIT $3",
        )
        .bind(user_id)
        .bind(sid)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.into_iter()
            .map(|(client_id, sid)| Ok((codec::client_id("grants.client_id", &client_id)?, sid)))
            .collect()
    }

    async fn revoke_grant(&self, id: Uuid, now: OffsetDateTime, revocation: &Revocation) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.db()?;
        if !revoke_one(&mut tx, id, now).await? {
            return Ok(false);
        }
        revocations::record(&mut tx, std::slice::from_ref(revocation)).await?;
        tx.commit().await.db()?;
        Ok(true)
    }

    async fn count_active_grants(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE revoked_at IS NULL AND expires_at > $1")
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(n.unsigned_abs())
    }

    async fn delete_expired_grants(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // Their refresh tokens go in the same statement, through `refresh_tokens_grant_id`,
        // by the trigger `grants_delete_refresh_tokens` (migration 0005; the store contract
        // checks). Cleanup deletes expired tokens first, and a token never outlives its
        // grant, so few are left by then. The statement's shape is explained at
        // `delete_expired_refresh_tokens`.
        self.delete_batch(
            "DELETE FROM grants WHERE id = ANY(ARRAY( \
                 SELECT id FROM grants WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }
}

#[async_trait]
impl RefreshRepo for PgStore {
    async fn get_refresh_token(&self, token_hash: &Digest) -> StoreResult<Option<(RefreshToken, Grant)>> {
        sqlx::query_as::<_, RefreshRow>(
            "SELECT g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.sid, g.nonce, g.created_at, \
                    g.expires_at, g.revoked_at, g.dpop_jkt, g.resource, \
                    rt.token_hash AS rt_token_hash, rt.grant_id AS rt_grant_id, rt.client_id AS rt_client_id, \
                    rt.scope AS rt_scope, rt.created_at AS rt_created_at, rt.expires_at AS rt_expires_at, \
                    rt.used_at AS rt_used_at \
             FROM refresh_tokens rt JOIN grants g ON g.id = rt.grant_id WHERE rt.token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(RefreshRow::into_pair)
        .transpose()
    }

    async fn get_refresh_token_with_user(
        &self,
        token_hash: &Digest,
    ) -> StoreResult<Option<(RefreshToken, Grant, User)>> {
        // Grants cascade with their user, so the inner join loses no live grant.
        sqlx::query_as::<_, RefreshUserRow>(
            "SELECT g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.sid, g.nonce, g.created_at, \
                    g.expires_at, g.revoked_at, g.dpop_jkt, g.resource, \
                    rt.token_hash AS rt_token_hash, rt.grant_id AS rt_grant_id, rt.client_id AS rt_client_id, \
                    rt.scope AS rt_scope, rt.created_at AS rt_created_at, rt.expires_at AS rt_expires_at, \
                    rt.used_at AS rt_used_at, \
                    u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, \
                    u.name AS u_name, u.given_name AS u_given_name, u.family_name AS u_family_name, u.password_hash AS u_password_hash, u.disabled AS u_disabled, \
                    u.created_at AS u_created_at, u.updated_at AS u_updated_at \
             FROM refresh_tokens rt JOIN grants g ON g.id = rt.grant_id JOIN users u ON u.id = g.user_id \
             WHERE rt.token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(RefreshUserRow::into_triple)
        .transpose()
    }

    async fn rotate_live_refresh_token(
        &self,
        old_hash: &Digest,
        client_id: &ClientId,
        new_hash: &Digest,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Option<(RefreshToken, Grant, User)>> {
        let rotation = Rotation {
            old_hash: *old_hash,
            client_id: client_id.clone(),
            new_hash: *new_hash,
            now,
            expires_at,
        };
        self.rotator
            .get_or_init(|| Rotator::spawn(self.pool.clone()))
            .rotate(&self.pool, rotation)
            .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &Digest,
        new: &RefreshToken,
        now: OffsetDateTime,
        reuse_revocation_expiry: OffsetDateTime,
    ) -> StoreResult<RefreshRotation> {
        // The common case in one statement, so one round trip and no explicit transaction
        // (issue 7: refresh rotation throughput). A concurrent rotation of the same token
        // waits on the row lock in the UPDATE and then re-checks `used_at IS NULL` against
        // the committed row, so only one of them marks it used and inserts a successor.
        let rotated: Option<Uuid> = sqlx::query_scalar(
            "WITH used AS ( \
                 UPDATE refresh_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND grant_id = $4 \
                   AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id \
                                AND g.revoked_at IS NULL AND g.expires_at > $2) \
                 RETURNING grant_id) \
             INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at, used_at) \
             SELECT $3, grant_id, $5, $6, $7, $8, NULL FROM used \
             RETURNING grant_id",
        )
        .bind(old_hash.as_slice())
        .bind(now)
        .bind(new.token_hash.as_slice())
        .bind(new.grant_id)
        .bind(new.client_id.as_str())
        .bind(new.scope.as_string())
        .bind(new.created_at)
        .bind(new.expires_at)
        .fetch_optional(&self.pool)
        .await
        .conflict("refresh token")?;
        if rotated.is_some() {
            return Ok(RefreshRotation::Rotated);
        }
        let mut tx = self.pool.begin().await.db()?;
        // RFC 9700 §4.14.2: a used token presented again means it leaked; end the grant.
        let used: Option<Uuid> =
            sqlx::query_scalar("SELECT grant_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL")
                .bind(old_hash.as_slice())
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        let Some(grant_id) = used else {
            return Ok(RefreshRotation::Invalid);
        };
        revoke_for_replay(&mut tx, grant_id, now, reuse_revocation_expiry).await?;
        tx.commit().await.db()?;
        Ok(RefreshRotation::Reused { grant_id })
    }

    async fn delete_expired_refresh_tokens(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // Bounded, so one statement never holds a long backlog's locks and WAL. The keys are
        // collected first (ARRAY) and then found by primary key: with `IN (SELECT …)` the
        // planner hash-joins the batch against a scan of the whole table. ORDER BY keeps
        // the inner read on `refresh_tokens_expires_at` even in a generic plan, where a
        // range on a parameter looks broad enough for a sequential scan. SKIP LOCKED lets
        // nodes cleaning up at the same time take different batches instead of queueing.
        self.delete_batch(
            "DELETE FROM refresh_tokens WHERE token_hash = ANY(ARRAY( \
                 SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }

    async fn bind_grant_to_dpop_key(&self, grant_id: Uuid, jkt: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE grants SET dpop_jkt = $2 WHERE id = $1 AND dpop_jkt IS NULL")
            .bind(grant_id)
            .bind(jkt)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }
}
