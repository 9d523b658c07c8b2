//! Access tokens whose signature this node has already checked, so introspection and
//! userinfo verify each token once instead of on every call (issue 7: the RS256
//! verification was the largest cost of an introspection). A resource server presents
//! the same token many times during its lifetime, which is what makes this pay.
//!
//! What is cached is only the outcome of the signature and header checks: expiry is
//! checked against the entry on every hit, revocation is checked by the caller on every
//! hit, and an entry counts only while the key that signed it is still published.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_protocol::claims::AccessTokenClaims;

use crate::model::Digest;

/// Bounded cache keyed by the SHA-256 of the token.
pub struct VerifiedTokens {
    capacity: usize,
    entries: Mutex<HashMap<Digest, Entry>>,
}

struct Entry {
    kid: Arc<str>,
    claims: AccessTokenClaims,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of a token verified before, if it has not expired at `now` and
    /// `key_published(kid)` still holds for the key that signed it.
    pub fn get(&self, key: &Digest, now: i64, key_published: impl Fn(&str) -> bool) -> Option<AccessTokenClaims> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        if entry.claims.exp <= now || !key_published(&entry.kid) {
            entries.remove(key);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers a token whose signature was verified with key `kid`. When full, expired
    /// entries go first; if none has expired, the cache starts over (cheap, and only costs
    /// one verification per token).
    pub fn insert(&self, key: Digest, kid: &str, claims: &AccessTokenClaims, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.claims.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                kid: Arc::from(kid),
                claims: claims.clone(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://id.example".into(),
            sub: "s".into(),
            aud: "api".into(),
            client_id: "c".into(),
            scope: "a".into(),
            exp,
            iat: exp - 600,
            jti: jti.into(),
            grant_id: "g".into(),
            auth_time: None,
            cnf: None,
            act: None,
            exchanged_from: None,
        }
    }

    #[test]
    fn a_hit_needs_an_unexpired_token_and_a_published_key() {
        let cache = VerifiedTokens::new(8);
        cache.insert([1; 32], "k1", &claims("a", 100), 0);
        assert_eq!(cache.get(&[1; 32], 99, |_| true).map(|c| c.jti), Some("a".into()));
        assert!(cache.get(&[2; 32], 99, |_| true).is_none());
        // The key that signed it is no longer published: dropped.
        assert!(cache.get(&[1; 32], 99, |kid| kid != "k1").is_none());
        assert!(cache.is_empty());
        cache.insert([1; 32], "k1", &claims("a", 100), 0);
        // Expired: dropped.
        assert!(cache.get(&[1; 32], 100, |_| true).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = VerifiedTokens::new(4);
        for i in 0..4u8 {
            cache.insert([i; 32], "k", &claims("x", if i < 2 { 10 } else { 100 }), 0);
        }
        // Full: the two expired at 50 are evicted first.
        cache.insert([9; 32], "k", &claims("y", 100), 50);
        assert_eq!(cache.len(), 3);
        for i in 10..20u8 {
            cache.insert([i; 32], "k", &claims("z", 100), 50);
            assert!(cache.len() <= 4);
        }
        let off = VerifiedTokens::new(0);
        off.insert([1; 32], "k", &claims("a", 100), 0);
        assert!(off.is_empty());
    }
}
