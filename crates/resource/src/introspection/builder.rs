//! Configuring an [`IntrospectionValidator`]: endpoint, credentials, audiences, cache
//! bounds, DPoP and signed answers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_protocol::Secret;

use super::{Inner, IntrospectionValidator};
use crate::clock::Clock;
use crate::dpop::DpopOptions;
use crate::error::AuthError;
use crate::http::{default_client, discover, require_https};
use crate::jwks::JwksValidator;
use crate::jwt::check_rule_settings;

/// Configures an [`IntrospectionValidator`]; made by [`IntrospectionValidator::builder`].
#[must_use]
pub struct IntrospectionValidatorBuilder {
    pub(super) issuer: String,
    pub(super) endpoint: Option<String>,
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    pub(super) audiences: Vec<String>,
    pub(super) leeway: Duration,
    pub(super) realm: Option<String>,
    pub(super) resource_metadata: Option<String>,
    pub(super) http: Option<reqwest::Client>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) max_ttl: Duration,
    pub(super) max_entries: usize,
    pub(super) refusal_ttl: Duration,
    pub(super) max_refusals: usize,
    pub(super) max_calls: usize,
    pub(super) insecure_http: bool,
    pub(super) dpop: DpopOptions,
    pub(super) signed: Option<JwksValidator>,
}

impl IntrospectionValidatorBuilder {
    /// Asks for signed answers (RFC 9701: `Accept: application/token-introspection+jwt`) and
    /// takes only those: a JWT typed `token-introspection+jwt`, signed with a key `keys`
    /// knows (the issuer's JWKS; the validator's allowed algorithms apply), whose `iss` is
    /// that issuer, whose `aud` names this client and whose `iat` is not in the future.
    /// Any other answer, a plain JSON one included, is an [`AuthError::Upstream`]: an
    /// answer in the clear could have been changed by any TLS-terminating hop on the way.
    /// Portcullis signs them with the client's `introspection_signed_response_alg` (RS256
    /// by default).
    pub fn signed_answers(mut self, keys: JwksValidator) -> Self {
        self.signed = Some(keys);
        self
    }

    /// Call this endpoint instead of the one named by the discovery document.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// An audience this resource server answers to: the answer's `aud` must name one of
    /// them. Required, as in JWKS mode: an authorization server answers `active` for any
    /// of its access tokens, whatever audience they were issued for, so without it a token
    /// for another audience would be accepted here (RFC 9068 §4, RFC 7662 §4). Call several
    /// times to accept several.
    ///
    /// Portcullis puts its `access_token_audience` setting (by default the issuer) in every
    /// access token asked for without `resource`, which does not tell one API from another;
    /// a token asked for with `resource` (RFC 8707) names that API. Use your API's URI here
    /// when its clients ask for it, and scopes either way (see [`crate::Scoped`]).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s, at most 5 minutes:
    /// building refuses more).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
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

    /// The HTTP client for discovery and introspection, e.g. one with TLS configured. It
    /// should not follow redirects and should have timeouts.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Where time comes from (default: the system clock); tests pin it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The longest an active answer is reused (default 5 s); `Duration::ZERO` disables the
    /// cache, so a revocation is seen on the very next request.
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// The most active answers kept (default 10 000); 0 disables the cache.
    pub fn cache_max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// How long a refusal that follows from an answer (`active: false`, another audience,
    /// expired, …) is remembered (default 5 s); `Duration::ZERO` disables it. A token the
    /// authorization server called inactive rarely turns active (one node of several may
    /// briefly not know a key just rotated in), so this delays a legitimate caller at most
    /// that long; it spares the endpoint (and its rate limit) the same rejected token sent
    /// in a loop.
    pub fn refusal_cache_ttl(mut self, ttl: Duration) -> Self {
        self.refusal_ttl = ttl;
        self
    }

    /// The most refusals remembered (default 10 000), in a map of their own so they never
    /// push active answers out; 0 disables it.
    pub fn refusal_cache_max_entries(mut self, entries: usize) -> Self {
        self.max_refusals = entries;
        self
    }

    /// Accept `http://` for the issuer and the introspection endpoint on any host, not only
    /// on loopback ones. For development only: over plain http the client secret and every
    /// token are readable on the path, and the answers can be forged.
    pub fn insecure_allow_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }

    /// The most calls to the introspection endpoint under way at once (default 32, at
    /// least 1). Further validations of other tokens wait for a free slot, up to 5 s, then
    /// fail as `Upstream` (503).
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_calls = calls.max(1);
        self
    }

    /// Accept DPoP-bound access tokens (RFC 9449) with their proofs; `url` is this API's
    /// public base URL, as clients call it. See
    /// [`JwksValidatorBuilder::dpop_base_url`](crate::JwksValidatorBuilder::dpop_base_url):
    /// the same rules hold.
    pub fn dpop_base_url(mut self, url: impl Into<String>) -> Self {
        self.dpop.base_url = Some(url.into());
        self
    }

    /// How old and how far in the future a DPoP proof's `iat` may be; see
    /// [`JwksValidatorBuilder::dpop_proof_window`](crate::JwksValidatorBuilder::dpop_proof_window).
    pub fn dpop_proof_window(mut self, max_age: Duration, max_future: Duration) -> Self {
        self.dpop.max_age = max_age;
        self.dpop.max_future = max_future;
        self
    }

    /// The most DPoP proofs remembered against replay; see
    /// [`JwksValidatorBuilder::dpop_replay_cache_max_entries`](crate::JwksValidatorBuilder::dpop_replay_cache_max_entries).
    pub fn dpop_replay_cache_max_entries(mut self, entries: usize) -> Self {
        self.dpop.max_entries = entries;
        self
    }

    /// The most DPoP proofs of one key remembered against replay; see
    /// [`JwksValidatorBuilder::dpop_replay_cache_max_entries_per_key`](crate::JwksValidatorBuilder::dpop_replay_cache_max_entries_per_key).
    pub fn dpop_replay_cache_max_entries_per_key(mut self, entries: usize) -> Self {
        self.dpop.max_entries_per_key = Some(entries);
        self
    }

    /// Checks the configuration and, unless an endpoint was given, finds it through the
    /// issuer's discovery document. The issuer and the endpoint must be `https`, or plain
    /// http on a loopback host; a discovered endpoint may be plain http on loopback only when
    /// the issuer is too (local development), so an https issuer's document cannot have the
    /// client secret sent in clear. [`insecure_allow_http`](Self::insecure_allow_http) lifts
    /// both rules.
    ///
    /// It makes no introspection call: see [`IntrospectionValidator::check_credentials`]
    /// to find credentials the endpoint refuses at start rather than at the first request.
    pub async fn build(self) -> Result<IntrospectionValidator, AuthError> {
        if self.issuer.is_empty() {
            return Err(AuthError::Config("the issuer is empty".into()));
        }
        require_https(&self.issuer, "the issuer", self.insecure_http)?;
        let (endpoint, issuer) = match self.endpoint.clone() {
            Some(endpoint) => (endpoint, self.issuer.clone()),
            None => {
                let http = match &self.http {
                    Some(client) => client.clone(),
                    None => default_client()?,
                };
                let doc = discover(&http, &self.issuer).await?;
                // The client secret goes there: an https issuer's document may not name a
                // plain http endpoint, not even on loopback (see `require_https_discovered`).
                let endpoint = doc.introspection_endpoint(&self.issuer, self.insecure_http)?;
                (endpoint, doc.issuer)
            }
        };
        self.assemble(endpoint, Some(issuer))
    }

    pub(super) fn assemble(
        self,
        endpoint: String,
        issuer: Option<String>,
    ) -> Result<IntrospectionValidator, AuthError> {
        // Discovered or configured alike: the client secret and the tokens go there.
        require_https(&endpoint, "the introspection endpoint", self.insecure_http)?;
        if self.client_id.is_empty() {
            return Err(AuthError::Config("the client id is empty".into()));
        }
        let Some(first_audience) = self.audiences.first().cloned() else {
            return Err(AuthError::Config(
                "an audience is required: the answer's `aud` must name this resource server".into(),
            ));
        };
        check_rule_settings(&self.audiences, self.leeway)?;
        if let (Some(keys), Some(issuer)) = (&self.signed, &issuer)
            && keys.issuer() != issuer
        {
            return Err(AuthError::Config(format!(
                "the keys for signed answers are {}'s, not the issuer's ({issuer})",
                keys.issuer()
            )));
        }
        let dpop = self.dpop.build(Arc::clone(&self.clock), self.insecure_http)?;
        let http = match self.http {
            Some(client) => client,
            None => default_client()?,
        };
        let realm = self.realm.unwrap_or(first_audience);
        Ok(IntrospectionValidator {
            inner: Arc::new(Inner {
                endpoint,
                client_id: self.client_id,
                client_secret: self.client_secret,
                issuer,
                audiences: self.audiences,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                realm,
                resource_metadata: self.resource_metadata,
                http,
                clock: self.clock,
                max_ttl: self.max_ttl,
                max_entries: self.max_entries,
                cache: Mutex::new(HashMap::new()),
                refusal_ttl: self.refusal_ttl,
                max_refusals: self.max_refusals,
                refusals: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                backoff_until: Mutex::new(None),
                calls: tokio::sync::Semaphore::new(self.max_calls),
                dpop,
                signed: self.signed,
            }),
        })
    }
}

impl fmt::Debug for IntrospectionValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}
