//! `Portcullis`: the use cases' shared context (store, clock, keys, settings, hasher,
//! revocation set, audit sink) and its background maintenance.

use std::sync::Arc;

use portcullis_protocol::{ScopeSet, SigningAlg};
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditSink, Event};
use crate::client_cache::ClientCache;
use crate::clock::Clock;
use crate::crypto::Kek;
use crate::defense::DefenseSettings;
use crate::error::Result;
use crate::keys::Keys;
use crate::password::PasswordHasher;
use crate::repo::{Store, StoreResult};
use crate::revocation::RevocationSet;
use crate::throttle::Throttle;

/// Settings the use cases need; the binary fills them from configuration.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The issuer identifier: an absolute URL without query or fragment, no trailing slash.
    pub issuer: String,
    /// `aud` of access tokens when a client does not ask for a resource.
    pub access_token_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub id_token_ttl: Duration,
    /// RFC 6749 §4.1.2 recommends at most 10 minutes; DESIGN §3 uses 60 s.
    pub code_ttl: Duration,
    /// RFC 8628 §3.2 `expires_in`: how long a device code and its user code wait for the
    /// person and then for the device.
    pub device_code_ttl: Duration,
    /// RFC 8628 §3.2 `interval`: the least number of seconds between a device's polls.
    pub device_poll_interval: i64,
    /// The least time between two reads of one client's `jwks_uri`.
    pub jwks_uri_retry_gap: std::time::Duration,
    /// The waits before each further try of a back-channel logout delivery
    /// (`backchannel::RETRY_DELAYS`; shorter in tests).
    pub backchannel_logout_retry_delays: Vec<std::time::Duration>,
    pub session_ttl: Duration,
    /// A signed-in browser session ends this long after its last authentication, however
    /// active (NIST SP 800-63B §4.1.3: reauthentication at least every 30 days).
    pub session_max_age: Duration,
    /// An admin session with no request for this long ends (OWASP session management:
    /// a short idle timeout for privileged sessions), within its `session_ttl`.
    pub admin_idle_timeout: Duration,
    /// The algorithm of access tokens; ID tokens use `ID_TOKEN_ALG` unless their client
    /// registered this one.
    pub signing_alg: SigningAlg,
    pub max_concurrent_password_hashes: usize,
    /// Audit events older than this many days are deleted by the periodic cleanup;
    /// 0 keeps them forever.
    pub audit_retention_days: u32,
    /// RFC 9126 §5: authorization requests only through `/par`; one with its parameters
    /// in the URL is refused.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: authorization requests only as request objects the client signs;
    /// a client without keys cannot sign in anyone.
    pub require_signed_request_object: bool,
    /// RFC 7591: whether clients may register themselves at `/register`.
    pub registration: crate::registration::RegistrationMode,
    /// The scopes a client that registers itself may register (and has when it names
    /// none).
    pub registration_scopes: ScopeSet,
    /// The APIs (RFC 8707) a client that registers itself may ask for tokens to, as
    /// MCP clients do (`resource`): given to each such client when it registers.
    pub registration_resources: Vec<String>,
    /// Whether a confidential client that registers itself must use PKCE (public ones
    /// always must). On by default; off, such a client may leave PKCE out as an operator's
    /// client with `require_pkce` off may (RFC 9700 §2.1.1 lets confidential OpenID
    /// clients rely on `nonce` instead), which the OpenID conformance suite's dynamic
    /// tests need.
    pub registration_require_pkce: bool,
    /// Whether answers a client that registered itself would get by redirect without the
    /// person choosing it (an error, a sign-out's return) are shown as a page with a link
    /// first (RFC 9700 §4.11.2: anyone may register any URI, and this server must not
    /// send browsers there by itself). On by default; off, they redirect at once, as
    /// the OpenID conformance suite's dynamic tests expect.
    pub registration_confirm_redirects: bool,
    /// OIDC Core §6.1: take request objects that are not signed (`alg` `none`), as
    /// plain requests are taken, from clients that neither must sign nor registered an
    /// algorithm. Off by default (RFC 9101 asks for signed objects only); the OpenID
    /// conformance suite's dynamic plan sends unsigned ones.
    pub allow_unsigned_request_objects: bool,
    /// Days after which a client that registered itself and holds no grant (nobody
    /// signed in with it, or their grants have ended) is deleted; 0 keeps them.
    pub registration_unused_client_days: u32,
    /// Networks that are not public but that requests to addresses clients registered
    /// themselves may reach all the same (`outbound::OutboundPolicy`).
    pub outbound: crate::outbound::OutboundPolicy,
    /// draft-ietf-oauth-rfc7523bis: a client assertion's `aud` must be the issuer; the
    /// token endpoint's URL and the URL of the endpoint called (OIDC Core §9, RFC 9126 §2)
    /// are refused.
    pub strict_client_assertion_audience: bool,
    /// RFC 9449 §8: DPoP proofs must carry a nonce this server handed out (`DPoP-Nonce`),
    /// so a proof made in advance is worthless.
    pub require_dpop_nonce: bool,
    /// How often keys and the revocation set are re-read even without a notification.
    pub resync_interval: std::time::Duration,
    /// Trusted proxies, rate limits, lockout, audit queue, webhooks (issue 6).
    pub defense: DefenseSettings,
}

/// The default algorithm of ID tokens: RS256, which OIDC Core §15.1 requires of every OP
/// and which is the default `id_token_signed_response_alg` (OIDC Registration §2) that
/// clients expect when they registered nothing else. A client may register
/// `signing_alg` instead.
pub const ID_TOKEN_ALG: SigningAlg = SigningAlg::RS256;

/// How long clients may cache the JWKS and the discovery document: the `Cache-Control`
/// the server sends with them, and the time a new key is published before it signs.
pub const JWKS_MAX_AGE: Duration = Duration::seconds(300);
/// `JWKS_MAX_AGE` as the header value (a test checks they agree).
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// The default bound on simultaneous password hashes on a machine of `cores` cores: one
/// per two cores, at least one and at most four. Each hash takes a core and 19 MiB while
/// it runs, so a login flood takes at most half the CPU (the token endpoint keeps the
/// rest, whatever the hashing threads' priority) and on two cores the server stays within
/// 64 MB under every load (issue 7; one hash per core took it to 62-65 MB). Operators who
/// want more logins a second at the cost of that memory and CPU raise
/// `max_concurrent_password_hashes`.
pub fn default_password_hashes(cores: usize) -> usize {
    (cores / 2).clamp(1, 4)
}

impl CoreSettings {
    /// The algorithms that need keys: access tokens' and ID tokens' (one when both are
    /// RS256).
    pub fn key_algs(&self) -> Vec<SigningAlg> {
        let mut algs = vec![self.signing_alg];
        if self.signing_alg != ID_TOKEN_ALG {
            algs.push(ID_TOKEN_ALG);
        }
        algs
    }

    /// The algorithms a client may have its ID tokens signed with, the default (RS256)
    /// first: the server has keys for these only.
    pub fn id_token_algs(&self) -> Vec<SigningAlg> {
        let mut algs = self.key_algs();
        algs.sort_by_key(|a| *a != ID_TOKEN_ALG);
        algs
    }

    pub fn for_issuer(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        Self {
            access_token_audience: issuer.clone(),
            issuer,
            access_token_ttl: Duration::minutes(10),
            refresh_token_ttl: Duration::days(30),
            id_token_ttl: Duration::hours(1),
            code_ttl: Duration::seconds(60),
            device_code_ttl: Duration::minutes(10),
            device_poll_interval: 5,
            jwks_uri_retry_gap: crate::remote_jwks::RETRY_GAP,
            backchannel_logout_retry_delays: crate::backchannel::RETRY_DELAYS.to_vec(),
            session_ttl: Duration::hours(12),
            session_max_age: Duration::days(30),
            admin_idle_timeout: Duration::minutes(30),
            signing_alg: SigningAlg::RS256,
            max_concurrent_password_hashes: default_password_hashes(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            audit_retention_days: 90,
            require_pushed_authorization_requests: false,
            require_signed_request_object: false,
            registration: crate::registration::RegistrationMode::Off,
            registration_scopes: ScopeSet::parse(crate::registration::DEFAULT_SCOPES).unwrap_or_default(),
            registration_resources: Vec::new(),
            registration_require_pkce: true,
            registration_confirm_redirects: true,
            allow_unsigned_request_objects: false,
            registration_unused_client_days: 30,
            outbound: crate::outbound::OutboundPolicy::default(),
            strict_client_assertion_audience: false,
            require_dpop_nonce: false,
            resync_interval: std::time::Duration::from_secs(5),
            defense: DefenseSettings::default(),
        }
    }

    /// The longest an access token can live, whatever client overrides say, bounded.
    pub fn max_access_token_ttl(&self) -> Duration {
        self.access_token_ttl.max(Duration::hours(24))
    }

    /// How long a retired key stays published: every token it signed has expired by then.
    pub fn retired_key_publication(&self) -> Duration {
        self.max_access_token_ttl().max(self.id_token_ttl) + Duration::minutes(5)
    }

    /// How long a next key must have been published before it may sign: a JWKS fetched
    /// just before the key appeared may be cached for `JWKS_MAX_AGE`, and running nodes
    /// publish a new key within one resync interval.
    pub fn key_publication_window(&self) -> Duration {
        JWKS_MAX_AGE + Duration::try_from(self.resync_interval).unwrap_or(Duration::MAX)
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

pub struct Portcullis {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: CoreSettings,
    pub keys: Keys,
    pub hasher: PasswordHasher,
    pub revocations: RevocationSet,
    pub audit: AuditSink,
    /// Rate limiters of this node (issue 6).
    pub throttle: Throttle,
    /// Seals webhook secrets, which the server must be able to read back to sign.
    pub(crate) kek: Kek,
    /// Clients for client authentication, kept for a couple of seconds.
    pub(crate) client_cache: ClientCache,
    /// Keys clients publish at their `jwks_uri`; the binary installs its HTTP client.
    pub remote_jwks: crate::remote_jwks::RemoteJwks,
    /// Reads of clients' `request_uris` (OIDC Core §6.2) on this node.
    pub(crate) request_uri_reads: crate::request_uri::RequestUriReads,
    /// Where tokens are signed, off the async runtime.
    pub(crate) signer: crate::signing_pool::SigningPool,
    /// Access tokens whose signature was already verified (introspection, userinfo).
    pub(crate) verified_tokens: crate::verified_tokens::VerifiedTokens,
    /// Sign-in attempts in progress, one at a time per account (`lockout`).
    pub login_attempts: Arc<crate::lockout::InFlight>,
    /// Changes to clients made on this node, one at a time: each reads the client, changes
    /// it and writes it back naming the revision it read, so two at once on one node
    /// would only make one of them retry. Rare (operators' actions), so one lock for all.
    pub(crate) client_writes: tokio::sync::Mutex<()>,
    /// Logout tokens waiting to be sent to clients (OIDC Back-Channel Logout).
    pub(crate) logout_queue: crate::backchannel::LogoutQueue,
    /// The key of pairwise subject identifiers (OIDC Core §8.1); `None` after a
    /// read-only start on a database that has none yet.
    pub(crate) pairwise: Option<crate::subject::PairwiseKey>,
    /// How many stored secrets opened at start with a key of `previous_keks` only: they
    /// wait for `kek rewrap` (which `serve` reminds of).
    pub sealed_with_previous_kek: usize,
}

impl std::fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portcullis")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// At start, says what the key-encryption key cannot decrypt, beyond the active and next
/// signing keys (loading them already failed the start if it cannot): a webhook secret
/// (its deliveries would fail) or a retired key (it signs no more) sealed with a key not
/// configured. Returns how many secrets opened with a key of `previous_keks` only (they
/// wait for `kek rewrap`).
async fn report_sealed(store: &dyn Store, kek: &Kek) -> Result<usize> {
    let keys = store.list_keys().await?;
    let hooks = store.list_webhooks().await?;
    let secrets = store.list_server_secrets().await?;
    let sealed = keys
        .iter()
        .map(|k| {
            (
                format!("signing key {}", k.kid),
                &k.private_key_encrypted,
                k.kid.as_bytes().to_vec(),
            )
        })
        .chain(hooks.iter().map(|h| {
            (
                format!("webhook {}", h.id),
                &h.secret_encrypted,
                h.id.as_bytes().to_vec(),
            )
        }))
        .chain(secrets.iter().map(|(name, sealed)| {
            (
                format!("server secret {name}"),
                sealed,
                crate::subject::secret_aad(name),
            )
        }));
    let mut pending = 0;
    for (what, secret, aad) in sealed {
        match kek.open_noting_key(secret, &aad) {
            Ok((_, true)) => pending += 1,
            Ok((_, false)) => {}
            Err(e) => tracing::error!(item = %what, error = %e, "a stored secret cannot be decrypted"),
        }
    }
    Ok(pending)
}

impl Portcullis {
    /// Builds the context: makes sure signing keys exist, loads keys and revocations.
    /// Must run inside a tokio runtime (it starts the audit writer).
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
        kek: Kek,
    ) -> Result<Arc<Self>> {
        let keys = Keys::new(kek.clone());
        let created = keys
            .ensure_initialized(store.as_ref(), &settings.key_algs(), clock.now())
            .await?;
        if created {
            tracing::info!("generated signing keys (active and next)");
        }
        let pairwise = crate::subject::PairwiseKey::load(store.as_ref(), &kek, true, clock.now()).await?;
        Self::assemble(store, clock, settings, kek, keys, pairwise).await
    }

    /// Builds the context the way `start` does, but writes nothing: the signing keys in
    /// the store are loaded as they are, and none is created when some are missing. For
    /// commands that only read (`keys list`, `client list`…), which must leave the
    /// database as they found it. The use cases that write still write.
    pub async fn start_read_only(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
        kek: Kek,
    ) -> Result<Arc<Self>> {
        let keys = Keys::new(kek.clone());
        keys.reload(store.as_ref(), clock.now()).await?;
        let pairwise = crate::subject::PairwiseKey::load(store.as_ref(), &kek, false, clock.now()).await?;
        Self::assemble(store, clock, settings, kek, keys, pairwise).await
    }

    /// The rest of the context, around `keys` already loaded.
    async fn assemble(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
        kek: Kek,
        keys: Keys,
        pairwise: Option<crate::subject::PairwiseKey>,
    ) -> Result<Arc<Self>> {
        let now = clock.now();
        let sealed_with_previous_kek = report_sealed(store.as_ref(), &kek).await?;
        let revocations = RevocationSet::new();
        revocations.sync(store.as_ref(), now).await?;
        let hasher = PasswordHasher::new(settings.max_concurrent_password_hashes)?;
        let audit = AuditSink::spawn(Arc::clone(&store), settings.defense.audit_queue_size);
        let throttle = Throttle::new(&settings.defense.rate_limits);
        let remote_jwks = crate::remote_jwks::RemoteJwks::new(settings.jwks_uri_retry_gap);
        Ok(Arc::new(Self {
            store,
            clock,
            settings,
            keys,
            hasher,
            revocations,
            audit,
            throttle,
            kek,
            client_cache: ClientCache::new(crate::client_cache::CLIENT_CACHE_TTL),
            remote_jwks,
            request_uri_reads: crate::request_uri::RequestUriReads::default(),
            signer: crate::signing_pool::SigningPool::per_core()?,
            // ~1.5 MB at most: a few thousand live tokens cover most deployments, and a
            // miss only costs one more signature check.
            verified_tokens: crate::verified_tokens::VerifiedTokens::new(4096),
            login_attempts: Arc::default(),
            client_writes: tokio::sync::Mutex::new(()),
            logout_queue: crate::backchannel::LogoutQueue::default(),
            pairwise,
            sealed_with_previous_kek,
        }))
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn audit(&self, event: Event) {
        self.audit.record(self.now(), event);
    }

    /// Keeps this node current: revocations on every notification and every resync
    /// interval; keys on their notifications and every resync interval; expired rows
    /// every minute. Runs until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_cleanup = this.now();
            // Cleanup runs beside the loop: draining a retention backlog can take seconds,
            // and revocations must keep arriving meanwhile (DESIGN §3). At most one run at
            // a time; dropping the set with this task (when it is aborted) aborts the run.
            let mut cleanups = tokio::task::JoinSet::new();
            // A clock of its own, outside the loop: the revocations that wake the loop
            // (steadily, on a busy cluster) must not put off the resync.
            // `interval` refuses a zero period; nothing is gained below 100 ms anyway.
            let period = this.settings.resync_interval.max(std::time::Duration::from_millis(100));
            let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // After a failed listen, the next try waits a period (the resync goes on).
            let mut listen_after = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    r = this.store.wait_for_announcement(), if tokio::time::Instant::now() >= listen_after => match r {
                        Ok(crate::repo::Announced::Revocations) => {}
                        // A withdrawn key stops signing and leaves the JWKS at every node
                        // within the second, not at the next resync (DESIGN §3).
                        Ok(crate::repo::Announced::Keys) => {
                            if let Err(e) = this.keys.reload(this.store.as_ref(), this.now()).await {
                                tracing::error!(error = %e, "could not reload signing keys");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation listener failed; relying on resync");
                            listen_after = tokio::time::Instant::now() + period;
                        }
                    },
                    _ = resync.tick() => {
                        let now = this.now();
                        if let Err(e) = this.keys.reload(this.store.as_ref(), now).await {
                            tracing::error!(error = %e, "could not reload signing keys");
                        }
                        // Keys this node signs with went missing (retired by an operator
                        // whose settings differ, or rotated by an older version): make
                        // them again rather than fail every token request.
                        let algs = this.settings.key_algs();
                        // Keys it cannot open are there all the same: none is missing.
                        let ring = this.keys.ring();
                        if ring.unopened.is_none() && !ring.covers(&algs) {
                            tracing::warn!("signing keys missing for an algorithm in use; creating them");
                            if let Err(e) = this.keys.ensure_initialized(this.store.as_ref(), &algs, now).await {
                                tracing::error!(error = %e, "could not create signing keys");
                            }
                        }
                        while let Some(done) = cleanups.try_join_next() {
                            if let Err(e) = done {
                                tracing::error!(error = %e, "cleanup task failed");
                            }
                        }
                        if now - last_cleanup > Duration::minutes(1) && cleanups.is_empty() {
                            last_cleanup = now;
                            let this = Arc::clone(&this);
                            cleanups.spawn(async move { this.cleanup(now).await });
                        }
                    }
                }
                if let Err(e) = this.revocations.sync(this.store.as_ref(), this.now()).await {
                    tracing::error!(error = %e, "could not sync revocations");
                }
            }
        })
    }

    /// One pass of the periodic cleanup: deletes what has expired by `now`. The
    /// maintenance task runs it about once a minute; public so tests can run it at a
    /// pinned instant.
    ///
    /// Every table is deleted from in bounded batches (`RETENTION_BATCH` rows, at most
    /// `RETENTION_MAX_BATCHES` per run) so that a backlog drains over a few runs and no
    /// statement holds the store, SQLite's single writer above all, for long.
    pub async fn cleanup(&self, now: OffsetDateTime) {
        let store = self.store.as_ref();
        let day = Duration::days(1);
        // Consumed codes are kept a day so a late replay still revokes its grant.
        drain("auth_codes", |limit| store.delete_expired_codes(now - day, limit)).await;
        drain("revocations", |limit| store.delete_expired_revocations(now, limit)).await;
        drain("pushed_requests", |limit| {
            store.delete_expired_pushed_requests(now, limit)
        })
        .await;
        // Kept a day too: a late poll still gets expired_token, and a replayed device code
        // still revokes its grant.
        drain("device_authorizations", |limit| {
            store.delete_expired_device_authorizations(now - day, limit)
        })
        .await;
        drain("client_assertions", |limit| {
            store.delete_expired_client_assertions(now, limit)
        })
        .await;
        drain("browser_sessions", |limit| store.delete_expired_sessions(now, limit)).await;
        drain("pending_requests", |limit| {
            store.delete_expired_pending_requests(now, limit)
        })
        .await;
        let stale = now - self.settings.defense.lockout.reset_after;
        drain("login_failures", |limit| {
            store.delete_stale_login_failures(stale, limit)
        })
        .await;
        let old = now - Duration::days(30);
        drain("webhook_deliveries", |limit| {
            store.delete_old_webhook_deliveries(old, limit)
        })
        .await;
        if let Err(e) = store.delete_expired_keys(now).await {
            tracing::error!(error = %e, "could not delete expired signing keys");
        }
        self.throttle.forget_idle();
        self.retention(now).await;
        self.forget_unused_registrations(now).await;
    }

    /// Deletes clients that registered themselves (RFC 7591) and have held no grant for
    /// `registration_unused_client_days`: with open registration, clients that register
    /// again at every start would otherwise pile up. At most `RETENTION_BATCH` a run.
    async fn forget_unused_registrations(&self, now: OffsetDateTime) {
        let days = self.settings.registration_unused_client_days;
        // With registration off, a client deleted could not register again.
        if self.settings.registration == crate::registration::RegistrationMode::Off {
            return;
        }
        let Some(before) = (days > 0)
            .then(|| now.checked_sub(Duration::days(i64::from(days))))
            .flatten()
        else {
            return;
        };
        let ids = match self.store.unused_registered_clients(before, RETENTION_BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "could not read the unused self-registered clients");
                return;
            }
        };
        let actor = crate::admin::Actor::from("cleanup");
        for id in ids {
            match self.delete_client_as(&id, &actor, "client.registration_expired").await {
                // Deleted meanwhile by its owner or an operator.
                Ok(()) | Err(crate::Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(error = %e, client = %id.as_str(), "could not delete an unused self-registered client")
                }
            }
        }
    }

    /// Deletes refresh tokens and grants a day after they expired, and audit events past
    /// `audit_retention_days`.
    async fn retention(&self, now: OffsetDateTime) {
        let store = self.store.as_ref();
        // The same margin as codes: a used refresh token replayed shortly after it expired
        // is still found and still revokes its grant (RFC 9700 §4.14.2).
        let expired_before = now - Duration::days(1);
        let tokens = drain("refresh_tokens", |limit| {
            store.delete_expired_refresh_tokens(expired_before, limit)
        })
        .await;
        // A grant takes its remaining refresh tokens with it, in the same statement. Tokens
        // never outlive their grant, so once the expired tokens are gone that is next to
        // nothing; while a token backlog remains, a batch of grants could take millions of
        // rows along, so grants wait for a later run.
        if tokens.drained() {
            drain("grants", |limit| store.delete_expired_grants(expired_before, limit)).await;
        }
        // 0 keeps audit events forever; so does a retention reaching before year -9999.
        let audit_before = match self.settings.audit_retention_days {
            0 => None,
            days => now.checked_sub(Duration::days(i64::from(days))),
        };
        if let Some(before) = audit_before {
            drain("audit_events", |limit| store.delete_audit_events_before(before, limit)).await;
        }
    }
}

/// Rows a retention delete removes per statement. Writes on SQLite queue for its one
/// writer connection, so a batch is what a refresh may have to wait behind: 5,000 refresh
/// tokens took ~100 ms there (each row also leaves three indexes, the primary key's
/// keyed by a random digest), 1,000 ~20 ms.
const RETENTION_BATCH: u32 = 1_000;

/// Batches per table per cleanup run: up to 100,000 rows a minute, 144 million a day,
/// more than a node rotating a thousand refresh tokens a second creates.
const RETENTION_MAX_BATCHES: u32 = 100;

/// What a run of bounded deletes did.
#[derive(Debug, Default)]
struct Drained {
    deleted: u64,
    /// The last batch was full and the cap stopped the run: more rows may be waiting.
    more: bool,
    /// The batch that failed ended the run.
    error: Option<crate::repo::StoreError>,
}

impl Drained {
    /// Every matching row is gone (as far as this run could tell).
    fn drained(&self) -> bool {
        !self.more && self.error.is_none()
    }
}

/// Calls `delete(limit)` while it deletes a full batch, at most `max_batches` times.
async fn delete_in_batches<F, Fut>(limit: u32, max_batches: u32, mut delete: F) -> Drained
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut done = Drained::default();
    for _ in 0..max_batches {
        match delete(limit).await {
            Ok(n) => {
                done.deleted += n;
                if n < u64::from(limit) {
                    return done;
                }
            }
            Err(e) => {
                done.error = Some(e);
                return done;
            }
        }
    }
    done.more = true;
    done
}

/// Deletes from `table` in batches (`delete(limit)`, see `delete_in_batches`) and logs
/// what it did.
async fn drain<F, Fut>(table: &str, delete: F) -> Drained
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let done = delete_in_batches(RETENTION_BATCH, RETENTION_MAX_BATCHES, delete).await;
    if done.deleted > 0 {
        tracing::info!(table, deleted = done.deleted, more = done.more, "deleted expired rows");
    }
    if let Some(e) = &done.error {
        tracing::warn!(table, error = %e, "cleanup of expired rows failed");
    }
    done
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::repo::StoreError;

    #[test]
    fn one_password_hash_per_two_cores_by_default() {
        let defaults: Vec<usize> = [1, 2, 3, 4, 8, 16].into_iter().map(default_password_hashes).collect();
        assert_eq!(defaults, [1, 1, 1, 2, 4, 4]);
    }

    /// A table of `rows` matching rows; each call deletes up to `limit` of them and is
    /// counted. The call numbered `fail_at` (from 1) fails instead.
    async fn drain(rows: u64, limit: u32, max_batches: u32, fail_at: Option<u32>) -> (Drained, u32, u64) {
        let left = Cell::new(rows);
        let calls = Cell::new(0u32);
        let done = delete_in_batches(limit, max_batches, |l| {
            calls.set(calls.get() + 1);
            let result = if fail_at == Some(calls.get()) {
                Err(StoreError::NotFound)
            } else {
                let n = left.get().min(u64::from(l));
                left.set(left.get() - n);
                Ok(n)
            };
            async move { result }
        })
        .await;
        (done, calls.get(), left.get())
    }

    #[test]
    fn jwks_cache_control_says_jwks_max_age() {
        assert_eq!(
            JWKS_CACHE_CONTROL,
            format!("public, max-age={}", JWKS_MAX_AGE.whole_seconds())
        );
        let settings = CoreSettings::for_issuer("https://id.example");
        assert_eq!(settings.key_publication_window(), Duration::seconds(305));
    }

    #[tokio::test]
    async fn batches_repeat_while_full() {
        let (done, calls, left) = drain(5, 2, 100, None).await;
        assert_eq!((done.deleted, calls, left), (5, 3, 0));
        assert!(done.drained());
        // A last full batch needs one more call to see that nothing is left.
        let (done, calls, left) = drain(4, 2, 100, None).await;
        assert_eq!((done.deleted, calls, left), (4, 3, 0));
        assert!(done.drained());
        let (done, calls, _) = drain(0, 2, 100, None).await;
        assert_eq!((done.deleted, calls), (0, 1));
        assert!(done.drained());
    }

    #[tokio::test]
    async fn batches_stop_at_the_cap() {
        let (done, calls, left) = drain(100, 2, 3, None).await;
        assert_eq!((done.deleted, calls, left), (6, 3, 94));
        assert!(done.more);
        assert!(!done.drained());
        // The next run goes on where this one stopped.
        let (done, calls, left) = drain(left, 2, 100, None).await;
        assert_eq!((done.deleted, calls, left), (94, 48, 0));
        assert!(done.drained());
    }

    #[tokio::test]
    async fn batches_stop_at_an_error() {
        let (done, calls, left) = drain(10, 2, 100, Some(2)).await;
        assert_eq!((done.deleted, calls, left), (2, 2, 8));
        assert!(matches!(done.error, Some(StoreError::NotFound)));
        assert!(!done.more);
        assert!(!done.drained());
    }
}
