//! Admin API keys (issue 4): a 256-bit random value shown once and stored as its SHA-256
//! digest (DESIGN §2), with a role and an optional expiry; sent as a bearer token.

use portcullis_protocol::Secret;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin::Actor;
use crate::audit::Event;
use crate::crypto::{random_token, sha256};
use crate::error::{Error, Result};
use crate::model::{AdminRole, ApiKey};
use crate::service::Portcullis;
use crate::throttle::Bucket;

/// Every key starts with this, so secret scanners and people recognise one.
pub const API_KEY_PREFIX: &str = "pcak_";

/// A key as the operator asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    pub name: String,
    pub role: AdminRole,
    pub expires_at: Option<OffsetDateTime>,
}

/// Where a key stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyState {
    Active,
    Expired,
    Revoked,
}

impl ApiKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl ApiKey {
    pub fn state(&self, now: OffsetDateTime) -> ApiKeyState {
        if self.revoked_at.is_some() {
            ApiKeyState::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            ApiKeyState::Expired
        } else {
            ApiKeyState::Active
        }
    }

    /// The audit actor of requests made with this key.
    pub fn actor(&self, ip: Option<String>) -> Actor {
        Actor::new(format!("apikey:{}", self.id), ip)
    }
}

/// The name an operator gives a credential (an API key, an initial access token),
/// trimmed: 1 to 100 characters, none hidden (it is shown on pages and terminals).
pub(crate) fn label(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters"));
    }
    if name.chars().any(crate::model::hidden_in_names) {
        return Err(Error::invalid(
            "name",
            "must not contain control or bidirectional formatting characters",
        ));
    }
    Ok(name)
}

impl Portcullis {
    /// Creates a key; returns it and its value — the only time the value exists in clear.
    pub async fn create_api_key(&self, input: &NewApiKey, actor: impl Into<Actor>) -> Result<(ApiKey, Secret)> {
        let actor = actor.into();
        let name = label(&input.name)?;
        let now = self.now();
        if input.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let value = Secret::new(format!("{API_KEY_PREFIX}{}", random_token()?));
        let creator = self.store.get_admin_by_username(&actor.name).await?;
        let key = ApiKey {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            key_hash: sha256(value.expose().as_bytes()),
            role: input.role,
            created_by: actor.name.clone(),
            created_by_id: creator.map(|a| a.id),
            created_at: now,
            expires_at: input.expires_at,
            revoked_at: None,
        };
        self.store.insert_api_key(&key).await?;
        self.audit(
            Event::new("admin.api_key.created")
                .by(&actor)
                .detail(serde_json::json!({
                    "api_key_id": key.id,
                    "name": key.name,
                    "role": key.role.as_str(),
                })),
        );
        Ok((key, value))
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Revokes a key at once; `NotFound` if it does not exist or is already revoked.
    pub async fn revoke_api_key(&self, id: Uuid, actor: impl Into<Actor>) -> Result<()> {
        let actor = actor.into();
        if !self.store.revoke_api_key(id, self.now()).await? {
            return Err(Error::NotFound("API key"));
        }
        self.audit(
            Event::new("admin.api_key.revoked")
                .by(&actor)
                .detail(serde_json::json!({ "api_key_id": id })),
        );
        Ok(())
    }

    /// The key a bearer token names, if it is active and its operator may still do what
    /// it does. Unknown, revoked and expired keys, and keys whose operator is gone or was
    /// demoted, are all `BadCredentials`; the audit event says which.
    pub async fn authenticate_api_key(&self, presented: &Secret, ip: Option<String>) -> Result<ApiKey> {
        let value = presented.expose();
        let key = if value.starts_with(API_KEY_PREFIX) && value.len() <= 128 {
            self.store.get_api_key_by_hash(&sha256(value.as_bytes())).await?
        } else {
            None
        };
        let refusal = match &key {
            None => Some("unknown"),
            Some(k) => match k.state(self.now()) {
                ApiKeyState::Active => self.creator_refusal(k).await?,
                other => Some(other.as_str()),
            },
        };
        match (key, refusal) {
            (Some(k), None) => Ok(k),
            (k, reason) => {
                // A guess (a key that does not exist) counts against the address's admin
                // sign-in allowance, so guesses, and the audit events they write, are
                // bounded like password guesses. A revoked or expired key does not: a job
                // still using one must not lock people out of signing in from its host.
                if k.is_none() {
                    self.throttle.check(Bucket::AdminLoginIp, ip.as_deref())?;
                }
                self.audit(Event::new("admin.api_key.rejected").ip(ip).detail(serde_json::json!({
                    "api_key_id": k.map(|k| k.id),
                    "reason": reason,
                })));
                Err(Error::BadCredentials)
            }
        }
    }

    /// Why `key` may no longer act although it is active, if it may not: a key does no
    /// more than the operator who made it now may. Demoting or deleting an operator
    /// revokes their keys, but only after the account changed (the change can be refused
    /// by a concurrent one); this check holds in between, and keeps a key of a deleted
    /// account from coming back with a new account of the same name.
    async fn creator_refusal(&self, key: &ApiKey) -> Result<Option<&'static str>> {
        let creator = self.store.get_admin_by_username(&key.created_by).await?;
        Ok(match (creator, key.created_by_id) {
            (None, _) => Some("operator_deleted"),
            // Another account of the same name.
            (Some(a), Some(id)) if a.id != id => Some("operator_deleted"),
            // A key made before its creator's id was recorded: an account made after the
            // key is another one (in whole seconds: one made in the key's second counts
            // as its maker).
            (Some(a), None) if a.created_at.unix_timestamp() > key.created_at.unix_timestamp() => {
                Some("operator_deleted")
            }
            (Some(a), _) if key.role == AdminRole::Admin && a.role != AdminRole::Admin => Some("operator_demoted"),
            (Some(_), _) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn key_states() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let mut k = ApiKey {
            id: Uuid::nil(),
            name: "k".into(),
            key_hash: [0; 32],
            role: AdminRole::Auditor,
            created_by: "a".into(),
            created_by_id: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        assert_eq!(k.state(now), ApiKeyState::Active);
        k.expires_at = Some(now);
        assert_eq!(k.state(now), ApiKeyState::Expired);
        k.revoked_at = Some(now);
        assert_eq!(k.state(now), ApiKeyState::Revoked);
        assert_eq!(k.actor(None).name, format!("apikey:{}", Uuid::nil()));
    }
}
