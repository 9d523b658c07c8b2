//! Turning sqlx errors into `StoreError` at the store boundary.

use portcullis_core::StoreError;

/// Maps sqlx results to `StoreResult`s.
pub(crate) trait ResultExt<T> {
    /// Any failure: undecodable values are `Corrupt`, unique violations `Conflict` (named
    /// after the constraint), the rest `Unexpected`.
    fn db(self) -> Result<T, StoreError>;
    /// Like [`ResultExt::db`], but a unique violation is `Conflict(what)`.
    fn conflict(self, what: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| {
            let what = unique_violation(&e).map(|c| c.unwrap_or("record").to_owned());
            match what {
                Some(what) => StoreError::Conflict(what),
                None => from_sqlx(e),
            }
        })
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

impl Found for Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    fn found(self) -> Result<(), StoreError> {
        if self.db()?.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// `Some(constraint name, if known)` when `e` is a unique violation.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<Option<&str>> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Some(db.constraint()),
        _ => None,
    }
}

fn from_sqlx(e: sqlx::Error) -> StoreError {
    // SQLSTATE classes 08 (connection exception), 57P (operator intervention: shutdown,
    // terminated backend) and 40 (serialization failure, deadlock): worth trying again.
    let transient_code = |db: &dyn sqlx::error::DatabaseError| {
        db.code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c.starts_with("40"))
    };
    // A connection that failed this way is gone, and most likely the pool's others too.
    let lost_code =
        |db: &dyn sqlx::error::DatabaseError| db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"));
    match &e {
        sqlx::Error::Io(_) => crate::connection_lost(),
        sqlx::Error::Database(db) if lost_code(db.as_ref()) => crate::connection_lost(),
        _ => {}
    }
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(ref db) if transient_code(db.as_ref()) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Unexpected(Box::new(other)),
    }
}
