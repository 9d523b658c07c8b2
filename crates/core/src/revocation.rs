//! The in-memory revocation set (DESIGN §3): denied `jti`s, revoked grants and deleted
//! clients whose tokens have not yet expired. Each node loads it at start and keeps it
//! current from the store — woken by PostgreSQL LISTEN/NOTIFY, with a periodic resync.

use std::collections::HashMap;
use std::sync::RwLock;

use portcullis_protocol::claims::AccessTokenClaims;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{Revocation, RevocationTarget};
use crate::repo::Store;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<RevocationTarget, OffsetDateTime>,
    cursor: i64,
}

#[derive(Debug, Default)]
pub struct RevocationSet {
    inner: RwLock<Inner>,
}

impl RevocationSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any entry covers this access token.
    pub fn is_revoked(&self, claims: &AccessTokenClaims) -> bool {
        let Ok(inner) = self.inner.read() else { return true };
        if inner.entries.is_empty() {
            return false;
        }
        let grant = Uuid::parse_str(&claims.grant_id).ok().map(RevocationTarget::Grant);
        inner
            .entries
            .contains_key(&RevocationTarget::AccessToken(claims.jti.clone()))
            || grant.is_some_and(|g| inner.entries.contains_key(&g))
            || inner
                .entries
                .contains_key(&RevocationTarget::Client(claims.client_id.clone()))
    }

    /// Adds entries this node just wrote, without waiting for the next sync.
    pub fn insert_local(&self, revocations: &[Revocation]) {
        if let Ok(mut inner) = self.inner.write() {
            for r in revocations {
                let e = inner.entries.entry(r.target.clone()).or_insert(r.expires_at);
                *e = (*e).max(r.expires_at);
            }
        }
    }

    /// Reads entries recorded since the last sync and drops expired ones.
    pub async fn sync(&self, store: &dyn Store, now: OffsetDateTime) -> Result<usize> {
        let cursor = self.inner.read().map(|i| i.cursor).unwrap_or(0);
        let fresh = store.revocations_since(cursor, now).await?;
        let n = fresh.len();
        if let Ok(mut inner) = self.inner.write() {
            for entry in fresh {
                inner.cursor = inner.cursor.max(entry.seq);
                let r = entry.revocation;
                let e = inner.entries.entry(r.target).or_insert(r.expires_at);
                *e = (*e).max(r.expires_at);
            }
            inner.entries.retain(|_, exp| *exp > now);
        }
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
