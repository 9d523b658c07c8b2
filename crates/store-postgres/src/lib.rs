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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

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

/// When this process last found a PostgreSQL connection lost (`connection_lost`), in
/// nanoseconds after `CLOCK_BASE` plus one; 0 if never.
static LOST_AT: AtomicU64 = AtomicU64::new(0);
static CLOCK_BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_base(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*CLOCK_BASE).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// A statement failed because its connection is gone (closed by a restart, a failover,
/// `pg_terminate_backend`): the server most likely closed the pool's other connections
/// too, and those busy a moment ago are not pinged before use (`PgStore::pool_options`),
/// so each would fail its next statement in turn. Every connection opened before now is
/// replaced at its next use instead. Process-wide: a loss seen by one pool costs another
/// pool of this process at most a reconnect per connection.
pub(crate) fn connection_lost() {
    LOST_AT.fetch_max(since_base(Instant::now()), Ordering::Relaxed);
}

/// Whether a connection `age` old was opened before the last `connection_lost`.
fn opened_before_loss(age: Duration) -> bool {
    let lost = LOST_AT.load(Ordering::Relaxed);
    lost != 0
        && Instant::now()
            .checked_sub(age)
            .is_none_or(|opened| since_base(opened) <= lost)
}

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
    /// only of connections idle for a second or more (and none for those opened before a
    /// connection was found lost: they are replaced, `connection_lost`), and generic plans for prepared
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
        LazyLock::force(&CLOCK_BASE);
        PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: a round trip before each
            // statement. Only one that sat idle for a while is checked here (a restarted
            // or failed-over server has closed it); one in use a moment ago is not,
            // unless it was opened before a connection was found lost: it is replaced.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if opened_before_loss(meta.age) {
                        return Ok(false);
                    }
                    Ok(meta.idle_for < IDLE_BEFORE_PING || conn.ping().await.is_ok())
                })
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

    /// Applies the embedded migrations (`migrations/postgres`); says what it did. Safe to
    /// run from several nodes at once: sqlx serializes migrators with an advisory lock
    /// (a node that waited finds nothing left to apply).
    pub async fn migrate(&self) -> Result<portcullis_core::store_codec::Migrated, StoreError> {
        let before = self.applied_migrations().await;
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => portcullis_core::store_codec::newer_schema(version),
            e => StoreError::Unexpected(Box::new(e)),
        })?;
        Ok(portcullis_core::store_codec::Migrated::between(
            before,
            self.applied_migrations().await,
        ))
    }

    /// How many migrations the schema has, and the last (`(0, None)` before the first).
    async fn applied_migrations(&self) -> (i64, Option<i64>) {
        sqlx::query_as::<_, (i64, Option<i64>)>("SELECT COUNT(*), MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .unwrap_or((0, None))
    }
}

#[async_trait]
impl HealthRepo for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }
}
