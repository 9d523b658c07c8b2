//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6) and the tokens they mint:
//! RFC 9068 access tokens, OIDC ID tokens, rotating refresh tokens.

use portcullis_protocol::claims::{AccessTokenClaims, Confirmation, IdTokenClaims, UserClaims};
use portcullis_protocol::token::{TokenRequest, TokenResponse};
use portcullis_protocol::{ErrorCode, GrantType, PkceVerifier, RedirectUri, ScopeSet, Secret, SigningAlg};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::Event;
use crate::crypto::{pkce_s256_matches, random_token, random_uuid, sha256};
use crate::dpop;
use crate::error::{Error, Result};
use crate::jwt::{ACCESS_TOKEN_TYP, at_hash, sign};
use crate::model::{Client, ClientKind, DeviceDecision, Grant, RefreshToken, Revocation, RevocationTarget, User};
use crate::repo::{CodeRedemption, DevicePoll, RefreshRotation};
use crate::service::ID_TOKEN_ALG;
use crate::service::Portcullis;

fn invalid_grant(description: &str) -> Error {
    Error::oauth(ErrorCode::InvalidGrant, description)
}

/// A refresh token that cannot be used, whatever the reason (RFC 6749 §5.2).
fn invalid_refresh_token() -> Error {
    invalid_grant("the refresh token is invalid, expired or revoked")
}

/// The part of a grant's scope its client is still allowed: an operator who takes a scope
/// away from a client takes it away from the tokens the client gets from its existing
/// grants too (their refresh tokens live for weeks). RFC 6749 §5.1: the response's
/// `scope` then names what was issued.
pub(crate) fn still_allowed(client: &Client, scope: &ScopeSet) -> ScopeSet {
    if scope.is_subset(&client.scopes) {
        scope.clone()
    } else {
        scope.intersection(&client.scopes)
    }
}

/// Claims about `user` released for `scope` (OIDC Core §5.4).
pub fn user_claims(user: &User, scope: &ScopeSet) -> UserClaims {
    let mut c = UserClaims::default();
    if scope.contains("profile") {
        c.name = user.name.clone();
        c.given_name = user.given_name.clone();
        c.family_name = user.family_name.clone();
        c.preferred_username = Some(user.username.clone());
        c.updated_at = Some(user.updated_at.unix_timestamp());
    }
    if scope.contains("email") {
        c.email = user.email.clone();
        c.email_verified = user.email.as_ref().map(|_| user.email_verified);
    }
    c
}

/// Where a response's tokens are signed (issue 7, measured on 2 cores).
enum Signing {
    /// On the runtime worker that handles the request: nothing else of this request waits
    /// on the runtime, and a hand-off to the signing threads cost `client_credentials`
    /// a fifth of its throughput.
    Inline,
    /// On the signing threads: grants that run store transactions keep the runtime's
    /// workers free, so the wake-ups of transactions in flight (SQLite's single writer
    /// above all) are not queued behind 0.3 ms signatures. Refresh rotation on SQLite
    /// went from ~800/s to 1,050-1,600/s in the load runs.
    Pool,
}

/// What an authorization code is redeemed with (RFC 6749 §4.1.3, RFC 7636 §4.5).
struct Redemption<'a> {
    code: &'a Secret,
    redirect_uri: Option<&'a RedirectUri>,
    verifier: Option<&'a PkceVerifier>,
    /// RFC 8707 §2.2.
    resource: Option<&'a str>,
}

/// What a refresh asks for (RFC 6749 §6, RFC 8707 §2.2).
struct Refresh<'a> {
    token: &'a Secret,
    scope: Option<ScopeSet>,
    resource: Option<&'a str>,
}

/// Whom an access token is for and whose key it is bound to.
struct Target {
    /// RFC 8707: the API asked for, the token's `aud`; `None` for the server's
    /// `access_token_audience`.
    audience: Option<String>,
    /// RFC 9449: the thumbprint of the DPoP key, `cnf.jkt`.
    dpop_jkt: Option<String>,
}

/// The tokens of a refresh beside the access token: the rotated refresh token, and whom
/// the access token is for.
struct Refreshed {
    new_token: String,
    target: Target,
}

/// RFC 8707 §2.2: the API an access token is for: the one asked for at `/token`, or
/// without one the one the grant was asked for (`granted`). One asked for must be the
/// grant's, or for a grant of none one of the client's `resources`; and the API must
/// still be `registered` for the client (`Portcullis::resource_allowed`).
pub(crate) fn audience(
    registered: impl Fn(&str) -> bool,
    granted: Option<&str>,
    asked: Option<&str>,
) -> Result<Option<String>> {
    match (asked, granted) {
        (None, None) => Ok(None),
        (None, Some(g)) | (Some(g), None) if registered(g) => Ok(Some(g.to_owned())),
        (Some(a), Some(g)) if a == g && registered(g) => Ok(Some(g.to_owned())),
        (Some(_), Some(_)) => Err(Error::oauth(
            ErrorCode::InvalidTarget,
            "resource is not the API this grant was asked for",
        )),
        _ => Err(Error::oauth(
            ErrorCode::InvalidTarget,
            "resource is not an API this client may ask for tokens to",
        )),
    }
}

/// RFC 9449 §5: a grant bound to a DPoP key is refreshed only with a proof signed by it.
fn bound_to(grant: &Grant, dpop_jkt: Option<&str>) -> Result<()> {
    match &grant.dpop_jkt {
        Some(bound) if dpop_jkt != Some(bound.as_str()) => Err(invalid_grant(
            "the refresh token is bound to a DPoP key: send a DPoP proof signed with it",
        )),
        _ => Ok(()),
    }
}

/// An audit event's detail, naming the DPoP key (`dpop_jkt`) the access token is bound
/// to when it is.
fn with_dpop_key(mut detail: serde_json::Value, dpop_jkt: Option<&str>) -> serde_json::Value {
    if let Some(jkt) = dpop_jkt {
        detail["dpop_jkt"] = serde_json::Value::String(jkt.to_owned());
    }
    detail
}

/// What a person approved: a code's or a device approval's.
struct Approval {
    user_id: Uuid,
    scope: ScopeSet,
    auth_time: OffsetDateTime,
    sid: String,
    nonce: Option<String>,
    resource: Option<String>,
}

/// The user-bound parts of a token response.
struct UserContext<'a> {
    user: &'a User,
    grant: &'a Grant,
    nonce: Option<String>,
}

impl Portcullis {
    /// A node that cannot open the keys it would sign with (left on an old key-encryption
    /// key) says so before anything is used up, the client's credentials included (a
    /// client assertion's or a DPoP proof's `jti`, a code, a device code, a refresh
    /// token): the same request then works at another node. `algs` beside `signing_alg`
    /// and ID tokens' RS256.
    pub fn check_can_sign(&self, algs: &[SigningAlg]) -> Result<()> {
        let ring = self.keys.ring();
        let Some(why) = &ring.unopened else {
            return Ok(());
        };
        let needed = [self.settings.signing_alg, crate::service::ID_TOKEN_ALG];
        if needed.iter().chain(algs).all(|alg| ring.signer(*alg).is_some()) {
            return Ok(());
        }
        tracing::error!(error = %why, "a token request is refused: this node cannot open its signing keys");
        Err(Error::oauth(
            ErrorCode::TemporarilyUnavailable,
            "this server cannot issue tokens right now; try again",
        ))
    }

    /// Answers a token request from an authenticated client. `dpop_jkt` is the thumbprint
    /// of the key of the request's verified DPoP proof (RFC 9449 §5), if it had one: the
    /// access token is bound to it.
    pub async fn token(
        &self,
        client: &Client,
        request: TokenRequest,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    ) -> Result<TokenResponse> {
        let grant_type = match &request {
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
            TokenRequest::DeviceCode { .. } => GrantType::DeviceCode,
            TokenRequest::TokenExchange(_) => GrantType::TokenExchange,
        };
        if !client.grant_types.contains(&grant_type) {
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                format!("this client may not use the {grant_type} grant"),
            ));
        }
        if client.dpop_bound_access_tokens && dpop_jkt.is_none() {
            return Err(Error::oauth(
                ErrorCode::InvalidDpopProof,
                "this client must send a DPoP proof with each token request (dpop_bound_access_tokens)",
            ));
        }
        // As `check_can_sign`, for the ID-token algorithm this client registered.
        if let Some(alg) = client.id_token_signed_response_alg {
            self.check_can_sign(&[alg])?;
        }
        match request {
            TokenRequest::TokenExchange(exchange) => self.exchange_token(client, exchange, ip, dpop_jkt).await,
            TokenRequest::DeviceCode { device_code, resource } => {
                self.exchange_device_code(client, &device_code, resource.as_deref(), ip, dpop_jkt)
                    .await
            }
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
            } => {
                let redeem = Redemption {
                    code: &code,
                    redirect_uri: redirect_uri.as_ref(),
                    verifier: code_verifier.as_ref(),
                    resource: resource.as_deref(),
                };
                self.exchange_code(client, redeem, ip, dpop_jkt).await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
            } => {
                let asked = Refresh {
                    token: &refresh_token,
                    scope,
                    resource: resource.as_deref(),
                };
                self.refresh(client, asked, ip, dpop_jkt).await
            }
            TokenRequest::ClientCredentials { scope, resource } => {
                let jkt = dpop_jkt.clone();
                let target = Target {
                    audience: audience(|r| self.resource_allowed(client, r), None, resource.as_deref())?,
                    dpop_jkt,
                };
                let response = self.client_credentials(client, scope, target).await?;
                // The queue takes it without waiting: the grant stays free of writes.
                self.audit(
                    Event::new("token.issued")
                        .client(client.id.as_str())
                        .ip(ip)
                        .detail(with_dpop_key(
                            serde_json::json!({"grant_type": "client_credentials", "scope": response.scope}),
                            jkt.as_deref(),
                        )),
                );
                Ok(response)
            }
        }
    }

    /// RFC 6749 §4.1.3 with RFC 7636 §4.6.
    async fn exchange_code(
        &self,
        client: &Client,
        redeem: Redemption<'_>,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    ) -> Result<TokenResponse> {
        let Redemption {
            code,
            redirect_uri,
            verifier,
            resource,
        } = redeem;
        let now = self.now();
        let hash = sha256(code.expose().as_bytes());
        let replay_expiry = now + self.settings.max_access_token_ttl();
        let Some(stored) = self.store.get_code(&hash, now).await? else {
            // Unknown, expired or already redeemed. A placeholder grant is passed because
            // the store only stores it for a fresh code, which this is not; for a
            // redeemed code the store revokes what the first redemption produced.
            let placeholder = self.new_grant(client, Uuid::nil(), ScopeSet::default(), now, String::new(), None);
            if let CodeRedemption::Replayed { grant_id } = self
                .store
                .redeem_code(&hash, &placeholder, None, now, replay_expiry)
                .await?
            {
                self.on_code_replay(client, grant_id, ip);
            }
            return Err(invalid_grant(
                "the authorization code is invalid, expired or already used",
            ));
        };
        if stored.client_id != client.id {
            return Err(invalid_grant("the authorization code was issued to another client"));
        }
        // RFC 6749 §4.1.3: redirect_uri must be present and identical if it was in the
        // authorization request.
        match redirect_uri {
            Some(r) if r.as_str() != stored.redirect_uri.as_str() => {
                return Err(invalid_grant("redirect_uri does not match the authorization request"));
            }
            None if stored.redirect_uri_explicit => {
                return Err(Error::oauth(
                    ErrorCode::InvalidRequest,
                    "redirect_uri is required: it was in the authorization request",
                ));
            }
            _ => {}
        }
        match (&stored.code_challenge, verifier) {
            (Some(challenge), Some(v)) => {
                if !pkce_s256_matches(v.as_str(), challenge) {
                    return Err(invalid_grant("the code_verifier does not match the code_challenge"));
                }
            }
            // RFC 7636 §4.6 names no error for a missing verifier; the code cannot be
            // redeemed without one, which is `invalid_grant` (RFC 6749 §5.2), as the
            // OpenID conformance suite and other servers answer. The code is not spent.
            (Some(_), None) => {
                return Err(invalid_grant(
                    "code_verifier is required: the authorization request had a code_challenge",
                ));
            }
            // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => return Err(invalid_grant("no code_challenge was sent for this code")),
            (None, None) => {}
        }
        // RFC 9449 §10: a code bound to a key is redeemed only with a proof signed by it.
        // Checked before the code is used up, so a thief without the key spends nothing.
        if stored.dpop_jkt.is_some() && stored.dpop_jkt != dpop_jkt {
            return Err(invalid_grant(
                "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof signed with it",
            ));
        }
        let target = Target {
            audience: audience(
                |r| self.resource_allowed(client, r),
                stored.resource.as_deref(),
                resource,
            )?,
            dpop_jkt,
        };
        let (user, grant, refresh) = self
            .person_grant(
                client,
                &target,
                Approval {
                    user_id: stored.user_id,
                    scope: stored.scope.clone(),
                    auth_time: stored.auth_time,
                    sid: stored.sid.clone(),
                    nonce: stored.nonce.clone(),
                    resource: stored.resource.clone(),
                },
                now,
            )
            .await?;
        match self
            .store
            .redeem_code(&hash, &grant, refresh.as_ref().map(|(_, r)| r), now, replay_expiry)
            .await?
        {
            CodeRedemption::Redeemed => {}
            CodeRedemption::Replayed { grant_id } => {
                self.on_code_replay(client, grant_id, ip);
                return Err(invalid_grant("the authorization code was already used"));
            }
            CodeRedemption::Invalid => {
                return Err(invalid_grant(
                    "the authorization code is invalid, expired or already used",
                ));
            }
        }
        let refresh = refresh.map(|(t, _)| t);
        self.issue_to_person(
            client,
            &user,
            &grant,
            refresh,
            target,
            GrantType::AuthorizationCode,
            ip,
            now,
        )
        .await
    }

    /// RFC 8628 §3.4–3.5: one poll of a device code. Until the person decides, the answer
    /// is `authorization_pending` (or `slow_down`, polled too soon); then `access_denied`,
    /// or the tokens, once.
    async fn exchange_device_code(
        &self,
        client: &Client,
        device_code: &Secret,
        resource: Option<&str>,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    ) -> Result<TokenResponse> {
        let now = self.now();
        let hash = sha256(device_code.expose().as_bytes());
        let device = match self.store.poll_device_authorization(&hash, &client.id, now).await? {
            DevicePoll::Invalid => return Err(invalid_grant("the device code is invalid")),
            // As for a code used twice (RFC 6749 §4.1.2, DESIGN §3): whoever polled first
            // may have copied the device code, so what it got is revoked.
            DevicePoll::Redeemed { grant_id } => return self.device_code_replayed(client, grant_id, ip, now).await,
            DevicePoll::Expired => {
                return Err(Error::oauth(
                    ErrorCode::ExpiredToken,
                    "the device code expired: start a new device authorization",
                ));
            }
            DevicePoll::Pending => {
                return Err(Error::oauth(
                    ErrorCode::AuthorizationPending,
                    "the person has not yet allowed or denied the request",
                ));
            }
            DevicePoll::SlowDown => {
                return Err(Error::oauth(
                    ErrorCode::SlowDown,
                    "polled too soon: wait 5 seconds longer between polls from now on",
                ));
            }
            DevicePoll::Denied => return Err(Error::oauth(ErrorCode::AccessDenied, "the person denied the request")),
            DevicePoll::Approved(device) => *device,
        };
        let DeviceDecision::Approved {
            user_id,
            auth_time,
            sid,
            scope,
        } = device.decision
        else {
            return Err(Error::Unexpected(
                "an approved device authorization without its approval".into(),
            ));
        };
        // Checked before the device code is used up: a bad resource spends nothing.
        let target = Target {
            audience: audience(
                |r| self.resource_allowed(client, r),
                device.resource.as_deref(),
                resource,
            )?,
            dpop_jkt,
        };
        // What the person allowed, which may be less than what the device asked for.
        let approval = Approval {
            user_id,
            scope,
            auth_time,
            sid,
            nonce: None,
            resource: device.resource.clone(),
        };
        let (user, grant, refresh) = self.person_grant(client, &target, approval, now).await?;
        if !self
            .store
            .redeem_device_authorization(&hash, &grant, refresh.as_ref().map(|(_, r)| r), now)
            .await?
        {
            // Another poll redeemed it a moment ago (at this node or another): the same
            // replay, so what that poll got is revoked as well.
            if let DevicePoll::Redeemed { grant_id } =
                self.store.poll_device_authorization(&hash, &client.id, now).await?
            {
                return self.device_code_replayed(client, grant_id, ip, now).await;
            }
            return Err(invalid_grant("the device code was already used"));
        }
        let refresh = refresh.map(|(t, _)| t);
        self.issue_to_person(client, &user, &grant, refresh, target, GrantType::DeviceCode, ip, now)
            .await
    }

    /// A device code polled again after its redemption: as for a code used twice (RFC
    /// 6749 §4.1.2, DESIGN §3), whoever polled first may have copied the device code, so
    /// what it got is revoked.
    async fn device_code_replayed(
        &self,
        client: &Client,
        grant_id: Uuid,
        ip: Option<String>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse> {
        let revocation = Revocation {
            target: RevocationTarget::Grant(grant_id),
            expires_at: now + self.settings.max_access_token_ttl(),
        };
        self.store.revoke_grant(grant_id, now, &revocation).await?;
        self.on_code_replay(client, grant_id, ip);
        Err(invalid_grant("the device code was already used"))
    }

    /// The grant a person's approval (a code, a device approval) becomes, with its first
    /// refresh token, for `target`; the person, who must still be active. Checked first:
    /// an ID token could be signed for the client.
    async fn person_grant(
        &self,
        client: &Client,
        target: &Target,
        approval: Approval,
        now: OffsetDateTime,
    ) -> Result<(User, Grant, Option<(String, RefreshToken)>)> {
        self.id_token_key_for(client, &approval.scope)?;
        let user = self
            .store
            .get_user(approval.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| invalid_grant("the user is no longer active"))?;
        let mut grant = self.new_grant(
            client,
            user.id,
            approval.scope,
            approval.auth_time,
            approval.sid,
            approval.nonce,
        );
        // RFC 9449 §5: a public client's refresh tokens are bound to its proof's key; a
        // confidential client's are bound to it already by its authentication.
        if client.kind == ClientKind::Public {
            grant.dpop_jkt = target.dpop_jkt.clone();
        }
        grant.resource = approval.resource;
        let refresh = self.new_refresh_token(client, &grant, now)?;
        Ok((user, grant, refresh))
    }

    /// The tokens of a grant just made from a person's approval, and its audit event.
    #[allow(clippy::too_many_arguments)]
    async fn issue_to_person(
        &self,
        client: &Client,
        user: &User,
        grant: &Grant,
        refresh_token: Option<String>,
        target: Target,
        grant_type: GrantType,
        ip: Option<String>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse> {
        self.audit(
            Event::new("token.issued")
                .client(client.id.as_str())
                .user(user.id)
                .ip(ip)
                .detail(with_dpop_key(
                    serde_json::json!({"grant_type": grant_type.as_str(), "grant_id": grant.id}),
                    target.dpop_jkt.as_deref(),
                )),
        );
        let ctx = UserContext {
            user,
            grant,
            nonce: grant.nonce.clone(),
        };
        self.mint(
            Signing::Pool,
            client,
            &still_allowed(client, &grant.scope),
            Some(ctx),
            refresh_token,
            target,
            now,
        )
        .await
    }

    fn on_code_replay(&self, client: &Client, grant_id: Uuid, ip: Option<String>) {
        let expires_at = self.now() + self.settings.max_access_token_ttl();
        self.revocations.insert_local(&[crate::model::Revocation {
            target: crate::model::RevocationTarget::Grant(grant_id),
            expires_at,
        }]);
        self.audit(
            Event::new("code.replay_detected")
                .client(client.id.as_str())
                .ip(ip)
                .detail(serde_json::json!({"grant_id": grant_id})),
        );
    }

    /// RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2).
    async fn refresh(
        &self,
        client: &Client,
        asked: Refresh<'_>,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    ) -> Result<TokenResponse> {
        let now = self.now();
        let hash = sha256(asked.token.expose().as_bytes());
        let scope = asked.scope.filter(|s| !s.is_empty());
        // The common case, a live token refreshed without narrowing the scope, is one store
        // statement (issue 7). Anything else, and every error, takes the general path below.
        // A public client's grant may be bound to a DPoP key, which is checked before its
        // token is used up: its refreshes take the general path.
        if scope.is_none()
            && asked.resource.is_none()
            && client.kind == ClientKind::Confidential
            && client.grant_types.contains(&GrantType::RefreshToken)
            && self.id_token_alg_has_key(client)
        {
            let new_token = random_token()?;
            if let Some((_, grant, user)) = self
                .store
                .rotate_live_refresh_token(
                    &hash,
                    &client.id,
                    &sha256(new_token.as_bytes()),
                    now,
                    now + self.refresh_ttl(client),
                )
                .await?
            {
                // A grant bound while its client was public (an operator changed the
                // client since): still bound, though its token is now used up.
                bound_to(&grant, dpop_jkt.as_deref())?;
                let scope = grant.scope.clone();
                // The store took no grant asked for an API (RFC 8707): those go the general
                // way, which checks the API is still the client's before spending anything.
                let target = Target {
                    audience: None,
                    dpop_jkt,
                };
                let tokens = Refreshed { new_token, target };
                return self.refreshed(client, &grant, &user, &scope, tokens, ip, now).await;
            }
        }
        let (stored, grant, user) = self
            .store
            .get_refresh_token_with_user(&hash)
            .await?
            .ok_or_else(invalid_refresh_token)?;
        if stored.client_id != client.id {
            return Err(invalid_refresh_token());
        }
        // Before reuse detection: a thief without the key can neither use the token nor,
        // by presenting it here, get the grant revoked (`/revoke` still ends it: RFC 7009
        // lets a public client revoke with its client_id alone).
        bound_to(&grant, dpop_jkt.as_deref())?;
        // A used token goes on to reuse detection, which a bad resource must not dodge.
        let target = Target {
            audience: match stored.used_at {
                None => audience(
                    |r| self.resource_allowed(client, r),
                    grant.resource.as_deref(),
                    asked.resource,
                )?,
                Some(_) => None,
            },
            dpop_jkt,
        };
        // RFC 6749 §6: the new scope may only narrow the original grant. A token already
        // used skips the check: it goes on to reuse detection (RFC 9700 §4.14.2), which a
        // bad scope must not dodge.
        let scope = match scope {
            Some(s) if stored.used_at.is_none() => {
                // As at `/authorize` (OIDC Core §3.1.2.1): in an OpenID request, values
                // this client may not use are ignored, not refused. `/authorize` dropped
                // them from the grant (`offline_access`, typically), and a relying party
                // that sends its configured scope again on every refresh must not fail.
                let s = if s.contains("openid") && grant.scope.contains("openid") {
                    s.intersection(&client.scopes)
                } else {
                    s
                };
                if s.is_empty() {
                    return Err(Error::oauth(
                        ErrorCode::InvalidScope,
                        "none of the requested scope is allowed for this client",
                    ));
                }
                if !s.is_subset(&grant.scope) {
                    return Err(Error::oauth(
                        ErrorCode::InvalidScope,
                        "the requested scope exceeds the original grant",
                    ));
                }
                s
            }
            _ => grant.scope.clone(),
        };
        if stored.used_at.is_none() {
            // A used token goes on to reuse detection whatever else is wrong.
            self.id_token_key_for(client, &scope)?;
        }
        let (new_token, new_record) = self
            .new_refresh_token(client, &grant, now)?
            .ok_or_else(invalid_refresh_token)?;
        let reuse_expiry = now + self.settings.max_access_token_ttl();
        match self
            .store
            .rotate_refresh_token(&hash, &new_record, now, reuse_expiry)
            .await?
        {
            RefreshRotation::Rotated => {}
            RefreshRotation::Reused { grant_id } => {
                self.revocations.insert_local(&[crate::model::Revocation {
                    target: crate::model::RevocationTarget::Grant(grant_id),
                    expires_at: reuse_expiry,
                }]);
                self.audit(
                    Event::new("refresh.reuse_detected")
                        .client(client.id.as_str())
                        .user(grant.user_id)
                        .ip(ip)
                        .detail(serde_json::json!({"grant_id": grant_id})),
                );
                return Err(invalid_refresh_token());
            }
            RefreshRotation::Invalid => return Err(invalid_refresh_token()),
        }
        // RFC 9449 §5: a public client that refreshes with a proof binds its refresh
        // tokens to the proof's key from now on, even if its grant began without one.
        if let (ClientKind::Public, None, Some(jkt)) = (client.kind, &grant.dpop_jkt, &target.dpop_jkt) {
            self.store.bind_grant_to_dpop_key(grant.id, jkt).await?;
        }
        let tokens = Refreshed { new_token, target };
        self.refreshed(client, &grant, &user, &scope, tokens, ip, now).await
    }

    /// Whether the server has a key for the algorithm `client` registered for its ID
    /// tokens (always, for the default).
    fn id_token_alg_has_key(&self, client: &Client) -> bool {
        client
            .id_token_signed_response_alg
            .is_none_or(|alg| self.keys.ring().signer(alg).is_some())
    }

    /// A grant of `scope` that would carry an ID token in an algorithm the server no
    /// longer signs with (`signing_alg` changed, its keys retired) is refused before its
    /// code or refresh token is used up, so it works again once the client is edited.
    fn id_token_key_for(&self, client: &Client, scope: &ScopeSet) -> Result<()> {
        match client.id_token_signed_response_alg {
            Some(alg) if scope.contains("openid") && !self.id_token_alg_has_key(client) => {
                Err(Error::Unexpected(format!(
                    "client {} registered {alg} ID tokens, and this server has no active {alg} key: \
                     edit the client or set signing_alg to {alg}",
                    client.id
                )))
            }
            _ => Ok(()),
        }
    }

    /// The tokens of a refresh whose old token has been rotated to `new_token`.
    #[allow(clippy::too_many_arguments)]
    async fn refreshed(
        &self,
        client: &Client,
        grant: &Grant,
        user: &User,
        scope: &ScopeSet,
        tokens: Refreshed,
        ip: Option<String>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse> {
        if user.disabled {
            return Err(invalid_refresh_token());
        }
        self.audit(
            Event::new("token.refreshed")
                .client(client.id.as_str())
                .user(user.id)
                .ip(ip)
                .detail(with_dpop_key(
                    serde_json::json!({"grant_id": grant.id}),
                    tokens.target.dpop_jkt.as_deref(),
                )),
        );
        // OIDC Core §12.2: a refreshed ID token carries no nonce.
        let ctx = UserContext {
            user,
            grant,
            nonce: None,
        };
        self.mint(
            Signing::Pool,
            client,
            &still_allowed(client, scope),
            Some(ctx),
            Some(tokens.new_token),
            tokens.target,
            now,
        )
        .await
    }

    /// RFC 6749 §4.4: no user, no refresh token, and no database write.
    async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<ScopeSet>,
        target: Target,
    ) -> Result<TokenResponse> {
        if client.kind != ClientKind::Confidential {
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "client_credentials needs a confidential client",
            ));
        }
        let scope = match scope {
            Some(s) if !s.is_empty() => {
                if s.contains("openid") {
                    return Err(Error::oauth(
                        ErrorCode::InvalidScope,
                        "openid needs a user; not available with client_credentials",
                    ));
                }
                let extra = s.difference(&client.scopes);
                if !extra.is_empty() {
                    return Err(Error::oauth(
                        ErrorCode::InvalidScope,
                        format!("scope not allowed for this client: {extra}"),
                    ));
                }
                crate::authorize::no_refresh_token(s)
            }
            _ => crate::authorize::default_scope(client),
        };
        self.mint(Signing::Inline, client, &scope, None, None, target, self.now())
            .await
    }

    fn new_grant(
        &self,
        client: &Client,
        user_id: Uuid,
        scope: ScopeSet,
        auth_time: OffsetDateTime,
        sid: String,
        nonce: Option<String>,
    ) -> Grant {
        let now = self.now();
        Grant {
            id: Uuid::new_v4(),
            client_id: client.id.clone(),
            user_id,
            scope,
            auth_time,
            sid,
            nonce,
            created_at: now,
            expires_at: now + self.refresh_ttl(client).max(self.access_ttl(client)),
            revoked_at: None,
            dpop_jkt: None,
            resource: None,
        }
    }

    fn new_refresh_token(
        &self,
        client: &Client,
        grant: &Grant,
        now: OffsetDateTime,
    ) -> Result<Option<(String, RefreshToken)>> {
        if !client.grant_types.contains(&GrantType::RefreshToken) {
            return Ok(None);
        }
        let token = random_token()?;
        // Sliding lifetime, but never past the grant's absolute expiry.
        let expires_at = (now + self.refresh_ttl(client)).min(grant.expires_at);
        let record = RefreshToken {
            token_hash: sha256(token.as_bytes()),
            grant_id: grant.id,
            client_id: client.id.clone(),
            scope: grant.scope.clone(),
            created_at: now,
            expires_at,
            used_at: None,
        };
        Ok(Some((token, record)))
    }

    /// Builds the claims and signs them where `signing` says: both signatures of a
    /// response in one job. The access token is for `target`'s API and bound to its DPoP
    /// key, if any.
    #[allow(clippy::too_many_arguments)]
    async fn mint(
        &self,
        signing: Signing,
        client: &Client,
        scope: &ScopeSet,
        user: Option<UserContext<'_>>,
        refresh_token: Option<String>,
        target: Target,
        now: OffsetDateTime,
    ) -> Result<TokenResponse> {
        let ring = self.keys.ring();
        let ttl = self.access_ttl(client);
        let iat = now.unix_timestamp();
        // OIDC Core §8: the person as this client sees them, in its access tokens too, so
        // that what it can read (a JWT) does not give the public identifier away.
        let subject = match &user {
            Some(u) => self.subject(client, u.user.id)?,
            None => client.id.as_str().to_owned(),
        };
        let claims = AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub: subject.clone(),
            aud: target
                .audience
                .unwrap_or_else(|| self.settings.access_token_audience.clone()),
            client_id: client.id.as_str().to_owned(),
            scope: scope.as_string(),
            exp: iat + ttl.whole_seconds(),
            iat,
            jti: random_uuid()?.to_string(),
            grant_id: match &user {
                Some(u) => u.grant.id,
                None => random_uuid()?,
            }
            .to_string(),
            auth_time: user.as_ref().map(|u| u.grant.auth_time.unix_timestamp()),
            cnf: target.dpop_jkt.map(|jkt| Confirmation { jkt }),
            act: None,
            exchanged_from: None,
        };
        let id_claims = match (&user, scope.contains("openid")) {
            (Some(u), true) => Some(IdTokenClaims {
                iss: self.settings.issuer.clone(),
                sub: subject,
                aud: client.id.as_str().to_owned(),
                exp: iat + self.settings.id_token_ttl.whole_seconds(),
                iat,
                auth_time: u.grant.auth_time.unix_timestamp(),
                nonce: u.nonce.clone(),
                // Filled in once the access token is signed (OIDC Core §3.1.3.6).
                at_hash: String::new(),
                sid: self.session_id(client, &u.grant.sid)?,
                azp: client.id.as_str().to_owned(),
            }),
            _ => None,
        };
        let bound = claims.cnf.is_some();
        let access_alg = self.settings.signing_alg;
        // Checked before the code or refresh token was used (`id_token_key_for`); were the
        // key retired in between, `sign` fails rather than use another algorithm.
        let id_alg = client.id_token_signed_response_alg.unwrap_or(ID_TOKEN_ALG);
        let job = move || -> Result<(String, Option<String>)> {
            let access_token = sign(&ring, access_alg, ACCESS_TOKEN_TYP, &claims)?;
            let id_token = match id_claims {
                Some(mut id) => {
                    id.at_hash = at_hash(id_alg, &access_token);
                    Some(sign(&ring, id_alg, "JWT", &id)?)
                }
                None => None,
            };
            Ok((access_token, id_token))
        };
        let (access_token, id_token) = match signing {
            Signing::Inline => job()?,
            Signing::Pool => self.signer.run(job).await??,
        };
        Ok(TokenResponse {
            access_token,
            token_type: if bound { dpop::TOKEN_TYPE } else { "Bearer" }.into(),
            expires_in: u64::try_from(ttl.whole_seconds()).unwrap_or(0),
            refresh_token,
            id_token,
            scope: scope.as_string(),
            issued_token_type: None,
        })
    }
}
