//! `ConsentRepo` and `SessionRepo` on SQLite.

use async_trait::async_trait;
use portcullis_core::model::{BrowserSession, Consent, Digest, PendingRequest};
use portcullis_core::repo::{ConsentRepo, SessionRepo, StoreResult};
use portcullis_protocol::ClientId;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;

#[derive(FromRow)]
struct ConsentRow {
    user_id: String,
    client_id: String,
    scope: String,
    granted_at: i64,
}

impl ConsentRow {
    fn into_consent(self) -> StoreResult<Consent> {
        Ok(Consent {
            user_id: codec::uuid("consents.user_id", &self.user_id)?,
            client_id: codec::client_id("consents.client_id", &self.client_id)?,
            scope: codec::scope("consents.scope", &self.scope)?,
            granted_at: codec::time("consents.granted_at", self.granted_at)?,
        })
    }
}

#[async_trait]
impl ConsentRepo for SqliteStore {
    async fn get_consent(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<Option<Consent>> {
        sqlx::query_as::<_, ConsentRow>(
            "SELECT user_id, client_id, scope, granted_at FROM consents WHERE user_id = $1 AND client_id = $2",
        )
        .bind(codec::uuid_text(user_id))
        .bind(client_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(ConsentRow::into_consent)
        .transpose()
    }

    async fn list_consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<Consent>> {
        sqlx::query_as::<_, ConsentRow>("SELECT user_id, client_id, scope, granted_at FROM consents WHERE user_id = $1")
            .bind(codec::uuid_text(user_id))
            .fetch_all(&self.pool)
            .await
            .db()?
            .into_iter()
            .map(ConsentRow::into_consent)
            .collect()
    }

    async fn upsert_consent(&self, c: &Consent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        )
        .bind(codec::uuid_text(c.user_id))
        .bind(c.client_id.as_str())
        .bind(c.scope.as_string())
        .bind(codec::ts(c.granted_at))
        .execute(&self.writer)
        .await
        .db()?;
        Ok(())
    }

    async fn delete_consent(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(codec::uuid_text(user_id))
            .bind(client_id.as_str())
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }
}

#[derive(FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    data: String,
    user_id: Option<String>,
    sid: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl SessionRow {
    fn into_session(self) -> StoreResult<BrowserSession> {
        Ok(BrowserSession {
            id_hash: codec::digest("browser_sessions.id_hash", &self.id_hash)?,
            data: self.data,
            user_id: codec::opt_uuid("browser_sessions.user_id", self.user_id.as_deref())?,
            sid: self.sid,
            user_agent: self.user_agent,
            ip: self.ip,
            created_at: codec::time("browser_sessions.created_at", self.created_at)?,
            expires_at: codec::time("browser_sessions.expires_at", self.expires_at)?,
        })
    }
}

/// A statement taking a session's columns as parameters 1–8: id_hash, data, user_id, sid,
/// user_agent, ip, created_at, expires_at.
macro_rules! session_query {
    ($sql:expr, $s:expr) => {
        sqlx::query($sql)
            .bind($s.id_hash.as_slice())
            .bind(&$s.data)
            .bind($s.user_id.map(codec::uuid_text))
            .bind(&$s.sid)
            .bind(&$s.user_agent)
            .bind(&$s.ip)
            .bind(codec::ts($s.created_at))
            .bind(codec::ts($s.expires_at))
    };
}

#[derive(FromRow)]
struct PendingRow {
    id: String,
    owner: Vec<u8>,
    request: String,
    created_at: i64,
    expires_at: i64,
}

impl PendingRow {
    fn into_pending(self) -> StoreResult<PendingRequest> {
        Ok(PendingRequest {
            id: self.id,
            owner: codec::digest("pending_requests.owner", &self.owner)?,
            request: self.request,
            created_at: codec::time("pending_requests.created_at", self.created_at)?,
            expires_at: codec::time("pending_requests.expires_at", self.expires_at)?,
        })
    }
}

#[async_trait]
impl SessionRepo for SqliteStore {
    async fn save_session(&self, s: &BrowserSession) -> StoreResult<bool> {
        let done = session_query!(
            "UPDATE browser_sessions SET data = ?2, user_id = ?3, sid = ?4, user_agent = ?5, \
             ip = ?6, created_at = ?7, expires_at = ?8 WHERE id_hash = ?1",
            s
        )
        .execute(&self.writer)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_session(&self, s: &BrowserSession) -> StoreResult<bool> {
        let done = session_query!(
            "INSERT INTO browser_sessions (id_hash, data, user_id, sid, user_agent, ip, created_at, \
             expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id_hash) DO NOTHING",
            s
        )
        .execute(&self.writer)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn load_session(&self, id_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<BrowserSession>> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT id_hash, data, user_id, sid, user_agent, ip, created_at, expires_at FROM browser_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash.as_slice())
        .bind(codec::ts(now))
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(SessionRow::into_session)
        .transpose()
    }

    async fn delete_session(&self, id_hash: &Digest) -> StoreResult<()> {
        sqlx::query("DELETE FROM browser_sessions WHERE id_hash = $1")
            .bind(id_hash.as_slice())
            .execute(&self.writer)
            .await
            .db()?;
        Ok(())
    }

    async fn list_sessions_for_user(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<Vec<BrowserSession>> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT id_hash, data, user_id, sid, user_agent, ip, created_at, expires_at FROM browser_sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id_hash",
        )
        .bind(codec::uuid_text(user_id))
        .bind(codec::ts(now))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(SessionRow::into_session)
        .collect()
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM browser_sessions WHERE rowid IN \
             (SELECT rowid FROM browser_sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        .await
    }

    async fn insert_pending_request(&self, p: &PendingRequest, keep: u32) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO pending_requests (id, owner, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&p.id)
        .bind(p.owner.as_slice())
        .bind(&p.request)
        .bind(codec::ts(p.created_at))
        .bind(codec::ts(p.expires_at))
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "DELETE FROM pending_requests WHERE owner = $1 AND seq NOT IN \
             (SELECT seq FROM pending_requests WHERE owner = $1 ORDER BY seq DESC LIMIT $2)",
        )
        .bind(p.owner.as_slice())
        .bind(i64::from(keep.max(1)))
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn get_pending_request(
        &self,
        id: &str,
        owner: &Digest,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingRequest>> {
        sqlx::query_as::<_, PendingRow>(
            "SELECT id, owner, request, created_at, expires_at FROM pending_requests \
             WHERE id = $1 AND owner = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(owner.as_slice())
        .bind(codec::ts(now))
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(PendingRow::into_pending)
        .transpose()
    }

    async fn update_pending_request(&self, id: &str, owner: &Digest, request: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE pending_requests SET request = $3 WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner.as_slice())
            .bind(request)
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_pending_request(&self, id: &str, owner: &Digest) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM pending_requests WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner.as_slice())
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_expired_pending_requests(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM pending_requests WHERE seq IN \
             (SELECT seq FROM pending_requests WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
