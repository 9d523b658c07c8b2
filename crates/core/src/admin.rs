//! Admin use cases (issue 4): operator sign-in, who did it (`Actor`), the dashboard's
//! counts, a user's sessions and grants, signing keys, and reading the audit log. API
//! keys are in `api_keys`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_protocol::{Secret, SigningAlg};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::Event;
use crate::crypto::b64url;
use crate::error::{Error, Result};
use crate::model::{Admin, AuditEvent, AuditFilter, Digest, Grant, KeyState, SigningKeyRecord};
use crate::service::Portcullis;

/// How many times `rewrap_sealed` looks again for secrets sealed with a previous KEK.
const REWRAP_PASSES: usize = 3;

/// What `Portcullis::rewrap_sealed` sealed again with the current KEK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub keys: usize,
    pub webhooks: usize,
    /// The server's own secrets (the pairwise subject key).
    pub server_secrets: usize,
}

/// Who performs an admin action, and from where: every admin change is an audit event
/// naming both (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// An admin username, `apikey:<id>`, `cli`, `bootstrap`, …
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, ip: Option<String>) -> Self {
        Self { name: name.into(), ip }
    }
}

/// Callers without an address (the CLI, tests) name themselves with a string.
impl From<&str> for Actor {
    fn from(name: &str) -> Self {
        Self::new(name, None)
    }
}

impl From<&Actor> for Actor {
    fn from(a: &Actor) -> Self {
        a.clone()
    }
}

impl Event {
    /// Sets the actor and the address it acted from.
    pub fn by(self, actor: &Actor) -> Self {
        self.actor(actor.name.clone()).ip(actor.ip.clone())
    }
}

/// The counts an operator looks at first.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub clients: u64,
    pub users: u64,
    pub active_grants: u64,
    /// Failed user logins in the last 24 hours.
    pub failed_logins: u64,
    /// Failed admin sign-ins in the last 24 hours.
    pub failed_admin_logins: u64,
    /// The latest failed user logins, newest first.
    pub recent_failures: Vec<AuditEvent>,
}

/// One browser session of a user, as the admin surface shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Names the session for revocation: base64url of the digest of its cookie value,
    /// so it cannot be used as a cookie.
    pub id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// One live grant of a user, with the name of its client.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantInfo {
    pub grant: Grant,
    pub client_name: Option<String>,
    /// The `sub` the client knows the person by (OIDC Core §8: pairwise for a pairwise
    /// client), so an operator can match what an application reports.
    pub subject: String,
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<u32>,
}

/// One page of the client or user list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<u32>,
}

/// Page size of the client and user lists when none is asked for, and the largest.
pub const LIST_PAGE_DEFAULT: u32 = 100;
pub const LIST_PAGE_MAX: u32 = 1000;

/// What a search or filter with NUL (U+0000) is told (`params::holds_nul`).
const NO_NUL: &str = "must not hold a NUL character (U+0000)";

/// A search of the lists of users or clients, or what is wrong with it.
pub(crate) fn check_search(search: Option<&str>) -> Result<()> {
    if search.is_some_and(crate::params::holds_nul) {
        return Err(Error::invalid("search", NO_NUL));
    }
    Ok(())
}

/// The page size asked for (0: the default), or what is wrong with it.
pub(crate) fn list_limit(limit: u32) -> Result<u32> {
    match limit {
        0 => Ok(LIST_PAGE_DEFAULT),
        n if n > LIST_PAGE_MAX => Err(Error::invalid(
            "limit",
            format!("must be between 1 and {LIST_PAGE_MAX}"),
        )),
        n => Ok(n),
    }
}

/// A page of `limit` items from `rows` fetched with one more than `limit` after
/// `offset`: the extra row tells whether a next page exists.
pub(crate) fn list_page<T>(mut rows: Vec<T>, limit: u32, offset: u32) -> ListPage<T> {
    let next_offset = (rows.len() > limit as usize).then(|| offset.saturating_add(limit));
    rows.truncate(limit as usize);
    ListPage {
        items: rows,
        next_offset,
    }
}

/// Page size when none is asked for, and the largest allowed.
pub const AUDIT_PAGE_DEFAULT: u32 = 50;
pub const AUDIT_PAGE_MAX: u32 = 200;
/// The audit event types of failed sign-ins, counted on the dashboard.
pub const LOGIN_FAILURE: &str = "login.failure";
pub const ADMIN_LOGIN_FAILURE: &str = "admin.login.failure";

fn session_handle(id_hash: &Digest) -> String {
    b64url(id_hash)
}

fn parse_session_handle(handle: &str) -> Option<Digest> {
    URL_SAFE_NO_PAD
        .decode(handle)
        .ok()
        .and_then(|b| Digest::try_from(b.as_slice()).ok())
}

impl Portcullis {
    /// Admin sign-in (argon2id). Like `login`, the error does not say whether the account
    /// exists, and costs the same either way.
    ///
    /// Rate limiting: the shared limiter of the defense-in-depth work (DESIGN §5) goes in
    /// front of this call, keyed by address and username, exactly as for `login`; the
    /// `admin.login.failure` events it can count are written here.
    pub async fn admin_login(&self, username: &str, password: &Secret, ip: Option<String>) -> Result<Admin> {
        let username = username.trim();
        let admin = match username.chars().count() {
            n if n > crate::users::MAX_USERNAME_CHARS || crate::params::holds_nul(username) => None,
            _ => self.store.get_admin_by_username(username).await?,
        };
        let ok = self
            .hasher
            .verify(password, admin.as_ref().map(|a| a.password_hash.as_str()))
            .await?;
        match admin {
            Some(a) if ok => {
                self.audit(
                    Event::new("admin.login.success")
                        .actor(a.username.clone())
                        .ip(ip)
                        .detail(serde_json::json!({ "role": a.role.as_str() })),
                );
                Ok(a)
            }
            _ => {
                self.audit(
                    Event::new(ADMIN_LOGIN_FAILURE)
                        .ip(ip)
                        .detail(serde_json::json!({ "username": crate::users::as_typed(username) })),
                );
                Err(Error::BadCredentials)
            }
        }
    }

    /// The operator account behind a signed-in admin session, read on every request so a
    /// role is never older than the request (and a deleted account's sessions end).
    pub async fn admin_account(&self, username: &str) -> Result<Admin> {
        self.store
            .get_admin_by_username(username)
            .await?
            .ok_or(Error::NotFound("admin"))
    }

    /// Records a sign-out from the admin surface.
    pub fn admin_logged_out(&self, actor: &Actor) {
        self.audit(Event::new("admin.logout").by(actor));
    }

    pub async fn dashboard(&self) -> Result<Dashboard> {
        let now = self.now();
        let since = now - Duration::hours(24);
        let recent_failures = self
            .store
            .list_audit_events(&AuditFilter {
                event_type: Some(LOGIN_FAILURE.into()),
                since: Some(since),
                limit: 10,
                ..AuditFilter::default()
            })
            .await?;
        Ok(Dashboard {
            clients: self.store.count_clients().await?,
            users: self.store.count_users().await?,
            active_grants: self.store.count_active_grants(now).await?,
            failed_logins: self.store.count_audit_events(LOGIN_FAILURE, since).await?,
            failed_admin_logins: self.store.count_audit_events(ADMIN_LOGIN_FAILURE, since).await?,
            recent_failures,
        })
    }

    /// A user's browser sessions that have not expired, newest first.
    pub async fn list_user_sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>> {
        self.get_user(user_id).await?;
        Ok(self
            .store
            .list_sessions_for_user(user_id, self.now())
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                id: session_handle(&s.id_hash),
                ip: s.ip,
                user_agent: s.user_agent,
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect())
    }

    /// Ends one browser session of a user (signs that browser out).
    pub async fn revoke_user_session(&self, user_id: Uuid, session: &str, actor: impl Into<Actor>) -> Result<()> {
        let actor = actor.into();
        let id_hash = parse_session_handle(session).ok_or(Error::NotFound("session"))?;
        self.end_session(user_id, &id_hash).await?;
        self.audit(
            Event::new("admin.session.revoked")
                .by(&actor)
                .user(user_id)
                .detail(serde_json::json!({ "session": session })),
        );
        Ok(())
    }

    /// A user's live grants, newest first, with their clients' names.
    pub async fn list_user_grants(&self, user_id: Uuid) -> Result<Vec<GrantInfo>> {
        self.get_user(user_id).await?;
        let grants = self.store.list_grants_for_user(user_id, self.now()).await?;
        let mut out = Vec::with_capacity(grants.len());
        for grant in grants {
            let client = self.store.get_client(&grant.client_id).await?;
            let subject = match &client {
                Some(c) => self.subject(c, user_id)?,
                None => user_id.to_string(),
            };
            out.push(GrantInfo {
                grant,
                client_name: client.map(|c| c.name),
                subject,
            });
        }
        Ok(out)
    }

    /// Revokes one grant of a user: its refresh token is deleted and its access tokens
    /// are denied at once (DESIGN §3); the user's consent to that client is withdrawn too,
    /// so the next authorization asks again, and the codes and device approvals (RFC 8628)
    /// the client was given for the user and has not redeemed are deleted, so none starts
    /// a grant anew.
    pub async fn revoke_user_grant(&self, user_id: Uuid, grant_id: Uuid, actor: impl Into<Actor>) -> Result<()> {
        let actor = actor.into();
        let grant = self
            .store
            .get_grant(grant_id)
            .await?
            .filter(|g| g.user_id == user_id)
            .ok_or(Error::NotFound("grant"))?;
        // A grant revoked already is not found, and then nothing else changes either.
        if grant.revoked_at.is_some() {
            return Err(Error::NotFound("grant"));
        }
        // The consent first: an authorization that read it before it went may still be
        // issuing its code, which the deletion after it then takes; and the codes before
        // the grant, so none is redeemed after the grant is revoked.
        self.store.delete_consent(user_id, &grant.client_id).await?;
        self.store.delete_client_codes(user_id, &grant.client_id).await?;
        self.store.delete_device_approvals(user_id, &grant.client_id).await?;
        if !self.revoke_grant_now(grant.id, self.now()).await? {
            return Err(Error::NotFound("grant"));
        }
        self.audit(
            Event::new("admin.grant.revoked")
                .by(&actor)
                .user(user_id)
                .client(grant.client_id.as_str())
                .detail(serde_json::json!({ "grant_id": grant.id })),
        );
        Ok(())
    }

    /// Signing keys, newest first (private parts stay encrypted in the record).
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        Ok(self.store.list_keys().await?)
    }

    /// Rotates the keys of `alg` (default: the access tokens' algorithm; see
    /// `Keys::rotate`); returns the new next key's id. Only algorithms in use have keys.
    /// Refused while the next key is younger than `key_publication_window`, unless
    /// `force` (when the active key must stop signing at once, and tokens refused for a
    /// few minutes are the lesser harm).
    pub async fn rotate_signing_keys(
        &self,
        alg: Option<SigningAlg>,
        force: bool,
        actor: impl Into<Actor>,
    ) -> Result<String> {
        let actor = actor.into();
        let alg = alg.unwrap_or(self.settings.signing_alg);
        let in_use = self.settings.key_algs();
        if !in_use.contains(&alg) {
            let names: Vec<&str> = in_use.iter().map(|a| a.as_str()).collect();
            return Err(Error::invalid(
                "alg",
                format!(
                    "{alg} is not in use: keys exist for {} (access tokens use signing_alg, ID tokens RS256)",
                    names.join(" and ")
                ),
            ));
        }
        let kid = self
            .keys
            .rotate(
                self.store.as_ref(),
                alg,
                self.now(),
                self.settings.retired_key_publication(),
                if force {
                    Duration::ZERO
                } else {
                    self.settings.key_publication_window()
                },
            )
            .await?;
        self.audit(
            Event::new("key.rotated")
                .by(&actor)
                .detail(serde_json::json!({ "next_kid": kid, "alg": alg.as_str(), "forced": force })),
        );
        Ok(kid)
    }

    /// Withdraws retired key `kid` from the JWKS at once, for a key that leaked: its
    /// publication ends now, so this server refuses the tokens it signed at once (other
    /// nodes within their resync interval) and resource servers when their cached JWKS
    /// expires (at most `JWKS_MAX_AGE`). Tokens it signed stop working. The active key is
    /// rotated out first (`rotate_signing_keys` with `force`; twice for the next key).
    pub async fn withdraw_signing_key(&self, kid: &str, actor: impl Into<Actor>) -> Result<()> {
        let actor = actor.into();
        let keys = self.store.list_keys().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(Error::NotFound("signing key"))?;
        if key.state != crate::model::KeyState::Retired {
            return Err(Error::invalid(
                "kid",
                format!(
                    "{kid} is the {} {} key: rotate it out first (a forced rotation; two for the next key), then \
                     withdraw it",
                    key.state.as_str(),
                    key.alg
                ),
            ));
        }
        let now = self.now();
        self.store
            .withdraw_key(kid, now)
            .await
            .map_err(crate::clients::not_found("signing key"))?;
        if let Err(e) = self.keys.reload(self.store.as_ref(), now).await {
            tracing::warn!(error = %e, "reloading the signing keys after a withdrawal failed; the resync retries");
        }
        self.audit(
            Event::new("key.withdrawn")
                .by(&actor)
                .detail(serde_json::json!({ "kid": kid, "alg": key.alg.as_str() })),
        );
        Ok(())
    }

    /// Retires the active and next keys of `alg`, an algorithm this node does not use
    /// (after `signing_alg` changed, once every node runs the new settings): they stay
    /// published while tokens they signed may live, then the cleanup deletes them.
    pub async fn retire_signing_keys(&self, alg: SigningAlg, actor: impl Into<Actor>) -> Result<()> {
        let actor = actor.into();
        if self.settings.key_algs().contains(&alg) {
            return Err(Error::invalid(
                "alg",
                format!("{alg} is in use: its keys sign tokens; rotate them instead"),
            ));
        }
        // Nothing to retire is said so, rather than recorded as a retirement.
        let live = self
            .store
            .list_keys()
            .await?
            .into_iter()
            .any(|k| k.alg == alg && k.state != KeyState::Retired);
        if !live {
            return Err(Error::invalid("alg", format!("there are no {alg} keys to retire")));
        }
        // A client registered to get its ID tokens, UserInfo or introspection answers
        // signed with it would get server errors instead (its code not redeemed, its
        // refresh refused) until an operator edits it: edited first, then.
        let naming: Vec<String> = self
            .store
            .list_clients(None)
            .await?
            .into_iter()
            .filter(|c| {
                [
                    c.id_token_signed_response_alg,
                    c.userinfo_signed_response_alg,
                    c.introspection_signed_response_alg,
                ]
                .contains(&Some(alg))
            })
            .map(|c| c.id.as_str().to_owned())
            .collect();
        if !naming.is_empty() {
            let shown = naming.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = naming.len().saturating_sub(5);
            return Err(Error::invalid(
                "alg",
                format!(
                    "{} client(s) registered {alg} for their ID tokens, UserInfo or introspection answers ({shown}{}): \
                     set another algorithm on them first (client edit page or admin API), or they would get \
                     server errors",
                    naming.len(),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                ),
            ));
        }
        let now = self.now();
        self.store
            .retire_keys(alg, now, now + self.settings.retired_key_publication())
            .await?;
        self.keys.reload(self.store.as_ref(), now).await?;
        self.audit(
            Event::new("key.retired")
                .by(&actor)
                .detail(serde_json::json!({ "alg": alg.as_str() })),
        );
        Ok(())
    }

    /// Publishes `alg`'s keys ahead of a change of `signing_alg` to it: creates its active
    /// and next keys where it has none, listed in the JWKS at once. They sign only on
    /// nodes whose `signing_alg` names `alg`, so restarting the nodes with it once
    /// `key_publication_window` has passed leaves resource servers no unknown key to
    /// fetch. Returns whether keys were created (none when `alg` has them already).
    pub async fn publish_signing_keys(&self, alg: SigningAlg, actor: impl Into<Actor>) -> Result<bool> {
        let actor = actor.into();
        let mut algs = self.settings.key_algs();
        if !algs.contains(&alg) {
            algs.push(alg);
        }
        let created = self
            .keys
            .ensure_initialized(self.store.as_ref(), &algs, self.now())
            .await?;
        if created {
            self.audit(
                Event::new("key.published")
                    .by(&actor)
                    .detail(serde_json::json!({ "alg": alg.as_str() })),
            );
        }
        Ok(created)
    }

    /// Seals every signing key, webhook secret and server secret that a previous KEK sealed again with
    /// the current one, so that `previous_keks` can then be dropped. Each is rewritten on
    /// its own, so an interrupted run is simply run again; one that no configured KEK
    /// opens stops it with an error naming it. A node still sealing with the old key
    /// meanwhile (not yet given the new configuration) leaves new items behind: the run
    /// repeats until a pass finds none, and fails if they keep coming. Refused without
    /// `previous_keks` (nothing is being replaced). Returns how many of each it rewrote.
    pub async fn rewrap_sealed(&self, actor: impl Into<Actor>) -> Result<Rewrapped> {
        if !self.kek.has_previous() {
            return Err(Error::invalid(
                "previous_keks",
                "is empty, so nothing is being replaced: set the new key as kek and the key it replaces in \
                 previous_keks on every node, then run kek rewrap",
            ));
        }
        let actor = actor.into();
        let mut done = Rewrapped::default();
        for _ in 0..REWRAP_PASSES {
            let pass = self.rewrap_pass().await?;
            done.keys += pass.keys;
            done.webhooks += pass.webhooks;
            done.server_secrets += pass.server_secrets;
            if pass == Rewrapped::default() {
                self.audit(Event::new("kek.rewrapped").by(&actor).detail(serde_json::json!({
                    "signing_keys": done.keys,
                    "webhooks": done.webhooks,
                    "server_secrets": done.server_secrets,
                })));
                return Ok(done);
            }
        }
        Err(Error::Unexpected(format!(
            "after {REWRAP_PASSES} passes secrets sealed with a previous kek keep appearing: a node or command \
             still runs with the old key as kek; give every node the new configuration, then run kek rewrap again"
        )))
    }

    /// One pass of `rewrap_sealed`: what needed sealing again, sealed again.
    async fn rewrap_pass(&self) -> Result<Rewrapped> {
        let mut done = Rewrapped::default();
        // The secret sealed again with the current key, if a previous key sealed it.
        let reseal = |sealed: &[u8], aad: &[u8], what: String| -> Result<Option<Vec<u8>>> {
            let (plain, by_previous) = self
                .kek
                .open_noting_key(sealed, aad)
                .map_err(|e| Error::Unexpected(format!("{what}: {e}")))?;
            if !by_previous {
                return Ok(None);
            }
            Ok(Some(self.kek.seal(&plain, aad)?))
        };
        for key in self.store.list_keys().await? {
            let what = format!("signing key {}", key.kid);
            let Some(sealed) = reseal(&key.private_key_encrypted, key.kid.as_bytes(), what)? else {
                continue;
            };
            match self.store.reseal_key(&key.kid, &sealed).await {
                Ok(()) => done.keys += 1,
                // Deleted meanwhile (a retired key past its publication): nothing to keep.
                Err(crate::StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for hook in self.store.list_webhooks().await? {
            let what = format!("webhook {}", hook.id);
            let Some(sealed) = reseal(&hook.secret_encrypted, hook.id.as_bytes(), what)? else {
                continue;
            };
            match self.store.reseal_webhook_secret(hook.id, &sealed).await {
                Ok(()) => done.webhooks += 1,
                Err(crate::StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (name, sealed) in self.store.list_server_secrets().await? {
            let aad = crate::subject::secret_aad(&name);
            let Some(sealed) = reseal(&sealed, &aad, format!("server secret {name}"))? else {
                continue;
            };
            self.store.reseal_server_secret(&name, &sealed).await?;
            done.server_secrets += 1;
        }
        Ok(done)
    }

    /// One page of the audit log, newest first. `limit` 0 means the default page size.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<AuditPage> {
        let limit = match filter.limit {
            0 => AUDIT_PAGE_DEFAULT,
            n if n > AUDIT_PAGE_MAX => {
                return Err(Error::invalid(
                    "limit",
                    format!("must be between 1 and {AUDIT_PAGE_MAX}"),
                ));
            }
            n => n,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(Error::invalid("until", "must be later than since"));
        }
        for (field, value) in [("event_type", &filter.event_type), ("client_id", &filter.client_id)] {
            if value.as_deref().is_some_and(crate::params::holds_nul) {
                return Err(Error::invalid(field, NO_NUL));
            }
        }
        // One more than asked tells whether a next page exists.
        let mut events = self
            .store
            .list_audit_events(&AuditFilter {
                limit: limit + 1,
                ..filter.clone()
            })
            .await?;
        let next_offset = (events.len() > limit as usize).then(|| filter.offset.saturating_add(limit));
        events.truncate(limit as usize);
        Ok(AuditPage { events, next_offset })
    }
}

/// A short fingerprint of an operator's password hash, kept in their admin session: when
/// the password changes, the session's stamp no longer matches and the session ends.
pub fn credential_stamp(admin: &Admin) -> String {
    password_stamp(&admin.password_hash)
}

/// A short fingerprint of a password hash (an operator's or a person's), kept in the
/// sessions signed in with it.
pub fn password_stamp(password_hash: &str) -> String {
    crate::crypto::b64url(&crate::crypto::sha256(password_hash.as_bytes())[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_handles_round_trip_and_reject_garbage() {
        let d = crate::crypto::sha256(b"cookie");
        assert_eq!(parse_session_handle(&session_handle(&d)), Some(d));
        assert_eq!(parse_session_handle("not base64!"), None);
        assert_eq!(parse_session_handle("c2hvcnQ"), None);
    }

    #[test]
    fn actors_from_names() {
        let a: Actor = "cli".into();
        assert_eq!(a, Actor::new("cli", None));
    }
}
