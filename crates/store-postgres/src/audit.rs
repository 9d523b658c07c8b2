//! `AuditRepo` on PostgreSQL (DESIGN §5). `detail` is JSONB so operators can query it.

use async_trait::async_trait;
use portcullis_core::model::{AuditEvent, AuditFilter};
use portcullis_core::repo::{AuditRepo, StoreResult};
use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
use crate::codec;
use crate::error::ResultExt;

/// Page size when the filter asks for 0.
const DEFAULT_LIMIT: u32 = 50;

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    at: OffsetDateTime,
    event_type: String,
    actor: Option<String>,
    user_id: Option<Uuid>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl AuditRow {
    fn into_event(self) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            id: self.id,
            at: self.at,
            event_type: self.event_type,
            actor: self.actor,
            user_id: self.user_id,
            client_id: self.client_id,
            ip: self.ip,
            detail: codec::audit_detail("audit_events.detail", &self.detail)?,
        })
    }
}

#[async_trait]
impl AuditRepo for PgStore {
    async fn insert_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch (arrays unnested into rows) instead of a round
        // trip per event: the audit writer keeps up with thousands of token events per
        // second (issue 7), and the statement text is the same for every batch size.
        let mut ids = Vec::with_capacity(events.len());
        let mut ats = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        let mut actors = Vec::with_capacity(events.len());
        let mut users = Vec::with_capacity(events.len());
        let mut clients = Vec::with_capacity(events.len());
        let mut ips = Vec::with_capacity(events.len());
        let mut details = Vec::with_capacity(events.len());
        for e in events {
            ids.push(e.id);
            ats.push(e.at);
            types.push(e.event_type.clone());
            actors.push(e.actor.clone());
            users.push(e.user_id);
            clients.push(e.client_id.clone());
            ips.push(e.ip.clone());
            details.push(e.detail.to_string());
        }
        // Audit rows are also in the log, and the queue already sheds them under pressure
        // (DESIGN §5): their commit does not wait for the WAL flush, so the writer costs
        // PostgreSQL no fsync of its own. A crash may lose the last fraction of a second of
        // rows, never leave a batch half stored.
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(
            "INSERT INTO audit_events (id, at, event_type, actor, user_id, client_id, ip, detail) \
             SELECT id, at, event_type, actor, user_id, client_id, ip, detail::jsonb \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[], \
                         $7::text[], $8::text[]) WITH ORDINALITY \
                  AS e(id, at, event_type, actor, user_id, client_id, ip, detail, ord) \
             ORDER BY ord",
        )
        .bind(ids)
        .bind(ats)
        .bind(types)
        .bind(actors)
        .bind(users)
        .bind(clients)
        .bind(ips)
        .bind(details)
        .execute(&mut *tx)
        .await
        .conflict("audit event")?;
        tx.commit().await.db()
    }

    /// Newest first; `since` is inclusive and `until` exclusive.
    async fn list_audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT id, at, event_type, actor, user_id, client_id, ip, detail::text AS detail \
             FROM audit_events WHERE TRUE",
        );
        if let Some(t) = &f.event_type {
            q.push(" AND event_type = ").push_bind(t.clone());
        }
        if let Some(u) = f.user_id {
            q.push(" AND user_id = ").push_bind(u);
        }
        if let Some(c) = &f.client_id {
            q.push(" AND client_id = ").push_bind(c.clone());
        }
        if let Some(since) = f.since {
            q.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            q.push(" AND at < ").push_bind(until);
        }
        let limit = if f.limit == 0 { DEFAULT_LIMIT } else { f.limit };
        q.push(" ORDER BY at DESC, seq DESC LIMIT ").push_bind(i64::from(limit));
        q.push(" OFFSET ").push_bind(i64::from(f.offset));
        q.build_query_as::<AuditRow>()
            .fetch_all(&self.pool)
            .await
            .db()?
            .into_iter()
            .map(AuditRow::into_event)
            .collect()
    }

    async fn delete_audit_events_before(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        // The oldest events first, read backwards from `audit_events_at` (at DESC, seq DESC)
        // and then found by primary key; why this shape rather than `IN (SELECT …)`: see
        // `delete_expired_refresh_tokens` in grants.rs.
        self.delete_batch(
            "DELETE FROM audit_events WHERE seq = ANY(ARRAY( \
                 SELECT seq FROM audit_events WHERE at < $1 \
                 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            before,
            limit,
        )
        .await
    }
}
