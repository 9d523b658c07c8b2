//! `Portcullis`: the use cases' shared context (store, clock, keys, settings, hasher,
//! revocation set, audit sink) and its background maintenance.

use std::sync::Arc;

use portcullis_protocol::SigningAlg;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditSink, Event};
use crate::client_cache::ClientCache;
use crate::clock::Clock;
use crate::crypto::Kek;
use crate::defense::DefenseSettings;
use crate::error::Result;
use crate::keys::Keys;
use crate::password::PasswordHasher;
use crate::repo::Store;
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
    pub session_ttl: Duration,
    pub signing_alg: SigningAlg,
    pub max_concurrent_password_hashes: usize,
    /// How often keys and the revocation set are re-read even without a notification.
    pub resync_interval: std::time::Duration,
    /// Trusted proxies, rate limits, lockout, audit queue, webhooks (issue 6).
    pub defense: DefenseSettings,
}

impl CoreSettings {
    pub fn for_issuer(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        Self {
            access_token_audience: issuer.clone(),
            issuer,
            access_token_ttl: Duration::minutes(10),
            refresh_token_ttl: Duration::days(30),
            id_token_ttl: Duration::hours(1),
            code_ttl: Duration::seconds(60),
            session_ttl: Duration::hours(12),
            signing_alg: SigningAlg::RS256,
            // Argon2 is CPU-bound: more hashes at once than cores only costs memory.
            max_concurrent_password_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
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
    /// Where tokens are signed, off the async runtime.
    pub(crate) signer: crate::signing_pool::SigningPool,
    /// Access tokens whose signature was already verified (introspection, userinfo).
    pub(crate) verified_tokens: crate::verified_tokens::VerifiedTokens,
}

impl std::fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portcullis")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
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
        let now = clock.now();
        let keys = Keys::new(kek.clone());
        let created = keys
            .ensure_initialized(store.as_ref(), settings.signing_alg, now)
            .await?;
        if created {
            tracing::info!("generated signing keys (active and next)");
        }
        let revocations = RevocationSet::new();
        revocations.sync(store.as_ref(), now).await?;
        let hasher = PasswordHasher::new(settings.max_concurrent_password_hashes)?;
        let audit = AuditSink::spawn(Arc::clone(&store), settings.defense.audit_queue_size);
        let throttle = Throttle::new(&settings.defense.rate_limits);
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
            client_cache: ClientCache::new(std::time::Duration::from_secs(2)),
            signer: crate::signing_pool::SigningPool::per_core()?,
            // ~1.5 MB at most: a few thousand live tokens cover most deployments, and a
            // miss only costs one more signature check.
            verified_tokens: crate::verified_tokens::VerifiedTokens::new(4096),
        }))
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn audit(&self, event: Event) {
        self.audit.record(self.now(), event);
    }

    /// Keeps this node current: revocations on every notification and every resync
    /// interval; keys and expired rows every resync interval. Runs until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_cleanup = this.now();
            loop {
                tokio::select! {
                    r = this.store.wait_for_revocation() => {
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "revocation listener failed; relying on resync");
                            tokio::time::sleep(this.settings.resync_interval).await;
                        }
                    }
                    _ = tokio::time::sleep(this.settings.resync_interval) => {
                        let now = this.now();
                        if let Err(e) = this.keys.reload(this.store.as_ref(), now).await {
                            tracing::error!(error = %e, "could not reload signing keys");
                        }
                        if now - last_cleanup > Duration::minutes(1) {
                            last_cleanup = now;
                            this.cleanup(now).await;
                        }
                    }
                }
                if let Err(e) = this.revocations.sync(this.store.as_ref(), this.now()).await {
                    tracing::error!(error = %e, "could not sync revocations");
                }
            }
        })
    }

    async fn cleanup(&self, now: OffsetDateTime) {
        let store = self.store.as_ref();
        // Consumed codes are kept a day so a late replay still revokes its grant.
        let results = [
            store.delete_expired_codes(now - Duration::days(1)).await,
            store.delete_expired_revocations(now).await,
            store.delete_expired_sessions(now).await,
            store
                .delete_stale_login_failures(now - self.settings.defense.lockout.reset_after)
                .await,
            store.delete_old_webhook_deliveries(now - Duration::days(30)).await,
        ];
        self.throttle.forget_idle();
        for r in results {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cleanup of expired rows failed");
            }
        }
    }
}
