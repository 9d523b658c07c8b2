//! `CodeRepo` on SQLite: single-use authorization codes (RFC 6749 §4.1.2).

use async_trait::async_trait;
use portcullis_core::model::{AuthorizationCode, Digest, Grant, RefreshToken};
use portcullis_core::repo::{CodeRedemption, CodeRepo, StoreResult};
use portcullis_protocol::{ClientId, RedirectUri};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;
use crate::grants::{insert_grant, insert_refresh_token, revoke_for_replay};

macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, redirect_uri, redirect_uri_explicit, scope, code_challenge, nonce, \
         auth_time, sid, expires_at, created_at, dpop_jkt, resource"
    };
}

#[derive(FromRow)]
struct CodeRow {
    code_hash: Vec<u8>,
    client_id: String,
    user_id: String,
    redirect_uri: String,
    redirect_uri_explicit: bool,
    scope: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    auth_time: i64,
    sid: String,
    expires_at: i64,
    created_at: i64,
    dpop_jkt: Option<String>,
    resource: Option<String>,
}

impl CodeRow {
    fn into_code(self) -> StoreResult<AuthorizationCode> {
        Ok(AuthorizationCode {
            code_hash: codec::digest("auth_codes.code_hash", &self.code_hash)?,
            client_id: codec::client_id("auth_codes.client_id", &self.client_id)?,
            user_id: codec::uuid("auth_codes.user_id", &self.user_id)?,
            redirect_uri: RedirectUri::parse(&self.redirect_uri)
                .map_err(|e| codec::corrupt("auth_codes.redirect_uri", e))?,
            redirect_uri_explicit: self.redirect_uri_explicit,
            scope: codec::scope("auth_codes.scope", &self.scope)?,
            code_challenge: self.code_challenge,
            nonce: self.nonce,
            auth_time: codec::time("auth_codes.auth_time", self.auth_time)?,
            sid: self.sid,
            expires_at: codec::time("auth_codes.expires_at", self.expires_at)?,
            created_at: codec::time("auth_codes.created_at", self.created_at)?,
            dpop_jkt: self.dpop_jkt,
            resource: self.resource,
        })
    }
}

#[async_trait]
impl CodeRepo for SqliteStore {
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO auth_codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(code.code_hash.as_slice())
        .bind(code.client_id.as_str())
        .bind(codec::uuid_text(code.user_id))
        .bind(code.redirect_uri.as_str())
        .bind(code.redirect_uri_explicit)
        .bind(code.scope.as_string())
        .bind(&code.code_challenge)
        .bind(&code.nonce)
        .bind(codec::ts(code.auth_time))
        .bind(&code.sid)
        .bind(codec::ts(code.expires_at))
        .bind(codec::ts(code.created_at))
        .bind(&code.dpop_jkt)
        .bind(&code.resource)
        .execute(&self.writer)
        .await
        .conflict("authorization code")?;
        Ok(())
    }

    async fn get_code(&self, code_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<AuthorizationCode>> {
        sqlx::query_as::<_, CodeRow>(concat!(
            "SELECT ",
            code_columns!(),
            " FROM auth_codes WHERE code_hash = $1 AND consumed_at IS NULL AND expires_at > $2"
        ))
        .bind(code_hash.as_slice())
        .bind(codec::ts(now))
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(CodeRow::into_code)
        .transpose()
    }

    async fn redeem_code(
        &self,
        code_hash: &Digest,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: OffsetDateTime,
        replay_revocation_expiry: OffsetDateTime,
    ) -> StoreResult<CodeRedemption> {
        let mut tx = self.write_tx().await?;
        let consumed = sqlx::query(
            "UPDATE auth_codes SET consumed_at = $2, grant_id = $3 \
             WHERE code_hash = $1 AND consumed_at IS NULL AND expires_at > $2",
        )
        .bind(code_hash.as_slice())
        .bind(codec::ts(now))
        .bind(codec::uuid_text(grant.id))
        .execute(&mut *tx)
        .await
        .db()?;
        if consumed.rows_affected() == 1 {
            insert_grant(&mut tx, grant).await?;
            if let Some(refresh) = refresh {
                insert_refresh_token(&mut tx, refresh).await?;
            }
            tx.commit().await.db()?;
            return Ok(CodeRedemption::Redeemed);
        }
        // RFC 6749 §4.1.2: a code used twice revokes what the first use produced.
        let replayed: Option<Option<String>> =
            sqlx::query_scalar("SELECT grant_id FROM auth_codes WHERE code_hash = $1 AND consumed_at IS NOT NULL")
                .bind(code_hash.as_slice())
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        let Some(Some(grant_id)) = replayed else {
            return Ok(CodeRedemption::Invalid);
        };
        let grant_id = codec::uuid("auth_codes.grant_id", &grant_id)?;
        revoke_for_replay(&mut tx, grant_id, now, replay_revocation_expiry).await?;
        tx.commit().await.db()?;
        Ok(CodeRedemption::Replayed { grant_id })
    }

    async fn delete_expired_codes(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM auth_codes WHERE rowid IN \
             (SELECT rowid FROM auth_codes WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn delete_session_codes(&self, user_id: Uuid, sid: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND sid = $2 AND consumed_at IS NULL")
            .bind(codec::uuid_text(user_id))
            .bind(sid)
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected())
    }

    async fn delete_client_codes(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND client_id = $2 AND consumed_at IS NULL")
            .bind(codec::uuid_text(user_id))
            .bind(client_id.as_str())
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected())
    }

    async fn insert_pushed_request(
        &self,
        request_hash: &Digest,
        client_id: &ClientId,
        request: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO pushed_requests (request_hash, client_id, request, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_hash.as_slice())
        .bind(client_id.as_str())
        .bind(request)
        .bind(codec::ts(expires_at))
        .execute(&self.writer)
        .await
        .conflict("pushed request")?;
        Ok(())
    }

    async fn take_pushed_request(
        &self,
        request_hash: &Digest,
        client_id: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "DELETE FROM pushed_requests WHERE request_hash = $1 AND client_id = $2 AND expires_at > $3 \
             RETURNING request",
        )
        .bind(request_hash.as_slice())
        .bind(client_id.as_str())
        .bind(codec::ts(now))
        .fetch_optional(&self.writer)
        .await
        .db()
    }

    async fn delete_expired_pushed_requests(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM pushed_requests WHERE rowid IN \
             (SELECT rowid FROM pushed_requests WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
