//! Fresh databases for tests: a SQLite file in its own temporary directory, or a new
//! PostgreSQL database on the server named by `PORTCULLIS_TEST_POSTGRES_URL`.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The PostgreSQL server tests create their databases on, unless
/// `PORTCULLIS_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A temporary directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDirGuard(PathBuf);

impl TempDirGuard {
    /// Creates a new, empty directory under the system's temporary directory.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir harms nobody.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A URL for a new SQLite database file (created on first connect) in a new temporary
/// directory; keep the guard alive as long as the database is used.
#[allow(clippy::panic, reason = "test helper: failing to set up is a test failure")]
pub async fn fresh_sqlite_url() -> (String, TempDirGuard) {
    let dir = TempDirGuard::new("portcullis-test")
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for the SQLite test database: {e}"));
    let file = dir.path().join("portcullis.db");
    (format!("sqlite://{}?mode=rwc", file.display()), dir)
}

/// Creates a new, empty database `portcullis_test_<uuid>` on the test PostgreSQL server
/// and returns its URL. Panics when the server cannot be reached: a store test that
/// silently skipped PostgreSQL would pass while testing half of what it claims.
#[allow(clippy::panic, reason = "test helper: failing to set up is a test failure")]
pub async fn fresh_postgres_url() -> String {
    let server = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let mut url = url::Url::parse(&server)
        .unwrap_or_else(|e| panic!("PORTCULLIS_TEST_POSTGRES_URL {server:?} is not a URL: {e}"));
    let mut conn = PgConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL server at {server} ({e}); start PostgreSQL or set \
             PORTCULLIS_TEST_POSTGRES_URL"
        )
    });
    // The name is ours (a fresh UUID), never input: formatting it into the statement is safe.
    let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name} on {server}: {e}"));
    let _ = conn.close().await;
    url.set_path(&name);
    url.to_string()
}
