//! Column conversions: the shared ones live in `portcullis_core::store_codec`; SQLite
//! keeps instants as unix seconds and UUIDs as text.

pub(crate) use portcullis_core::store_codec::*;

use portcullis_core::repo::StoreResult;

/// Instants are stored as unix seconds; sub-second precision is dropped.
pub(crate) fn ts(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn time(column: &str, secs: i64) -> StoreResult<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| corrupt(column, e))
}

pub(crate) fn opt_time(column: &str, secs: Option<i64>) -> StoreResult<Option<time::OffsetDateTime>> {
    secs.map(|s| time(column, s)).transpose()
}

/// UUIDs are stored as hyphenated lowercase text.
pub(crate) fn uuid_text(id: uuid::Uuid) -> String {
    id.hyphenated().to_string()
}

pub(crate) fn uuid(column: &str, s: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|e| corrupt(column, e))
}

pub(crate) fn opt_uuid(column: &str, s: Option<&str>) -> StoreResult<Option<uuid::Uuid>> {
    s.map(|s| uuid(column, s)).transpose()
}
