//! People: user accounts, operator (admin) accounts, and password login.

use portcullis_protocol::Secret;
use uuid::Uuid;

use crate::admin::Actor;
use crate::audit::Event;
use crate::clients::not_found;
use crate::crypto::random_token;
use crate::error::{Error, Result};
use crate::model::{Admin, AdminRole, Revocation, RevocationTarget, User};
use crate::password::PasswordHasher;
use crate::service::Portcullis;

/// A new user as typed by an operator.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// The longest username an account can have, in characters.
pub const MAX_USERNAME_CHARS: usize = 100;

/// A username as typed at a sign-in, for the audit trail and the log: trimmed, and cut
/// to [`MAX_USERNAME_CHARS`] (with `…`). No account has a longer name, and a form field
/// is not to put 64 KiB into every failure's audit row, log line and webhook payload.
pub(crate) fn as_typed(username: &str) -> String {
    let u = username.trim();
    match u.char_indices().nth(MAX_USERNAME_CHARS) {
        Some((cut, _)) => format!("{}…", &u[..cut]),
        None => u.to_owned(),
    }
}

fn check_username(username: &str) -> Result<String> {
    let u = username.trim();
    if u.is_empty() || u.chars().count() > MAX_USERNAME_CHARS {
        return Err(Error::invalid("username", "must be 1 to 100 characters"));
    }
    // ASCII only: names compare without regard to case, and Unicode has letters that
    // look alike or fold in ways the stores' lower() does not (`émile` / `ÉMILE`, a
    // precomposed `é` / `e` + combining accent), which would let two accounts look the same.
    if !u.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid(
            "username",
            "may use ASCII letters, digits and punctuation only, without spaces",
        ));
    }
    Ok(u.to_owned())
}

fn check_email(email: &Option<String>) -> Result<Option<String>> {
    match email.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(e) => {
            // One `@`, a local part, a dotted domain, and none of the characters that
            // would need quoting (RFC 5322 specials) or that no address has.
            let ok = e.len() <= 254
                && e.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && !d.contains('@') && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
                })
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
            if ok {
                Ok(Some(e.to_owned()))
            } else {
                Err(Error::invalid("email", "is not an email address"))
            }
        }
    }
}

/// A person's display name, given name or family name (`field`): served by userinfo and
/// shown on admin pages, so bounded like a client's name. Blank is none.
fn check_name(field: &'static str, name: &Option<String>) -> Result<Option<String>> {
    let name = name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if name.is_some_and(|n| n.chars().count() > 200 || n.chars().any(crate::model::hidden_in_names)) {
        return Err(Error::invalid(
            field,
            "must be at most 200 characters, without control or bidirectional formatting characters",
        ));
    }
    Ok(name.map(str::to_owned))
}

/// The new value of a name member: the change's, checked, or what is stored.
fn changed_name(
    field: &'static str,
    change: &Option<Option<String>>,
    stored: &Option<String>,
) -> Result<Option<String>> {
    match change {
        Some(n) => check_name(field, n),
        None => Ok(stored.clone()),
    }
}

/// A change to a user's profile claims, as an operator makes it: each member that is
/// `Some` replaces what is stored (`Some(None)` or blank clears it); the others keep
/// their value, whatever another change meanwhile made it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<Option<String>>,
    pub given_name: Option<Option<String>>,
    pub family_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    /// Left out, it stays as it is for the same address and becomes false for another.
    /// There is no verified address without an address: it is false when `email` is none.
    pub email_verified: Option<bool>,
    /// The address a `Some(true)` above vouches for, when the caller knows which one it
    /// saw (a form): if another change has since put another address there, the change
    /// is refused rather than verifying an address nobody looked at.
    pub verified_for: Option<Option<String>>,
}

impl Portcullis {
    /// An operator edits a user's profile claims. `updated_at`, which userinfo serves,
    /// moves on; the audit event lists what changed. Sessions and grants stay: the
    /// claims come from the store at every userinfo call, so clients see the change at
    /// once. Only the members the change names are written: a change made meanwhile to
    /// another member (another operator's) is kept, the store refusing a write over a
    /// profile that is no longer the one read, and this one is applied again.
    pub async fn update_user_profile(&self, id: Uuid, change: &ProfileChange, actor: impl Into<Actor>) -> Result<User> {
        let actor: Actor = actor.into();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let before = self.get_user(id).await?;
            let email = match &change.email {
                Some(e) => check_email(e)?,
                None => before.email.clone(),
            };
            let name = changed_name("name", &change.name, &before.name)?;
            let given_name = changed_name("given_name", &change.given_name, &before.given_name)?;
            let family_name = changed_name("family_name", &change.family_name, &before.family_name)?;
            if change.email_verified == Some(true)
                && let Some(seen) = &change.verified_for
                && check_email(seen)? != email
            {
                return Err(Error::invalid(
                    "email_verified",
                    "is for an address that has changed since; check the address again",
                ));
            }
            let email_verified = email.is_some()
                && change
                    .email_verified
                    .unwrap_or(email == before.email && before.email_verified);
            let changed: Vec<&str> = [
                ("email", email != before.email),
                ("email_verified", email_verified != before.email_verified),
                ("name", name != before.name),
                ("given_name", given_name != before.given_name),
                ("family_name", family_name != before.family_name),
            ]
            .into_iter()
            .filter_map(|(member, differs)| differs.then_some(member))
            .collect();
            if changed.is_empty() {
                return Ok(before);
            }
            let user = User {
                email,
                email_verified,
                name,
                given_name,
                family_name,
                updated_at: self.now().max(before.updated_at),
                ..before.clone()
            };
            let written = self
                .store
                .update_user_profile(&user, &before)
                .await
                .map_err(not_found("user"))?;
            if !written {
                if attempts < 20 {
                    continue;
                }
                return Err(Error::Unexpected(
                    "the profile kept changing while it was written".into(),
                ));
            }
            self.audit(
                Event::new("admin.user.updated")
                    .by(&actor)
                    .user(id)
                    .detail(serde_json::json!({ "changed": changed })),
            );
            return Ok(user);
        }
    }

    pub async fn create_user(&self, input: &UserInput, password: &Secret, actor: impl Into<Actor>) -> Result<User> {
        let actor: Actor = actor.into();
        let username = check_username(&input.username)?;
        let email = check_email(&input.email)?;
        PasswordHasher::check_policy(password.expose())?;
        let name = check_name("name", &input.name)?;
        let given_name = check_name("given_name", &input.given_name)?;
        let family_name = check_name("family_name", &input.family_name)?;
        let now = self.now();
        let user = User {
            id: Uuid::new_v4(),
            username,
            email,
            email_verified: input.email_verified,
            name,
            given_name,
            family_name,
            password_hash: self.hasher.hash(password).await?,
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_user(&user).await?;
        self.audit(Event::new("admin.user.created").by(&actor).user(user.id));
        Ok(user)
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User> {
        self.store.get_user(id).await?.ok_or(Error::NotFound("user"))
    }

    pub async fn find_user(&self, username: &str) -> Result<User> {
        if crate::params::holds_nul(username) {
            return Err(Error::NotFound("user"));
        }
        self.store
            .get_user_by_username(username)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    pub async fn list_users(&self, search: Option<&str>) -> Result<Vec<User>> {
        crate::admin::check_search(search)?;
        Ok(self.store.list_users(search.filter(|s| !s.is_empty())).await?)
    }

    /// One page of `list_users`: `limit` users (0: `LIST_PAGE_DEFAULT`, at most
    /// `LIST_PAGE_MAX`) after `offset`.
    pub async fn list_users_page(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<crate::admin::ListPage<User>> {
        let limit = crate::admin::list_limit(limit)?;
        crate::admin::check_search(search)?;
        let rows = self
            .store
            .users_page(search.filter(|s| !s.is_empty()), limit + 1, offset)
            .await?;
        Ok(crate::admin::list_page(rows, limit, offset))
    }

    async fn user_revocations(&self, id: Uuid) -> Result<Vec<Revocation>> {
        let expires_at = self.now() + self.settings.max_access_token_ttl();
        Ok(self
            .store
            .active_grant_ids_for_user(id)
            .await?
            .into_iter()
            .map(|g| Revocation {
                target: RevocationTarget::Grant(g),
                expires_at,
            })
            .collect())
    }

    /// Makes a user's revocations, just written, count on this node at once: those listed
    /// beforehand, and those the store added for grants made meanwhile (a code redeemed
    /// while the user was being disabled), read back from it. Elsewhere they arrive as
    /// any revocation does.
    async fn revocations_written(&self, listed: &[Revocation]) {
        self.revocations.insert_local(listed);
        if let Err(e) = self.revocations.sync(self.store.as_ref(), self.now()).await {
            tracing::warn!(error = %e, "could not read back revocations; the next resync will");
        }
    }

    /// Sets a new password; the user's grants (and their tokens) and sessions end.
    pub async fn set_user_password(&self, id: Uuid, password: &Secret, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        PasswordHasher::check_policy(password.expose())?;
        self.get_user(id).await?;
        self.replace_password(id, password, None).await?;
        self.audit(Event::new("user.password_changed").by(&actor).user(id));
        Ok(())
    }

    /// Stores the hash of `password` (already checked against the policy) and ends the
    /// user's grants, their tokens and their sessions. With `replacing`, only over that
    /// hash: a change that another overtook fails (`BadCredentials`: the password it
    /// checked is no longer the account's).
    pub(crate) async fn replace_password(&self, id: Uuid, password: &Secret, replacing: Option<&str>) -> Result<()> {
        let hash = self.hasher.hash(password).await?;
        let revocations = self.user_revocations(id).await?;
        match self
            .store
            .set_user_password(id, &hash, replacing, self.now(), &revocations)
            .await
        {
            Err(crate::repo::StoreError::Conflict(_)) => return Err(Error::BadCredentials),
            other => other.map_err(not_found("user"))?,
        }
        self.revocations_written(&revocations).await;
        self.announce_sign_out(id, None).await;
        Ok(())
    }

    /// Deletes a user (erasure): their grants end, their access tokens are refused until
    /// they expire, and their sessions, consents and codes go. Audit events keep the
    /// user's id (and sign-in events the username typed). A new account of the same
    /// name is another user (another `sub`).
    pub async fn delete_user(&self, id: Uuid, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        // An unknown id has no grants to list, and the store's delete says NotFound.
        let revocations = self.user_revocations(id).await?;
        // Read first: the grants that name the clients go with the account.
        let notices = self.logout_notices(id, None).await;
        self.store
            .delete_user(id, self.now(), &revocations)
            .await
            .map_err(not_found("user"))?;
        self.revocations_written(&revocations).await;
        self.send_logout_notices(notices);
        self.audit(Event::new("admin.user.deleted").by(&actor).user(id));
        Ok(())
    }

    /// Disabling ends the user's grants and sessions; enabling only lifts the flag.
    pub async fn set_user_disabled(&self, id: Uuid, disabled: bool, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        self.get_user(id).await?;
        let revocations = if disabled {
            self.user_revocations(id).await?
        } else {
            Vec::new()
        };
        self.store
            .set_user_disabled(id, disabled, self.now(), &revocations)
            .await
            .map_err(not_found("user"))?;
        self.revocations_written(&revocations).await;
        if disabled {
            self.announce_sign_out(id, None).await;
        }
        let what = if disabled {
            "admin.user.disabled"
        } else {
            "admin.user.enabled"
        };
        self.audit(Event::new(what).by(&actor).user(id));
        Ok(())
    }

    /// Password login. The error does not say whether the user exists, and costs the
    /// same either way. Throttled per address, and locked out with backoff per
    /// (username, address) and per username from all addresses (`lockout`): a locked
    /// attempt fails with `RateLimited` before any hashing.
    pub async fn login(&self, username: &str, password: &Secret, ip: Option<String>) -> Result<User> {
        self.throttle.check(crate::throttle::Bucket::LoginIp, ip.as_deref())?;
        let attempt = self
            .lockout_check(crate::lockout::Realm::User, username, ip.as_deref())
            .await?;
        let user = match username.trim() {
            u if u.chars().count() > MAX_USERNAME_CHARS || crate::params::holds_nul(u) => None,
            u => self.store.get_user_by_username(u).await?,
        };
        let ok = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        match user {
            Some(u) if ok && !u.disabled => {
                self.lockout_succeeded(&attempt).await?;
                self.audit(Event::new("login.success").user(u.id).ip(ip));
                Ok(u)
            }
            _ => {
                self.lockout_failed(&attempt).await?;
                self.audit(
                    Event::new("login.failure")
                        .ip(ip)
                        .detail(serde_json::json!({ "username": as_typed(username) })),
                );
                Err(Error::BadCredentials)
            }
        }
    }

    pub async fn create_admin(
        &self,
        username: &str,
        password: &Secret,
        role: AdminRole,
        actor: impl Into<Actor>,
    ) -> Result<Admin> {
        let actor: Actor = actor.into();
        let username = check_username(username)?;
        PasswordHasher::check_policy(password.expose())?;
        let admin = Admin {
            id: Uuid::new_v4(),
            username,
            password_hash: self.hasher.hash(password).await?,
            role,
            created_at: self.now(),
        };
        self.store.insert_admin(&admin).await?;
        self.audit(
            Event::new("admin.admin.created")
                .by(&actor)
                .detail(serde_json::json!({ "username": admin.username, "role": role.as_str() })),
        );
        Ok(admin)
    }

    /// Every operator account, by username.
    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        Ok(self.store.list_admins().await?)
    }

    /// Sets an operator's password. Their admin sessions end (each carries a stamp of the
    /// password it signed in with, `admin::credential_stamp`).
    pub async fn set_admin_password(&self, username: &str, password: &Secret, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        let admin = self.admin_account(username).await?;
        PasswordHasher::check_policy(password.expose())?;
        let hash = self.hasher.hash(password).await?;
        self.store
            .set_admin_password_hash(admin.id, &hash)
            .await
            .map_err(not_found("admin"))?;
        self.audit(
            Event::new("admin.admin.password_changed")
                .by(&actor)
                .detail(serde_json::json!({ "username": admin.username })),
        );
        Ok(())
    }

    /// Changes an operator's role; the last account with the admin role keeps it.
    pub async fn set_admin_role(&self, username: &str, role: AdminRole, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        let admin = self.admin_account(username).await?;
        if admin.role == AdminRole::Admin && role != AdminRole::Admin {
            self.keep_an_admin(&admin, "role").await?;
        }
        if !self
            .store
            .set_admin_role(admin.id, role)
            .await
            .map_err(not_found("admin"))?
        {
            // Another admin was demoted or deleted since the check above.
            return Err(last_admin(&admin, "role"));
        }
        self.audit(
            Event::new("admin.admin.role_changed")
                .by(&actor)
                .detail(serde_json::json!({ "username": admin.username, "role": role.as_str() })),
        );
        if role != AdminRole::Admin {
            // A key may not do more than the operator who made it now may. Its
            // authentication checks that from the moment the role changed; revoking the
            // keys makes it show. After the change, so a refused change keeps them; run
            // again after a failure here (an auditor's run revokes what is left).
            self.revoke_api_keys_of(&admin.username, Some(AdminRole::Admin), &actor)
                .await?;
        }
        Ok(())
    }

    /// Revokes the active API keys `username` created (of `role` only, if given).
    async fn revoke_api_keys_of(&self, username: &str, role: Option<AdminRole>, actor: &Actor) -> Result<()> {
        for key in self.list_api_keys().await? {
            let theirs = key.created_by == username && role.is_none_or(|r| key.role == r);
            if theirs && key.revoked_at.is_none() {
                match self.revoke_api_key(key.id, actor.clone()).await {
                    // Revoked meanwhile by someone else.
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Deletes an operator account; its sessions end at their next request. The last
    /// account with the admin role stays.
    pub async fn delete_admin(&self, username: &str, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        let admin = self.admin_account(username).await?;
        if admin.role == AdminRole::Admin {
            self.keep_an_admin(&admin, "username").await?;
        }
        if !self.store.delete_admin(admin.id).await.map_err(not_found("admin"))? {
            return Err(last_admin(&admin, "username"));
        }
        self.audit(
            Event::new("admin.admin.deleted")
                .by(&actor)
                .detail(serde_json::json!({ "username": admin.username })),
        );
        // Keys outlive no operator: whoever holds one acted as them. Their authentication
        // already refuses them (no account, or a newer one of that name); revoking them
        // makes it show. After the delete, so a refused delete keeps them.
        self.revoke_api_keys_of(&admin.username, None, &actor).await?;
        Ok(())
    }

    /// Refuses a change that would leave no account with the admin role (nobody could
    /// then change anything from the admin surface).
    async fn keep_an_admin(&self, leaving: &Admin, field: &'static str) -> Result<()> {
        let others = self
            .store
            .list_admins()
            .await?
            .into_iter()
            .filter(|a| a.role == AdminRole::Admin && a.id != leaving.id)
            .count();
        if others == 0 {
            return Err(last_admin(leaving, field));
        }
        Ok(())
    }

    /// On first start with no operator account: creates `admin` with a random password
    /// and returns the password, to be printed once.
    pub async fn bootstrap_admin(&self) -> Result<Option<(String, Secret)>> {
        if self.store.count_admins().await? > 0 {
            return Ok(None);
        }
        let password = Secret::new(random_token()?);
        match self
            .create_admin("admin", &password, AdminRole::Admin, "bootstrap")
            .await
        {
            Ok(a) => Ok(Some((a.username, password))),
            // Another node bootstrapped at the same moment.
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn last_admin(admin: &Admin, field: &'static str) -> Error {
    Error::invalid(
        field,
        format!("{} is the last account with the admin role", admin.username),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails() {
        assert!(check_username(" alice ").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("al ice").is_err());
        assert!(check_email(&Some("a@b.example".into())).is_ok());
        assert!(check_email(&Some("not-an-email".into())).is_err());
        for bad in [
            "a@@b.com",
            "<a@b.com>",
            "a@b.com.",
            "a\"b@c.example",
            "a@b",
            "a,b@c.example",
            "a@b\u{7}.example",
        ] {
            assert!(check_email(&Some(bad.into())).is_err(), "{bad}");
        }
        assert!(check_email(&Some("first.last+tag@mail.example.org".into())).is_ok());
        for bad in ["émile", "ÉMILE", "jose\u{301}", "a\u{200b}b"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
        assert!(check_username("first.last+tag@corp_1-x").is_ok());
        assert_eq!(check_email(&Some("  ".into())).unwrap(), None);
    }
}
