//! Token operations outside the token endpoint: revocation (RFC 7009), introspection
//! (RFC 7662) and userinfo (OIDC Core §5.3).

use portcullis_protocol::claims::{AccessTokenClaims, UserInfo};
use portcullis_protocol::token::{IntrospectionResponse, TokenTypeHint};
use portcullis_protocol::{ClientId, ErrorCode, ScopeSet, Secret};
use time::OffsetDateTime;

use crate::audit::Event;
use crate::crypto::sha256;
use crate::dpop::{self, ProofContext};
use crate::error::{Error, Result};
use crate::grants::{still_allowed, user_claims};
use crate::jwt::{verify_access_token, verify_access_token_with_kid};
use crate::model::{Client, ClientKind, Revocation, RevocationTarget};
use crate::service::Portcullis;

/// RFC 9701 §5: the `typ` of an introspection response JWT (its media type,
/// `application/token-introspection+jwt`, without `application/`).
pub const INTROSPECTION_JWT_TYP: &str = "token-introspection+jwt";

impl Portcullis {
    /// Revokes the grant `id` at `now`: its refresh tokens are deleted and its access
    /// tokens denied until the longest of them would have expired, on this node at once
    /// and on the others at their next sync (DESIGN §3). False if it was not live.
    pub(crate) async fn revoke_grant_now(&self, id: uuid::Uuid, now: time::OffsetDateTime) -> Result<bool> {
        let revocation = Revocation {
            target: RevocationTarget::Grant(id),
            expires_at: now + self.settings.max_access_token_ttl(),
        };
        let revoked = self.store.revoke_grant(id, now, &revocation).await?;
        if revoked {
            self.revocations.insert_local(std::slice::from_ref(&revocation));
        }
        Ok(revoked)
    }

    /// A JWT access token this server issued that is valid now and not revoked.
    /// A signature is checked once per token and node (`verified_tokens`); expiry,
    /// the signing key and revocation are checked on every call.
    pub fn active_access_token(&self, token: &str) -> Option<AccessTokenClaims> {
        let ring = self.keys.ring();
        let now = self.now().unix_timestamp();
        let key = sha256(token.as_bytes());
        let claims = match self
            .verified_tokens
            .get(&key, now, |kid| ring.verifiers.contains_key(kid))
        {
            Some(claims) => claims,
            None => {
                let (kid, claims) = verify_access_token_with_kid(&ring, token, &self.settings.issuer, now).ok()?;
                self.verified_tokens.insert(key, &kid, &claims, now);
                claims
            }
        };
        (!self.revocations.is_revoked(&claims)).then_some(claims)
    }

    /// RFC 7009 §2: revokes an access or refresh token the client holds. Unknown tokens
    /// are answered with success (§2.2); a token issued to another client is refused
    /// with unauthorized_client and left alone (§2.1: "If this validation fails, the
    /// request is refused and the client is informed of the error").
    pub async fn revoke(
        &self,
        client: &Client,
        token: &Secret,
        hint: Option<TokenTypeHint>,
        ip: Option<String>,
    ) -> Result<()> {
        let try_access = |this: &Self| -> Option<AccessTokenClaims> {
            let ring = this.keys.ring();
            // Expired tokens need no revocation.
            verify_access_token(
                &ring,
                token.expose(),
                &this.settings.issuer,
                this.now().unix_timestamp(),
            )
            .ok()
        };
        let access_first = hint != Some(TokenTypeHint::RefreshToken);
        if access_first && let Some(claims) = try_access(self) {
            return self.revoke_access(client, claims, ip).await;
        }
        let hash = sha256(token.expose().as_bytes());
        if let Some((stored, grant)) = self.store.get_refresh_token(&hash).await? {
            if stored.client_id != client.id {
                return Err(not_this_clients());
            }
            // RFC 7009 §2.1: revoking a refresh token revokes the grant and its access tokens.
            if self.revoke_grant_now(grant.id, self.now()).await? {
                self.audit(
                    Event::new("token.revoked")
                        .client(client.id.as_str())
                        .user(grant.user_id)
                        .ip(ip)
                        .detail(serde_json::json!({"token_type": "refresh_token", "grant_id": grant.id})),
                );
            }
            return Ok(());
        }
        if !access_first && let Some(claims) = try_access(self) {
            return self.revoke_access(client, claims, ip).await;
        }
        Ok(())
    }

    async fn revoke_access(&self, client: &Client, claims: AccessTokenClaims, ip: Option<String>) -> Result<()> {
        if claims.client_id != client.id.as_str() {
            return Err(not_this_clients());
        }
        let expires_at =
            OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|e| Error::Unexpected(e.to_string()))?;
        let revocation = Revocation {
            target: RevocationTarget::AccessToken(claims.jti.clone()),
            expires_at,
        };
        self.store.insert_revocation(&revocation).await?;
        self.revocations.insert_local(std::slice::from_ref(&revocation));
        self.audit(
            Event::new("token.revoked")
                .client(client.id.as_str())
                .ip(ip)
                .detail(serde_json::json!({"token_type": "access_token", "jti": claims.jti})),
        );
        Ok(())
    }

    /// RFC 7662 §2: only confidential clients (resource servers) may introspect.
    /// Access tokens are answered from memory; refresh tokens from the store.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &Secret,
        hint: Option<TokenTypeHint>,
    ) -> Result<IntrospectionResponse> {
        // RFC 7662 §2.1: the caller must authenticate; a public client presented no
        // credentials, so it is an unauthenticated caller (401 invalid_client).
        if client.kind != ClientKind::Confidential {
            return Err(Error::oauth(
                ErrorCode::InvalidClient,
                "only confidential clients may introspect tokens",
            ));
        }
        // RFC 7662 §2.1: the hint only orders the search; a token not found as the
        // hinted type MUST still be looked up as every other type.
        if hint == Some(TokenTypeHint::RefreshToken) {
            if let Some(r) = self.introspect_refresh(client, token).await? {
                return Ok(r);
            }
            return Ok(self
                .introspect_access(client, token)
                .unwrap_or_else(IntrospectionResponse::inactive));
        }
        if let Some(r) = self.introspect_access(client, token) {
            return Ok(r);
        }
        Ok(self
            .introspect_refresh(client, token)
            .await?
            .unwrap_or_else(IntrospectionResponse::inactive))
    }

    fn introspect_access(&self, client: &Client, token: &Secret) -> Option<IntrospectionResponse> {
        let c = self.active_access_token(token.expose())?;
        // RFC 7662 §4 (token scanning): a client that registered itself (RFC 7591) is
        // nobody's resource server, and anyone can be one when registration is open; it
        // learns about its own access tokens only.
        if client.self_registered && c.client_id != client.id.as_str() {
            return None;
        }
        Some(IntrospectionResponse {
            active: true,
            scope: Some(c.scope),
            client_id: Some(c.client_id),
            sub: Some(c.sub),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: None,
            aud: Some(c.aud),
            iss: Some(c.iss),
            jti: Some(c.jti),
            // RFC 9449 §6.2.
            token_type: Some(if c.cnf.is_some() { dpop::TOKEN_TYPE } else { "Bearer" }.into()),
            cnf: c.cnf,
            // RFC 8693 §4.1 (a token from a token exchange).
            act: c.act,
        })
    }

    async fn introspect_refresh(&self, client: &Client, token: &Secret) -> Result<Option<IntrospectionResponse>> {
        // Refresh tokens are opaque and 43 characters; skip the lookup for anything else.
        if token.expose().len() != 43 {
            return Ok(None);
        }
        let now = self.now();
        let Some((stored, grant)) = self.store.get_refresh_token(&sha256(token.expose().as_bytes())).await? else {
            return Ok(None);
        };
        let active = stored.used_at.is_none()
            && stored.expires_at > now
            && grant.revoked_at.is_none()
            && grant.expires_at > now
            && stored.client_id == client.id;
        if !active {
            return Ok(None);
        }
        Ok(Some(IntrospectionResponse {
            active: true,
            // What a refresh would issue now: without scopes the client has since lost.
            scope: Some(still_allowed(client, &stored.scope).as_string()),
            client_id: Some(stored.client_id.as_str().to_owned()),
            sub: Some(self.subject(client, grant.user_id)?),
            exp: Some(stored.expires_at.unix_timestamp()),
            iat: Some(stored.created_at.unix_timestamp()),
            iss: Some(self.settings.issuer.clone()),
            token_type: Some("refresh_token".into()),
            ..Default::default()
        }))
    }

    /// RFC 9701 §5: `response` (the introspection answer to `client`, inactive if the
    /// token is for an API that is not the caller's) as a JWT signed
    /// with the client's `introspection_signed_response_alg` (RS256 by default), typed
    /// `token-introspection+jwt`, for `client` (`aud`), with the answer in
    /// `token_introspection` and no `sub` or `exp` of its own, so it cannot pass for an
    /// access token or an ID token (§8.1).
    pub async fn introspection_jwt(&self, client: &Client, response: &IntrospectionResponse) -> Result<String> {
        // §5: active only for a token meant for the caller: one for the default audience
        // (every API's), or for one of the caller's APIs (its `resources`).
        let meant_for_caller = response
            .aud
            .as_ref()
            .is_none_or(|aud| *aud == self.settings.access_token_audience || client.resources.contains(aud));
        let inactive = IntrospectionResponse::inactive();
        let response = if meant_for_caller { response } else { &inactive };
        let alg = client
            .introspection_signed_response_alg
            .unwrap_or(crate::service::ID_TOKEN_ALG);
        let claims = serde_json::json!({
            "iss": self.settings.issuer,
            "aud": client.id.as_str(),
            "iat": self.now().unix_timestamp(),
            "jti": uuid::Uuid::new_v4().to_string(),
            "token_introspection": response,
        });
        let ring = self.keys.ring();
        if let Some(why) = ring.no_signer(alg) {
            // `signing_alg` changed and its keys were retired (as for ID tokens), or this
            // node cannot open them.
            return Err(Error::Unexpected(format!(
                "client {} registered {alg} introspection responses: {why}{}",
                client.id.as_str(),
                edit_hint(&ring, alg)
            )));
        }
        self.signer
            .run(move || crate::jwt::sign(&ring, alg, INTROSPECTION_JWT_TYP, &claims))
            .await?
    }

    /// OIDC Core §5.3: claims about the user the access token was issued for, as plain
    /// JSON or, for a client registered with `userinfo_signed_response_alg`, as a JWT
    /// signed so, with `iss` and `aud` (§5.3.2). `dpop` is the proof sent with the token
    /// when the request used the DPoP scheme (RFC 9449 §7.1).
    pub async fn userinfo(&self, access_token: &str, dpop: Option<RequestProof<'_>>) -> Result<UserInfoAnswer> {
        let (info, client_id) = self.userinfo_claims(access_token, dpop).await?;
        let client = match ClientId::parse(&client_id) {
            Ok(id) => self.client_cache.get(self.store.as_ref(), &id).await?,
            Err(_) => None,
        };
        let Some(alg) = client.and_then(|c| c.userinfo_signed_response_alg) else {
            return Ok(UserInfoAnswer::Json(info));
        };
        let mut claims = serde_json::to_value(&info).map_err(|e| Error::Unexpected(format!("userinfo: {e}")))?;
        if let serde_json::Value::Object(o) = &mut claims {
            o.insert("iss".into(), self.settings.issuer.clone().into());
            o.insert("aud".into(), client_id.clone().into());
        }
        let ring = self.keys.ring();
        if let Some(why) = ring.no_signer(alg) {
            // As for introspection answers.
            return Err(Error::Unexpected(format!(
                "client {client_id} registered {alg} UserInfo responses: {why}{}",
                edit_hint(&ring, alg)
            )));
        }
        let jwt = self
            .signer
            .run(move || crate::jwt::sign(&ring, alg, "JWT", &claims))
            .await??;
        Ok(UserInfoAnswer::Jwt(jwt))
    }

    /// The claims of `userinfo`, and the id of the client the token was issued to.
    async fn userinfo_claims(&self, access_token: &str, dpop: Option<RequestProof<'_>>) -> Result<(UserInfo, String)> {
        let claims = self.active_access_token(access_token).ok_or_else(|| {
            Error::oauth(
                ErrorCode::InvalidToken,
                "the access token is invalid, expired or revoked",
            )
        })?;
        // RFC 8707: a token asked for another API (`resource`) is that API's, not this
        // endpoint's.
        if claims.aud != self.settings.access_token_audience {
            return Err(Error::oauth(
                ErrorCode::InvalidToken,
                "the access token is for another API (its aud is a resource): use one issued without resource",
            ));
        }
        self.check_binding(&claims, access_token, dpop, "/userinfo").await?;
        let scope = ScopeSet::parse(&claims.scope).map_err(|e| Error::Unexpected(e.0))?;
        if !scope.contains("openid") {
            return Err(Error::oauth(
                ErrorCode::InsufficientScope,
                "the access token lacks the openid scope",
            ));
        }
        let no_user = || Error::oauth(ErrorCode::InvalidToken, "the access token has no user");
        let user_id = match uuid::Uuid::parse_str(&claims.sub) {
            Ok(id) => id,
            // A pairwise identifier (OIDC Core §8.1) leads back to nobody: the token's
            // grant names the person.
            Err(_) => {
                let grant_id = uuid::Uuid::parse_str(&claims.grant_id).map_err(|_| no_user())?;
                self.store
                    .get_grant(grant_id)
                    .await?
                    .filter(|g| g.client_id.as_str() == claims.client_id)
                    .ok_or_else(no_user)?
                    .user_id
            }
        };
        let user = self
            .store
            .get_user(user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| Error::oauth(ErrorCode::InvalidToken, "the user is no longer active"))?;
        Ok((
            UserInfo {
                // What the client saw in its ID token (OIDC Core §5.3.2: they must match).
                sub: claims.sub,
                claims: user_claims(&user, &scope),
            },
            claims.client_id,
        ))
    }
}

/// What UserInfo answers (OIDC Core §5.3.2).
#[derive(Debug, Clone)]
pub enum UserInfoAnswer {
    /// `application/json`.
    Json(UserInfo),
    /// `application/jwt`, signed with the client's `userinfo_signed_response_alg`.
    Jwt(String),
}

/// A DPoP proof sent with an access token (RFC 9449 §7.1) to a request with `method`.
#[derive(Debug, Clone, Copy)]
pub struct RequestProof<'a> {
    pub proof: &'a str,
    pub method: &'a str,
}

impl Portcullis {
    /// RFC 9449 §7: a DPoP-bound access token is accepted only with a proof signed by its
    /// key (§7.1), never as a bearer token (§7.2); a token that is not bound only as one.
    async fn check_binding(
        &self,
        claims: &AccessTokenClaims,
        access_token: &str,
        dpop: Option<RequestProof<'_>>,
        path: &str,
    ) -> Result<()> {
        let refuse = |why: &str| Err(Error::oauth(ErrorCode::InvalidToken, why));
        match (&claims.cnf, dpop) {
            (None, None) => Ok(()),
            (Some(_), None) => refuse("the access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof"),
            (None, Some(_)) => refuse("the access token is not DPoP-bound: send it with the Bearer scheme"),
            (Some(cnf), Some(p)) => {
                let ctx = ProofContext {
                    method: p.method,
                    path,
                    access_token: Some(access_token),
                };
                if self.verify_dpop_proof(p.proof, ctx).await? != cnf.jkt {
                    return refuse("the DPoP proof is not signed with the key the access token is bound to");
                }
                Ok(())
            }
        }
    }
}

/// RFC 7009 §2.1: the token presented for revocation was issued to another client.
fn not_this_clients() -> Error {
    Error::oauth(ErrorCode::UnauthorizedClient, "the token was not issued to this client")
}

/// What an operator does about a client's algorithm that has no key: edit the client, or
/// nothing when this node merely cannot open the key (its key-encryption key is the fault).
fn edit_hint(ring: &crate::keys::KeyRing, alg: portcullis_protocol::SigningAlg) -> String {
    if ring.unopened.is_some() {
        String::new()
    } else {
        format!("; edit the client or set signing_alg to {alg}")
    }
}
