//! RFC 9449 §11.1: the proofs a validator accepted, remembered until they could no longer be
//! accepted anyway (and a margin longer, for a clock that steps back), so that none is
//! accepted twice by this process; at most so many in all, and at most so many per key, so
//! that one client cannot fill the memory every client needs.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// What a proof is remembered by: SHA-256 of its key's thumbprint and its `jti`.
pub(crate) type ProofId = [u8; 32];

/// Whose a proof is: SHA-256 of its key's thumbprint.
pub(crate) type KeyId = [u8; 32];

/// Why a proof could not be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It is already remembered: a replay.
    Replayed,
    /// Its key already has as many proofs remembered as one key may. Evicting one would let
    /// that proof be replayed, so the new one is refused instead; one of this key's slots
    /// frees up in `retry_after`.
    KeyQuota { retry_after: Duration },
    /// Every slot holds a proof that is still remembered; a slot frees up in `retry_after`.
    Full { retry_after: Duration },
}

/// Proofs by [`ProofId`], each with the second from which it is forgotten, at most `max` of
/// them and at most `max_per_key` of one key. The heaps order them by that second, so
/// forgetting the expired ones costs nothing when there are none.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    max: usize,
    max_per_key: usize,
    /// Each proof remembered, with its key.
    live: HashMap<ProofId, KeyId>,
    by_expiry: BinaryHeap<Reverse<(i64, ProofId)>>,
    /// The expiry of each proof of each key: its length is the key's count, its top when the
    /// key's next slot frees up.
    per_key: HashMap<KeyId, BinaryHeap<Reverse<i64>>>,
}

impl ReplayCache {
    pub(crate) fn new(max: usize, max_per_key: usize) -> Self {
        Self {
            max,
            max_per_key,
            live: HashMap::new(),
            by_expiry: BinaryHeap::new(),
            per_key: HashMap::new(),
        }
    }

    /// Forgets the proofs whose time is up at `now`. They go in expiry order, so the one
    /// going is also the soonest to expire of its key: popping that key's top removes it.
    fn purge(&mut self, now: i64) {
        while let Some(Reverse((until, id))) = self.by_expiry.peek().copied()
            && until <= now
        {
            self.by_expiry.pop();
            let Some(key) = self.live.remove(&id) else {
                continue;
            };
            if let Entry::Occupied(mut entry) = self.per_key.entry(key) {
                entry.get_mut().pop();
                if entry.get().is_empty() {
                    entry.remove();
                }
            }
        }
    }

    /// Whether the proof is remembered (a cheap look before the token is validated).
    pub(crate) fn seen(&mut self, id: &ProofId, now: i64) -> bool {
        self.purge(now);
        self.live.contains_key(id)
    }

    /// Remembers the proof of `key` until `until` (exclusive), unless it already is, its key
    /// has no slot left, or there is no room. Looking and inserting under one lock, so of
    /// two requests racing with the same proof exactly one gets in.
    pub(crate) fn remember(&mut self, id: ProofId, key: KeyId, until: i64, now: i64) -> Result<(), Refusal> {
        self.purge(now);
        if self.live.contains_key(&id) {
            return Err(Refusal::Replayed);
        }
        let wait = |soonest: Option<i64>| {
            let secs = u64::try_from(soonest.unwrap_or(now).saturating_sub(now)).unwrap_or(0);
            Duration::from_secs(secs.max(1))
        };
        if let Some(own) = self.per_key.get(&key)
            && own.len() >= self.max_per_key
        {
            return Err(Refusal::KeyQuota {
                retry_after: wait(own.peek().map(|Reverse(until)| *until)),
            });
        }
        if self.live.len() >= self.max {
            return Err(Refusal::Full {
                retry_after: wait(self.by_expiry.peek().map(|Reverse((until, _))| *until)),
            });
        }
        self.live.insert(id, key);
        self.by_expiry.push(Reverse((until, id)));
        self.per_key.entry(key).or_default().push(Reverse(until));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// How many proofs of `key` are remembered.
    #[cfg(test)]
    pub(crate) fn len_of(&self, key: &KeyId) -> usize {
        self.per_key.get(key).map_or(0, BinaryHeap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ProofId {
        [n; 32]
    }

    const A: KeyId = [0xA; 32];
    const B: KeyId = [0xB; 32];

    #[test]
    fn a_proof_is_accepted_once_until_it_expires() {
        let mut cache = ReplayCache::new(10, 10);
        assert!(!cache.seen(&id(1), 100));
        assert_eq!(cache.remember(id(1), A, 160, 100), Ok(()));
        assert!(cache.seen(&id(1), 100));
        assert_eq!(cache.remember(id(1), A, 160, 159), Err(Refusal::Replayed));
        // At `until` it is forgotten, and so is its key's count.
        assert!(!cache.seen(&id(1), 160));
        assert_eq!((cache.len(), cache.len_of(&A)), (0, 0));
        assert!(cache.per_key.is_empty());
        assert_eq!(cache.remember(id(1), A, 220, 160), Ok(()));
    }

    /// Full of live proofs: the new one is refused, none is evicted, and the wait is the
    /// time until the oldest goes.
    #[test]
    fn full_cache_refuses_rather_than_evicts() {
        let mut cache = ReplayCache::new(2, 2);
        assert_eq!(cache.remember(id(1), A, 130, 100), Ok(()));
        assert_eq!(cache.remember(id(2), B, 110, 100), Ok(()));
        assert_eq!(
            cache.remember(id(3), B, 150, 100),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(10)
            })
        );
        assert!(cache.seen(&id(1), 100) && cache.seen(&id(2), 100));
        // A replay is still called one when full.
        assert_eq!(cache.remember(id(2), B, 110, 100), Err(Refusal::Replayed));
        // Less than a second left still says one second.
        assert_eq!(
            cache.remember(id(3), B, 150, 110 - 1),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(cache.remember(id(3), B, 150, 110), Ok(()));
        assert!(!cache.seen(&id(2), 110));
        assert_eq!(cache.len(), 2);
    }

    /// One key cannot take more than its share: its next proof is refused with the time
    /// until its own oldest goes, while other keys still get in.
    #[test]
    fn one_key_cannot_fill_the_cache() {
        const C: KeyId = [0xC; 32];
        let mut cache = ReplayCache::new(10, 4);
        for (n, until) in [(1, 150), (2, 120), (3, 180), (4, 190)] {
            assert_eq!(cache.remember(id(n), A, until, 100), Ok(()));
        }
        assert_eq!(
            cache.remember(id(5), A, 200, 100),
            Err(Refusal::KeyQuota {
                retry_after: Duration::from_secs(20)
            })
        );
        assert_eq!(cache.len_of(&A), 4);
        // A replay of its own is still a replay.
        assert_eq!(cache.remember(id(2), A, 120, 100), Err(Refusal::Replayed));
        // Others are not held back, each up to its own quota.
        for n in 10..14 {
            assert_eq!(cache.remember(id(n), B, 300, 100), Ok(()), "{n}");
        }
        assert!(matches!(
            cache.remember(id(14), B, 300, 100),
            Err(Refusal::KeyQuota { .. })
        ));
        for n in 20..22 {
            assert_eq!(cache.remember(id(n), C, 300, 100), Ok(()), "{n}");
        }
        assert_eq!(cache.len(), 10);
        // Full now: another key gets `Full`, a key over its quota still `KeyQuota`.
        assert_eq!(
            cache.remember(id(22), C, 300, 100),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(20)
            })
        );
        assert!(matches!(
            cache.remember(id(5), A, 200, 100),
            Err(Refusal::KeyQuota { .. })
        ));
        // Once A's oldest is gone A has a slot again, and the counts follow the purge.
        assert_eq!(cache.remember(id(5), A, 200, 120), Ok(()));
        assert_eq!(cache.len_of(&A), 4);
        assert!(!cache.seen(&id(1), 150) && cache.seen(&id(3), 150));
        assert_eq!((cache.len_of(&A), cache.len_of(&B), cache.len_of(&C)), (3, 4, 2));
        assert!(!cache.seen(&id(10), 300));
        assert_eq!((cache.len(), cache.len_of(&A), cache.len_of(&B)), (0, 0, 0));
        assert!(cache.per_key.is_empty());
    }

    /// A clock that went back keeps entries longer, never shorter.
    #[test]
    fn clock_going_back() {
        let mut cache = ReplayCache::new(4, 4);
        assert_eq!(cache.remember(id(1), A, 200, 150), Ok(()));
        assert!(cache.seen(&id(1), 50));
        assert_eq!(cache.remember(id(1), A, 200, 50), Err(Refusal::Replayed));
    }
}
