//! A short-lived cache of registered clients for the token-family endpoints, so that
//! client authentication does not cost a database read per request (DESIGN §2: caches in a
//! node use a short TTL). Changes made through this node invalidate at once; changes made
//! at another node are seen within the TTL. A client deleted or disabled at another node
//! cannot use tokens issued in that window: a deleted client's revocation covers every
//! token of the client, a disabled one's those issued up to the TTL after the disable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portcullis_protocol::ClientId;

use crate::model::Client;
use crate::repo::{Store, StoreResult};

/// How long a node trusts its copy of a client: a change made at another node reaches it
/// within this. A disabled client's revocation covers the tokens issued this long after
/// the disable, which other nodes may still issue from their copies.
pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Entries kept at most; past that the cache starts over (a flood of ids cannot grow it).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct ClientCache {
    ttl: Duration,
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    clients: HashMap<ClientId, (Instant, Arc<Client>)>,
    /// Invalidations so far: a read of the store that an invalidation overtook may have
    /// read the client before the change, so it serves its request but is not cached.
    invalidations: u64,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(Entries::default()),
        }
    }

    /// The client, from the cache if fresh, else from the store. Unknown ids are not cached.
    pub async fn get(&self, store: &dyn Store, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        // An entry's age counts from the start of its read: what a read begun before a
        // change found is trusted no longer than `ttl` after that change.
        let read_at = Instant::now();
        let seen = match self.entries.read() {
            Ok(entries) => {
                if let Some((at, client)) = entries.clients.get(id)
                    && at.elapsed() < self.ttl
                {
                    return Ok(Some(Arc::clone(client)));
                }
                entries.invalidations
            }
            Err(_) => u64::MAX,
        };
        let Some(client) = store.get_client(id).await? else {
            // Gone (deleted at another node): forgotten, without counting as an
            // invalidation, which a flood of unknown ids would otherwise keep others'
            // reads from being cached with.
            if let Ok(mut entries) = self.entries.write() {
                entries.clients.remove(id);
            }
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut entries) = self.entries.write()
            && entries.invalidations == seen
        {
            if entries.clients.len() >= MAX_ENTRIES {
                entries.clients.clear();
            }
            entries.clients.insert(id.clone(), (read_at, Arc::clone(&client)));
        }
        Ok(Some(client))
    }

    /// Forgets `id`, and keeps a read of the store already under way from caching what it
    /// may have read before the change that calls this.
    pub fn invalidate(&self, id: &ClientId) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clients.remove(id);
            entries.invalidations = entries.invalidations.wrapping_add(1);
        }
    }
}
