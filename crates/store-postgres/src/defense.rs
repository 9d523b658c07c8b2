//! `LoginFailureRepo` and `WebhookRepo` on PostgreSQL (issue 6). Delivery attempts are
//! claimed with `FOR UPDATE SKIP LOCKED`, so several nodes share the work without ever
//! sending one attempt twice.

use async_trait::async_trait;
use portcullis_core::model::{DeliveryStatus, Digest, LoginFailures, Webhook, WebhookDelivery};
use portcullis_core::repo::{LoginFailureRepo, StoreResult, WebhookRepo};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
use crate::codec;
use crate::error::{Found, ResultExt};

fn failures(n: i32, last_failure_at: OffsetDateTime) -> StoreResult<LoginFailures> {
    Ok(LoginFailures {
        failures: u32::try_from(n).map_err(|e| codec::corrupt("login_failures.failures", e))?,
        last_failure_at,
    })
}

#[async_trait]
impl LoginFailureRepo for PgStore {
    async fn get_login_failures(&self, key: &Digest) -> StoreResult<Option<LoginFailures>> {
        let row: Option<(i32, OffsetDateTime)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_failures WHERE key_hash = $1")
                .bind(key.as_slice())
                .fetch_optional(&self.pool)
                .await
                .db()?;
        row.map(|(n, at)| failures(n, at)).transpose()
    }

    async fn record_login_failure(
        &self,
        key: &Digest,
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
    ) -> StoreResult<LoginFailures> {
        let (n, at): (i32, OffsetDateTime) = sqlx::query_as(
            "INSERT INTO login_failures (key_hash, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key_hash) DO UPDATE SET \
               failures = CASE WHEN login_failures.last_failure_at < $3 THEN 1 \
                               ELSE LEAST(login_failures.failures, 1000000) + 1 END, \
               last_failure_at = EXCLUDED.last_failure_at \
             RETURNING failures, last_failure_at",
        )
        .bind(key.as_slice())
        .bind(now)
        .bind(reset_before)
        .fetch_one(&self.pool)
        .await
        .db()?;
        failures(n, at)
    }

    async fn clear_login_failures(&self, key: &Digest) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE key_hash = $1")
            .bind(key.as_slice())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn forget_login_failures(&self, key: &Digest, n: u32) -> StoreResult<()> {
        // The table keeps positive counts only: a count that would reach zero goes.
        for sql in [
            "DELETE FROM login_failures WHERE key_hash = $1 AND failures <= $2",
            "UPDATE login_failures SET failures = failures - $2 WHERE key_hash = $1 AND failures > $2",
        ] {
            sqlx::query(sql)
                .bind(key.as_slice())
                .bind(i32::try_from(n).unwrap_or(i32::MAX))
                .execute(&self.pool)
                .await
                .db()?;
        }
        Ok(())
    }

    async fn delete_stale_login_failures(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM login_failures WHERE key_hash = ANY(ARRAY( \
                 SELECT key_hash FROM login_failures WHERE last_failure_at < $1 \
                 ORDER BY last_failure_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }
}

#[derive(FromRow)]
struct WebhookRow {
    id: Uuid,
    url: String,
    event_types: String,
    secret_encrypted: Vec<u8>,
    enabled: bool,
    created_at: OffsetDateTime,
}

impl WebhookRow {
    fn into_webhook(self) -> StoreResult<Webhook> {
        Ok(Webhook {
            id: self.id,
            url: self.url,
            event_types: codec::strings("webhooks.event_types", &self.event_types)?,
            secret_encrypted: self.secret_encrypted,
            enabled: self.enabled,
            created_at: self.created_at,
        })
    }
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, attempt, status, response_code, error, payload, \
     next_attempt_at, created_at, completed_at";

#[derive(FromRow)]
struct DeliveryRow {
    id: Uuid,
    webhook_id: Uuid,
    event_id: Uuid,
    event_type: String,
    attempt: i32,
    status: String,
    response_code: Option<i32>,
    error: Option<String>,
    payload: String,
    next_attempt_at: OffsetDateTime,
    created_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
}

impl DeliveryRow {
    fn into_delivery(self) -> StoreResult<WebhookDelivery> {
        Ok(WebhookDelivery {
            id: self.id,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            event_type: self.event_type,
            attempt: u32::try_from(self.attempt).map_err(|e| codec::corrupt("webhook_deliveries.attempt", e))?,
            status: codec::named("webhook_deliveries.status", &self.status, DeliveryStatus::parse)?,
            response_code: self
                .response_code
                .map(|c| u16::try_from(c).map_err(|e| codec::corrupt("webhook_deliveries.response_code", e)))
                .transpose()?,
            error: self.error,
            payload: self.payload,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

fn insert_delivery<'q>(d: &'q WebhookDelivery) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, attempt, status, response_code, \
         error, payload, next_attempt_at, created_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(d.id)
    .bind(d.webhook_id)
    .bind(d.event_id)
    .bind(&d.event_type)
    .bind(i32::try_from(d.attempt).unwrap_or(i32::MAX))
    .bind(d.status.as_str())
    .bind(d.response_code.map(i32::from))
    .bind(&d.error)
    .bind(&d.payload)
    .bind(d.next_attempt_at)
    .bind(d.created_at)
    .bind(d.completed_at)
}

#[async_trait]
impl WebhookRepo for PgStore {
    async fn insert_webhook(&self, w: &Webhook) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, url, event_types, secret_encrypted, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(w.id)
        .bind(&w.url)
        .bind(codec::to_json_list(w.event_types.iter().map(String::as_str))?)
        .bind(&w.secret_encrypted)
        .bind(w.enabled)
        .bind(w.created_at)
        .execute(&self.pool)
        .await
        .conflict("webhook")?;
        Ok(())
    }

    async fn get_webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>> {
        sqlx::query_as::<_, WebhookRow>(
            "SELECT id, url, event_types, secret_encrypted, enabled, created_at FROM webhooks WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .map(WebhookRow::into_webhook)
        .transpose()
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        sqlx::query_as::<_, WebhookRow>(
            "SELECT id, url, event_types, secret_encrypted, enabled, created_at FROM webhooks \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(WebhookRow::into_webhook)
        .collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .found()
    }

    async fn reseal_webhook_secret(&self, id: Uuid, secret_encrypted: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE webhooks SET secret_encrypted = $2 WHERE id = $1")
            .bind(id)
            .bind(secret_encrypted)
            .execute(&self.pool)
            .await
            .found()
    }

    async fn insert_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.db()?;
        for d in deliveries {
            insert_delivery(d)
                .execute(&mut *tx)
                .await
                .conflict("webhook delivery")?;
        }
        tx.commit().await.db()
    }

    async fn claim_webhook_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut rows = sqlx::query_as::<_, DeliveryRow>(&format!(
            "UPDATE webhook_deliveries SET status = 'sending', next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
                          WHERE status IN ('pending', 'sending') AND next_attempt_at <= $2 \
                          ORDER BY next_attempt_at, created_at LIMIT $3 \
                          FOR UPDATE SKIP LOCKED) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(DeliveryRow::into_delivery)
        .collect::<StoreResult<Vec<_>>>()?;
        rows.sort_by_key(|d| d.created_at);
        Ok(rows)
    }

    async fn finish_webhook_delivery(&self, d: &WebhookDelivery, retry: Option<&WebhookDelivery>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, response_code = $2, error = $3, completed_at = $4 \
             WHERE id = $5",
        )
        .bind(d.status.as_str())
        .bind(d.response_code.map(i32::from))
        .bind(&d.error)
        .bind(d.completed_at)
        .bind(d.id)
        .execute(&mut *tx)
        .await
        .db()?;
        if let Some(r) = retry {
            insert_delivery(r)
                .execute(&mut *tx)
                .await
                .conflict("webhook delivery")?;
        }
        tx.commit().await.db()
    }

    async fn list_webhook_deliveries(&self, webhook_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ($1::uuid IS NULL OR webhook_id = $1) \
             ORDER BY created_at DESC, attempt DESC LIMIT $2"
        ))
        .bind(webhook_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(DeliveryRow::into_delivery)
        .collect()
    }

    async fn delete_old_webhook_deliveries(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM webhook_deliveries WHERE id = ANY(ARRAY( \
                 SELECT id FROM webhook_deliveries \
                 WHERE created_at < $1 AND status IN ('delivered', 'failed') \
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }
}
