//! `RevocationRepo` on PostgreSQL: the revocation log every node follows (DESIGN §3),
//! announced on a NOTIFY channel so other nodes learn of a revocation within a second.

use std::collections::HashMap;

use async_trait::async_trait;
use portcullis_core::model::{Revocation, RevocationEntry, RevocationTarget};
use portcullis_core::repo::{Announced, RevocationRepo, StoreResult};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::PgStore;
use crate::codec;
use crate::error::ResultExt;

/// NOTIFY channel announcing new revocations (an empty payload) and changes of the
/// signing keys ([`KEYS`]).
pub(crate) const CHANNEL: &str = "portcullis_revocations";

/// The payload announcing a change of the signing keys.
const KEYS: &str = "keys";

/// Queues the announcement that the signing keys changed; PostgreSQL delivers it when
/// `conn`'s transaction commits (at once outside one).
pub(crate) async fn announce_keys(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(KEYS)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

/// Advisory lock key ("portcull") held while a transaction writes revocations.
const LOG_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// Records `revocations` inside the caller's transaction and queues a notification,
/// which PostgreSQL delivers at commit.
///
/// Nodes read the log with `seq > last seen`, so a `seq` must never become visible after
/// a higher one: a transaction that drew seq 10 but committed after the one that drew 11
/// would be skipped for good. Holding a transaction-scoped advisory lock while drawing
/// numbers makes seq order and commit order agree. Callers record revocations last in
/// their transaction, so the lock is held only until commit.
///
/// Revoking a target that is already in the log moves it to a new `seq` (so every node
/// sees it again) with the later of the two expiries.
pub(crate) async fn record(conn: &mut PgConnection, revocations: &[Revocation]) -> StoreResult<()> {
    if revocations.is_empty() {
        return Ok(());
    }
    // One row per target: ON CONFLICT cannot touch the same row twice in one statement.
    let mut latest: HashMap<(&'static str, String), OffsetDateTime> = HashMap::new();
    for r in revocations {
        let at = latest
            .entry((r.target.kind(), r.target.value()))
            .or_insert(r.expires_at);
        *at = (*at).max(r.expires_at);
    }
    let mut kinds = Vec::with_capacity(latest.len());
    let mut values = Vec::with_capacity(latest.len());
    let mut expiries = Vec::with_capacity(latest.len());
    for ((kind, value), expires_at) in latest {
        kinds.push(kind.to_owned());
        values.push(value);
        expiries.push(expires_at);
    }

    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOG_LOCK)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query(
        "INSERT INTO revocations (kind, value, expires_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (kind, value) DO UPDATE \
         SET seq = nextval(pg_get_serial_sequence('revocations', 'seq')), \
             expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)",
    )
    .bind(kinds)
    .bind(values)
    .bind(expiries)
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

#[derive(FromRow)]
struct RevocationRow {
    seq: i64,
    kind: String,
    value: String,
    expires_at: OffsetDateTime,
}

impl RevocationRow {
    fn into_entry(self) -> StoreResult<RevocationEntry> {
        let target = RevocationTarget::from_parts(&self.kind, &self.value)
            .ok_or_else(|| codec::corrupt("revocations.kind", format!("unknown target {:?}", self.kind)))?;
        Ok(RevocationEntry {
            seq: self.seq,
            revocation: Revocation {
                target,
                expires_at: self.expires_at,
            },
        })
    }
}

#[async_trait]
impl RevocationRepo for PgStore {
    async fn insert_revocation(&self, revocation: &Revocation) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        record(&mut tx, std::slice::from_ref(revocation)).await?;
        tx.commit().await.db()
    }

    async fn revocations_since(&self, after: i64, now: OffsetDateTime) -> StoreResult<Vec<RevocationEntry>> {
        sqlx::query_as::<_, RevocationRow>(
            "SELECT seq, kind, value, expires_at FROM revocations WHERE seq > $1 AND expires_at > $2 ORDER BY seq",
        )
        .bind(after)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(RevocationRow::into_entry)
        .collect()
    }

    async fn delete_expired_revocations(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM revocations WHERE seq = ANY(ARRAY( \
                 SELECT seq FROM revocations WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
            now,
            limit,
        )
        .await
    }

    /// Waits for a NOTIFY on [`CHANNEL`]. The LISTEN connection (its own, outside the
    /// pool) is opened on the first call, which then returns at once (as `Keys`):
    /// revocations and key changes committed before LISTEN took effect were announced to
    /// nobody, so the caller must read the log and the keys again. It also returns early,
    /// for the same reason, when the connection was lost and re-established.
    /// Cancel-safe: dropping the future (in a `select!` against a resync timer) loses no
    /// notification. One caller at a time: concurrent callers queue for the listener and
    /// each notification wakes only one.
    async fn wait_for_announcement(&self) -> StoreResult<Announced> {
        let mut guard = self.listener.lock().await;
        let Some(listener) = guard.as_mut() else {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with((*self.pool.connect_options()).clone())
                .await
                .db()?;
            let mut listener = PgListener::connect_with(&pool).await.db()?;
            listener.listen(CHANNEL).await.db()?;
            *guard = Some(listener);
            return Ok(Announced::Keys);
        };
        match listener.try_recv().await {
            Ok(first) => {
                // One wake-up covers a burst: the caller reads the whole log anyway.
                let mut keys = first.as_ref().is_none_or(|n| n.payload() == KEYS);
                while let Some(n) = listener.next_buffered() {
                    keys |= n.payload() == KEYS;
                }
                Ok(if keys { Announced::Keys } else { Announced::Revocations })
            }
            Err(e) => {
                *guard = None;
                Err(e).db()
            }
        }
    }
}
