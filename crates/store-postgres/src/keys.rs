//! `KeyRepo` on PostgreSQL: signing keys move next → active → retired (DESIGN §3).

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{KeyState, SigningKeyRecord};
use portcullis_core::repo::{KeyRepo, StoreResult};
use portcullis_protocol::SigningAlg;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::PgStore;
use crate::codec;
use crate::error::{Found, ResultExt, unique_violation};
use crate::revocations::announce_keys;

#[derive(FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    state: String,
    private_key_encrypted: Vec<u8>,
    public_jwk: String,
    created_at: OffsetDateTime,
    activated_at: Option<OffsetDateTime>,
    retired_at: Option<OffsetDateTime>,
    publish_until: Option<OffsetDateTime>,
}

impl KeyRow {
    fn into_key(self) -> StoreResult<SigningKeyRecord> {
        Ok(SigningKeyRecord {
            alg: SigningAlg::parse(&self.alg).map_err(|e| codec::corrupt("signing_keys.alg", e))?,
            state: codec::named("signing_keys.state", &self.state, KeyState::parse)?,
            kid: self.kid,
            private_key_encrypted: self.private_key_encrypted,
            public_jwk: self.public_jwk,
            created_at: self.created_at,
            activated_at: self.activated_at,
            retired_at: self.retired_at,
            publish_until: self.publish_until,
        })
    }
}

async fn insert(conn: &mut PgConnection, k: &SigningKeyRecord) -> StoreResult<()> {
    let result = sqlx::query(
        "INSERT INTO signing_keys (kid, alg, state, private_key_encrypted, public_jwk, created_at, \
         activated_at, retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&k.kid)
    .bind(k.alg.as_str())
    .bind(k.state.as_str())
    .bind(&k.private_key_encrypted)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .bind(k.activated_at)
    .bind(k.retired_at)
    .bind(k.publish_until)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(match unique_violation(&e) {
            Some(Some("signing_keys_one_active_per_alg")) => StoreError::Conflict("an active signing key".into()),
            Some(Some("signing_keys_one_next_per_alg")) => StoreError::Conflict("a next signing key".into()),
            Some(_) => StoreError::Conflict(format!("signing key {:?}", k.kid)),
            None => return Err(e).db(),
        }),
    }
}

/// Makes the next key of `new_next.alg` (`next_kid`, when given) active and inserts
/// `new_next` as the new next key: `NotFound` without such a next key, `Conflict` while
/// that algorithm still has an active one.
async fn promote_next(
    conn: &mut PgConnection,
    next_kid: Option<&str>,
    new_next: &SigningKeyRecord,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let promoted = sqlx::query(
        "UPDATE signing_keys SET state = 'active', activated_at = $1 \
         WHERE state = 'next' AND alg = $2 AND ($3::text IS NULL OR kid = $3)",
    )
    .bind(now)
    .bind(new_next.alg.as_str())
    .bind(next_kid)
    .execute(&mut *conn)
    .await
    .conflict("an active signing key")?;
    if promoted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    insert(conn, new_next).await
}

#[async_trait]
impl KeyRepo for PgStore {
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.db()?;
        insert(&mut conn, key).await?;
        announce_keys(&mut conn).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT kid, alg, state, private_key_encrypted, public_jwk, created_at, activated_at, retired_at, \
             publish_until FROM signing_keys ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(KeyRow::into_key)
        .collect()
    }

    async fn rotate_keys(
        &self,
        next_kid: &str,
        new_next: &SigningKeyRecord,
        now: OffsetDateTime,
        publish_until: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        // Retire first: at most one active key per algorithm at any moment (unique index). Two nodes
        // rotating at once: the second finds the first's new key active and fails with
        // `Conflict` instead of rotating twice.
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 WHERE state = 'active' AND alg = $3",
        )
        .bind(now)
        .bind(publish_until)
        .bind(new_next.alg.as_str())
        .execute(&mut *tx)
        .await
        .db()?;
        promote_next(&mut tx, Some(next_kid), new_next, now).await?;
        announce_keys(&mut tx).await?;
        tx.commit().await.db()
    }

    async fn promote_next_key(&self, new_next: &SigningKeyRecord, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        promote_next(&mut tx, None, new_next, now).await?;
        announce_keys(&mut tx).await?;
        tx.commit().await.db()
    }

    async fn retire_keys(
        &self,
        alg: SigningAlg,
        now: OffsetDateTime,
        publish_until: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 \
             WHERE alg = $3 AND state IN ('active', 'next')",
        )
        .bind(now)
        .bind(publish_until)
        .bind(alg.as_str())
        .execute(&mut *tx)
        .await
        .db()?;
        announce_keys(&mut tx).await?;
        tx.commit().await.db()
    }

    async fn withdraw_key(&self, kid: &str, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("UPDATE signing_keys SET publish_until = $2 WHERE kid = $1 AND state = 'retired'")
            .bind(kid)
            .bind(now)
            .execute(&mut *tx)
            .await
            .found()?;
        announce_keys(&mut tx).await?;
        tx.commit().await.db()
    }

    async fn reseal_key(&self, kid: &str, private_key_encrypted: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE signing_keys SET private_key_encrypted = $2 WHERE kid = $1")
            .bind(kid)
            .bind(private_key_encrypted)
            .execute(&self.pool)
            .await
            .found()
    }

    async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT secret_encrypted FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .db()
    }

    async fn insert_server_secret(&self, name: &str, secret_encrypted: &[u8], now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO server_secrets (name, secret_encrypted, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(secret_encrypted)
        .bind(now)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn list_server_secrets(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        sqlx::query_as("SELECT name, secret_encrypted FROM server_secrets ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .db()
    }

    async fn reseal_server_secret(&self, name: &str, secret_encrypted: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE server_secrets SET secret_encrypted = $2 WHERE name = $1")
            .bind(name)
            .bind(secret_encrypted)
            .execute(&self.pool)
            .await
            .found()
    }

    async fn delete_expired_keys(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND publish_until < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected())
    }
}
