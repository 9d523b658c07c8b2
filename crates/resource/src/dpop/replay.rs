//! RFC 9449 §11.1: the proofs a validator accepted, remembered until they could no longer be
//! accepted anyway, so that none is accepted twice by this process.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// Why a proof could not be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It is already remembered: a replay.
    Replayed,
    /// Every slot holds a proof that is still acceptable. Evicting one would let that proof
    /// be replayed, so the new one is refused instead; a slot frees up in `retry_after`.
    Full { retry_after: Duration },
}

/// Proofs by key (SHA-256 of their key's thumbprint and `jti`), each with the second from
/// which it is forgotten, at most `max` of them. The heap orders them by that second, so
/// forgetting the expired ones costs nothing when there are none.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    max: usize,
    live: HashMap<[u8; 32], i64>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

impl ReplayCache {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            live: HashMap::new(),
            by_expiry: BinaryHeap::new(),
        }
    }

    /// Forgets the proofs whose window has closed at `now`.
    fn purge(&mut self, now: i64) {
        while let Some(Reverse((until, key))) = self.by_expiry.peek().copied()
            && until <= now
        {
            self.by_expiry.pop();
            self.live.remove(&key);
        }
    }

    /// Whether the proof is remembered (a cheap look before the token is validated).
    pub(crate) fn seen(&mut self, key: &[u8; 32], now: i64) -> bool {
        self.purge(now);
        self.live.contains_key(key)
    }

    /// Remembers the proof until `until` (exclusive), unless it already is or there is no
    /// room. Looking and inserting under one lock, so of two requests racing with the same
    /// proof exactly one gets in.
    pub(crate) fn remember(&mut self, key: [u8; 32], until: i64, now: i64) -> Result<(), Refusal> {
        self.purge(now);
        if self.live.contains_key(&key) {
            return Err(Refusal::Replayed);
        }
        if self.live.len() >= self.max {
            let soonest = self.by_expiry.peek().map_or(now, |Reverse((until, _))| *until);
            let wait = u64::try_from(soonest.saturating_sub(now)).unwrap_or(0).max(1);
            return Err(Refusal::Full {
                retry_after: Duration::from_secs(wait),
            });
        }
        self.live.insert(key, until);
        self.by_expiry.push(Reverse((until, key)));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn a_proof_is_accepted_once_until_it_expires() {
        let mut cache = ReplayCache::new(10);
        assert!(!cache.seen(&key(1), 100));
        assert_eq!(cache.remember(key(1), 160, 100), Ok(()));
        assert!(cache.seen(&key(1), 100));
        assert_eq!(cache.remember(key(1), 160, 159), Err(Refusal::Replayed));
        // At `until` it is forgotten: by then the proof's `iat` is out of the window anyway.
        assert!(!cache.seen(&key(1), 160));
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.remember(key(1), 220, 160), Ok(()));
    }

    /// Full of live proofs: the new one is refused, none is evicted, and the wait is the
    /// time until the oldest goes.
    #[test]
    fn full_cache_refuses_rather_than_evicts() {
        let mut cache = ReplayCache::new(2);
        assert_eq!(cache.remember(key(1), 130, 100), Ok(()));
        assert_eq!(cache.remember(key(2), 110, 100), Ok(()));
        assert_eq!(
            cache.remember(key(3), 150, 100),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(10)
            })
        );
        assert!(cache.seen(&key(1), 100) && cache.seen(&key(2), 100));
        // A replay is still called one when full.
        assert_eq!(cache.remember(key(2), 110, 100), Err(Refusal::Replayed));
        // Less than a second left still says one second.
        assert_eq!(
            cache.remember(key(3), 150, 110 - 1),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(cache.remember(key(3), 150, 110), Ok(()));
        assert!(!cache.seen(&key(2), 110));
        assert_eq!(cache.len(), 2);
    }

    /// A clock that went back keeps entries longer, never shorter.
    #[test]
    fn clock_going_back() {
        let mut cache = ReplayCache::new(4);
        assert_eq!(cache.remember(key(1), 200, 150), Ok(()));
        assert!(cache.seen(&key(1), 50));
        assert_eq!(cache.remember(key(1), 200, 50), Err(Refusal::Replayed));
    }
}
