//! `AuditRepo` on SQLite (DESIGN §5).

use async_trait::async_trait;
use portcullis_core::model::{AuditEvent, AuditFilter};
use portcullis_core::repo::{AuditRepo, StoreResult};
use sqlx::{FromRow, QueryBuilder, Sqlite};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;

/// Page size when the filter asks for 0.
const DEFAULT_LIMIT: u32 = 50;

/// Events per INSERT statement.
const INSERT_CHUNK: usize = 256;

#[derive(FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    event_type: String,
    actor: Option<String>,
    user_id: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl AuditRow {
    fn into_event(self) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            id: codec::uuid("audit_events.id", &self.id)?,
            at: codec::time("audit_events.at", self.at)?,
            event_type: self.event_type,
            actor: self.actor,
            user_id: codec::opt_uuid("audit_events.user_id", self.user_id.as_deref())?,
            client_id: self.client_id,
            ip: self.ip,
            detail: codec::audit_detail("audit_events.detail", &self.detail)?,
        })
    }
}

#[async_trait]
impl AuditRepo for SqliteStore {
    async fn insert_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        // One multi-row statement per chunk instead of a statement per event: the audit
        // writer keeps up with thousands of token events per second (issue 7). 8 binds a
        // row keeps a chunk far below SQLite's limit of 32,766 variables.
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO audit_events (id, at, event_type, actor, user_id, client_id, ip, detail) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(codec::uuid_text(e.id))
                    .push_bind(codec::ts(e.at))
                    .push_bind(e.event_type.clone())
                    .push_bind(e.actor.clone())
                    .push_bind(e.user_id.map(codec::uuid_text))
                    .push_bind(e.client_id.clone())
                    .push_bind(e.ip.clone())
                    .push_bind(e.detail.to_string());
            });
            q.build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .conflict("audit event")?;
        }
        tx.commit().await.db()
    }

    /// Newest first; `since` is inclusive and `until` exclusive.
    async fn list_audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, at, event_type, actor, user_id, client_id, ip, detail FROM audit_events WHERE 1",
        );
        if let Some(t) = &f.event_type {
            q.push(" AND event_type = ").push_bind(t.clone());
        }
        if let Some(u) = f.user_id {
            q.push(" AND user_id = ").push_bind(codec::uuid_text(u));
        }
        if let Some(c) = &f.client_id {
            q.push(" AND client_id = ").push_bind(c.clone());
        }
        if let Some(since) = f.since {
            q.push(" AND at >= ").push_bind(codec::ts(since));
        }
        if let Some(until) = f.until {
            q.push(" AND at < ").push_bind(codec::ts(until));
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
        // `seq` is the rowid; the subquery reads only `audit_events_at` (at DESC, seq DESC).
        self.delete_batch(
            "DELETE FROM audit_events WHERE seq IN \
             (SELECT seq FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
