//! `RevocationRepo` on SQLite: the revocation log (DESIGN §3). With a single writer
//! process, `seq` order is commit order and there is nobody to notify.

use async_trait::async_trait;
use portcullis_core::model::{Revocation, RevocationEntry, RevocationTarget};
use portcullis_core::repo::{Announced, RevocationRepo, StoreResult};
use sqlx::{FromRow, SqliteConnection};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::codec;
use crate::error::ResultExt;

/// Records `revocations` inside the caller's write transaction. Revoking a target that is
/// already in the log moves it to a new `seq` (so every reader sees it again) with the
/// later of the two expiries.
pub(crate) async fn record(conn: &mut SqliteConnection, revocations: &[Revocation]) -> StoreResult<()> {
    for r in revocations {
        let kind = r.target.kind();
        let value = r.target.value();
        let earlier: Option<i64> =
            sqlx::query_scalar("DELETE FROM revocations WHERE kind = $1 AND value = $2 RETURNING expires_at")
                .bind(kind)
                .bind(&value)
                .fetch_optional(&mut *conn)
                .await
                .db()?;
        let expires_at = codec::ts(r.expires_at).max(earlier.unwrap_or(i64::MIN));
        sqlx::query("INSERT INTO revocations (kind, value, expires_at) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(value)
            .bind(expires_at)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

#[derive(FromRow)]
struct RevocationRow {
    seq: i64,
    kind: String,
    value: String,
    expires_at: i64,
}

impl RevocationRow {
    fn into_entry(self) -> StoreResult<RevocationEntry> {
        let target = RevocationTarget::from_parts(&self.kind, &self.value)
            .ok_or_else(|| codec::corrupt("revocations.kind", format!("unknown target {:?}", self.kind)))?;
        let expires_at = codec::time("revocations.expires_at", self.expires_at)?;
        Ok(RevocationEntry {
            seq: self.seq,
            revocation: Revocation { target, expires_at },
        })
    }
}

#[async_trait]
impl RevocationRepo for SqliteStore {
    async fn insert_revocation(&self, revocation: &Revocation) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        record(&mut tx, std::slice::from_ref(revocation)).await?;
        tx.commit().await.db()
    }

    async fn revocations_since(&self, after: i64, now: OffsetDateTime) -> StoreResult<Vec<RevocationEntry>> {
        sqlx::query_as::<_, RevocationRow>(
            "SELECT seq, kind, value, expires_at FROM revocations WHERE seq > $1 AND expires_at > $2 ORDER BY seq",
        )
        .bind(after)
        .bind(codec::ts(now))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(RevocationRow::into_entry)
        .collect()
    }

    async fn delete_expired_revocations(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM revocations WHERE rowid IN \
             (SELECT rowid FROM revocations WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        .await
    }

    /// Never resolves: this process is the only writer, so it already knows.
    async fn wait_for_announcement(&self) -> StoreResult<Announced> {
        std::future::pending().await
    }
}
