//! JWKS mode: validate RFC 9068 JWT access tokens offline with the issuer's published keys,
//! cached and refreshed within bounds.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::{Method, Uri};
use jsonwebtoken::Algorithm;
use reqwest::header::ACCEPT;

use crate::claims::VerifiedClaims;
use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::dpop::{DpopOptions, DpopVerifier, bearer_only};
use crate::error::{AuthError, InvalidToken};
use crate::http::{MAX_JWKS_BYTES, cache_lifetime, default_client, discover, read_body, require_https};
use crate::jwt::{
    ClaimRules, DEFAULT_ALGORITHMS, VerifyKey, algorithm_name, check_claims, check_rule_settings, find_key,
    is_asymmetric, is_media_type, keys_from_jwks, parse_header, parse_typed_header, verify_signature_as,
};

/// The shortest [`JwksValidatorBuilder::refetch_interval`] accepted. A token with an unknown
/// `kid` makes the validator refetch the JWKS, and anyone can send one; this bounds what a
/// flood of them costs the authorization server to one request a second per validator.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Validates JWT access tokens offline against the issuer's JWKS (RFC 9068 §4).
///
/// Cheap to clone (the key cache is shared). Build one with [`JwksValidator::builder`]:
///
/// ```no_run
/// # async fn run() -> Result<(), portcullis_resource::AuthError> {
/// use portcullis_resource::JwksValidator;
///
/// let validator = JwksValidator::builder("https://id.example.com")
///     .audience("https://id.example.com") // Portcullis's `access_token_audience`; by default the issuer
///     .build()
///     .await?;
/// let claims = validator.validate("eyJ…").await?;
/// println!("{} called with {:?}", claims.subject, claims.scopes);
/// # Ok(()) }
/// ```
///
/// What it checks, in order: the header (no `crit`, `alg` in the allow-list — never `none`
/// nor an HMAC algorithm — and `typ` `at+jwt`), the key (a key in the JWKS with the token's
/// `kid` made for its `alg`), the signature, then that every claim RFC 9068 §2.2 requires is
/// there (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`), and `iss`, `aud`, `exp`,
/// `nbf` and `iat` (not in the future) with the leeway.
///
/// Keys are cached for the JWKS response's `Cache-Control: max-age` clamped to
/// [`JwksValidatorBuilder::cache_ttl_bounds`]. A token whose `kid` is unknown makes the
/// validator refetch the JWKS — so a rotated key is picked up without restart — but at most
/// once per [`JwksValidatorBuilder::refetch_interval`], so a flood of made-up `kid`s costs
/// the authorization server nothing. Keys past their lifetime are refreshed in the
/// background while requests go on with them; if a refresh fails, the previous keys stay
/// in use — but only up to [`JwksValidatorBuilder::max_staleness`] (default 24 h) after they
/// were fetched: past that, a validation tries to refresh them first and fails with
/// [`AuthError::Upstream`] (503) when it cannot, rather than trusting keys the issuer may
/// have withdrawn long ago. A fetch that fails is one that gets no answer, an answer other
/// than `200`, or a body that is not a JWK Set; a well-formed set always replaces the cached
/// keys (RFC 7517 §5), even one with no key usable here (empty, or only keys for another
/// algorithm or for encryption): tokens are then refused as
/// [`InvalidToken::UnknownKey`] until the issuer publishes a key again. [`build`] refuses
/// such a set, since nothing could ever be accepted with it.
///
/// [`build`]: JwksValidatorBuilder::build
///
/// The issuer, the JWKS location and the discovered `jwks_uri` must be `https` URLs, except
/// on a loopback host (`127.0.0.0/8`, `::1`, `localhost`) or with
/// [`JwksValidatorBuilder::insecure_allow_http`]. For a discovered `jwks_uri` the loopback
/// exception holds only when the issuer itself is plain http on loopback (local
/// development): an https issuer's discovery document must name an https JWKS.
///
/// **DPoP.** With [`JwksValidatorBuilder::dpop_base_url`], tokens bound to a key
/// (`cnf.jkt`, RFC 9449 §6.1) are accepted with a DPoP proof of that key
/// ([`JwksValidator::validate_dpop`], or the extractor for `Authorization: DPoP`); without
/// it they are refused. [`JwksValidator::validate`] never accepts a bound token.
#[derive(Clone)]
pub struct JwksValidator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: i64,
    jwks_uri: String,
    realm: String,
    /// RFC 9728 §5.1: named in every challenge.
    resource_metadata: Option<String>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    refetch_interval: Duration,
    ttl: TtlBounds,
    max_staleness: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching, so concurrent misses wait for one fetch instead of each
    /// starting their own.
    fetch: tokio::sync::Mutex<FetchState>,
    /// "Too old to trust", met by every request past `max_staleness`: one line a period.
    stale_logged: crate::log_throttle::Throttled,
    /// Fetches finished, successful or not (bumped with the fetch lock held, after the
    /// keys are stored). A task that reads it before queueing for the lock and finds it
    /// changed once it holds the lock knows a fetch ran while it waited, and takes that
    /// fetch's result instead of starting another: with an endpoint that hangs until the
    /// timeout, queued requests would otherwise each wait for their own timeout in turn.
    fetches_finished: AtomicU64,
    /// A refresh of keys past their lifetime runs in the background.
    refreshing: AtomicBool,
    /// Set when DPoP is enabled (a base URL was configured).
    dpop: Option<DpopVerifier>,
}

#[derive(Debug, Clone, Copy)]
struct TtlBounds {
    default: Duration,
    min: Duration,
    max: Duration,
}

struct KeySet {
    keys: Vec<VerifyKey>,
    /// Bumped on every successful fetch, so a task that waited for the fetch lock can tell
    /// that someone else already refreshed.
    generation: u64,
    /// When the set was fetched, for the maximum staleness.
    fetched_at: SystemTime,
    expires_at: SystemTime,
}

struct FetchState {
    /// When the last fetch started, then when it finished: the refetch interval counts
    /// from its end, so an endpoint that takes the whole timeout to fail is not asked
    /// again the moment it has.
    last_attempt: SystemTime,
    /// Whether the last fetch failed: a key unknown meanwhile may be one the endpoint
    /// would have given, so it cannot be told apart from a forged `kid` (503, not 401).
    last_failed: bool,
}

/// Configures a [`JwksValidator`]; made by [`JwksValidator::builder`].
#[must_use]
pub struct JwksValidatorBuilder {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    jwks_uri: Option<String>,
    realm: Option<String>,
    resource_metadata: Option<String>,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    refetch_interval: Duration,
    ttl: TtlBounds,
    max_staleness: Duration,
    insecure_http: bool,
    dpop: DpopOptions,
}

impl JwksValidator {
    /// Starts configuring a validator for tokens from `issuer` (e.g.
    /// `https://id.example.com`); the JWKS location is found through its discovery document
    /// unless [`JwksValidatorBuilder::jwks_uri`] is given.
    pub fn builder(issuer: impl Into<String>) -> JwksValidatorBuilder {
        JwksValidatorBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(30),
            jwks_uri: None,
            realm: None,
            resource_metadata: None,
            http: None,
            clock: Arc::new(SystemClock),
            refetch_interval: Duration::from_secs(10),
            ttl: TtlBounds {
                default: Duration::from_secs(300),
                min: Duration::from_secs(60),
                max: Duration::from_secs(24 * 3600),
            },
            max_staleness: Duration::from_secs(24 * 3600),
            insecure_http: false,
            dpop: DpopOptions::default(),
        }
    }

    /// Validates a bearer token (the part after `Bearer `) and returns its claims.
    ///
    /// Fails with [`AuthError::InvalidToken`] when the token is refused — a token bound to a
    /// key (`cnf`) included: [`InvalidToken::DpopBoundAsBearer`] when DPoP is enabled
    /// (use [`JwksValidator::validate_dpop`]), [`InvalidToken::BoundToKey`] otherwise
    /// (RFC 9449 §7.2) — and with [`AuthError::Upstream`] when the JWKS was needed but
    /// could not be fetched, or when the cached keys are older than the maximum staleness
    /// and could not be refreshed.
    pub async fn validate(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let claims = self.validate_token(token).await?;
        Ok(bearer_only(claims, self.inner.dpop.is_some())?)
    }

    /// Validates a DPoP-bound token with its proof (RFC 9449 §4.3, §7.1): the proof's
    /// checks, then the token's, then that the proof's key is the one the token is bound to,
    /// then that this validator has not accepted the proof before. `method` and `uri` are
    /// the request's as received (for axum, `OriginalUri` when routers are nested); the URL
    /// the proof's `htu` must name is the configured DPoP base URL followed by `uri`'s path
    /// exactly as the router saw it, which must be in normal form (see
    /// [`JwksValidatorBuilder::dpop_base_url`]).
    ///
    /// Fails with [`AuthError::InvalidDpopProof`] for the proof,
    /// [`AuthError::InvalidToken`] for the token ([`InvalidToken::NotDpopBound`] when it
    /// has no `cnf.jkt`, [`InvalidToken::DpopKeyMismatch`] when it is bound to another key,
    /// [`InvalidToken::DpopNotEnabled`] without a DPoP base URL), and
    /// [`AuthError::DpopKeyQuotaExceeded`] or [`AuthError::DpopReplayCacheFull`] when the
    /// proof cannot be remembered.
    pub async fn validate_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &Method,
        uri: &Uri,
    ) -> Result<VerifiedClaims, AuthError> {
        let dpop = self.inner.dpop.as_ref();
        crate::dpop::validate_with(dpop, token, proof, method, uri, self.validate_token(token)).await
    }

    /// The public base URL DPoP proofs are checked against, when DPoP is enabled.
    pub fn dpop_base_url(&self) -> Option<&str> {
        self.inner.dpop.as_ref().map(DpopVerifier::base_url)
    }

    /// Every check of the token itself; a binding (`cnf.jkt`) is returned for the caller to
    /// deal with.
    async fn validate_token(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let inner = &*self.inner;
        let (header, alg) = parse_header(token, &inner.algorithms)?;
        let raw = self.verified_payload(token, header.kid.as_deref(), alg).await?;
        let rules = ClaimRules {
            issuer: Some(&inner.issuer),
            audiences: &inner.audiences,
            leeway: inner.leeway,
            now: unix_seconds(inner.clock.now()),
        };
        Ok(check_claims(raw, &rules, inner.dpop.is_some())?)
    }

    /// The payload of `token`, once its signature verifies with the published key `kid`
    /// names (or the only one for `alg`): the keys are fetched again for a key not known.
    async fn verified_payload<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<T, AuthError> {
        let keys = self.usable_keys().await?;
        Ok(match find_key(&keys.keys, kid, alg) {
            Ok(key) => verify_signature_as(token, key, alg)?,
            Err(InvalidToken::UnknownKey) => {
                let keys = self.refetch_for_unknown_key(keys.generation).await?;
                let key = find_key(&keys.keys, kid, alg)?;
                verify_signature_as(token, key, alg)?
            }
            Err(other) => return Err(other.into()),
        })
    }

    /// The payload of a JWS of the media type `application/{typ}` that the issuer signed
    /// with one of its published keys and an allowed algorithm (RFC 9701 §5: a signed
    /// introspection answer); its claims are the caller's to check.
    pub(crate) async fn verify_typed<T: serde::de::DeserializeOwned>(
        &self,
        jws: &str,
        typ: &str,
    ) -> Result<T, AuthError> {
        let (header, alg) = parse_typed_header(jws, &self.inner.algorithms, |t| is_media_type(t, typ))?;
        self.verified_payload(jws, header.kid.as_deref(), alg).await
    }

    /// The `iss` tokens must carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audiences accepted in `aud`.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// Where the keys are fetched from.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// The realm named in `WWW-Authenticate` challenges (RFC 6750 §3).
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The URL of the API's protected resource metadata (RFC 9728), named in challenges.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.inner.resource_metadata.as_deref()
    }

    /// Whether `other` is a clone of this validator (shares its state).
    pub(crate) fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn current(&self) -> Arc<KeySet> {
        let guard = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// The cached keys. Once their lifetime is over they are refreshed in the background
    /// (one refresh at a time) while requests go on with them: a JWKS endpoint that is slow
    /// or hangs until the timeout must not hold up requests that have a key to verify with.
    /// On a failed refresh the stale keys stay in use (up to the maximum staleness, see
    /// `usable_keys`), and the next attempt waits for the refetch interval. A token whose key is not among them waits for that refresh
    /// instead (`refetch_for_unknown_key`).
    async fn fresh_keys(&self) -> Arc<KeySet> {
        let keys = self.current();
        if self.inner.clock.now() < keys.expires_at || self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return keys;
        }
        let this = self.clone();
        let generation = keys.generation;
        tokio::spawn(async move {
            /// Clears the flag however the refresh ends.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let _done = Done(&this.inner.refreshing);
            let mut state = this.inner.fetch.lock().await;
            if let Err(e) = this.fetch_locked(&mut state, generation).await {
                tracing::warn!(error = %e, jwks_uri = %this.inner.jwks_uri, "JWKS refresh failed; keeping the cached keys");
            }
        });
        keys
    }

    /// Whether `keys` were fetched longer than the maximum staleness ago. A clock that went
    /// backwards makes them younger, not older.
    fn too_stale(&self, keys: &KeySet) -> bool {
        let now = self.inner.clock.now();
        now.duration_since(keys.fetched_at)
            .is_ok_and(|age| age > self.inner.max_staleness)
    }

    /// The keys to verify with: the cached ones (see `fresh_keys`) while they are no older
    /// than the maximum staleness. Past it, they are refreshed first, within the refetch
    /// interval's rate limit (a request that waited for another's fetch takes its result);
    /// when that fails, or the rate limit forbids it, the validation fails as `Upstream`
    /// rather than going on with keys the issuer may long have withdrawn (a key compromise is
    /// dealt with by removing the key from the JWKS).
    async fn usable_keys(&self) -> Result<Arc<KeySet>, AuthError> {
        let keys = self.fresh_keys().await;
        if !self.too_stale(&keys) {
            return Ok(keys);
        }
        let inner = &*self.inner;
        let seen_fetches = inner.fetches_finished.load(Ordering::Acquire);
        let mut state = inner.fetch.lock().await;
        let refreshed = if inner.fetches_finished.load(Ordering::Acquire) == seen_fetches {
            self.fetch_locked(&mut state, keys.generation).await?
        } else {
            Some(self.current())
        };
        match refreshed {
            Some(keys) if !self.too_stale(&keys) => Ok(keys),
            _ => {
                if let Some(left_out) = inner.stale_logged.admit(inner.clock.now()) {
                    tracing::warn!(jwks_uri = %inner.jwks_uri, max_staleness = ?inner.max_staleness, left_out,
                        "the cached JWKS is too old to trust and could not be refreshed");
                }
                Err(AuthError::upstream_msg(format!(
                    "the keys from {} are older than the maximum staleness ({} s) and could not be refreshed",
                    inner.jwks_uri,
                    inner.max_staleness.as_secs()
                )))
            }
        }
    }

    /// Waits until no background refresh runs (for tests that check what it fetched).
    #[doc(hidden)]
    pub async fn background_refresh_done(&self) {
        while self.inner.refreshing.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A token named a key we do not have: refetch, unless that was done less than the
    /// refetch interval ago, in which case the key is unknown. If another request fetched
    /// while this one waited for the lock, its result is this one's: its keys, or its
    /// failure.
    async fn refetch_for_unknown_key(&self, seen_generation: u64) -> Result<Arc<KeySet>, AuthError> {
        let inner = &*self.inner;
        let seen_fetches = inner.fetches_finished.load(Ordering::Acquire);
        let mut state = inner.fetch.lock().await;
        if inner.fetches_finished.load(Ordering::Acquire) != seen_fetches {
            let current = self.current();
            if current.generation != seen_generation {
                return Ok(current);
            }
            tracing::debug!("unknown kid; the JWKS fetch this request waited for failed");
            return Err(AuthError::upstream_msg(format!(
                "the JWKS at {} could not be fetched (a concurrent refetch failed)",
                inner.jwks_uri
            )));
        }
        match self.fetch_locked(&mut state, seen_generation).await? {
            Some(keys) => Ok(keys),
            // The last fetch failed: the key may be one it would have brought, so the
            // token cannot be judged until a fetch succeeds (RFC 6750 §3.1's invalid_token
            // would make a client throw a good token away).
            None if state.last_failed => {
                let since = inner.clock.now().duration_since(state.last_attempt).unwrap_or_default();
                let wait = inner.refetch_interval.saturating_sub(since).max(Duration::from_secs(1));
                tracing::debug!("unknown kid; the last JWKS fetch failed and the next waits for the rate limit");
                Err(AuthError::retry_later(
                    format!(
                        "the JWKS at {} could not be fetched; the token's key cannot be checked yet",
                        inner.jwks_uri
                    ),
                    wait,
                ))
            }
            None => {
                tracing::debug!("unknown kid; JWKS refetch skipped by the rate limit");
                Err(InvalidToken::UnknownKey.into())
            }
        }
    }

    /// With the fetch lock held: returns the keys someone else fetched while we waited, or
    /// fetches new ones if the rate limit allows, or `None`.
    async fn fetch_locked(
        &self,
        state: &mut FetchState,
        seen_generation: u64,
    ) -> Result<Option<Arc<KeySet>>, AuthError> {
        let inner = &*self.inner;
        let current = self.current();
        if current.generation != seen_generation {
            return Ok(Some(current));
        }
        let now = inner.clock.now();
        // A clock that went backwards does not block fetching until it catches up.
        if let Ok(since) = now.duration_since(state.last_attempt)
            && since < inner.refetch_interval
        {
            return Ok(None);
        }
        state.last_attempt = now;
        let fetched = fetch_key_set(inner, now, current.generation + 1).await;
        state.last_attempt = inner.clock.now();
        state.last_failed = fetched.is_err();
        let stored = fetched.map(|keys| {
            let fresh = Arc::new(keys);
            *inner.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&fresh);
            fresh
        });
        inner.fetches_finished.fetch_add(1, Ordering::Release);
        let fresh = stored?;
        tracing::debug!(keys = fresh.keys.len(), generation = fresh.generation, "JWKS refreshed");
        Ok(Some(fresh))
    }
}

async fn fetch_key_set(inner: &Inner, now: SystemTime, generation: u64) -> Result<KeySet, AuthError> {
    let url = &inner.jwks_uri;
    let response = inner
        .http
        .get(url)
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| AuthError::upstream(format!("fetching the JWKS at {url}"), e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(AuthError::upstream_msg(format!("the JWKS at {url} answered {status}")));
    }
    // Never cached past the maximum staleness, so a refresh is tried before keys get too
    // old to use (`build` makes sure the minimum TTL is not longer).
    let ttl = cache_lifetime(response.headers())
        .unwrap_or(inner.ttl.default)
        .clamp(inner.ttl.min, inner.ttl.max)
        .min(inner.max_staleness);
    let body = read_body(response, MAX_JWKS_BYTES, &format!("the JWKS at {url}")).await?;
    let keys = keys_from_jwks(&body, &inner.algorithms)
        .map_err(|e| AuthError::upstream(format!("parsing the JWKS at {url}"), e))?;
    // RFC 7517 §5: the set as published is the issuer's word on which keys are valid, and
    // withdrawing a key (after a compromise, say) means leaving it out. So a well-formed
    // answer with no usable key replaces the cached keys like any other, and every token
    // is refused as `UnknownKey` until the issuer publishes one; only a failed fetch (the
    // errors above) keeps the previous keys.
    if keys.is_empty() {
        tracing::warn!(jwks_uri = %url, "the JWKS has no key usable with the accepted algorithms; \
            every token will be refused until it has one");
    }
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    Ok(KeySet {
        keys,
        generation,
        fetched_at: now,
        expires_at,
    })
}

impl JwksValidatorBuilder {
    /// An audience this resource server answers to: tokens must name it in `aud`
    /// (RFC 9068 §4 step 4). Required; call several times to accept several.
    ///
    /// Portcullis puts its `access_token_audience` setting (by default the issuer) in every
    /// access token asked for without `resource`: every API validating with that value
    /// accepts every such token. A token asked for with `resource` (RFC 8707) names that
    /// API instead: use your API's URI here when its clients ask for it, so no token meant
    /// for another API passes. Scopes separate APIs too (see [`crate::Scoped`]).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The signature algorithms accepted (default RS256, ES256, EdDSA). HMAC algorithms are
    /// refused by [`build`](Self::build): they would make a public key a shared secret.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s, at most 5 minutes:
    /// [`build`](Self::build) refuses more), whole seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Fetch keys from this URL instead of the one named by the discovery document.
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// The realm named in `WWW-Authenticate` challenges (default: the first audience).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The URL of the API's protected resource metadata (RFC 9728 §5.1; see
    /// [`ProtectedResourceMetadata::url`](crate::ProtectedResourceMetadata::url)), named
    /// as `resource_metadata` in every `WWW-Authenticate` challenge, so a client that
    /// calls without a token finds the authorization server.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The HTTP client for discovery and JWKS requests, e.g. one with TLS or a proxy
    /// configured. It should not follow redirects and should have timeouts.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Where time comes from (default: the system clock); tests pin it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The least time between two JWKS fetches caused by unknown `kid`s or a failed
    /// refresh (default 10 s), counted from the end of the previous fetch. At least
    /// [`MIN_REFETCH_INTERVAL`] (1 s): [`build`](Self::build) refuses less, since anyone can
    /// make up a `kid`, and without this limit every forged token would cost the
    /// authorization server a JWKS request.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Bounds on how long fetched keys are cached, whatever `Cache-Control: max-age` says
    /// (default 1 min to 24 h).
    pub fn cache_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.ttl.min = min;
        self.ttl.max = max;
        self
    }

    /// How long keys are cached when the JWKS response has no `max-age` (default 5 min,
    /// then clamped to the bounds).
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl.default = ttl;
        self
    }

    /// How long after their last successful fetch keys may still be used while the JWKS
    /// cannot be refreshed (default 24 h; at least the minimum cache TTL). Past it,
    /// validations fail with [`AuthError::Upstream`] (503) until a refresh succeeds: an
    /// outage of the JWKS endpoint must not keep a key the issuer has withdrawn (rotated
    /// out, or removed after a compromise) trusted forever.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// Accept `http://` for the issuer and the JWKS location on any host, not only on
    /// loopback ones. For development only: over plain http anyone on the path can swap
    /// the keys and so forge tokens.
    pub fn insecure_allow_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }

    /// Accept DPoP-bound access tokens (RFC 9449) with their proofs; `url` is this API's
    /// public base URL, as clients call it (e.g. `https://api.example.com`, or
    /// `https://example.com/api` behind a proxy that strips `/api`). A proof's `htu` must
    /// be this URL followed by the path the router received, exactly as it received it;
    /// `htu` is compared without query and fragment after RFC 3986 normalisation, and a
    /// request path that normalisation would change (dot segments, `%2e`, a backslash, a
    /// percent-escaped unreserved character, a lower-case escape) matches no proof
    /// ([`InvalidDpopProof::WrongUrl`](crate::InvalidDpopProof::WrongUrl)): the router chose
    /// its handler by that path as it is. The URL cannot be taken from the request: the
    /// `Host` header is the client's to choose. Like the issuer, it must be `https` unless on
    /// loopback or with [`insecure_allow_http`](Self::insecure_allow_http), and may have no
    /// query or fragment.
    ///
    /// Without it DPoP stays off and nothing changes from before DPoP support: bound tokens
    /// are refused ([`InvalidToken::BoundToKey`]), and the `DPoP` scheme is one the
    /// extractors do not know ([`AuthError::MissingToken`]).
    pub fn dpop_base_url(mut self, url: impl Into<String>) -> Self {
        self.dpop.base_url = Some(url.into());
        self
    }

    /// How old a DPoP proof's `iat` may be (default [5 min](crate::dpop::DEFAULT_PROOF_MAX_AGE),
    /// 1 s to 1 h) and how far in the future (default
    /// [60 s](crate::dpop::DEFAULT_PROOF_MAX_FUTURE), at most 5 min) (RFC 9449 §4.3 step 11).
    /// Accepted proofs are remembered against replay until `max_age` after their `iat`, and
    /// [60 s](crate::dpop::REPLAY_MARGIN) longer (or `max_future`, if longer) in case the
    /// clock steps back.
    pub fn dpop_proof_window(mut self, max_age: Duration, max_future: Duration) -> Self {
        self.dpop.max_age = max_age;
        self.dpop.max_future = max_future;
        self
    }

    /// The most DPoP proofs remembered against replay (default
    /// [100 000](crate::dpop::DEFAULT_REPLAY_CACHE_MAX_ENTRIES), at least 1). Size it for
    /// the DPoP requests one process takes in the time a proof is remembered (max_age +
    /// margin + 1 s, 361 s by default: the default takes ≈ 277 requests per second); when
    /// every slot holds a proof still remembered, new proofs are refused with
    /// [`AuthError::DpopReplayCacheFull`] (503 with `Retry-After`) rather than forgetting
    /// one that could then be replayed.
    pub fn dpop_replay_cache_max_entries(mut self, entries: usize) -> Self {
        self.dpop.max_entries = entries;
        self
    }

    /// The most DPoP proofs of one key remembered against replay (default: a
    /// [tenth](crate::dpop::DEFAULT_REPLAY_CACHE_KEY_SHARE_DIVISOR) of
    /// [`dpop_replay_cache_max_entries`](Self::dpop_replay_cache_max_entries), 10 000 by
    /// default; at least 1; more than the whole cache counts as the whole cache). Past it,
    /// that key's new proofs are refused with [`AuthError::DpopKeyQuotaExceeded`] (429 with
    /// `Retry-After`) while other keys go on being served, so that one client with one bound
    /// token cannot fill the cache and lock every other DPoP client out. The default is ≈ 27
    /// requests per second per key, sustained; raise it for a backend that calls faster with
    /// one key.
    pub fn dpop_replay_cache_max_entries_per_key(mut self, entries: usize) -> Self {
        self.dpop.max_entries_per_key = Some(entries);
        self
    }

    /// Checks the configuration, finds the JWKS (through discovery unless given) and fetches
    /// it once, so a misconfiguration shows at start-up rather than on the first request.
    pub async fn build(self) -> Result<JwksValidator, AuthError> {
        if self.issuer.is_empty() {
            return Err(AuthError::Config("the issuer is empty".into()));
        }
        let Some(first_audience) = self.audiences.first().cloned() else {
            return Err(AuthError::Config(
                "an audience is required: RFC 9068 §4 makes checking `aud` mandatory".into(),
            ));
        };
        check_rule_settings(&self.audiences, self.leeway)?;
        if self.algorithms.is_empty() {
            return Err(AuthError::Config("the algorithm allow-list is empty".into()));
        }
        if let Some(hmac) = self.algorithms.iter().find(|a| !is_asymmetric(**a)) {
            return Err(AuthError::Config(format!(
                "{} cannot be used with a JWKS: an HMAC key would be the public key (RFC 8725 §2.1)",
                algorithm_name(*hmac)
            )));
        }
        if self.refetch_interval < MIN_REFETCH_INTERVAL {
            return Err(AuthError::Config(format!(
                "the refetch interval ({:?}) is shorter than the minimum of {} s: it is what keeps \
                 tokens with made-up `kid`s from making a JWKS request each",
                self.refetch_interval,
                MIN_REFETCH_INTERVAL.as_secs()
            )));
        }
        if self.ttl.min > self.ttl.max {
            return Err(AuthError::Config("the minimum cache TTL exceeds the maximum".into()));
        }
        if self.max_staleness < self.ttl.min {
            return Err(AuthError::Config(
                "the maximum staleness is shorter than the minimum cache TTL".into(),
            ));
        }
        require_https(&self.issuer, "the issuer", self.insecure_http)?;
        let dpop = self.dpop.build(Arc::clone(&self.clock), self.insecure_http)?;
        let http = match self.http {
            Some(client) => client,
            None => default_client()?,
        };
        let (issuer, jwks_uri) = match self.jwks_uri {
            Some(uri) => (self.issuer, uri),
            None => {
                let doc = discover(&http, &self.issuer).await?;
                // Held to the issuer's scheme: an https issuer's document naming a plain
                // http (even loopback) JWKS would hand key substitution to whatever listens
                // there.
                let uri = doc.jwks_uri(&self.issuer, self.insecure_http)?;
                // RFC 9068 §4 step 3: `iss` must match the issuer exactly as published.
                (doc.issuer, uri)
            }
        };
        // Discovered or configured alike: an https issuer does not vouch for keys fetched
        // in clear.
        require_https(&jwks_uri, "the jwks_uri", self.insecure_http)?;
        let mut inner = Inner {
            issuer,
            audiences: self.audiences,
            algorithms: self.algorithms,
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            jwks_uri,
            realm: self.realm.unwrap_or(first_audience),
            resource_metadata: self.resource_metadata,
            http,
            clock: self.clock,
            refetch_interval: self.refetch_interval,
            ttl: self.ttl,
            max_staleness: self.max_staleness,
            keys: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                generation: 0,
                fetched_at: SystemTime::UNIX_EPOCH,
                expires_at: SystemTime::UNIX_EPOCH,
            })),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: SystemTime::UNIX_EPOCH,
                last_failed: false,
            }),
            fetches_finished: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            stale_logged: crate::log_throttle::Throttled::new(),
            dpop,
        };
        let now = inner.clock.now();
        let keys = fetch_key_set(&inner, now, 1).await?;
        // At start-up an empty set can only mean a misconfiguration (an allow-list that
        // matches none of the issuer's keys, the wrong `jwks_uri`): no token could ever be
        // accepted, so say so now rather than answer 401 to every request. Later, an empty
        // set is the issuer withdrawing its keys, and is obeyed (see `fetch_key_set`).
        if keys.keys.is_empty() {
            return Err(AuthError::upstream_msg(format!(
                "the JWKS at {} has no key usable with the accepted algorithms",
                inner.jwks_uri
            )));
        }
        inner.keys = RwLock::new(Arc::new(keys));
        inner.fetch = tokio::sync::Mutex::new(FetchState {
            last_attempt: now,
            last_failed: false,
        });
        Ok(JwksValidator { inner: Arc::new(inner) })
    }
}

impl fmt::Debug for JwksValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksValidator")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("jwks_uri", &self.inner.jwks_uri)
            .field("dpop_base_url", &self.dpop_base_url())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for JwksValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}
