//! Keys a `private_key_jwt` client publishes at its `jwks_uri` (OIDC Registration §2, OIDC
//! Core §10.1.1), instead of registering them here: read when first needed, kept
//! `FRESH` (then read again in the background while still used), and read again at once
//! when an assertion does not verify with the keys known (a key rollover: the client
//! publishes its new key, then signs with it). A read starts at most once per retry gap
//! (`RETRY_GAP` by default, `CoreSettings::jwks_uri_retry_gap`) per client, counted from
//! its start and finished even if the request that started it is dropped, so assertions
//! naming keys nobody published cannot make this server hammer the client's host; such
//! an assertion within the gap of the last read waits for its end and the read then (a
//! client that rotates its keys right after a token request, as the OpenID conformance
//! suite does, is not refused), one read serving all that wait. A JWK
//! Set read replaces the keys known, even with none usable; a set that publishes a private
//! key, or a `404`/`410`, withdraws them; any other failure leaves them usable for
//! `STALE_LIMIT`.
//!
//! The HTTP request itself is a port (`outbound::Fetcher`): the binary implements it (no
//! redirects, bounded time and size, public addresses only for a client that registered
//! itself).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use portcullis_protocol::ClientId;

use crate::jws::{PRIVATE_MEMBERS, check_key};
use crate::outbound::{Fetcher, JWK_SET, Reach};

/// How long keys read are used without reading them again.
pub const FRESH: Duration = Duration::from_secs(300);
/// The least time between two reads of one client's keys, by default: what an assertion
/// signed with a key not read yet waits at most.
pub const RETRY_GAP: Duration = Duration::from_secs(2);
/// How long keys last read stay usable while reading them again fails.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// The largest JWK Set read.
pub const MAX_BYTES: usize = 64 * 1024;

/// How long a client's host has to answer for its keys: an assertion waits for them.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What was last read for one client.
struct Entry {
    url: String,
    /// The signing keys last read, and when; `None` if none are to be used (never read,
    /// or withdrawn).
    keys: Option<(Arc<Vec<Jwk>>, Instant)>,
    /// When the last read started (`retry_gap` counts from it) and ended, and when the
    /// read that ended last had started (what it read may predate a request's asking).
    last_attempt: Option<Instant>,
    last_done: Option<Instant>,
    done_started: Option<Instant>,
    last_error: Option<String>,
}

impl Entry {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            keys: None,
            last_attempt: None,
            last_done: None,
            done_started: None,
            last_error: None,
        }
    }

    /// Whether a read has started and not finished.
    fn reading(&self) -> bool {
        match (self.last_attempt, self.last_done) {
            (Some(at), Some(done)) => done < at,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The keys last read, if read within `STALE_LIMIT` of `now`.
    fn usable(&self, now: Instant) -> Option<Arc<Vec<Jwk>>> {
        self.keys
            .as_ref()
            .filter(|(_, read)| now.duration_since(*read) < STALE_LIMIT)
            .map(|(keys, _)| Arc::clone(keys))
    }

    /// The keys last read if usable, or else why there are none.
    fn answer(&self, now: Instant) -> KeysAnswer {
        self.usable(now)
            .ok_or_else(|| self.last_error.clone().unwrap_or_else(|| "no keys read".into()))
    }
}

type Entries = Arc<Mutex<HashMap<ClientId, Entry>>>;

/// The keys to verify with, or why there are none.
type KeysAnswer = Result<Arc<Vec<Jwk>>, String>;

/// The node's cache of clients' published keys.
pub struct RemoteJwks {
    retry_gap: Duration,
    fetcher: OnceLock<Arc<dyn Fetcher>>,
    entries: Entries,
    /// One blocking read at a time per client: requests that need the same keys wait for
    /// it.
    reading: Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").finish_non_exhaustive()
    }
}

/// What a published answer means for the keys.
#[derive(Debug, PartialEq)]
enum Read {
    /// These keys replace those known (none usable: every assertion is refused).
    Keys(Vec<Jwk>),
    /// The keys known are no longer to be used: the set publishes a private key, or the
    /// client's host says it is gone (`404`, `410`).
    Withdrawn(String),
    /// Nothing learned (an error answer, not a JWK Set): the keys known stay usable for a
    /// while.
    Failed(String),
}

/// The signing keys of a published JWK Set: at most `MAX_USABLE`, the first of each `kid`;
/// keys for another use (`use` other than `sig`) or of a kind this server cannot verify
/// with are left out.
fn read_answer(status: u16, body: &str) -> Read {
    match status {
        200 => {}
        404 | 410 => return Read::Withdrawn(format!("answered {status}: the keys are gone")),
        other => return Read::Failed(format!("answered {other}")),
    }
    // No member twice at any depth (RFC 8259 §4 leaves which counts to each reader),
    // as for keys registered by value.
    let value = match portcullis_protocol::json::object(body.as_bytes()) {
        Ok(members) => serde_json::Value::Object(members),
        Err(portcullis_protocol::json::ObjectError::Repeated(e)) => {
            return Read::Failed(format!("the answer names a member twice: {e}"));
        }
        Err(portcullis_protocol::json::ObjectError::NotJson) => return Read::Failed("the answer is not JSON".into()),
        Err(portcullis_protocol::json::ObjectError::NotObject) => {
            return Read::Failed("the answer is not a JWK Set: a JSON object with a keys array".into());
        }
    };
    let Some(keys) = value.get("keys").and_then(|k| k.as_array()) else {
        return Read::Failed("the answer is not a JWK Set: a JSON object with a keys array".into());
    };
    let mut usable: Vec<Jwk> = Vec::new();
    for key in keys {
        // Whoever published a private key cannot be trusted with the others.
        if PRIVATE_MEMBERS.iter().any(|m| key.get(m).is_some()) {
            return Read::Withdrawn("the JWK Set publishes a private or symmetric key".into());
        }
        if key.get("use").is_some_and(|u| u != "sig") || usable.len() == MAX_USABLE {
            continue;
        }
        let mut key = key.clone();
        // RFC 9864's name for EdDSA over Ed25519, under the name jsonwebtoken knows.
        if key.get("alg").and_then(|a| a.as_str()) == Some("Ed25519") {
            key["alg"] = serde_json::Value::String("EdDSA".into());
        }
        if let Ok(jwk) = serde_json::from_value::<Jwk>(key)
            && check_key(&jwk).is_ok()
            && (jwk.common.key_id.is_none() || usable.iter().all(|k| k.common.key_id != jwk.common.key_id))
        {
            usable.push(jwk);
        }
    }
    Read::Keys(usable)
}

/// How long a request waits for a read another (dropped) request started: longer than
/// the fetcher's own time limit.
const READ_WAIT_STEP: Duration = Duration::from_millis(20);
const READ_WAIT_STEPS: u32 = 400;

/// The most keys of one set used: each is tried on an assertion without `kid`.
pub const MAX_USABLE: usize = 16;

impl RemoteJwks {
    /// A cache that reads one client's keys at most once per `retry_gap`.
    pub fn new(retry_gap: Duration) -> Self {
        Self {
            retry_gap,
            fetcher: OnceLock::new(),
            entries: Entries::default(),
            reading: Mutex::default(),
        }
    }

    /// Installs the HTTP client; the first one installed stays.
    pub fn set_fetcher(&self, fetcher: Arc<dyn Fetcher>) {
        let _ = self.fetcher.set(fetcher);
    }

    /// The keys published at `url` by client `id`, read with `reach`. Those read within
    /// `FRESH`, unless `again` (the known ones did not verify an assertion asked about at
    /// that instant: a read started since serves it). Older ones still usable are
    /// answered at once while they are read again in the background; otherwise they are
    /// read now. A read is not started within the retry gap of the last one: the keys
    /// known are used, or the last error given, except `again`, which waits for the gap
    /// to end and reads then (unless a read that started since `again` has finished). A
    /// read, once started, finishes and is recorded even if the request that started it
    /// is dropped.
    pub async fn keys(&self, id: &ClientId, url: &str, reach: Reach, again: Option<Instant>) -> KeysAnswer {
        let started = again.unwrap_or_else(Instant::now);
        if let Some(answer) = self.without_waiting(id, url, reach, again, started) {
            return answer;
        }
        // Before a read is marked as started: without a client none would ever finish.
        let fetcher = self.fetcher()?;
        let lock = {
            let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(reading.entry(id.clone()).or_default())
        };
        let _turn = lock.lock().await;
        // A read started by a request that was dropped may still be running: its answer.
        for _ in 0..READ_WAIT_STEPS {
            if !self.entry_is(id, url, Entry::reading) {
                break;
            }
            tokio::time::sleep(READ_WAIT_STEP).await;
        }
        let read_at = loop {
            let wait = {
                let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = entries.entry(id.clone()).or_insert_with(|| Entry::new(url));
                if entry.url != url {
                    *entry = Entry::new(url);
                }
                // Read by another request while this one waited: for keys that did not
                // verify, a read that started since they were asked about (one under way
                // may have read the set before the client published its new key).
                let read_since = match again {
                    Some(asked) => entry.done_started.is_some_and(|read| read >= asked),
                    None => entry.last_done.is_some_and(|done| done >= started),
                };
                let now = Instant::now();
                if read_since || (entry.reading() && again.is_none()) {
                    return entry.answer(now);
                }
                if entry.reading() {
                    READ_WAIT_STEP
                } else {
                    // Too lately to read again: the keys known, or, for keys that did
                    // not verify, a read once the gap has passed.
                    match entry
                        .last_attempt
                        .map(|at| self.retry_gap.saturating_sub(now.duration_since(at)))
                    {
                        Some(left) if !left.is_zero() && again.is_none() => return entry.answer(now),
                        Some(left) if !left.is_zero() => left,
                        _ => {
                            entry.last_attempt = Some(now);
                            break now;
                        }
                    }
                }
            };
            tokio::time::sleep(wait).await;
        };
        let read = self.spawn_read(fetcher, id, url, reach, read_at);
        read.await.map_err(|e| format!("the read of the keys failed: {e}"))?
    }

    /// The answer from what is known, when the request need not wait for a read.
    fn without_waiting(
        &self,
        id: &ClientId,
        url: &str,
        reach: Reach,
        again: Option<Instant>,
        now: Instant,
    ) -> Option<KeysAnswer> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get_mut(id).filter(|e| e.url == url)?;
        // Read since the keys were found wanting (by this very request, say): no more.
        if let (Some(asked), Some(read)) = (again, entry.done_started)
            && read >= asked
        {
            return Some(entry.answer(now));
        }
        let again = again.is_some();
        let fresh = entry
            .keys
            .as_ref()
            .is_some_and(|(_, read)| now.duration_since(*read) < FRESH);
        if fresh && !again {
            return Some(entry.answer(now));
        }
        if entry.reading() {
            // Keys still usable do while they are read again; otherwise wait for the read.
            return entry.usable(now).filter(|_| !again).map(Ok);
        }
        if entry
            .last_attempt
            .is_some_and(|at| now.duration_since(at) < self.retry_gap)
        {
            // Keys that did not verify wait for the gap to end (`keys`).
            return (!again).then(|| entry.answer(now));
        }
        // Older keys still usable: answered now, read again meanwhile.
        let stale = entry.usable(now).filter(|_| !again)?;
        if let Ok(fetcher) = self.fetcher() {
            entry.last_attempt = Some(now);
            drop(entries);
            self.spawn_read(fetcher, id, url, reach, now);
        }
        Some(Ok(stale))
    }

    /// Whether the entry of `id` for `url` is as `test` says.
    fn entry_is(&self, id: &ClientId, url: &str, test: fn(&Entry) -> bool) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(id).is_some_and(|e| e.url == url && test(e))
    }

    /// The HTTP client installed, or why there is none.
    /// The HTTP client installed, which reads the other documents clients publish too.
    pub(crate) fn fetcher(&self) -> Result<Arc<dyn Fetcher>, String> {
        self.fetcher
            .get()
            .map(Arc::clone)
            .ok_or_else(|| "this node cannot read jwks_uri (no HTTP client)".to_owned())
    }

    /// Reads `url` with `fetcher` on a task of its own and records what it learned: the
    /// keys, or why not.
    fn spawn_read(
        &self,
        fetcher: Arc<dyn Fetcher>,
        id: &ClientId,
        url: &str,
        reach: Reach,
        started: Instant,
    ) -> tokio::task::JoinHandle<KeysAnswer> {
        let (entries, id, url) = (Arc::clone(&self.entries), id.clone(), url.to_owned());
        tokio::spawn(async move {
            let read = match fetcher.get(&url, JWK_SET, reach, MAX_BYTES, TIMEOUT).await {
                Ok((status, body)) => read_answer(status, &body),
                Err(why) => Read::Failed(why),
            };
            let now = Instant::now();
            let (answer, problem) = {
                let mut all = entries.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = all.entry(id.clone()).or_insert_with(|| Entry::new(&url));
                if entry.url != url {
                    // The client was edited meanwhile: this read is of no use.
                    return Err("the client's jwks_uri changed".into());
                }
                entry.last_done = Some(now);
                entry.done_started = Some(started);
                let problem = match read {
                    Read::Keys(keys) => {
                        entry.keys = Some((Arc::new(keys), now));
                        entry.last_error = None;
                        None
                    }
                    Read::Withdrawn(why) => {
                        entry.keys = None;
                        entry.last_error = Some(why.clone());
                        Some(why)
                    }
                    Read::Failed(why) => {
                        entry.last_error = Some(why.clone());
                        Some(why)
                    }
                };
                (entry.answer(now), problem)
            };
            if let Some(why) = problem {
                tracing::warn!(client = %id.as_str(), %url, error = %why, "could not use a client's jwks_uri");
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn ec_key(kid: &str) -> serde_json::Value {
        // A real P-256 public key (RFC 7517 A.1).
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        })
    }

    fn kids(read: Read) -> Vec<String> {
        match read {
            Read::Keys(keys) => keys.into_iter().map(|k| k.common.key_id.unwrap()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn published_sets_give_their_signing_keys() {
        let mut enc = ec_key("enc");
        enc["use"] = "enc".into();
        let mut sig = ec_key("sig");
        sig["use"] = "sig".into();
        let odd = serde_json::json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"});
        let set = serde_json::json!({"keys": [enc, sig, ec_key("plain"), odd, ec_key("sig")]}).to_string();
        assert_eq!(kids(read_answer(200, &set)), ["sig", "plain"], "the first of each kid");
        let many: Vec<_> = (0..40).map(|i| ec_key(&format!("k{i}"))).collect();
        let many = serde_json::json!({ "keys": many }).to_string();
        assert_eq!(kids(read_answer(200, &many)).len(), MAX_USABLE);
        assert_eq!(kids(read_answer(200, "{\"keys\": []}")), Vec::<String>::new());
        // A member named twice, at any depth: refused, not read as the last.
        let one = serde_json::json!({"keys": [ec_key("first")]}).to_string();
        let twice = format!(r#"{{"keys":[],{}"#, &one[1..]);
        assert!(matches!(read_answer(200, &twice), Read::Failed(why) if why.contains("twice")));
        let mut private = ec_key("p");
        private["d"] = "AAAA".into();
        let leaked = serde_json::json!({"keys": [ec_key("a"), private]}).to_string();
        assert!(matches!(read_answer(200, &leaked), Read::Withdrawn(w) if w.contains("private")));
        assert!(matches!(read_answer(404, ""), Read::Withdrawn(_)));
        assert!(matches!(read_answer(410, ""), Read::Withdrawn(_)));
        assert!(matches!(read_answer(500, &set), Read::Failed(_)));
        assert!(matches!(read_answer(302, ""), Read::Failed(_)));
        assert!(matches!(read_answer(200, "<html>"), Read::Failed(_)));
        assert!(matches!(read_answer(200, "[]"), Read::Failed(_)));
    }

    /// Answers from a list, counting calls; waits `delay` first.
    struct Script {
        answers: Mutex<Vec<Result<(u16, String), String>>>,
        calls: AtomicUsize,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl Fetcher for Script {
        async fn get(
            &self,
            _url: &str,
            _accept: &'static str,
            _reach: Reach,
            _limit: usize,
            _timeout: Duration,
        ) -> Result<(u16, String), String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Err("no more answers".into())
            } else {
                answers.remove(0)
            }
        }
    }

    fn cache(answers: Vec<Result<(u16, String), String>>, delay: Duration) -> (Arc<Script>, RemoteJwks) {
        let script = Arc::new(Script {
            answers: Mutex::new(answers),
            calls: AtomicUsize::new(0),
            delay,
        });
        let cache = RemoteJwks::new(RETRY_GAP);
        cache.set_fetcher(Arc::clone(&script) as Arc<dyn Fetcher>);
        (script, cache)
    }

    fn set(kid: &str) -> Result<(u16, String), String> {
        Ok((200, serde_json::json!({"keys": [ec_key(kid)]}).to_string()))
    }

    const URL: &str = "https://c.example/jwks";

    #[tokio::test]
    async fn reads_are_kept_and_spaced() {
        let (script, cache) = cache(vec![set("one"), Err("down".into()), set("two")], Duration::ZERO);
        let id = ClientId::parse("c").unwrap();
        let kid = |k: Arc<Vec<Jwk>>| k[0].common.key_id.clone().unwrap();
        let calls = || script.calls.load(Ordering::SeqCst);
        assert_eq!(kid(cache.keys(&id, URL, Reach::Any, None).await.unwrap()), "one");
        assert_eq!(kid(cache.keys(&id, URL, Reach::Any, None).await.unwrap()), "one");
        assert_eq!(calls(), 1, "fresh keys are not read again");
        // Keys that did not verify, asked again at once: read again once the gap has
        // passed (the read fails: the keys known stay).
        let asked = Instant::now();
        assert_eq!(
            kid(cache.keys(&id, URL, Reach::Any, Some(Instant::now())).await.unwrap()),
            "one"
        );
        assert!(
            asked.elapsed() >= RETRY_GAP - Duration::from_millis(50),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(calls(), 2);
        // Otherwise, within the gap: the keys known, no read.
        assert_eq!(kid(cache.keys(&id, URL, Reach::Any, None).await.unwrap()), "one");
        assert_eq!(calls(), 2);
        // Another URL (the client was edited) is read at once.
        assert_eq!(
            kid(cache
                .keys(&id, "https://c.example/new", Reach::Any, None)
                .await
                .unwrap()),
            "two"
        );
        assert_eq!(calls(), 3);
    }

    /// Keys that did not verify are not answered by a read that started before they were
    /// asked about: it may have read the set before the client published its new key.
    #[tokio::test]
    async fn a_read_under_way_before_the_asking_does_not_answer_it() {
        let script = Arc::new(Script {
            answers: Mutex::new(vec![set("one"), set("one"), set("two")]),
            calls: AtomicUsize::new(0),
            delay: Duration::from_millis(300),
        });
        let cache = Arc::new(RemoteJwks::new(Duration::from_millis(100)));
        cache.set_fetcher(Arc::clone(&script) as Arc<dyn Fetcher>);
        let id = ClientId::parse("c").unwrap();
        let kid = |k: Arc<Vec<Jwk>>| k[0].common.key_id.clone().unwrap();
        assert_eq!(kid(cache.keys(&id, URL, Reach::Any, None).await.unwrap()), "one");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let first = {
            let (cache, id) = (Arc::clone(&cache), id.clone());
            tokio::spawn(async move { cache.keys(&id, URL, Reach::Any, Some(Instant::now())).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = cache.keys(&id, URL, Reach::Any, Some(Instant::now())).await;
        assert_eq!(kid(first.await.unwrap().unwrap()), "one");
        assert_eq!(kid(second.unwrap()), "two");
        assert_eq!(script.calls.load(Ordering::SeqCst), 3);
    }

    /// Requests whose keys did not verify, within the gap: one read for all, at its end.
    #[tokio::test]
    async fn keys_that_did_not_verify_wait_for_one_read() {
        let (script, cache) = cache(vec![set("one"), set("two")], Duration::ZERO);
        let id = ClientId::parse("c").unwrap();
        cache.keys(&id, URL, Reach::Any, None).await.unwrap();
        let (a, b) = tokio::join!(
            cache.keys(&id, URL, Reach::Any, Some(Instant::now())),
            cache.keys(&id, URL, Reach::Any, Some(Instant::now()))
        );
        for keys in [a, b] {
            assert_eq!(keys.unwrap()[0].common.key_id.as_deref(), Some("two"));
        }
        assert_eq!(script.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_read_finishes_when_its_request_is_dropped() {
        let (script, cache) = cache(vec![set("one")], Duration::from_millis(200));
        let id = ClientId::parse("c").unwrap();
        // The request gives up halfway through the read.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), cache.keys(&id, URL, Reach::Any, None))
                .await
                .is_err()
        );
        // Another at once: no second read within the gap; the first one's keys once done.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let keys = cache.keys(&id, URL, Reach::Any, None).await.unwrap();
        assert_eq!(keys[0].common.key_id.as_deref(), Some("one"));
        assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_a_client_nothing_is_left_half_read() {
        let cache = RemoteJwks::new(RETRY_GAP);
        let id = ClientId::parse("c").unwrap();
        assert!(
            cache
                .keys(&id, URL, Reach::Any, None)
                .await
                .unwrap_err()
                .contains("no HTTP client")
        );
        // Installed later (a node's start), the next request reads at once.
        let (script, _) = super::tests::cache(vec![set("one")], Duration::ZERO);
        cache.set_fetcher(Arc::clone(&script) as Arc<dyn Fetcher>);
        let keys = tokio::time::timeout(Duration::from_secs(1), cache.keys(&id, URL, Reach::Any, None))
            .await
            .expect("no wait for a read that never started")
            .unwrap();
        assert_eq!(keys[0].common.key_id.as_deref(), Some("one"));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_read() {
        let (script, cache) = cache(vec![set("one"), set("two")], Duration::from_millis(100));
        let id = ClientId::parse("c").unwrap();
        let (a, b) = tokio::join!(
            cache.keys(&id, URL, Reach::Any, None),
            cache.keys(&id, URL, Reach::Any, None)
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    }
}
