//! Initial access tokens (RFC 7591 §3): with `registration = "token"`, a client
//! registers itself at `/register` only with one of these, which an operator hands out
//! (the admin UI or API, `portcullis initial-token create`). Each expires (after at most
//! a year) and may be limited to a number of registrations; it is kept as a SHA-256
//! digest (DESIGN §2), shown once, and spent atomically, so two registrations racing for
//! its last use cannot both succeed.

use portcullis_protocol::{ErrorCode, Secret};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::admin::Actor;
use crate::audit::Event;
use crate::crypto::{random_token, sha256};
use crate::error::{Error, Result};
use crate::model::InitialAccessToken;
use crate::service::Portcullis;

/// What a token's value starts with, so it is recognised when it leaks.
pub const INITIAL_TOKEN_PREFIX: &str = "pcit_";
/// The longest a token may last, in days; and how long one lasts unless told.
pub const MAX_DAYS: u32 = 365;
pub const DEFAULT_DAYS: u32 = 7;

/// What an operator asks for.
#[derive(Debug, Clone, Default)]
pub struct NewInitialAccessToken {
    pub name: String,
    /// Days until it expires: 1 to `MAX_DAYS`; `None` for `DEFAULT_DAYS`.
    pub days: Option<u32>,
    /// How many registrations it allows; `None` for any number until it expires.
    pub uses: Option<u32>,
}

/// Where a token stands at an instant.
pub fn status(t: &InitialAccessToken, now: OffsetDateTime) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at <= now {
        "expired"
    } else if t.uses_left == Some(0) {
        "used up"
    } else {
        "active"
    }
}

fn refused() -> Error {
    Error::oauth(
        ErrorCode::InvalidToken,
        "the initial access token is not valid: unknown, expired, used up or revoked",
    )
}

impl Portcullis {
    /// Creates a token; returns it and its value, the only time the value exists in clear.
    pub async fn create_initial_access_token(
        &self,
        input: &NewInitialAccessToken,
        actor: impl Into<Actor>,
    ) -> Result<(InitialAccessToken, Secret)> {
        let actor = actor.into();
        let name = crate::api_keys::label(&input.name)?;
        let days = match input.days {
            None => DEFAULT_DAYS,
            Some(d) if d == 0 || d > MAX_DAYS => {
                return Err(Error::invalid("days", format!("must be between 1 and {MAX_DAYS}")));
            }
            Some(d) => d,
        };
        if input.uses == Some(0) {
            return Err(Error::invalid("uses", "must be at least 1, or left out for no limit"));
        }
        let now = self.now();
        let value = Secret::new(format!("{INITIAL_TOKEN_PREFIX}{}", random_token()?));
        let token = InitialAccessToken {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            token_hash: sha256(value.expose().as_bytes()),
            created_by: actor.name.clone(),
            created_at: now,
            expires_at: now + Duration::days(i64::from(days)),
            uses_left: input.uses.map(i64::from),
            revoked_at: None,
        };
        self.store.insert_initial_access_token(&token).await?;
        self.audit(
            Event::new("admin.initial_access_token.created")
                .by(&actor)
                .detail(serde_json::json!({
                    "initial_access_token_id": token.id,
                    "name": token.name,
                    "days": days,
                    "uses": input.uses,
                })),
        );
        Ok((token, value))
    }

    pub async fn list_initial_access_tokens(&self) -> Result<Vec<InitialAccessToken>> {
        Ok(self.store.list_initial_access_tokens().await?)
    }

    /// Revokes a token: registrations with it are refused from now on (those made stay).
    /// Returns it as it is now; `NotFound` if there is none; revoking one again changes
    /// nothing.
    pub async fn revoke_initial_access_token(&self, id: Uuid, actor: impl Into<Actor>) -> Result<InitialAccessToken> {
        let actor = actor.into();
        if self.store.revoke_initial_access_token(id, self.now()).await? {
            self.audit(
                Event::new("admin.initial_access_token.revoked")
                    .by(&actor)
                    .detail(serde_json::json!({ "initial_access_token_id": id })),
            );
        }
        self.store
            .list_initial_access_tokens()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(Error::NotFound("initial access token"))
    }

    /// Whether `value` is a token a registration may use now (`InvalidToken` if not),
    /// without spending it: checked before the metadata, so a registration without a
    /// good token learns nothing about its metadata.
    pub(crate) async fn check_initial_access_token(&self, value: &str) -> Result<()> {
        let token = self
            .store
            .get_initial_access_token_by_hash(&sha256(value.as_bytes()))
            .await?
            .ok_or_else(refused)?;
        if status(&token, self.now()) != "active" {
            return Err(refused());
        }
        Ok(())
    }

    /// Spends one registration of `value`: its id, or `InvalidToken` if another
    /// registration took its last use, or it expired or was revoked, since the check.
    pub(crate) async fn spend_initial_access_token(&self, value: &str) -> Result<Uuid> {
        self.store
            .spend_initial_access_token(&sha256(value.as_bytes()), self.now())
            .await?
            .ok_or_else(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_why_a_token_is_not_active() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10);
        let t = InitialAccessToken {
            id: Uuid::nil(),
            name: "t".into(),
            token_hash: [0; 32],
            created_by: "cli".into(),
            created_at: now,
            expires_at: now + Duration::days(1),
            uses_left: None,
            revoked_at: None,
        };
        assert_eq!(status(&t, now), "active");
        assert_eq!(
            status(
                &InitialAccessToken {
                    uses_left: Some(1),
                    ..t.clone()
                },
                now
            ),
            "active"
        );
        assert_eq!(
            status(
                &InitialAccessToken {
                    uses_left: Some(0),
                    ..t.clone()
                },
                now
            ),
            "used up"
        );
        assert_eq!(status(&t, now + Duration::days(1)), "expired");
        assert_eq!(
            status(
                &InitialAccessToken {
                    revoked_at: Some(now),
                    ..t
                },
                now
            ),
            "revoked"
        );
    }
}
