//! Conversions between domain values and the column representations both stores use
//! (scope strings, JSON lists, digests); a stored value that no longer parses is
//! `StoreError::Corrupt`, naming the column. Backend-specific conversions stay in the
//! store crates.

use std::fmt::Display;

use crate::StoreError;
use crate::model::{Digest, Revocation, RevocationTarget};
use crate::repo::StoreResult;
use portcullis_protocol::{ClientId, GrantType, RedirectUri, ScopeSet};

pub fn corrupt(column: &str, e: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {e}"))
}

pub fn digest(column: &str, bytes: &[u8]) -> StoreResult<Digest> {
    Digest::try_from(bytes).map_err(|_| corrupt(column, format!("expected 32 bytes, found {}", bytes.len())))
}

pub fn client_id(column: &str, s: &str) -> StoreResult<ClientId> {
    ClientId::parse(s).map_err(|e| corrupt(column, e))
}

pub fn scope(column: &str, s: &str) -> StoreResult<ScopeSet> {
    ScopeSet::parse(s).map_err(|e| corrupt(column, e))
}

/// Parses a closed set of names (`kind`, `state`, `role`, `alg`).
pub fn named<T>(column: &str, s: &str, parse: impl FnOnce(&str) -> Option<T>) -> StoreResult<T> {
    parse(s).ok_or_else(|| corrupt(column, format!("unknown value {s:?}")))
}

/// A list as a JSON array of strings.
pub fn to_json_list<'a>(items: impl IntoIterator<Item = &'a str>) -> StoreResult<String> {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>()).map_err(|e| StoreError::Unexpected(Box::new(e)))
}

pub fn strings(column: &str, json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| corrupt(column, e))
}

/// Registered URIs were checked when they were registered, so they are read back with
/// the lenient parser: a stricter rule later must not make existing clients unreadable.
pub fn redirect_uris(column: &str, json: &str) -> StoreResult<Vec<RedirectUri>> {
    strings(column, json)?
        .iter()
        .map(|s| RedirectUri::parse(s).map_err(|e| corrupt(column, e)))
        .collect()
}

pub fn grant_types(column: &str, json: &str) -> StoreResult<Vec<GrantType>> {
    strings(column, json)?
        .iter()
        .map(|s| GrantType::parse(s).map_err(|e| corrupt(column, e)))
        .collect()
}

pub fn audit_detail(column: &str, json: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(json).map_err(|e| corrupt(column, e))
}

/// `given` plus a grant revocation for each of `revoked` (id, grant expiry) it does not
/// name. Such a grant was created after the caller listed the grants to revoke; its
/// entry lives as long as the caller's longest entry, or as the grant if there is none.
pub fn cover_grants(given: &[Revocation], revoked: &[(uuid::Uuid, time::OffsetDateTime)]) -> Vec<Revocation> {
    let latest = given.iter().map(|r| r.expires_at).max();
    let mut all = given.to_vec();
    for &(id, grant_expires_at) in revoked {
        let target = RevocationTarget::Grant(id);
        if !given.iter().any(|r| r.target == target) {
            all.push(Revocation {
                target,
                expires_at: latest.unwrap_or(grant_expires_at),
            });
        }
    }
    all
}

/// What a store's `migrate` did, for the log and `portcullis migrate`: the schema's last
/// migration before and after (`None`: none yet, a new database), and how many it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub applied: u64,
}

impl Migrated {
    /// From the count and last version of the applied migrations before and after.
    pub fn between(before: (i64, Option<i64>), after: (i64, Option<i64>)) -> Self {
        Self {
            before: before.1,
            after: after.1,
            applied: u64::try_from(after.0 - before.0).unwrap_or(0),
        }
    }

    /// One line saying it: "applied 26 migrations (the schema was at migration 6, now 32)".
    /// With PostgreSQL nodes starting together, the one that waited for another's
    /// migrations (sqlx serializes them) says so too: the schema went that way meanwhile.
    pub fn describe(&self) -> String {
        let at = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        match (self.applied, self.before) {
            (0, _) => format!("the schema is up to date (migration {})", at(self.after)),
            (n, None) => format!(
                "applied {n} migrations to a new database (now at migration {})",
                at(self.after)
            ),
            (n, Some(before)) => format!(
                "applied {n} migration{} (the schema was at migration {before}, now {})",
                if n == 1 { "" } else { "s" },
                at(self.after)
            ),
        }
    }
}

/// The error of a store whose schema has a migration this binary does not know: a newer
/// Portcullis migrated it (any of its commands does, `client list` included).
pub fn newer_schema(version: i64) -> crate::repo::StoreError {
    crate::repo::StoreError::Unexpected(
        format!(
            "the database has migration {version}, which this version of Portcullis does not have: \
             a newer version migrated it. Run that version or a later one; going back to this \
             one needs the backup taken before the upgrade"
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_described() {
        let upgrade = Migrated::between((6, Some(6)), (32, Some(32)));
        assert_eq!(upgrade.applied, 26);
        assert_eq!(
            upgrade.describe(),
            "applied 26 migrations (the schema was at migration 6, now 32)"
        );
        assert_eq!(
            Migrated::between((31, Some(31)), (32, Some(32))).describe(),
            "applied 1 migration (the schema was at migration 31, now 32)"
        );
    }
}
