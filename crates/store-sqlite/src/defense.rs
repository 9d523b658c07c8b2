//! `LoginFailureRepo` and `WebhookRepo` on SQLite (issue 6).

use async_trait::async_trait;
use portcullis_core::model::{DeliveryStatus, Digest, LoginFailures, Webhook, WebhookDelivery};
use portcullis_core::repo::{LoginFailureRepo, StoreResult, WebhookRepo};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::{Found, ResultExt};

fn failures(column: &str, n: i64, at: i64) -> StoreResult<LoginFailures> {
    Ok(LoginFailures {
        failures: u32::try_from(n).map_err(|e| codec::corrupt(column, e))?,
        last_failure_at: codec::time("login_failures.last_failure_at", at)?,
    })
}

#[async_trait]
impl LoginFailureRepo for SqliteStore {
    async fn get_login_failures(&self, key: &Digest) -> StoreResult<Option<LoginFailures>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_failures WHERE key_hash = $1")
                .bind(key.as_slice())
                .fetch_optional(&self.pool)
                .await
                .db()?;
        row.map(|(n, at)| failures("login_failures.failures", n, at))
            .transpose()
    }

    async fn record_login_failure(
        &self,
        key: &Digest,
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
    ) -> StoreResult<LoginFailures> {
        let (n, at): (i64, i64) = sqlx::query_as(
            "INSERT INTO login_failures (key_hash, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key_hash) DO UPDATE SET \
               failures = CASE WHEN login_failures.last_failure_at < $3 THEN 1 ELSE login_failures.failures + 1 END, \
               last_failure_at = excluded.last_failure_at \
             RETURNING failures, last_failure_at",
        )
        .bind(key.as_slice())
        .bind(codec::ts(now))
        .bind(codec::ts(reset_before))
        .fetch_one(&self.writer)
        .await
        .db()?;
        failures("login_failures.failures", n, at)
    }

    async fn clear_login_failures(&self, key: &Digest) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE key_hash = $1")
            .bind(key.as_slice())
            .execute(&self.writer)
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
                .bind(i64::from(n))
                .execute(&self.writer)
                .await
                .db()?;
        }
        Ok(())
    }

    async fn delete_stale_login_failures(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM login_failures WHERE rowid IN \
             (SELECT rowid FROM login_failures WHERE last_failure_at < $1 ORDER BY last_failure_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

#[derive(FromRow)]
struct WebhookRow {
    id: String,
    url: String,
    event_types: String,
    secret_encrypted: Vec<u8>,
    enabled: bool,
    created_at: i64,
}

impl WebhookRow {
    fn into_webhook(self) -> StoreResult<Webhook> {
        Ok(Webhook {
            id: codec::uuid("webhooks.id", &self.id)?,
            url: self.url,
            event_types: codec::strings("webhooks.event_types", &self.event_types)?,
            secret_encrypted: self.secret_encrypted,
            enabled: self.enabled,
            created_at: codec::time("webhooks.created_at", self.created_at)?,
        })
    }
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, attempt, status, response_code, error, payload, \
     next_attempt_at, created_at, completed_at";

#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    attempt: i64,
    status: String,
    response_code: Option<i64>,
    error: Option<String>,
    payload: String,
    next_attempt_at: i64,
    created_at: i64,
    completed_at: Option<i64>,
}

impl DeliveryRow {
    fn into_delivery(self) -> StoreResult<WebhookDelivery> {
        const T: &str = "webhook_deliveries";
        Ok(WebhookDelivery {
            id: codec::uuid(T, &self.id)?,
            webhook_id: codec::uuid(T, &self.webhook_id)?,
            event_id: codec::uuid(T, &self.event_id)?,
            event_type: self.event_type,
            attempt: u32::try_from(self.attempt).map_err(|e| codec::corrupt("webhook_deliveries.attempt", e))?,
            status: codec::named("webhook_deliveries.status", &self.status, DeliveryStatus::parse)?,
            response_code: self
                .response_code
                .map(|c| u16::try_from(c).map_err(|e| codec::corrupt("webhook_deliveries.response_code", e)))
                .transpose()?,
            error: self.error,
            payload: self.payload,
            next_attempt_at: codec::time("webhook_deliveries.next_attempt_at", self.next_attempt_at)?,
            created_at: codec::time("webhook_deliveries.created_at", self.created_at)?,
            completed_at: codec::opt_time("webhook_deliveries.completed_at", self.completed_at)?,
        })
    }
}

fn insert_delivery<'q>(
    d: &'q WebhookDelivery,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, attempt, status, response_code, \
         error, payload, next_attempt_at, created_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(codec::uuid_text(d.id))
    .bind(codec::uuid_text(d.webhook_id))
    .bind(codec::uuid_text(d.event_id))
    .bind(&d.event_type)
    .bind(i64::from(d.attempt))
    .bind(d.status.as_str())
    .bind(d.response_code.map(i64::from))
    .bind(&d.error)
    .bind(&d.payload)
    .bind(codec::ts(d.next_attempt_at))
    .bind(codec::ts(d.created_at))
    .bind(d.completed_at.map(codec::ts))
}

#[async_trait]
impl WebhookRepo for SqliteStore {
    async fn insert_webhook(&self, w: &Webhook) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, url, event_types, secret_encrypted, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(codec::uuid_text(w.id))
        .bind(&w.url)
        .bind(codec::to_json_list(w.event_types.iter().map(String::as_str))?)
        .bind(&w.secret_encrypted)
        .bind(w.enabled)
        .bind(codec::ts(w.created_at))
        .execute(&self.writer)
        .await
        .conflict("webhook")?;
        Ok(())
    }

    async fn get_webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>> {
        sqlx::query_as::<_, WebhookRow>(
            "SELECT id, url, event_types, secret_encrypted, enabled, created_at FROM webhooks WHERE id = $1",
        )
        .bind(codec::uuid_text(id))
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
            .bind(codec::uuid_text(id))
            .execute(&self.writer)
            .await
            .found()
    }

    async fn reseal_webhook_secret(&self, id: Uuid, secret_encrypted: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE webhooks SET secret_encrypted = $2 WHERE id = $1")
            .bind(codec::uuid_text(id))
            .bind(secret_encrypted)
            .execute(&self.writer)
            .await
            .found()
    }

    async fn insert_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
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
        // One statement under SQLite's single writer: no two claims overlap.
        let mut rows = sqlx::query_as::<_, DeliveryRow>(&format!(
            "UPDATE webhook_deliveries SET status = 'sending', next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
                          WHERE status IN ('pending', 'sending') AND next_attempt_at <= $2 \
                          ORDER BY next_attempt_at, created_at LIMIT $3) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(codec::ts(lease_until))
        .bind(codec::ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .db()?
        .into_iter()
        .map(DeliveryRow::into_delivery)
        .collect::<StoreResult<Vec<_>>>()?;
        rows.sort_by_key(|d| d.created_at);
        Ok(rows)
    }

    async fn finish_webhook_delivery(&self, d: &WebhookDelivery, retry: Option<&WebhookDelivery>) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, response_code = $2, error = $3, completed_at = $4 \
             WHERE id = $5",
        )
        .bind(d.status.as_str())
        .bind(d.response_code.map(i64::from))
        .bind(&d.error)
        .bind(d.completed_at.map(codec::ts))
        .bind(codec::uuid_text(d.id))
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
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ($1 IS NULL OR webhook_id = $1) \
             ORDER BY created_at DESC, attempt DESC LIMIT $2"
        ))
        .bind(webhook_id.map(codec::uuid_text))
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
            "DELETE FROM webhook_deliveries WHERE rowid IN \
             (SELECT rowid FROM webhook_deliveries \
              WHERE created_at < $1 AND status IN ('delivered', 'failed') ORDER BY created_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
