//! The in-memory revocation set (DESIGN §3): denied `jti`s, revoked grants, and deleted
//! or disabled clients whose tokens have not yet expired. Each node loads it at start and keeps it
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
    /// Per client, the latest `issued_until` of its `ClientUntil` entries: a token is
    /// looked up by client id, not by the time in the entry's key.
    client_until: HashMap<String, i64>,
    cursor: i64,
}

impl Inner {
    fn add(&mut self, r: Revocation) {
        raise_client_until(&mut self.client_until, &r.target);
        let e = self.entries.entry(r.target).or_insert(r.expires_at);
        *e = (*e).max(r.expires_at);
    }
}

/// Keeps, per client, the latest cut-off of its `ClientUntil` targets.
fn raise_client_until(client_until: &mut HashMap<String, i64>, target: &RevocationTarget) {
    if let RevocationTarget::ClientUntil {
        client_id,
        issued_until,
    } = target
    {
        let u = client_until.entry(client_id.clone()).or_insert(*issued_until);
        *u = (*u).max(*issued_until);
    }
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
        let revoked = |jti: &str, client_id: &str, iat: i64| {
            inner
                .entries
                .contains_key(&RevocationTarget::AccessToken(jti.to_owned()))
                || inner
                    .entries
                    .contains_key(&RevocationTarget::Client(client_id.to_owned()))
                || inner.client_until.get(client_id).is_some_and(|until| iat <= *until)
        };
        revoked(&claims.jti, &claims.client_id, claims.iat)
            || grant.is_some_and(|g| inner.entries.contains_key(&g))
            // A token from a token exchange ends with any token it came from.
            || claims
                .exchanged_from
                .iter()
                .flatten()
                .any(|from| revoked(&from.jti, &from.client_id, from.iat))
    }

    /// Adds entries this node just wrote, without waiting for the next sync.
    pub fn insert_local(&self, revocations: &[Revocation]) {
        if let Ok(mut inner) = self.inner.write() {
            for r in revocations {
                inner.add(r.clone());
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
                inner.add(entry.revocation);
            }
            let before = inner.entries.len();
            inner.entries.retain(|_, exp| *exp > now);
            if inner.entries.len() != before {
                let mut client_until = HashMap::new();
                for target in inner.entries.keys() {
                    raise_client_until(&mut client_until, target);
                }
                inner.client_until = client_until;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(client_id: &str, iat: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer.example".into(),
            sub: "s".into(),
            aud: "api".into(),
            client_id: client_id.into(),
            scope: "api:read".into(),
            exp: iat + 300,
            iat,
            jti: format!("j-{iat}"),
            grant_id: Uuid::nil().to_string(),
            auth_time: None,
            cnf: None,
            act: None,
            exchanged_from: None,
        }
    }

    #[test]
    fn a_disabled_client_revokes_only_tokens_issued_until_then() {
        let set = RevocationSet::new();
        let expires_at = OffsetDateTime::now_utc() + time::Duration::hours(1);
        set.insert_local(&[Revocation {
            target: RevocationTarget::ClientUntil {
                client_id: "app".into(),
                issued_until: 1_000,
            },
            expires_at,
        }]);
        assert!(set.is_revoked(&claims("app", 999)));
        assert!(set.is_revoked(&claims("app", 1_000)), "the same second is covered");
        assert!(!set.is_revoked(&claims("app", 1_001)), "issued after re-enabling");
        assert!(!set.is_revoked(&claims("other", 999)));
        // Disabled again later: the later time wins.
        set.insert_local(&[Revocation {
            target: RevocationTarget::ClientUntil {
                client_id: "app".into(),
                issued_until: 2_000,
            },
            expires_at,
        }]);
        assert!(set.is_revoked(&claims("app", 1_500)));
        assert!(!set.is_revoked(&claims("app", 2_001)));
    }

    /// A token from a token exchange ends with any token it came from: revoked, or of a
    /// client deleted or disabled since.
    #[test]
    fn an_exchanged_token_ends_with_the_tokens_it_came_from() {
        use portcullis_protocol::claims::ExchangedFrom;
        let expires_at = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let mut exchanged = claims("service", 2_000);
        exchanged.exchanged_from = Some(vec![
            ExchangedFrom {
                jti: "j-1500".into(),
                client_id: "gateway".into(),
                iat: 1_500,
            },
            ExchangedFrom {
                jti: "j-1000".into(),
                client_id: "web".into(),
                iat: 1_000,
            },
        ]);
        for (target, revoked) in [
            (RevocationTarget::AccessToken("j-1000".into()), true),
            (RevocationTarget::AccessToken("j-1500".into()), true),
            (RevocationTarget::AccessToken("j-1234".into()), false),
            (RevocationTarget::Client("web".into()), true),
            (
                RevocationTarget::ClientUntil {
                    client_id: "gateway".into(),
                    issued_until: 1_500,
                },
                true,
            ),
            (
                RevocationTarget::ClientUntil {
                    client_id: "gateway".into(),
                    issued_until: 1_499,
                },
                false,
            ),
        ] {
            let set = RevocationSet::new();
            set.insert_local(&[Revocation {
                target: target.clone(),
                expires_at,
            }]);
            assert_eq!(set.is_revoked(&exchanged), revoked, "{target:?}");
        }
    }

    #[test]
    fn client_until_targets_round_trip_through_the_store_form() {
        let t = RevocationTarget::ClientUntil {
            client_id: "my app".into(),
            issued_until: 1_700_000_000,
        };
        assert_eq!(RevocationTarget::from_parts(t.kind(), &t.value()), Some(t));
        assert_eq!(RevocationTarget::from_parts("client_until", "x"), None);
    }
}
