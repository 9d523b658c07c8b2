//! Keys a `private_key_jwt` client publishes at its `jwks_uri` (OIDC Registration §2, OIDC
//! Core §10.1.1), instead of registering them here: read when first needed, kept
//! `FRESH`, and read again when an assertion does not verify with the keys known (a key
//! rollover: the client publishes its new key, then signs with it). Reads are at most one
//! per `RETRY_GAP` (a setting, `CoreSettings::jwks_uri_retry_gap`) per client, so
//! assertions naming keys nobody published cannot make this server hammer the client's
//! host; when a read fails, the keys last read stay usable for `STALE_LIMIT`.
//!
//! The HTTP request itself is a port (`JwksFetcher`): the binary implements it (no
//! redirects, bounded time and size).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::Jwk;
use portcullis_protocol::ClientId;

use crate::jws::{PRIVATE_MEMBERS, check_key};

/// How long keys read are used without reading them again.
pub const FRESH: Duration = Duration::from_secs(300);
/// The least time between two reads of one client's keys, by default.
pub const RETRY_GAP: Duration = Duration::from_secs(10);
/// How long keys last read stay usable while reading them again fails.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// The largest JWK Set read, and the most keys in it.
pub const MAX_BYTES: usize = 64 * 1024;
const MAX_KEYS: usize = 100;

/// GETs a client's `jwks_uri`.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The body of a `200` answer to `GET url`, or why there is none. Redirects are not
    /// followed; a body over `MAX_BYTES` is an error.
    async fn fetch(&self, url: &str) -> Result<String, String>;
}

/// What was last read for one client.
struct Entry {
    url: String,
    /// The signing keys last read, and when; `None` if no read succeeded.
    keys: Option<(Arc<Vec<Jwk>>, Instant)>,
    last_attempt: Instant,
    last_error: Option<String>,
}

/// The node's cache of clients' published keys.
pub struct RemoteJwks {
    retry_gap: Duration,
    fetcher: OnceLock<Arc<dyn JwksFetcher>>,
    entries: Mutex<HashMap<ClientId, Entry>>,
    /// One read at a time per client: requests that need the same keys wait for it.
    reading: Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").finish_non_exhaustive()
    }
}

/// The usable signing keys of a published JWK Set: keys for another use (`use` other than
/// `sig`) or of a kind this server cannot verify with are left out. A set that publishes a
/// private or symmetric key is refused whole: whoever made it cannot be trusted with the
/// others.
pub fn signing_keys(body: &str) -> Result<Vec<Jwk>, String> {
    if body.len() > MAX_BYTES {
        return Err(format!("the JWK Set is over {MAX_BYTES} bytes"));
    }
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| "it is not JSON".to_owned())?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("it is not a JWK Set: a JSON object with a keys array")?;
    if keys.len() > MAX_KEYS {
        return Err(format!("the JWK Set holds over {MAX_KEYS} keys"));
    }
    let mut usable = Vec::new();
    for key in keys {
        if PRIVATE_MEMBERS.iter().any(|m| key.get(m).is_some()) {
            return Err("the JWK Set publishes a private or symmetric key".into());
        }
        if key.get("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let mut key = key.clone();
        // RFC 9864's name for EdDSA over Ed25519, under the name jsonwebtoken knows.
        if key.get("alg").and_then(|a| a.as_str()) == Some("Ed25519") {
            key["alg"] = serde_json::Value::String("EdDSA".into());
        }
        if let Ok(jwk) = serde_json::from_value::<Jwk>(key)
            && check_key(&jwk).is_ok()
        {
            usable.push(jwk);
        }
    }
    if usable.is_empty() {
        return Err("the JWK Set holds no signing key this server can use".into());
    }
    Ok(usable)
}

impl RemoteJwks {
    /// A cache that reads one client's keys at most once per `retry_gap`.
    pub fn new(retry_gap: Duration) -> Self {
        Self {
            retry_gap,
            fetcher: OnceLock::new(),
            entries: Mutex::default(),
            reading: Mutex::default(),
        }
    }

    /// Installs the HTTP client; the first one installed stays.
    pub fn set_fetcher(&self, fetcher: Arc<dyn JwksFetcher>) {
        let _ = self.fetcher.set(fetcher);
    }

    /// The keys published at `url` by client `id`: those read within `FRESH`, unless
    /// `again` (the known ones did not verify an assertion), or else read now. A read is
    /// not tried within the retry gap of the last one: the keys last read are used, or the
    /// last error given.
    pub async fn keys(&self, id: &ClientId, url: &str, again: bool) -> Result<Arc<Vec<Jwk>>, String> {
        let started = Instant::now();
        if let Some(answer) = self.cached(id, url, again, started) {
            return answer;
        }
        let lock = {
            let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(reading.entry(id.clone()).or_default())
        };
        let _turn = lock.lock().await;
        // Read by another request while this one waited: that answer.
        if let Some(answer) = self.answer_since(id, url, started) {
            return answer;
        }
        let fetcher = self
            .fetcher
            .get()
            .ok_or("this node cannot read jwks_uri (no HTTP client)")?;
        let read = fetcher.fetch(url).await.and_then(|body| signing_keys(&body));
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry(id.clone()).or_insert_with(|| Entry {
            url: url.to_owned(),
            keys: None,
            last_attempt: now,
            last_error: None,
        });
        if entry.url != url {
            *entry = Entry {
                url: url.to_owned(),
                keys: None,
                last_attempt: now,
                last_error: None,
            };
        }
        entry.last_attempt = now;
        match read {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entry.keys = Some((Arc::clone(&keys), now));
                entry.last_error = None;
                Ok(keys)
            }
            Err(why) => {
                tracing::warn!(client = %id.as_str(), %url, error = %why, "could not read a client's jwks_uri");
                entry.last_error = Some(why.clone());
                usable_stale(entry, now).ok_or(why)
            }
        }
    }

    /// The answer from what is cached, when no read is due.
    fn cached(&self, id: &ClientId, url: &str, again: bool, now: Instant) -> Option<Result<Arc<Vec<Jwk>>, String>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(id).filter(|e| e.url == url)?;
        let fresh = entry
            .keys
            .as_ref()
            .filter(|(_, read)| now.duration_since(*read) < FRESH)
            .map(|(keys, _)| Arc::clone(keys));
        match fresh {
            Some(keys) if !again => Some(Ok(keys)),
            // Tried lately: no new read yet.
            _ if now.duration_since(entry.last_attempt) < self.retry_gap => Some(
                usable_stale(entry, now)
                    .ok_or_else(|| entry.last_error.clone().unwrap_or_else(|| "no key verified it".into())),
            ),
            _ => None,
        }
    }

    /// The answer of a read that finished after `since`.
    fn answer_since(&self, id: &ClientId, url: &str, since: Instant) -> Option<Result<Arc<Vec<Jwk>>, String>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(id).filter(|e| e.url == url && e.last_attempt >= since)?;
        Some(usable_stale(entry, entry.last_attempt).ok_or_else(|| entry.last_error.clone().unwrap_or_default()))
    }
}

/// The keys last read, if read within `STALE_LIMIT` of `now`.
fn usable_stale(entry: &Entry, now: Instant) -> Option<Arc<Vec<Jwk>>> {
    entry
        .keys
        .as_ref()
        .filter(|(_, read)| now.duration_since(*read) < STALE_LIMIT)
        .map(|(keys, _)| Arc::clone(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_key(kid: &str) -> serde_json::Value {
        // A real P-256 public key.
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        })
    }

    #[test]
    fn published_sets_give_their_signing_keys() {
        let mut enc = ec_key("enc");
        enc["use"] = "enc".into();
        let mut sig = ec_key("sig");
        sig["use"] = "sig".into();
        let odd = serde_json::json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"});
        let set = serde_json::json!({"keys": [enc, sig, ec_key("plain"), odd]}).to_string();
        let kids: Vec<_> = signing_keys(&set)
            .unwrap()
            .into_iter()
            .map(|k| k.common.key_id.unwrap())
            .collect();
        assert_eq!(kids, ["sig", "plain"]);
        let mut private = ec_key("p");
        private["d"] = "AAAA".into();
        let e = signing_keys(&serde_json::json!({"keys": [ec_key("a"), private]}).to_string()).unwrap_err();
        assert!(e.contains("private"), "{e}");
        assert!(signing_keys("[]").is_err());
        assert!(signing_keys("{\"keys\": []}").is_err());
        assert!(signing_keys(&" ".repeat(MAX_BYTES + 1)).is_err());
    }

    /// Answers from a list, counting calls.
    struct Script(Mutex<Vec<Result<String, String>>>, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl JwksFetcher for Script {
        async fn fetch(&self, _url: &str) -> Result<String, String> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut answers = self.0.lock().unwrap();
            if answers.is_empty() {
                Err("no more answers".into())
            } else {
                answers.remove(0)
            }
        }
    }

    #[tokio::test]
    async fn reads_are_cached_and_spaced() {
        let one = serde_json::json!({"keys": [ec_key("one")]}).to_string();
        let two = serde_json::json!({"keys": [ec_key("two")]}).to_string();
        let script = Arc::new(Script(
            Mutex::new(vec![Ok(one), Err("down".into()), Ok(two)]),
            Default::default(),
        ));
        let cache = RemoteJwks::new(RETRY_GAP);
        cache.set_fetcher(Arc::clone(&script) as Arc<dyn JwksFetcher>);
        let id = ClientId::parse("c").unwrap();
        let kid = |k: &Arc<Vec<Jwk>>| k[0].common.key_id.clone().unwrap();
        let calls = || script.1.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            kid(&cache.keys(&id, "https://c.example/jwks", false).await.unwrap()),
            "one"
        );
        assert_eq!(
            kid(&cache.keys(&id, "https://c.example/jwks", false).await.unwrap()),
            "one"
        );
        assert_eq!(calls(), 1, "fresh keys are not read again");
        // Asked again at once: within the gap, the keys known.
        assert_eq!(
            kid(&cache.keys(&id, "https://c.example/jwks", true).await.unwrap()),
            "one"
        );
        assert_eq!(calls(), 1);
        // Another URL (the client was edited) is read at once, and fails.
        assert!(cache.keys(&id, "https://c.example/new", false).await.is_err());
        assert_eq!(calls(), 2);
        // ... and is not read again within the gap.
        assert_eq!(
            cache.keys(&id, "https://c.example/new", true).await.unwrap_err(),
            "down"
        );
        assert_eq!(calls(), 2);
    }
}
