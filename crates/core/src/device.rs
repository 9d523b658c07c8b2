//! The device authorization grant (RFC 8628), for devices that cannot show a browser or
//! take typing: a TV, a command-line tool. The device asks `/device_authorization` for a
//! device code and a short user code; the person opens the verification page on another
//! device, signs in, types the user code, sees what the device asks for and allows or
//! denies it; meanwhile the device polls `/token` with the device code
//! (`grant_type=urn:ietf:params:oauth:grant-type:device_code`) and gets its tokens once.
//!
//! Both codes are stored only as SHA-256 digests. The user code is short enough to type
//! (8 letters from 20 consonants, ~34.5 bits, §6.1), so guessing one is made hard by the
//! page: only a signed-in person may enter codes, at a limited rate per address
//! (`rate_limit_device`), and a code lives only `device_code_ttl`. The page always asks
//! the person to confirm, showing the code and what the device asks for (§5.4: a link
//! with the code filled in may come from an attacker).

use portcullis_protocol::token::DeviceAuthorizationResponse;
use portcullis_protocol::{ClientId, ErrorCode, GrantType, ScopeSet};

use crate::audit::Event;
use crate::authorize::{AuthSession, requested_resource, requested_scope};
use crate::crypto::{random_bytes, random_token, sha256};
use crate::error::{Error, Result};
use crate::model::{Client, DeviceAuthorization, DeviceDecision};
use crate::repo::StoreError;
use crate::service::Portcullis;

/// The path of the verification page (§3.2 `verification_uri`).
pub const VERIFICATION_PATH: &str = "/device";

/// The letters user codes are made of (§6.1): consonants only, so no code spells a word,
/// and none that are easily confused with digits or each other (no vowels, no `Y`).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code: 20^8 ≈ 2^34.6.
pub const USER_CODE_LENGTH: usize = 8;

/// The user code as people type it, reduced to its letters: case, spaces and dashes do
/// not matter (§6.1). `None` when it cannot be a user code.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// A normalised user code as shown to people: `WDJB-MJHT`.
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// A new random user code, normalised. Bytes of 240 or more are drawn again, so each
/// letter is equally likely.
fn new_user_code() -> Result<String> {
    let mut code = String::with_capacity(USER_CODE_LENGTH);
    while code.len() < USER_CODE_LENGTH {
        for b in random_bytes::<16>()? {
            if b < 240 && code.len() < USER_CODE_LENGTH {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    Ok(code)
}

/// The digest a user code is stored and looked up under.
fn user_code_hash(normalised: &str) -> crate::model::Digest {
    sha256(normalised.as_bytes())
}

/// What became of a decision on a device authorization.
#[derive(Debug, Clone)]
pub enum DeviceOutcome {
    /// Recorded, on a request of this client.
    Decided(Client),
    /// What the request would grant is no longer what the person was shown (an operator
    /// changed the client's scopes meanwhile): nothing recorded; show it again.
    Changed(PendingDevice),
    /// No request with this user code is waiting any more (decided meanwhile, expired,
    /// its client disabled).
    Gone,
}

/// A device authorization waiting for the person, as the verification page shows it.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    /// The user code, normalised.
    pub user_code: String,
    pub client: Client,
    /// What the device would get: what it asked for, less what its client has lost since.
    pub scope: ScopeSet,
    /// When and from which address the device asked (§5.4).
    pub requested_at: time::OffsetDateTime,
    pub requested_from: Option<String>,
}

impl Portcullis {
    /// §3.1–3.2: a device authorization request from `client` (authenticated as at
    /// `/token`) from the address `ip`, asking for `scope` and, optionally, an API
    /// (`resource`, RFC 8707).
    pub async fn device_authorization(
        &self,
        client: &Client,
        scope: Option<&str>,
        resource: Option<&str>,
        ip: Option<String>,
    ) -> Result<DeviceAuthorizationResponse> {
        if !client.grant_types.contains(&GrantType::DeviceCode) {
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "this client may not use the device authorization grant",
            ));
        }
        let scope = requested_scope(client, scope).map_err(|d| Error::oauth(ErrorCode::InvalidScope, d))?;
        let resource = requested_resource(|r| self.resource_allowed(client, r), resource)
            .map_err(|d| Error::oauth(ErrorCode::InvalidTarget, d))?;
        let now = self.now();
        let device_code = random_token()?;
        let mut device = DeviceAuthorization {
            device_code_hash: sha256(device_code.as_bytes()),
            user_code_hash: [0; 32],
            client_id: client.id.clone(),
            scope,
            resource,
            requested_from: ip,
            created_at: now,
            expires_at: now + self.settings.device_code_ttl,
            interval: self.settings.device_poll_interval,
            last_polled_at: None,
            decision: DeviceDecision::Pending,
        };
        // Two live requests drawing the same user code is unlikely but possible: draw again.
        let mut attempts = 0;
        let user_code = loop {
            let code = new_user_code()?;
            device.user_code_hash = user_code_hash(&code);
            match self.store.insert_device_authorization(&device).await {
                Ok(()) => break code,
                Err(StoreError::Conflict(_)) if attempts < 4 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        let shown = display_user_code(&user_code);
        let verification_uri = self.settings.endpoint(VERIFICATION_PATH);
        Ok(DeviceAuthorizationResponse {
            device_code,
            verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
            user_code: shown,
            verification_uri,
            expires_in: self.settings.device_code_ttl.whole_seconds(),
            interval: self.settings.device_poll_interval,
        })
    }

    /// §3.3: the undecided device authorization a person typed the user code of, if it
    /// has not expired and its client is still enabled and may still use the grant.
    pub async fn pending_device(&self, typed: &str) -> Result<Option<PendingDevice>> {
        let Some(user_code) = normalise_user_code(typed) else {
            return Ok(None);
        };
        let now = self.now();
        let Some(device) = self
            .store
            .get_pending_device_authorization(&user_code_hash(&user_code), now)
            .await?
        else {
            return Ok(None);
        };
        let Some(client) = self.usable_client(&device.client_id).await? else {
            return Ok(None);
        };
        // An API taken from the client since: its token request would fail anyway.
        if device
            .resource
            .as_ref()
            .is_some_and(|r| !self.resource_allowed(&client, r))
        {
            return Ok(None);
        }
        let scope = crate::grants::still_allowed(&client, &device.scope);
        if scope.is_empty() {
            return Ok(None);
        }
        Ok(Some(PendingDevice {
            user_code,
            client,
            scope,
            requested_at: device.created_at,
            requested_from: device.requested_from,
        }))
    }

    /// §3.3: the signed-in person `auth` allows (`allow`) or denies the device
    /// authorization with this user code, having been shown `shown_scope` (the scope of
    /// its `PendingDevice`, as a string): an approval grants exactly that, and only while
    /// it is still what the request would grant.
    pub async fn decide_device(
        &self,
        typed: &str,
        shown_scope: &str,
        auth: &AuthSession,
        allow: bool,
        ip: Option<String>,
    ) -> Result<DeviceOutcome> {
        let Some(pending) = self.pending_device(typed).await? else {
            return Ok(DeviceOutcome::Gone);
        };
        if allow && pending.scope.as_string() != shown_scope {
            return Ok(DeviceOutcome::Changed(pending));
        }
        let decision = if allow {
            DeviceDecision::Approved {
                user_id: auth.user_id,
                auth_time: time::OffsetDateTime::from_unix_timestamp(auth.auth_time)
                    .map_err(|e| Error::Unexpected(format!("auth_time: {e}")))?,
                // The device's own session, not the browser's: signing out of the
                // browser it was approved in does not sign the device out (OIDC
                // Back-Channel Logout tells the clients of a browser session's grants).
                sid: crate::crypto::random_token()?,
                scope: pending.scope.clone(),
            }
        } else {
            DeviceDecision::Denied
        };
        let decided = self
            .store
            .decide_device_authorization(&user_code_hash(&pending.user_code), &decision, self.now())
            .await?;
        if !decided {
            return Ok(DeviceOutcome::Gone);
        }
        self.audit(
            Event::new(if allow { "device.approved" } else { "device.denied" })
                .client(pending.client.id.as_str())
                .user(auth.user_id)
                .ip(ip)
                .detail(serde_json::json!({ "scope": pending.scope.as_string() })),
        );
        Ok(DeviceOutcome::Decided(pending.client))
    }

    /// The client `id`, if it exists, is enabled and may use the device grant.
    async fn usable_client(&self, id: &ClientId) -> Result<Option<Client>> {
        Ok(self
            .store
            .get_client(id)
            .await?
            .filter(|c| !c.disabled && c.grant_types.contains(&GrantType::DeviceCode)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_loosely() {
        assert_eq!(normalise_user_code("wdjb-mjht").as_deref(), Some("WDJBMJHT"));
        assert_eq!(normalise_user_code(" WDJB MJHT ").as_deref(), Some("WDJBMJHT"));
        assert_eq!(normalise_user_code("WDJBMJHT").as_deref(), Some("WDJBMJHT"));
        // A vowel, a digit, a letter too many or too few, something else entirely.
        for bad in ["WDJA-MJHT", "WDJB-MJH1", "WDJB-MJHTB", "WDJB-MJH", "", "ẀDJB-MJHT"] {
            assert_eq!(normalise_user_code(bad), None, "{bad}");
        }
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }

    #[test]
    fn new_user_codes_use_the_whole_alphabet_and_normalise_to_themselves() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let code = new_user_code().unwrap();
            assert_eq!(
                normalise_user_code(&display_user_code(&code)).as_deref(),
                Some(code.as_str())
            );
            seen.extend(code.bytes());
        }
        assert_eq!(seen.len(), USER_CODE_ALPHABET.len());
    }
}
