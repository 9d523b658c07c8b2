//! PostgreSQL implementation of Portcullis's repository traits: the production store,
//! shared by every node (DESIGN §2). One transaction per use case; constraint violations
//! become `StoreError`s here; revocations are announced with LISTEN/NOTIFY.

mod admin;
mod audit;
mod clients;
mod codec;
mod codes;
mod defense;
mod devices;
mod error;
mod grants;
mod keys;
mod revocations;
mod rotation;
mod sessions;
mod users;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::repo::HealthRepo;
use portcullis_core::{StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor};
use tokio::sync::Mutex;

use crate::error::ResultExt;

/// A pooled connection idle this long is pinged before use (`PgStore::pool_options`).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The PostgreSQL store. Cheap to clone: clones share the pool and the revocation listener.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// LISTEN connection for `wait_for_announcement`, opened on first use.
    listener: Arc<Mutex<Option<PgListener>>>,
    /// The batching task of refresh rotation (`rotation`), started on first use.
    rotator: Arc<OnceLock<rotation::Rotator>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// One retention batch: `sql` deletes at most `$2` rows older than `$1` (its shape is
    /// explained at `delete_expired_refresh_tokens` in grants.rs).
    pub(crate) async fn delete_batch(
        &self,
        sql: &'static str,
        before: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        let done = sqlx::query(sql)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected())
    }

    /// Connects to `url` (`postgres://user@host:5432/db`) with `pool_options`. Does not
    /// migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        match Self::pool_options().connect(url).await {
            Ok(pool) => Ok(Self::from_pool(pool)),
            // The pool kept trying for its acquire timeout and says only that it timed
            // out: one direct attempt names the cause (connection refused, no such
            // database, authentication failed).
            Err(sqlx::Error::PoolTimedOut) => {
                // Bounded: a host that drops packets would otherwise hold it for the
                // system's TCP timeout.
                let attempt = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await;
                let cause = match attempt {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) | Err(_) => sqlx::Error::PoolTimedOut,
                };
                Err(cause).db()
            }
            Err(e) => Err(e).db(),
        }
    }

    /// The pool `connect` opens: ten connections, a 10 s wait for one, a liveness check
    /// only of connections idle for a second or more, and generic plans for prepared
    /// statements on every connection (`plan_cache_mode = force_generic_plan`), so each
    /// statement is planned once per connection and again only when `ANALYZE`
    /// (autovacuum) changes its tables' statistics.
    ///
    /// Left to choose (`auto`), PostgreSQL planned the refresh rotation statement afresh
    /// on every execution: it compares the generic plan, made for arrays of 10 elements,
    /// with plans for the batch's real size, smaller and so always cheaper on paper. That
    /// planning took 7–10% of both cores under refresh load, a third of PostgreSQL's share
    /// (`bench/PROFILE.md`, eleventh pass). Every statement here is a key lookup, a short
    /// indexed range or a batch over arrays, for which the generic plan is the plan.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: a round trip before each
            // statement. Only one that sat idle for a while is checked here (a restarted
            // or failed-over server has closed it); one in use a moment ago is not.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move { Ok(meta.idle_for < IDLE_BEFORE_PING || conn.ping().await.is_ok()) })
            })
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET plan_cache_mode = force_generic_plan").await?;
                    Ok(())
                })
            })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            listener: Arc::new(Mutex::new(None)),
            rotator: Arc::new(OnceLock::new()),
        }
    }

    /// Applies the embedded migrations (`migrations/postgres`). Safe to run from several
    /// nodes at once: sqlx serializes migrators with an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => portcullis_core::store_codec::newer_schema(version),
            e => StoreError::Unexpected(Box::new(e)),
        })
    }
}

#[async_trait]
impl HealthRepo for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }
}
