//! Self-service for a signed-in person (issue 6, the account page): their browser
//! sessions and the applications they have granted access, each revocable on its own.
//! Listing reuses the admin use cases (`list_user_sessions`, `list_user_grants`); what
//! differs here is who acts and what the audit trail calls it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_protocol::{ClientId, ScopeSet, Secret};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::lockout::Realm;
use crate::model::Digest;
use crate::password::PasswordHasher;
use crate::service::Portcullis;

/// One application (client) a person has allowed: a consent it may use to get tokens
/// without asking, live grants, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub client_id: ClientId,
    pub client_name: String,
    /// Every scope of its consent and live grants.
    pub scope: String,
    /// When the oldest of them was given.
    pub since: OffsetDateTime,
    pub grants: usize,
}

impl Application {
    fn add(&mut self, scope: &ScopeSet, at: OffsetDateTime) {
        self.since = self.since.min(at);
        for s in scope.iter() {
            if !self.scope.split(' ').any(|x| x == s.as_str()) {
                self.scope.push(' ');
                self.scope.push_str(s.as_str());
            }
        }
    }
}

impl Portcullis {
    /// The applications a person has allowed, by name: those with live grants and those
    /// whose consent stands without one (the grant expired or was revoked, or its code
    /// was never redeemed), which could still get tokens without asking.
    pub async fn list_user_applications(&self, user_id: Uuid) -> Result<Vec<Application>> {
        let mut apps: Vec<Application> = Vec::new();
        for g in self.list_user_grants(user_id).await? {
            match apps.iter_mut().find(|a| a.client_id == g.grant.client_id) {
                Some(a) => {
                    a.grants += 1;
                    a.add(&g.grant.scope, g.grant.created_at);
                }
                None => apps.push(Application {
                    client_name: g.client_name.unwrap_or_else(|| g.grant.client_id.as_str().to_owned()),
                    client_id: g.grant.client_id.clone(),
                    scope: g.grant.scope.as_string(),
                    since: g.grant.created_at,
                    grants: 1,
                }),
            }
        }
        for c in self.store.list_consents_for_user(user_id).await? {
            match apps.iter_mut().find(|a| a.client_id == c.client_id) {
                Some(a) => a.add(&c.scope, c.granted_at),
                None => {
                    let client_name = self.store.get_client(&c.client_id).await?.map(|c| c.name);
                    apps.push(Application {
                        client_name: client_name.unwrap_or_else(|| c.client_id.as_str().to_owned()),
                        client_id: c.client_id,
                        scope: c.scope.as_string(),
                        since: c.granted_at,
                        grants: 0,
                    });
                }
            }
        }
        apps.sort_by(|a, b| a.client_name.cmp(&b.client_name));
        Ok(apps)
    }

    /// The person changes their own password. The current one is checked as at sign-in,
    /// under the same lockout (per username and address, and per username), so a
    /// borrowed session cannot be used to guess it; the new one must meet the policy and
    /// differ from it. Then, as when an operator sets a password, every grant of the
    /// account (with its tokens) and every session, this one included, ends.
    pub async fn change_own_password(
        &self,
        user_id: Uuid,
        current: &Secret,
        new: &Secret,
        ip: Option<String>,
    ) -> Result<()> {
        let user = self.get_user(user_id).await?;
        if user.disabled {
            return Err(Error::BadCredentials);
        }
        PasswordHasher::check_policy(new.expose()).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::Invalid {
                field: "new_password",
                message,
            },
            other => other,
        })?;
        let attempt = self.lockout_check(Realm::User, &user.username, ip.as_deref()).await?;
        if !self.hasher.verify(current, Some(&user.password_hash)).await? {
            self.lockout_failed(&attempt).await?;
            self.audit(
                Event::new("login.failure")
                    .user(user_id)
                    .ip(ip)
                    .detail(serde_json::json!({ "username": user.username, "password_change": true })),
            );
            return Err(Error::BadCredentials);
        }
        self.lockout_succeeded(&attempt).await?;
        // Compared as passwords are (NIST SP 800-63B §5.1.1.2: in NFKC).
        if new.expose().nfkc().eq(current.expose().nfkc()) {
            return Err(Error::invalid("new_password", "is the password you have now"));
        }
        // Only over the password just checked: an operator's reset made meanwhile (of an
        // account taken over, say) is not undone by the change it overtook.
        self.replace_password(user_id, new, Some(&user.password_hash)).await?;
        self.audit(
            Event::new("user.password_changed")
                .user(user_id)
                .ip(ip)
                .detail(serde_json::json!({ "self_service": true })),
        );
        Ok(())
    }

    /// Deletes the browser session `id_hash` of `user_id` (`NotFound` if there is no
    /// such session of theirs) and ends what ends with it (`session_ended`).
    pub(crate) async fn end_session(&self, user_id: Uuid, id_hash: &Digest) -> Result<()> {
        let sid = self
            .store
            .list_sessions_for_user(user_id, self.now())
            .await?
            .into_iter()
            .find(|s| s.id_hash == *id_hash)
            .and_then(|s| s.sid);
        if !self.store.delete_user_session(user_id, id_hash).await? {
            return Err(Error::NotFound("session"));
        }
        if let Some(sid) = sid {
            self.session_ended(user_id, &sid).await;
        }
        Ok(())
    }

    /// The person signs one of their browser sessions out (`session` as listed).
    pub async fn revoke_own_session(&self, user_id: Uuid, session: &str, ip: Option<String>) -> Result<()> {
        let id_hash = URL_SAFE_NO_PAD
            .decode(session)
            .ok()
            .and_then(|b| Digest::try_from(b.as_slice()).ok())
            .ok_or(Error::NotFound("session"))?;
        self.end_session(user_id, &id_hash).await?;
        self.audit(
            Event::new("session.revoked")
                .user(user_id)
                .ip(ip)
                .detail(serde_json::json!({ "session": session })),
        );
        Ok(())
    }

    /// The person withdraws an application's access: every live grant of theirs to
    /// that client is revoked (refresh tokens deleted, access tokens denied at once), the
    /// consent is forgotten, so the next authorization asks again, and the authorization
    /// codes and device approvals (RFC 8628) not yet redeemed are taken back: neither may
    /// start a grant the person has just withdrawn.
    pub async fn revoke_own_application(&self, user_id: Uuid, client_id: &str, ip: Option<String>) -> Result<()> {
        let client_id = ClientId::parse(client_id).map_err(|_| Error::NotFound("application"))?;
        let now = self.now();
        // The consent first: an authorization that read it before it went may still be
        // issuing its code, which the deletion below then takes. Then the codes and
        // approvals: on PostgreSQL a redemption racing with this holds its row until it
        // commits, so its grant is among those listed below.
        let had_consent = self.store.delete_consent(user_id, &client_id).await?;
        let approvals = self.store.delete_device_approvals(user_id, &client_id).await?;
        let codes = self.store.delete_client_codes(user_id, &client_id).await?;
        let grants: Vec<Uuid> = self
            .store
            .list_grants_for_user(user_id, now)
            .await?
            .into_iter()
            .filter(|g| g.client_id == client_id)
            .map(|g| g.id)
            .collect();
        if grants.is_empty() && !had_consent && approvals == 0 && codes == 0 {
            return Err(Error::NotFound("application"));
        }
        for id in &grants {
            self.revoke_grant_now(*id, now).await?;
        }
        // Once more: an authorization that read the consent just before it went may have
        // stored its code after the deletion above, and the client redeemed it since.
        self.store.delete_client_codes(user_id, &client_id).await?;
        let late: Vec<Uuid> = self
            .store
            .list_grants_for_user(user_id, now)
            .await?
            .into_iter()
            .filter(|g| g.client_id == client_id && !grants.contains(&g.id))
            .map(|g| g.id)
            .collect();
        for id in &late {
            self.revoke_grant_now(*id, now).await?;
        }
        let grants = [grants, late].concat();
        self.audit(
            Event::new("consent.revoked")
                .user(user_id)
                .client(client_id.as_str())
                .ip(ip)
                .detail(serde_json::json!({ "grant_ids": grants })),
        );
        Ok(())
    }
}
