//! `GrantRepo` and `RefreshRepo` on SQLite, and the grant revocation steps the code,
//! user and refresh use cases share.

use async_trait::async_trait;
use portcullis_core::model::{Digest, Grant, RefreshToken, Revocation, RevocationTarget, User};
use portcullis_core::repo::{GrantRepo, RefreshRepo, RefreshRotation, StoreResult};
use portcullis_protocol::ClientId;
use sqlx::{FromRow, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;
use crate::revocations;

macro_rules! grant_columns {
    () => {
        "id, client_id, user_id, scope, auth_time, sid, nonce, created_at, expires_at, revoked_at, dpop_jkt, resource"
    };
}

#[derive(FromRow)]
pub(crate) struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    scope: String,
    auth_time: i64,
    sid: String,
    nonce: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    dpop_jkt: Option<String>,
    resource: Option<String>,
}

impl GrantRow {
    fn into_grant(self) -> StoreResult<Grant> {
        Ok(Grant {
            id: codec::uuid("grants.id", &self.id)?,
            client_id: codec::client_id("grants.client_id", &self.client_id)?,
            user_id: codec::uuid("grants.user_id", &self.user_id)?,
            scope: codec::scope("grants.scope", &self.scope)?,
            auth_time: codec::time("grants.auth_time", self.auth_time)?,
            sid: self.sid,
            nonce: self.nonce,
            created_at: codec::time("grants.created_at", self.created_at)?,
            expires_at: codec::time("grants.expires_at", self.expires_at)?,
            revoked_at: codec::opt_time("grants.revoked_at", self.revoked_at)?,
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
    rt_grant_id: String,
    rt_client_id: String,
    rt_scope: String,
    rt_created_at: i64,
    rt_expires_at: i64,
    rt_used_at: Option<i64>,
}

impl RefreshRow {
    fn into_pair(self) -> StoreResult<(RefreshToken, Grant)> {
        let token = RefreshToken {
            token_hash: codec::digest("refresh_tokens.token_hash", &self.rt_token_hash)?,
            grant_id: codec::uuid("refresh_tokens.grant_id", &self.rt_grant_id)?,
            client_id: codec::client_id("refresh_tokens.client_id", &self.rt_client_id)?,
            scope: codec::scope("refresh_tokens.scope", &self.rt_scope)?,
            created_at: codec::time("refresh_tokens.created_at", self.rt_created_at)?,
            expires_at: codec::time("refresh_tokens.expires_at", self.rt_expires_at)?,
            used_at: codec::opt_time("refresh_tokens.used_at", self.rt_used_at)?,
        };
        Ok((token, self.grant.into_grant()?))
    }
}

pub(crate) async fn insert_grant(conn: &mut SqliteConnection, g: &Grant) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO grants (",
        grant_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(codec::uuid_text(g.id))
    .bind(g.client_id.as_str())
    .bind(codec::uuid_text(g.user_id))
    .bind(g.scope.as_string())
    .bind(codec::ts(g.auth_time))
    .bind(&g.sid)
    .bind(&g.nonce)
    .bind(codec::ts(g.created_at))
    .bind(codec::ts(g.expires_at))
    .bind(g.revoked_at.map(codec::ts))
    .bind(&g.dpop_jkt)
    .bind(&g.resource)
    .execute(conn)
    .await
    .conflict("grant")?;
    Ok(())
}

pub(crate) async fn insert_refresh_token(conn: &mut SqliteConnection, t: &RefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.token_hash.as_slice())
    .bind(codec::uuid_text(t.grant_id))
    .bind(t.client_id.as_str())
    .bind(t.scope.as_string())
    .bind(codec::ts(t.created_at))
    .bind(codec::ts(t.expires_at))
    .bind(t.used_at.map(codec::ts))
    .execute(conn)
    .await
    .conflict("refresh token")?;
    Ok(())
}

/// A refresh token by digest with its grant and the grant's user, as `RefreshUserRow`.
/// Grants cascade with their user, so the inner join loses no live grant.
const REFRESH_WITH_USER: &str = "SELECT g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.sid, g.nonce, \
        g.created_at, g.expires_at, g.revoked_at, g.dpop_jkt, g.resource, \
        rt.token_hash AS rt_token_hash, rt.grant_id AS rt_grant_id, rt.client_id AS rt_client_id, \
        rt.scope AS rt_scope, rt.created_at AS rt_created_at, rt.expires_at AS rt_expires_at, \
        rt.used_at AS rt_used_at, \
        u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, \
        u.name AS u_name, u.given_name AS u_given_name, u.family_name AS u_family_name, u.password_hash AS u_password_hash, u.disabled AS u_disabled, \
        u.created_at AS u_created_at, u.updated_at AS u_updated_at \
     FROM refresh_tokens rt JOIN grants g ON g.id = rt.grant_id JOIN users u ON u.id = g.user_id \
     WHERE rt.token_hash = $1";

/// A refresh row with the grant's user (`u_` columns; the user's id is the grant's).
#[derive(FromRow)]
struct RefreshUserRow {
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
    u_created_at: i64,
    u_updated_at: i64,
}

impl RefreshUserRow {
    fn into_triple(self) -> StoreResult<(RefreshToken, Grant, User)> {
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
            created_at: codec::time("users.created_at", self.u_created_at)?,
            updated_at: codec::time("users.updated_at", self.u_updated_at)?,
        };
        Ok((token, grant, user))
    }
}

/// Marks one grant revoked and deletes its refresh tokens. True if it was not revoked before.
pub(crate) async fn revoke_one(conn: &mut SqliteConnection, id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
    let id = codec::uuid_text(id);
    let done = sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(&id)
        .bind(codec::ts(now))
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(done.rows_affected() > 0)
}

/// Revokes a grant because a code or refresh token was presented twice, recording a
/// grant revocation that lives until `expires_at` whatever the grant's earlier state.
pub(crate) async fn revoke_for_replay(
    conn: &mut SqliteConnection,
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

/// Whose grants are revoked at once.
#[derive(Clone, Copy)]
enum Owner {
    User,
    Client,
}

/// Marks every unrevoked grant of a user or client revoked at `now`; returns their ids and
/// expiries.
async fn revoke_grants_of(
    conn: &mut SqliteConnection,
    owner: Owner,
    id: &str,
    now: OffsetDateTime,
) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
    let sql = match owner {
        Owner::User => {
            "UPDATE grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id, expires_at"
        }
        Owner::Client => {
            "UPDATE grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL RETURNING id, expires_at"
        }
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(id)
        .bind(codec::ts(now))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter()
        .map(|(id, exp)| Ok((codec::uuid("grants.id", id)?, codec::time("grants.expires_at", *exp)?)))
        .collect()
}

/// Revokes every grant of a client being disabled, deletes their refresh tokens and the
/// client's unused codes, and records `given` plus a revocation for each grant.
pub(crate) async fn revoke_client(
    conn: &mut SqliteConnection,
    client_id: &str,
    now: OffsetDateTime,
    given: &[Revocation],
) -> StoreResult<()> {
    let revoked = revoke_grants_of(conn, Owner::Client, client_id, now).await?;
    for sql in [
        "DELETE FROM auth_codes WHERE client_id = $1 AND consumed_at IS NULL",
        "DELETE FROM device_authorizations WHERE client_id = $1 AND redeemed_at IS NULL",
        "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)",
    ] {
        sqlx::query(sql).bind(client_id).execute(&mut *conn).await.db()?;
    }
    revocations::record(conn, &codec::cover_grants(given, &revoked)).await
}

/// Revokes every live grant of a user, deletes the refresh tokens of all their grants,
/// their browser sessions and their codes and device approvals not yet redeemed, and
/// records `given` — plus a
/// grant revocation for each grant revoked here that `given` misses (one created after
/// the caller listed them).
pub(crate) async fn revoke_user(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    now: OffsetDateTime,
    given: &[Revocation],
) -> StoreResult<()> {
    let user_id = codec::uuid_text(user_id);
    // Unused codes first, as on PostgreSQL (where the order matters; here the writer
    // takes one transaction at a time).
    // Device approvals not yet redeemed likewise (RFC 8628): a device must not sign in
    // with an approval the person's password change or disable came after.
    for sql in [
        "DELETE FROM auth_codes WHERE user_id = $1 AND consumed_at IS NULL",
        "DELETE FROM device_authorizations WHERE user_id = $1 AND redeemed_at IS NULL",
    ] {
        sqlx::query(sql).bind(&user_id).execute(&mut *conn).await.db()?;
    }
    let revoked = revoke_grants_of(conn, Owner::User, &user_id, now).await?;
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1)")
        .bind(&user_id)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
        .bind(&user_id)
        .execute(&mut *conn)
        .await
        .db()?;
    revocations::record(conn, &codec::cover_grants(given, &revoked)).await
}

#[async_trait]
impl GrantRepo for SqliteStore {
    async fn get_grant(&self, id: Uuid) -> StoreResult<Option<Grant>> {
        sqlx::query_as::<_, GrantRow>(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
            .bind(codec::uuid_text(id))
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
        .bind(codec::uuid_text(user_id))
        .bind(codec::ts(now))
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
            "SELECT client_id, sid FROM grants WHERE user_id = $1 AND ($2 IS NULL OR sid = $2) \
             AND instr(' ' || scope || ' ', ' openid ') > 0 \
             GROUP BY client_id, sid ORDER BY max(created_at) DESC, client_id, sid LIMIT $3",
        )
        .bind(codec::uuid_text(user_id))
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
        let mut tx = self.write_tx().await?;
        if !revoke_one(&mut tx, id, now).await? {
            return Ok(false);
        }
        revocations::record(&mut tx, std::slice::from_ref(revocation)).await?;
        tx.commit().await.db()?;
        Ok(true)
    }

    async fn count_active_grants(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE revoked_at IS NULL AND expires_at > $1")
            .bind(codec::ts(now))
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(n.unsigned_abs())
    }

    async fn delete_expired_grants(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // The subquery reads only the `expires_at` index, whose entries carry the rowid.
        // The grants' refresh tokens go by the foreign key's ON DELETE CASCADE (through
        // `refresh_tokens_grant_id`); cleanup deletes expired tokens first, and a token never
        // outlives its grant, so there are few left by then.
        self.delete_batch(
            "DELETE FROM grants WHERE rowid IN \
             (SELECT rowid FROM grants WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

#[async_trait]
impl RefreshRepo for SqliteStore {
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
        sqlx::query_as::<_, RefreshUserRow>(REFRESH_WITH_USER)
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
        // The write lock is held from the start, so a concurrent rotation of the same token
        // runs wholly before or after this one and finds it used.
        let mut tx = self.write_tx().await?;
        let rotated: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND client_id = $3 \
               AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id \
                                AND g.revoked_at IS NULL AND g.expires_at > $2 \
                                AND g.resource IS NULL) \
             RETURNING grant_id",
        )
        .bind(old_hash.as_slice())
        .bind(codec::ts(now))
        .bind(client_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(grant_id) = rotated else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at, used_at) \
             SELECT $1, id, $2, scope, $3, MIN($4, expires_at), NULL FROM grants WHERE id = $5",
        )
        .bind(new_hash.as_slice())
        .bind(client_id.as_str())
        .bind(codec::ts(now))
        .bind(codec::ts(expires_at))
        .bind(&grant_id)
        .execute(&mut *tx)
        .await
        .conflict("refresh token")?;
        let row = sqlx::query_as::<_, RefreshUserRow>(REFRESH_WITH_USER)
            .bind(new_hash.as_slice())
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        row.map(RefreshUserRow::into_triple).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &Digest,
        new: &RefreshToken,
        now: OffsetDateTime,
        reuse_revocation_expiry: OffsetDateTime,
    ) -> StoreResult<RefreshRotation> {
        // The write lock is held from the start, so a concurrent rotation of the same token
        // runs wholly before or after this one and finds it used.
        let mut tx = self.write_tx().await?;
        let rotated: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
               AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id \
                                AND g.revoked_at IS NULL AND g.expires_at > $2) \
             RETURNING grant_id",
        )
        .bind(old_hash.as_slice())
        .bind(codec::ts(now))
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if rotated.is_some() {
            insert_refresh_token(&mut tx, new).await?;
            tx.commit().await.db()?;
            return Ok(RefreshRotation::Rotated);
        }
        // RFC 9700 §4.14.2: a used token presented again means it leaked; end the grant.
        let used: Option<String> =
            sqlx::query_scalar("SELECT grant_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL")
                .bind(old_hash.as_slice())
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        let Some(grant_id) = used else {
            return Ok(RefreshRotation::Invalid);
        };
        let grant_id = codec::uuid("refresh_tokens.grant_id", &grant_id)?;
        revoke_for_replay(&mut tx, grant_id, now, reuse_revocation_expiry).await?;
        tx.commit().await.db()?;
        Ok(RefreshRotation::Reused { grant_id })
    }

    async fn delete_expired_refresh_tokens(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // The subquery reads only the `expires_at` index.
        self.delete_batch(
            "DELETE FROM refresh_tokens WHERE rowid IN \
             (SELECT rowid FROM refresh_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn bind_grant_to_dpop_key(&self, grant_id: Uuid, jkt: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE grants SET dpop_jkt = $2 WHERE id = $1 AND dpop_jkt IS NULL")
            .bind(codec::uuid_text(grant_id))
            .bind(jkt)
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }
}
