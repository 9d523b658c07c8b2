//! `ApiKeyRepo` and `AdminViewRepo` on SQLite: admin API keys, initial access tokens and the admin surface's
//! counts and single-session revocation (issue 4).

use async_trait::async_trait;
use portcullis_core::model::{AdminRole, ApiKey, Digest, InitialAccessToken};
use portcullis_core::repo::{AdminViewRepo, ApiKeyRepo, StoreResult};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;

const KEY_COLUMNS: &str = "id, name, key_hash, role, created_by, created_by_id, created_at, expires_at, revoked_at";

#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    key_hash: Vec<u8>,
    role: String,
    created_by: String,
    created_by_id: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl ApiKeyRow {
    fn into_key(self) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            id: codec::uuid("api_keys.id", &self.id)?,
            name: self.name,
            key_hash: codec::digest("api_keys.key_hash", &self.key_hash)?,
            role: codec::named("api_keys.role", &self.role, AdminRole::parse)?,
            created_by: self.created_by,
            created_by_id: codec::opt_uuid("api_keys.created_by_id", self.created_by_id.as_deref())?,
            created_at: codec::time("api_keys.created_at", self.created_at)?,
            expires_at: codec::opt_time("api_keys.expires_at", self.expires_at)?,
            revoked_at: codec::opt_time("api_keys.revoked_at", self.revoked_at)?,
        })
    }
}

const TOKEN_COLUMNS: &str = "id, name, token_hash, created_by, created_at, expires_at, uses_left, revoked_at";

#[derive(FromRow)]
struct InitialAccessTokenRow {
    id: String,
    name: String,
    token_hash: Vec<u8>,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    uses_left: Option<i64>,
    revoked_at: Option<i64>,
}

impl InitialAccessTokenRow {
    fn into_token(self) -> StoreResult<InitialAccessToken> {
        Ok(InitialAccessToken {
            id: codec::uuid("initial_access_tokens.id", &self.id)?,
            name: self.name,
            token_hash: codec::digest("initial_access_tokens.token_hash", &self.token_hash)?,
            created_by: self.created_by,
            created_at: codec::time("initial_access_tokens.created_at", self.created_at)?,
            expires_at: codec::time("initial_access_tokens.expires_at", self.expires_at)?,
            uses_left: self.uses_left,
            revoked_at: codec::opt_time("initial_access_tokens.revoked_at", self.revoked_at)?,
        })
    }
}

#[async_trait]
impl ApiKeyRepo for SqliteStore {
    async fn insert_api_key(&self, k: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, role, created_by, created_by_id, created_at, expires_at, \
                                   revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(codec::uuid_text(k.id))
        .bind(&k.name)
        .bind(k.key_hash.as_slice())
        .bind(k.role.as_str())
        .bind(&k.created_by)
        .bind(k.created_by_id.map(codec::uuid_text))
        .bind(codec::ts(k.created_at))
        .bind(k.expires_at.map(codec::ts))
        .bind(k.revoked_at.map(codec::ts))
        .execute(&self.writer)
        .await
        .conflict("API key")?;
        Ok(())
    }

    async fn get_api_key_by_hash(&self, key_hash: &Digest) -> StoreResult<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"))
            .bind(key_hash.as_slice())
            .fetch_optional(&self.pool)
            .await
            .db()?
            .map(ApiKeyRow::into_key)
            .transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(ApiKeyRow::into_key)
        .collect()
    }

    async fn revoke_api_key(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(codec::uuid_text(id))
            .bind(codec::ts(now))
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_initial_access_token(&self, t: &InitialAccessToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO initial_access_tokens (id, name, token_hash, created_by, created_at, expires_at, uses_left, \
                                                revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(codec::uuid_text(t.id))
        .bind(&t.name)
        .bind(t.token_hash.as_slice())
        .bind(&t.created_by)
        .bind(codec::ts(t.created_at))
        .bind(codec::ts(t.expires_at))
        .bind(t.uses_left)
        .bind(t.revoked_at.map(codec::ts))
        .execute(&self.writer)
        .await
        .conflict("initial access token")?;
        Ok(())
    }

    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        sqlx::query_as::<_, InitialAccessTokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM initial_access_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(InitialAccessTokenRow::into_token)
        .collect()
    }

    async fn get_initial_access_token_by_hash(&self, token_hash: &Digest) -> StoreResult<Option<InitialAccessToken>> {
        sqlx::query_as::<_, InitialAccessTokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM initial_access_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(InitialAccessTokenRow::into_token)
        .transpose()
    }

    async fn revoke_initial_access_token(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE initial_access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(codec::uuid_text(id))
            .bind(codec::ts(now))
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }

    async fn spend_initial_access_token(&self, token_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<Uuid>> {
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE initial_access_tokens SET uses_left = uses_left - 1 \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND (uses_left IS NULL OR uses_left > 0) \
             RETURNING id",
        )
        .bind(token_hash.as_slice())
        .bind(codec::ts(now))
        .fetch_optional(&self.writer)
        .await
        .db()?;
        id.map(|id| codec::uuid("initial_access_tokens.id", &id)).transpose()
    }
}

async fn count(store: &SqliteStore, sql: &str) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&store.pool).await.db()?;
    Ok(n.unsigned_abs())
}

#[async_trait]
impl AdminViewRepo for SqliteStore {
    async fn count_clients(&self) -> StoreResult<u64> {
        count(self, "SELECT count(*) FROM clients").await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        count(self, "SELECT count(*) FROM users").await
    }

    async fn count_audit_events(&self, event_type: &str, since: OffsetDateTime) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE event_type = $1 AND at >= $2")
            .bind(event_type)
            .bind(codec::ts(since))
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(n.unsigned_abs())
    }

    async fn delete_user_session(&self, user_id: Uuid, id_hash: &Digest) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM browser_sessions WHERE id_hash = $1 AND user_id = $2")
            .bind(id_hash.as_slice())
            .bind(codec::uuid_text(user_id))
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }
}
