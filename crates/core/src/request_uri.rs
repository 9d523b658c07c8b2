//! Request objects read from a client's `request_uris` (OIDC Core §6.2), within bounds:
//! anyone can send a browser to `/authorize` with a client's `request_uri`, so each read
//! is work this server does for a stranger, towards a host the client named (RFC 9101
//! §10.4.1).
//!
//! - At most [`MAX_READS_AT_ONCE`] reads run at once on a node.
//! - A client that registered itself (its URLs are anybody's choice) has at most
//!   [`SELF_REGISTERED_READS`] reads per [`WINDOW`] on a node.
//! - What a URL with a fragment held is kept for [`CACHE_TTL`]: the fragment names the
//!   content's hash, so it is the same content whenever it is read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Client;
use crate::service::Portcullis;

/// Reads under way at once on a node, all clients together.
pub const MAX_READS_AT_ONCE: usize = 64;
/// Reads per [`WINDOW`] of one self-registered client's URLs on a node.
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
    /// Self-registered clients' reads in their current window: its start and count.
    recent: Mutex<HashMap<String, (Instant, u32)>>,
    /// Content by client and URL with its fragment: when it was read.
    cache: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl Default for RequestUriReads {
    fn default() -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(MAX_READS_AT_ONCE),
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

    /// Counts a read of a self-registered client's URL; false past its allowance.
    fn allowed(&self, client: &str, now: Instant) -> bool {
        let mut recent = lock(&self.recent);
        if recent.len() >= CACHE_ENTRIES {
            recent.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = recent.entry(client.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= SELF_REGISTERED_READS
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
    /// `uri` has a fragment, only a content whose SHA-256 hash (base64url) it is. `Err`
    /// says why not, for the log: the caller answers one error for all, so that nobody
    /// learns from it what a URL holds.
    pub(crate) async fn read_request_uri(&self, client: &Client, uri: &str) -> Result<String, String> {
        let (url, fragment) = split_fragment(uri);
        let now = Instant::now();
        let key = (client.id.as_str().to_owned(), uri.to_owned());
        if fragment.is_some()
            && let Some(body) = self.request_uri_reads.cached(&key, now)
        {
            return Ok(body);
        }
        if client.self_registered && !self.request_uri_reads.allowed(client.id.as_str(), now) {
            return Err(format!(
                "more than {SELF_REGISTERED_READS} reads of this client's request_uris in {} s",
                WINDOW.as_secs()
            ));
        }
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
        for _ in 0..SELF_REGISTERED_READS {
            assert!(reads.allowed("c1", t0));
        }
        assert!(!reads.allowed("c1", t0));
        assert!(reads.allowed("c2", t0), "each client its own");
        assert!(reads.allowed("c1", t0 + WINDOW), "a new window");
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
