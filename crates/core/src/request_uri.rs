//! Request objects read from a client's `request_uris` (OIDC Core §6.2), within bounds:
//! anyone can send a browser to `/authorize` with a client's `request_uri`, so each read
//! is work this server does for a stranger, towards a host the client named (RFC 9101
//! §10.4.1).
//!
//! - At most [`MAX_READS_AT_ONCE`] reads run at once on a node; of those, at most
//!   [`SELF_REGISTERED_AT_ONCE`] for clients that registered themselves (whose URLs are
//!   anybody's choice, and may never answer), so operators' clients always find room,
//!   and at most [`PER_CLIENT_AT_ONCE`] for one such client.
//! - Reads of such a client's URLs for one address (the browser's) are at most
//!   [`SELF_REGISTERED_READS`] per [`WINDOW`] on a node: a stranger sending browsers to
//!   `/authorize` with the client's `request_uri` uses up their own allowance, not that
//!   of the client's users.
//! - What a URL with a fragment held is kept for [`CACHE_TTL`]: the fragment names the
//!   content's hash, so it is the same content whenever it is read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Client;
use crate::service::Portcullis;

/// Reads under way at once on a node, all clients together.
pub const MAX_READS_AT_ONCE: usize = 64;
/// Reads under way at once for self-registered clients, and for one of them.
pub const SELF_REGISTERED_AT_ONCE: usize = 48;
pub const PER_CLIENT_AT_ONCE: usize = 4;
/// Reads per [`WINDOW`] of one self-registered client's URLs for one address on a node.
pub const SELF_REGISTERED_READS: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(10);
/// How long a content named by its hash is kept, and how many are.
pub const CACHE_TTL: Duration = Duration::from_secs(600);
const CACHE_ENTRIES: usize = 1024;

/// What a read may be (OIDC Core §6.2, RFC 9101 §5.2), how big and how slow.
const TYPES: &str = "application/oauth-authz-req+jwt, application/jwt";
const MAX_BYTES: usize = crate::request_object::MAX_BYTES;
const TIMEOUT: Duration = Duration::from_secs(5);

/// This node's bookkeeping of reads.
pub struct RequestUriReads {
    slots: tokio::sync::Semaphore,
    self_registered_slots: tokio::sync::Semaphore,
    /// Reads under way per self-registered client.
    busy: Mutex<HashMap<String, usize>>,
    /// Self-registered clients' reads in their current window, per client and address:
    /// its start and count.
    recent: Mutex<HashMap<String, (Instant, u32)>>,
    /// Content by client and URL with its fragment: when it was read.
    cache: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl Default for RequestUriReads {
    fn default() -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(MAX_READS_AT_ONCE),
            self_registered_slots: tokio::sync::Semaphore::new(SELF_REGISTERED_AT_ONCE),
            busy: Mutex::default(),
            recent: Mutex::default(),
            cache: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RequestUriReads {
    fn cached(&self, key: &(String, String), now: Instant) -> Option<String> {
        let mut cache = lock(&self.cache);
        match cache.get(key) {
            Some((at, body)) if now.duration_since(*at) < CACHE_TTL => Some(body.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn keep(&self, key: (String, String), body: &str, now: Instant) {
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
        }
        if cache.len() < CACHE_ENTRIES {
            cache.insert(key, (now, body.to_owned()));
        }
    }

    /// Counts a read of a self-registered client's URL for address `ip`; false past
    /// the allowance.
    fn allowed(&self, client: &str, ip: Option<&str>, now: Instant) -> bool {
        let mut recent = lock(&self.recent);
        if recent.len() >= CACHE_ENTRIES {
            recent.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let address = crate::throttle::address_key(ip.unwrap_or("unknown"));
        let entry = recent.entry(format!("{client} {address}")).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= SELF_REGISTERED_READS
    }

    /// One more read under way for self-registered `client`, until the guard drops;
    /// `None` when [`PER_CLIENT_AT_ONCE`] are.
    fn enter(&self, client: &str) -> Option<Busy<'_>> {
        let mut busy = lock(&self.busy);
        let n = busy.entry(client.to_owned()).or_insert(0);
        if *n >= PER_CLIENT_AT_ONCE {
            return None;
        }
        *n += 1;
        Some(Busy {
            reads: self,
            client: client.to_owned(),
        })
    }
}

/// A self-registered client's read under way (`RequestUriReads::enter`).
struct Busy<'a> {
    reads: &'a RequestUriReads,
    client: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.reads.busy);
        if let Some(n) = busy.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.client);
            }
        }
    }
}

/// A request URI and its fragment (the content's hash, when there is one): registered
/// and requested ones are compared by what comes before it.
pub(crate) fn split_fragment(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (uri, None),
    }
}

impl Portcullis {
    /// The request object at `uri` (with its fragment, if any; `url` is `uri` without
    /// it), one of `client`'s `request_uris`: read within the bounds above, with the
    /// client's reach (public addresses for a client that registered itself), and, if
    /// `uri` has a fragment, only a content whose SHA-256 hash (base64url) it is; `ip` is
    /// the address the request came from. `Err` says why not, for the log: the caller
    /// answers one error for all, so that nobody learns from it what a URL holds.
    pub(crate) async fn read_request_uri(
        &self,
        client: &Client,
        uri: &str,
        ip: Option<&str>,
    ) -> Result<String, String> {
        let (url, fragment) = split_fragment(uri);
        let now = Instant::now();
        let key = (client.id.as_str().to_owned(), uri.to_owned());
        if fragment.is_some()
            && let Some(body) = self.request_uri_reads.cached(&key, now)
        {
            return Ok(body);
        }
        let reads = &self.request_uri_reads;
        let (_busy, _self_registered_slot) = if client.self_registered {
            if !reads.allowed(client.id.as_str(), ip, now) {
                return Err(format!(
                    "more than {SELF_REGISTERED_READS} reads of this client's request_uris for one address in {} s",
                    WINDOW.as_secs()
                ));
            }
            let busy = reads
                .enter(client.id.as_str())
                .ok_or_else(|| format!("{PER_CLIENT_AT_ONCE} reads of this client's request_uris are under way"))?;
            let slot = reads.self_registered_slots.try_acquire().map_err(|_| {
                format!("{SELF_REGISTERED_AT_ONCE} reads of self-registered clients' request_uris are under way")
            })?;
            (Some(busy), Some(slot))
        } else {
            (None, None)
        };
        let _slot = self
            .request_uri_reads
            .slots
            .try_acquire()
            .map_err(|_| format!("{MAX_READS_AT_ONCE} reads of request_uris are under way"))?;
        let fetcher = self.remote_jwks.fetcher()?;
        let (status, body) = fetcher
            .get(url, TYPES, crate::outbound::Reach::of(client), MAX_BYTES, TIMEOUT)
            .await?;
        if status != 200 {
            return Err(format!("it answered {status}"));
        }
        if let Some(hash) = fragment {
            if crate::crypto::b64url(&crate::crypto::sha256(body.as_bytes())) != hash {
                return Err("its content is not the one the fragment names (SHA-256)".into());
            }
            self.request_uri_reads.keep(key, &body, now);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_registered_clients_have_an_allowance_per_window() {
        let reads = RequestUriReads::default();
        let t0 = Instant::now();
        let (here, there) = (Some("198.51.100.7"), Some("203.0.113.9"));
        for _ in 0..SELF_REGISTERED_READS {
            assert!(reads.allowed("c1", here, t0));
        }
        assert!(!reads.allowed("c1", here, t0));
        assert!(reads.allowed("c1", there, t0), "each address its own");
        assert!(reads.allowed("c2", here, t0), "each client its own");
        assert!(reads.allowed("c1", here, t0 + WINDOW), "a new window");
    }

    #[test]
    fn one_self_registered_client_has_a_few_reads_at_once() {
        let reads = RequestUriReads::default();
        let held: Vec<_> = (0..PER_CLIENT_AT_ONCE).map(|_| reads.enter("c1").unwrap()).collect();
        assert!(reads.enter("c1").is_none());
        assert!(reads.enter("c2").is_some(), "each client its own");
        drop(held);
        assert!(reads.enter("c1").is_some(), "given back when done");
        assert!(lock(&reads.busy).get("c1").is_none(), "nothing left behind");
    }

    #[test]
    fn contents_are_kept_for_a_while() {
        let reads = RequestUriReads::default();
        let t0 = Instant::now();
        let key = ("c1".to_owned(), "https://rp.example/r#h".to_owned());
        assert_eq!(reads.cached(&key, t0), None);
        reads.keep(key.clone(), "jwt", t0);
        assert_eq!(reads.cached(&key, t0 + CACHE_TTL / 2).as_deref(), Some("jwt"));
        assert_eq!(reads.cached(&("c2".to_owned(), key.1.clone()), t0), None, "per client");
        assert_eq!(reads.cached(&key, t0 + CACHE_TTL), None);
    }
}
