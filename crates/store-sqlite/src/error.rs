//! Turning sqlx errors into `StoreError` at the store boundary.

use portcullis_core::StoreError;

/// Maps sqlx results to `StoreResult`s.
pub(crate) trait ResultExt<T> {
    /// Any failure: undecodable values are `Corrupt`, unique violations `Conflict`, the
    /// rest `Unexpected`.
    fn db(self) -> Result<T, StoreError>;
    /// Like [`ResultExt::db`], but a unique violation is `Conflict(what)`.
    fn conflict(self, what: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.conflict("record")
    }

    fn conflict(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::Conflict(what.to_owned()),
            None => from_sqlx(e),
        })
    }
}

/// A statement that must change a row: `NotFound` when it changed none.
pub(crate) trait Found {
    fn found(self) -> Result<(), StoreError>;
}

impl Found for Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    fn found(self) -> Result<(), StoreError> {
        if self.db()?.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// `Some(message)` when `e` is a unique violation. SQLite names the index or columns
/// only in the message ("UNIQUE constraint failed: index 'signing_keys_one_active'").
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Some(db.message()),
        _ => None,
    }
}

fn from_sqlx(e: sqlx::Error) -> StoreError {
    // SQLITE_BUSY and SQLITE_LOCKED (primary codes 5 and 6, in any extended form): another
    // writer held the database past busy_timeout; worth trying again.
    let busy = |db: &dyn sqlx::error::DatabaseError| {
        db.code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6))
    };
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::Database(ref db) if busy(db.as_ref()) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Unexpected(Box::new(other)),
    }
}
