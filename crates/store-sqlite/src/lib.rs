//! SQLite implementation of Portcullis's repository traits: the embedded store for a
//! single node (DESIGN §2). One transaction per use case, taken with `BEGIN IMMEDIATE`
//! when it writes; constraint violations become `StoreError`s here.

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
mod sessions;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::repo::HealthRepo;
use portcullis_core::{StoreError, StoreResult};
use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::ResultExt;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The SQLite store. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads; WAL lets them run beside the writer.
    pool: SqlitePool,
    /// Every write, on one connection: SQLite has a single writer anyway, and queueing
    /// writers here (in order, without sleeping) replaces contention on the database lock,
    /// where `busy_timeout`'s back-off sleeps make writers wait far longer than the work
    /// takes and fail under load.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens `url` (`sqlite://./data/portcullis.db?mode=rwc`, `sqlite::memory:`), creating
    /// the file if missing, readable by its owner only; its directory must exist. Does not
    /// migrate.
    ///
    /// WAL lets readers run beside the single writer; `busy_timeout` makes a writer wait
    /// for the lock instead of failing. An in-memory database lives in one connection, so
    /// its pool holds exactly one that is never recycled.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .db()?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with synchronous=NORMAL (SQLite's recommendation for WAL): a commit is
            // safe from a crash of Portcullis and never corrupts the file, but is synced to
            // disk with the WAL's next checkpoint rather than at every commit, so a power
            // loss or OS crash may roll back the last transactions. FULL cost an fsync per
            // commit: ~400 writes/s here, which capped refresh rotation and code exchange
            // (issue 7). Deployments that cannot accept that run PostgreSQL (DESIGN §2).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_private(options.get_filename())?;
        }
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // Four readers: each is a thread of its own with its own page cache (up to
            // 2 MB); eight cost ~5 MB more RSS under load for no throughput (issue 7).
            SqlitePoolOptions::new().max_connections(4)
        }
        // The database is in this process: a connection cannot have gone away, and the
        // ping sqlx sends before each acquire by default is one more hop to the
        // connection's thread on every query (issue 7).
        .test_before_acquire(false);
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .db()?;
        // An in-memory database exists only in its one connection: share it.
        let writer = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .db()?
        };
        Ok(Self { pool, writer })
    }

    /// Applies the embedded migrations (`migrations/sqlite`); says what it did.
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

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a deferred
    /// transaction that reads and then writes can fail with SQLITE_BUSY when another
    /// writer got in between, and busy_timeout cannot help with that upgrade.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.db()
    }

    /// One retention batch: `sql` deletes at most `$2` rows older than `$1`, on the writer
    /// connection, so other writes wait for one batch, not for the whole backlog.
    pub(crate) async fn delete_batch(
        &self,
        sql: &'static str,
        before: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        let done = sqlx::query(sql)
            .bind(codec::ts(before))
            .bind(i64::from(limit))
            .execute(&self.writer)
            .await
            .db()?;
        Ok(done.rows_affected())
    }
}

/// Creates the database file, empty (which SQLite accepts as a new database), with mode
/// 0600 before SQLite would create it with the process umask, usually 0644: the file holds
/// password hashes, secret digests and personal data. SQLite gives the `-wal` and `-shm`
/// files the main file's permissions. An existing file keeps its permissions (an
/// operator may have chosen group access for backups), with a warning when other users
/// have any.
#[cfg(unix)]
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the SQLite database is accessible to other users; it holds password hashes and personal data (chmod 600 it)"
                );
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Unexpected(Box::new(e))),
    }
}

/// Elsewhere, SQLite creates the file with the platform's defaults.
#[cfg(not(unix))]
fn create_private(_path: &std::path::Path) -> Result<(), StoreError> {
    Ok(())
}

#[async_trait]
impl HealthRepo for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }
}
