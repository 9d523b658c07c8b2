//! Introspection mode: ask the authorization server about each token (RFC 7662), for APIs
//! that must see a revocation at once, with a small bounded cache of active answers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{Method, Uri};
use portcullis_protocol::Secret;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tokio::sync::watch;

use crate::claims::{VerifiedClaims, dpop_binding, split_scope};
use crate::clock::{Clock, SystemClock, from_unix_seconds, unix_seconds};
use crate::dpop::{DpopOptions, DpopVerifier, bearer_only};
use crate::error::{AuthError, InvalidToken};
use crate::http::{MAX_INTROSPECTION_BYTES, form_urlencode, read_body, retry_after};
use crate::jwks::JwksValidator;
use crate::jwt::{Audience, ClaimRules, precheck};

mod builder;

pub use builder::IntrospectionValidatorBuilder;

/// Validates tokens by calling the authorization server's introspection endpoint
/// (RFC 7662 §2), authenticated as a confidential client with HTTP Basic
/// (RFC 6749 §2.3.1).
///
/// Cheap to clone (the cache is shared).
///
/// ```no_run
/// # async fn run() -> Result<(), portcullis_resource::AuthError> {
/// use std::time::Duration;
/// use portcullis_resource::IntrospectionValidator;
///
/// let validator = IntrospectionValidator::builder("https://id.example.com", "notes-api", "s3cret")
///     .audience("https://id.example.com") // Portcullis's `access_token_audience`; by default the issuer
///     .cache_max_ttl(Duration::ZERO) // see a revocation on the very next request
///     .build()
///     .await?;
/// let claims = validator.validate("eyJ…").await?;
/// # Ok(()) }
/// ```
///
/// **No call for what cannot be a token.** Portcullis issues every access token as a JWS
/// compact JWT with `typ` `at+jwt`, its issuer in `iss` and an `exp` (RFC 9068 §2). A token
/// that is not three base64url parts, whose header is not JSON with that `typ` (or has
/// `crit`), or whose payload — decoded, *not* verified — has another `iss` (when the issuer
/// is known) or an `exp` past the leeway could never be reported active, so it is refused
/// with [`AuthError::InvalidToken`] without calling the endpoint. A well-formed forgery
/// still costs one call: see the crate README on rate limits.
///
/// **Cache.** Active answers are cached, each until the token's `exp` or for at most
/// [`IntrospectionValidatorBuilder::cache_max_ttl`] (default 5 s), whichever comes first, and
/// at most [`IntrospectionValidatorBuilder::cache_max_entries`] of them (default 10 000;
/// when full, expired entries go first, then those closest to expiry). A revocation is
/// therefore seen after at most the maximum TTL. Refusals that follow from an answer —
/// `active: false`, or an active answer refused here for a reason that cannot change
/// (audience, issuer, expiry, missing claim, a refresh token) — are remembered for
/// [`IntrospectionValidatorBuilder::refusal_cache_ttl`] (default 5 s) in a separate map of
/// at most [`IntrospectionValidatorBuilder::refusal_cache_max_entries`] (default 10 000), so
/// a token replayed in a loop costs one call per TTL and junk tokens cannot push real ones
/// out. Both maps are keyed by the SHA-256 of the token, so they never hold a usable token.
///
/// **Load on the authorization server.** Concurrent validations of the same token share
/// one call: the first asks, the others wait for its answer. When the endpoint answers
/// `429` or `503`, the validator makes no call until its `Retry-After` has passed (at most
/// [`MAX_BACKOFF`]; [`DEFAULT_BACKOFF`] when the header is missing or malformed), and after
/// another server error (`500`, `502`, `504`) or a call that got no answer (refused, timed
/// out) for [`DEFAULT_BACKOFF`]; meanwhile it fails at once with an
/// [`AuthError::Upstream`] whose [`AuthError::retry_after`] says how long is left; the
/// extractor answers `503` with that `Retry-After`.
///
/// **DPoP.** An answer with `cnf.jkt` (RFC 9449 §6.2) is a DPoP-bound token: with
/// [`IntrospectionValidatorBuilder::dpop_base_url`] it is accepted with a DPoP proof of that
/// key ([`IntrospectionValidator::validate_dpop`], or the extractor for
/// `Authorization: DPoP`), never as a bearer token. The caches hold the answer whatever
/// the scheme the token came with; the proof is checked on every request.
#[derive(Clone)]
pub struct IntrospectionValidator {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) endpoint: String,
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    pub(super) issuer: Option<String>,
    pub(super) audiences: Vec<String>,
    pub(super) leeway: i64,
    pub(super) realm: String,
    /// RFC 9728 §5.1: named in every challenge.
    pub(super) resource_metadata: Option<String>,
    pub(super) http: reqwest::Client,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) max_ttl: Duration,
    pub(super) max_entries: usize,
    pub(super) cache: Mutex<HashMap<[u8; 32], Expiring<VerifiedClaims>>>,
    pub(super) refusal_ttl: Duration,
    pub(super) max_refusals: usize,
    /// Refusals that follow from an answer, apart from the active answers so that a flood
    /// of junk tokens cannot evict those.
    pub(super) refusals: Mutex<HashMap<[u8; 32], Expiring<InvalidToken>>>,
    /// Introspections under way, by cache key, each with the channel its answer will be
    /// sent on to the requests waiting for it.
    pub(super) in_flight: Mutex<HashMap<[u8; 32], watch::Receiver<Option<Shared>>>>,
    /// No call before this time: the endpoint asked us to wait.
    pub(super) backoff_until: Mutex<Option<SystemTime>>,
    /// Calls to the endpoint under way at once, at most `max_concurrent_calls`: a flood of
    /// distinct (made-up) tokens queues here instead of opening a connection each.
    pub(super) calls: tokio::sync::Semaphore,
    /// Set when DPoP is enabled (a base URL was configured).
    pub(super) dpop: Option<DpopVerifier>,
    /// Set when answers are asked for signed (RFC 9701): the issuer's keys.
    pub(super) signed: Option<JwksValidator>,
}

/// How long a validation waits for a free call slot before it gives up (503).
const CALL_SLOT_WAIT: Duration = Duration::from_secs(5);

/// The longest the validator holds back after a `429`/`503`, whatever `Retry-After` says:
/// a wrong or hostile header must not lock the API out for long.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long the validator holds back after a `429`/`503` without a usable `Retry-After`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// One introspection's outcome as handed to the requests that waited for it (an
/// [`AuthError`] is not `Clone`, and its cause was logged once by the request that asked).
#[derive(Clone)]
pub(super) enum Shared {
    Valid(Box<VerifiedClaims>),
    Refused(InvalidToken),
    Unavailable { retry_after: Option<Duration> },
}

impl Shared {
    fn of(result: &Result<VerifiedClaims, AuthError>) -> Self {
        match result {
            Ok(claims) => Self::Valid(Box::new(claims.clone())),
            Err(AuthError::InvalidToken(reason)) => Self::Refused(*reason),
            Err(e) => Self::Unavailable {
                retry_after: e.retry_after(),
            },
        }
    }

    fn into_result(self, endpoint: &str) -> Result<VerifiedClaims, AuthError> {
        let context = format!("the introspection endpoint {endpoint} failed a concurrent call for this token");
        match self {
            Self::Valid(claims) => Ok(*claims),
            Self::Refused(reason) => Err(reason.into()),
            Self::Unavailable {
                retry_after: Some(after),
            } => Err(AuthError::retry_later(context, after)),
            Self::Unavailable { retry_after: None } => Err(AuthError::upstream_msg(context)),
        }
    }
}

/// Whether a validation asks the endpoint itself or waits for another's call.
enum Flight<'a> {
    Lead(Leader<'a>),
    Follow(watch::Receiver<Option<Shared>>),
}

/// The request that calls the endpoint for a token. Dropping it — answered or cancelled —
/// takes the token out of the in-flight map; waiters that got no answer then try again.
struct Leader<'a> {
    validator: &'a IntrospectionValidator,
    key: [u8; 32],
    answer: watch::Sender<Option<Shared>>,
}

impl Leader<'_> {
    fn land(&self, result: &Result<VerifiedClaims, AuthError>) {
        self.answer.send_replace(Some(Shared::of(result)));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.validator.lock(&self.validator.inner.in_flight);
        if in_flight
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.answer.subscribe()))
        {
            in_flight.remove(&self.key);
        }
    }
}

/// A cached answer and when it stops being used.
pub(super) struct Expiring<T> {
    value: T,
    until: SystemTime,
}

/// RFC 9701 §5: a signed introspection answer's claims.
#[derive(Deserialize)]
struct SignedAnswer {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iat: Option<i64>,
    token_introspection: RawIntrospection,
}

/// How old a signed answer may be (past the leeway): it is asked for and answered at
/// once, so an older one was kept by someone.
const SIGNED_ANSWER_MAX_AGE: i64 = 60;

/// RFC 9701 §4: the media type of a signed answer, asked for with `Accept`.
const SIGNED_ANSWER: &str = "application/token-introspection+jwt";

/// RFC 7662 §2.2 response, read leniently (`aud` may be a string or an array) rather than
/// as `portcullis_protocol::token::IntrospectionResponse`.
#[derive(Deserialize)]
struct RawIntrospection {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    grant_id: Option<String>,
    /// RFC 8705 §3.2, RFC 9449 §6.2: present when the token is bound to a key (read by
    /// [`dpop_binding`]; `null` reads as absent).
    #[serde(default)]
    cnf: Option<serde_json::Value>,
    /// RFC 8693 §4.1 (read by [`crate::claims::actor`]).
    #[serde(default)]
    act: Option<serde_json::Value>,
}

impl IntrospectionValidator {
    /// A validator calling `introspection_endpoint` directly for tokens meant for
    /// `audience`, with the default settings and no discovery; `iss` is then not checked
    /// (a token must still carry one). The endpoint must be `https`, or `http` on a
    /// loopback host. Use [`IntrospectionValidator::builder`] to find the endpoint from the
    /// issuer, check `iss`, accept several audiences, tune the cache, or allow plain http.
    pub fn new(
        introspection_endpoint: impl Into<String>,
        audience: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, AuthError> {
        let builder = Self::builder(String::new(), client_id, client_secret).audience(audience);
        builder.assemble(introspection_endpoint.into(), None)
    }

    /// Starts configuring a validator for tokens from `issuer`, authenticating as the
    /// confidential client `client_id` / `client_secret` (the resource server needs its own
    /// client registration to introspect).
    pub fn builder(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionValidatorBuilder {
        IntrospectionValidatorBuilder {
            issuer: issuer.into(),
            endpoint: None,
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            realm: None,
            resource_metadata: None,
            http: None,
            clock: Arc::new(SystemClock),
            max_ttl: Duration::from_secs(5),
            max_entries: 10_000,
            refusal_ttl: Duration::from_secs(5),
            max_refusals: 10_000,
            max_calls: 32,
            insecure_http: false,
            dpop: DpopOptions::default(),
            signed: None,
        }
    }

    /// Validates a bearer token by introspecting it (or from the cache) and returns its
    /// claims.
    ///
    /// Fails with [`AuthError::InvalidToken`] ([`InvalidToken::Inactive`] for `active:false`)
    /// when the token is refused — without a call when it cannot be a Portcullis access
    /// token of this issuer (see the type's documentation); a token bound to a key is
    /// refused too ([`InvalidToken::DpopBoundAsBearer`] when DPoP is enabled, see
    /// [`IntrospectionValidator::validate_dpop`]; [`InvalidToken::BoundToKey`] otherwise;
    /// RFC 9449 §7.2) — and with [`AuthError::Upstream`] when the endpoint cannot be
    /// reached, refuses our client credentials, or asked us to wait (then
    /// [`AuthError::retry_after`] is set, and no call is made until it has passed).
    pub async fn validate(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let claims = self.validate_token(token).await?;
        Ok(bearer_only(claims, self.inner.dpop.is_some())?)
    }

    /// Validates a DPoP-bound token with its proof (RFC 9449 §4.3, §7.1): the proof's
    /// checks first (a bad proof costs no introspection call), then the token's, then that
    /// the proof's key is the one the answer's `cnf.jkt` names, then that this validator has
    /// not accepted the proof before. `method` and `uri` are the request's as received (for
    /// axum, `OriginalUri` when routers are nested); the URL the proof's `htu` must name is
    /// the configured DPoP base URL followed by `uri`'s path exactly as the router saw it.
    ///
    /// Fails as [`JwksValidator::validate_dpop`](crate::JwksValidator::validate_dpop) does,
    /// and as [`IntrospectionValidator::validate`] does for the call.
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

    /// Every check of the token itself (cached); a binding (`cnf.jkt`) is returned for the
    /// caller to deal with.
    async fn validate_token(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let inner = &*self.inner;
        let rules = ClaimRules {
            issuer: inner.issuer.as_deref(),
            audiences: &inner.audiences,
            leeway: inner.leeway,
            now: unix_seconds(inner.clock.now()),
        };
        precheck(token, &rules)?;
        let key = cache_key(token);
        loop {
            if let Some(answer) = self.cached(&key) {
                return Ok(answer?);
            }
            match self.join(key) {
                Flight::Lead(leader) => {
                    let result = self.lead(token, key).await;
                    leader.land(&result);
                    return result;
                }
                Flight::Follow(mut answer) => {
                    if let Ok(shared) = answer.wait_for(Option::is_some).await
                        && let Some(shared) = shared.clone()
                    {
                        return shared.into_result(&self.inner.endpoint);
                    }
                    // The leader's request was dropped before it had an answer: go again.
                }
            }
        }
    }

    /// Joins the call under way for this token, or becomes the one making it.
    fn join(&self, key: [u8; 32]) -> Flight<'_> {
        let mut in_flight = self.lock(&self.inner.in_flight);
        if let Some(answer) = in_flight.get(&key) {
            return Flight::Follow(answer.clone());
        }
        let (answer, waiting) = watch::channel(None);
        in_flight.insert(key, waiting);
        Flight::Lead(Leader {
            validator: self,
            key,
            answer,
        })
    }

    /// The leader's work: the cache again (a call that just finished may have filled it),
    /// the back-off, then the call.
    async fn lead(&self, token: &str, key: [u8; 32]) -> Result<VerifiedClaims, AuthError> {
        if let Some(answer) = self.cached(&key) {
            return Ok(answer?);
        }
        self.check_backoff()?;
        let _slot = tokio::time::timeout(CALL_SLOT_WAIT, self.inner.calls.acquire())
            .await
            .map_err(|_| {
                AuthError::upstream_msg(format!(
                    "every call slot to {} stayed busy for {} s",
                    self.inner.endpoint,
                    CALL_SLOT_WAIT.as_secs()
                ))
            })?
            .map_err(|_| AuthError::upstream_msg("the introspection validator is closing".to_owned()))?;
        // The endpoint may have asked us to wait while this call waited for its slot.
        self.check_backoff()?;
        let raw = self.introspect(token).await?;
        let now = self.inner.clock.now();
        match self.check(raw, unix_seconds(now)) {
            Ok(claims) => {
                self.remember(key, &claims, now);
                Ok(claims)
            }
            Err(reason) => {
                self.remember_refusal(key, reason, now);
                Err(reason.into())
            }
        }
    }

    /// Fails fast while the endpoint's `Retry-After` runs.
    fn check_backoff(&self) -> Result<(), AuthError> {
        let now = self.inner.clock.now();
        let mut until = self.lock(&self.inner.backoff_until);
        let Some(left) = until.and_then(|t| t.duration_since(now).ok()) else {
            *until = None;
            return Ok(());
        };
        // More than the bound left means the clock went back: forget the back-off.
        if left.is_zero() || left > MAX_BACKOFF {
            *until = None;
            return Ok(());
        }
        Err(AuthError::retry_later(
            format!(
                "the introspection endpoint {} asked us to wait, or failed; not calling it for {} ms",
                self.inner.endpoint,
                left.as_millis()
            ),
            left,
        ))
    }

    /// Holds calls back for `wait` (bounded by [`MAX_BACKOFF`]) from `now`; a later
    /// deadline already set stays.
    fn back_off(&self, now: SystemTime, wait: Duration) -> Duration {
        let wait = wait.min(MAX_BACKOFF);
        let deadline = now.checked_add(wait).unwrap_or(now);
        let mut until = self.lock(&self.inner.backoff_until);
        if until.is_none_or(|t| t < deadline) {
            *until = Some(deadline);
        }
        wait
    }

    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        mutex.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoint tokens are sent to.
    pub fn introspection_endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The realm named in `WWW-Authenticate` challenges (RFC 6750 §3).
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The URL of the API's protected resource metadata (RFC 9728), named in challenges.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.inner.resource_metadata.as_deref()
    }

    /// How many active answers are cached now (expired ones included until they are
    /// evicted).
    pub fn cached_entries(&self) -> usize {
        self.lock_cache().len()
    }

    /// How many refusals are remembered now (expired ones included until they are
    /// evicted).
    pub fn cached_refusals(&self) -> usize {
        self.lock(&self.inner.refusals).len()
    }

    /// Whether `other` is a clone of this validator (shares its state).
    pub(crate) fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Expiring<VerifiedClaims>>> {
        self.lock(&self.inner.cache)
    }

    /// The remembered answer for a token: its claims, or why it was refused.
    fn cached(&self, key: &[u8; 32]) -> Option<Result<VerifiedClaims, InvalidToken>> {
        let now = self.inner.clock.now();
        if let Some(claims) = lookup(&mut self.lock_cache(), key, now) {
            return Some(Ok(claims));
        }
        lookup(&mut self.lock(&self.inner.refusals), key, now).map(Err)
    }

    fn remember(&self, key: [u8; 32], claims: &VerifiedClaims, now: SystemTime) {
        let inner = &*self.inner;
        // Never past the token's own expiry, never longer than configured.
        let until = from_unix_seconds(claims.expires_at).min(now.checked_add(inner.max_ttl).unwrap_or(now));
        insert_bounded(
            &mut self.lock_cache(),
            inner.max_entries,
            key,
            claims.clone(),
            until,
            now,
        );
    }

    /// Remembers a refusal that follows from the answer and stays true whatever the clock
    /// does within the TTL. `NotYetValid` will pass later, and is not remembered.
    fn remember_refusal(&self, key: [u8; 32], reason: InvalidToken, now: SystemTime) {
        if reason == InvalidToken::NotYetValid {
            return;
        }
        let inner = &*self.inner;
        let until = now.checked_add(inner.refusal_ttl).unwrap_or(now);
        let mut refusals = self.lock(&inner.refusals);
        insert_bounded(&mut refusals, inner.max_refusals, key, reason, until, now);
    }

    /// Introspects a made-up token once: the endpoint answers (`active: false`) only if it
    /// takes this client's credentials. Call it at start, so that credentials it refuses,
    /// or an endpoint that does not answer as RFC 7662 says, stop the API there with an
    /// [`AuthError::Upstream`] naming the cause, rather than answer `503` to every request
    /// later. It fails as well while the authorization server is unreachable or asks to
    /// wait (`429`/`503`, whose back-off then holds for the validations that follow, as
    /// usual): an API that may start before its authorization server should retry it, or
    /// log the error and go on.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), portcullis_resource::AuthError> {
    /// let validator = portcullis_resource::IntrospectionValidator::builder(
    ///     "https://id.example.com", "notes-api-client-id", "client-secret",
    /// )
    /// .audience("https://id.example.com")
    /// .build()
    /// .await?;
    /// validator.check_credentials().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check_credentials(&self) -> Result<(), AuthError> {
        self.introspect("portcullis-resource-credentials-check")
            .await
            .map(|_| ())
            .map_err(|e| AuthError::upstream(format!("checking the client credentials at {}", self.inner.endpoint), e))
    }

    /// RFC 7662 §2.1: `POST` the token as a form, client authenticated with HTTP Basic, the
    /// id and secret form-urlencoded first (RFC 6749 §2.3.1).
    async fn introspect(&self, token: &str) -> Result<RawIntrospection, AuthError> {
        let inner = &*self.inner;
        let url = &inner.endpoint;
        let response = inner
            .http
            .post(url)
            .basic_auth(
                form_urlencode(&inner.client_id),
                Some(form_urlencode(inner.client_secret.expose())),
            )
            .header(
                ACCEPT,
                if inner.signed.is_some() {
                    SIGNED_ANSWER
                } else {
                    "application/json"
                },
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            // Unreachable, refused, timed out: not asked again at once by every request.
            Err(e) => {
                let wait = self.back_off(inner.clock.now(), DEFAULT_BACKOFF);
                return Err(AuthError::retry_later(
                    format!(
                        "calling the introspection endpoint {url}: {e}; not calling it for {} ms",
                        wait.as_millis()
                    ),
                    wait,
                ));
            }
        };
        let status = response.status();
        // RFC 6585 §4, RFC 9110 §15.6.4: asked to slow down; honour `Retry-After`.
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let now = inner.clock.now();
            let asked = retry_after(response.headers(), now);
            let wait = self.back_off(now, asked.unwrap_or(DEFAULT_BACKOFF));
            tracing::warn!(%status, endpoint = %url, retry_after = ?asked, holding_back = ?wait,
                "the introspection endpoint asked us to wait");
            return Err(AuthError::retry_later(
                format!("the introspection endpoint {url} answered {status}"),
                wait,
            ));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            tracing::error!(%status, endpoint = %url, client_id = %inner.client_id,
                "the introspection endpoint refused our client credentials");
            return Err(AuthError::upstream_msg(format!(
                "the introspection endpoint {url} refused the client credentials ({status})"
            )));
        }
        // A server error (500, 502, 504): not asked again at once by every request either.
        if status.is_server_error() {
            let wait = self.back_off(inner.clock.now(), DEFAULT_BACKOFF);
            return Err(AuthError::retry_later(
                format!("the introspection endpoint {url} answered {status}"),
                wait,
            ));
        }
        if !status.is_success() {
            return Err(AuthError::upstream_msg(format!(
                "the introspection endpoint {url} answered {status}"
            )));
        }
        let what = format!("the introspection response from {url}");
        let Some(keys) = &inner.signed else {
            let body = read_body(response, MAX_INTROSPECTION_BYTES, &what).await?;
            return serde_json::from_slice(&body).map_err(|e| AuthError::upstream(format!("parsing {what}"), e));
        };
        // RFC 9701 §5: a JWT, or nothing that counts (an answer in JSON could have come from
        // anyone on the way).
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let body = read_body(response, MAX_INTROSPECTION_BYTES, &what).await?;
        if !content_type.eq_ignore_ascii_case(SIGNED_ANSWER) {
            return Err(AuthError::upstream_msg(format!(
                "{what} is {content_type:?}, not the signed answer asked for ({SIGNED_ANSWER})"
            )));
        }
        let jws = std::str::from_utf8(&body)
            .map_err(|e| AuthError::upstream(format!("reading {what}"), e))?
            .trim();
        let answer: SignedAnswer = keys.verify_typed(jws, "token-introspection+jwt").await.map_err(|e| {
            AuthError::upstream_msg(format!("{what} is not signed by the issuer as RFC 9701 asks: {e}"))
        })?;
        self.check_signed(answer, &what, token)
    }

    /// RFC 9701 §5: the signed answer is the issuer's, for this client, fresh (`iat`
    /// within the leeway and `SIGNED_ANSWER_MAX_AGE`, not in the future) and, when it
    /// names a `jti`, about `token`; its RFC 7662 answer is inside. An older answer, or one
    /// about another token, is what a hop on the way would replay.
    fn check_signed(&self, answer: SignedAnswer, what: &str, token: &str) -> Result<RawIntrospection, AuthError> {
        let inner = &*self.inner;
        let refused = |why: &str| Err(AuthError::upstream_msg(format!("{what} is refused: {why}")));
        let expected_issuer = inner.signed.as_ref().map(JwksValidator::issuer).unwrap_or_default();
        if answer.iss.as_deref() != Some(expected_issuer) {
            return refused("its iss is not the issuer");
        }
        let audience = answer.aud.map(Audience::into_vec).unwrap_or_default();
        if !audience.contains(&inner.client_id) {
            return refused("its aud does not name this client");
        }
        let now = unix_seconds(inner.clock.now());
        let oldest = now.saturating_sub(inner.leeway.saturating_add(SIGNED_ANSWER_MAX_AGE));
        match answer.iat {
            Some(iat) if iat > now.saturating_add(inner.leeway) => return refused("its iat is in the future"),
            Some(iat) if iat < oldest => return refused("it is too old (iat)"),
            Some(_) => {}
            None => return refused("it has no iat"),
        }
        let about = &answer.token_introspection;
        if about.active
            && let (Some(said), Some(asked)) = (&about.jti, crate::jwt::unverified_jti(token))
            && *said != asked
        {
            return refused("it speaks of another token (jti)");
        }
        Ok(answer.token_introspection)
    }

    fn check(&self, raw: RawIntrospection, now: i64) -> Result<VerifiedClaims, InvalidToken> {
        let inner = &*self.inner;
        // RFC 7662 §2.2: an inactive token tells nothing else.
        if !raw.active {
            return Err(InvalidToken::Inactive);
        }
        // RFC 9449 §6.2: a DPoP-bound token has `cnf.jkt` (and `token_type` `DPoP`); the
        // binding goes into the claims, and the proof is the caller's to check. A `cnf` of
        // another kind (RFC 8705 certificates) or an unreadable one refuses the token; with
        // DPoP off, any `cnf` does, here, as before DPoP support (so the refusal is cached).
        let dpop_jkt = dpop_binding(raw.cnf, inner.dpop.is_some())?;
        let actor = crate::claims::actor(raw.act)?;
        let dpop_typed = raw
            .token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
        // Said to be DPoP-bound, but not to which key: nothing to check a proof against.
        if dpop_typed && dpop_jkt.is_none() {
            return Err(InvalidToken::BoundToKey);
        }
        // The endpoint also answers for refresh tokens, which must not open an API; only an
        // access token — a bearer one (RFC 6750) said so or not, or a DPoP one — does.
        if !dpop_typed
            && raw
                .token_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("Bearer"))
        {
            return Err(InvalidToken::NotAnAccessToken);
        }
        let (Some(sub), Some(client_id), Some(exp)) = (raw.sub, raw.client_id, raw.exp) else {
            return Err(InvalidToken::MissingClaim);
        };
        let rules = ClaimRules {
            issuer: inner.issuer.as_deref(),
            audiences: &inner.audiences,
            leeway: inner.leeway,
            now,
        };
        let issuer = match raw.iss {
            Some(iss) => {
                rules.check_issuer(&iss)?;
                iss
            }
            None => inner.issuer.clone().unwrap_or_default(),
        };
        let audience = raw.aud.map(Audience::into_vec).unwrap_or_default();
        rules.check_audience(&audience)?;
        rules.check_time(exp, raw.nbf, raw.iat)?;
        Ok(VerifiedClaims {
            issuer,
            subject: sub,
            client_id,
            audience,
            scopes: split_scope(raw.scope.as_deref()),
            expires_at: exp,
            issued_at: raw.iat,
            not_before: raw.nbf,
            jti: raw.jti,
            grant_id: raw.grant_id,
            auth_time: None,
            dpop_jkt,
            actor,
        })
    }
}

/// The value cached for `key` if it is still good at `now`; an expired entry is dropped.
fn lookup<T: Clone>(cache: &mut HashMap<[u8; 32], Expiring<T>>, key: &[u8; 32], now: SystemTime) -> Option<T> {
    match cache.get(key) {
        Some(entry) if now < entry.until => Some(entry.value.clone()),
        Some(_) => {
            cache.remove(key);
            None
        }
        None => None,
    }
}

/// Caches `value` until `until` in a map of at most `max` entries (0: nothing is cached).
/// When full, expired entries go first, then those closest to expiry.
fn insert_bounded<T>(
    cache: &mut HashMap<[u8; 32], Expiring<T>>,
    max: usize,
    key: [u8; 32],
    value: T,
    until: SystemTime,
    now: SystemTime,
) {
    if max == 0 || until <= now {
        return;
    }
    if cache.len() >= max && !cache.contains_key(&key) {
        cache.retain(|_, e| now < e.until);
    }
    while cache.len() >= max && !cache.contains_key(&key) {
        let Some(soonest) = cache.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k) else {
            break;
        };
        cache.remove(&soonest);
    }
    cache.insert(key, Expiring { value, until });
}

/// SHA-256 of the token: a cache key that is useless to anyone reading memory, and with no
/// collisions to fear (unlike a 64-bit `Hasher`).
fn cache_key(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

impl fmt::Debug for IntrospectionValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionValidator")
            .field("endpoint", &self.inner.endpoint)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &self.inner.client_secret)
            .field("audiences", &self.inner.audiences)
            .field("dpop_base_url", &self.dpop_base_url())
            .finish_non_exhaustive()
    }
}
