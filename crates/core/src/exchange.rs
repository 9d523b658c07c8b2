//! Token exchange (RFC 8693): a confidential client an operator registered with the
//! `urn:ietf:params:oauth:grant-type:token-exchange` grant trades an access token this
//! server issued (the subject token, which it received: a service passing a caller's
//! token on) for an access token of its own, for an API it may ask tokens for.
//!
//! What the new token may carry is bounded by the subject token: the same subject (a
//! person is named as the exchanging client sees them, OIDC Core §8), scopes among the
//! subject token's and the client's only (never `openid`: an exchange signs nobody in,
//! and `/userinfo` answers the client a person approved), an expiry no later than the
//! subject token's, and the subject token's grant and identity (`exchanged_from`), so
//! that revoking the grant (a person signing out, a password change, a refresh token
//! replayed), the subject token or its client revokes the exchanged token too. A subject
//! token for an API must be for one of the exchanging client's APIs (or the default
//! audience): a token meant for another API is not turned into one for the client's. With
//! an `actor_token` (one of the exchanging client's own access tokens), the new token
//! names that token's subject in `act` (§4.1), the earlier actors nested in it, and ends
//! no later than it. A token bound to a DPoP key is not exchanged (only its holder may
//! use it), nor one already exchanged `MAX_DEPTH` times; nothing but access tokens is
//! taken or issued; no refresh token is issued.
//!
//! Only operators give clients the grant (a client that registers itself may not, as for
//! `client_credentials`): which tokens a client may exchange is the operator's trust in
//! that client.

use portcullis_protocol::claims::{AccessTokenClaims, Confirmation};
use portcullis_protocol::token::{TokenExchangeRequest, TokenResponse};
use portcullis_protocol::{ACCESS_TOKEN_TYPE, ErrorCode, ScopeSet, Secret};
use uuid::Uuid;

use crate::audit::Event;
use crate::dpop;
use crate::error::{Error, Result};
use crate::model::{Client, ClientKind};
use crate::service::Portcullis;

/// The most exchanges one token may come from: each adds an entry to `exchanged_from`
/// (and perhaps to `act`), so chains stay short and tokens small.
pub const MAX_DEPTH: usize = 5;

fn invalid_request(message: impl Into<String>) -> Error {
    Error::oauth(ErrorCode::InvalidRequest, message)
}

impl Portcullis {
    /// RFC 8693 §2: the new access token for `client`, bound to `dpop_jkt` if the request
    /// had a DPoP proof.
    pub(crate) async fn exchange_token(
        &self,
        client: &Client,
        request: TokenExchangeRequest,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    ) -> Result<TokenResponse> {
        if client.kind != ClientKind::Confidential {
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "token exchange needs a confidential client",
            ));
        }
        if request.subject_token_type != ACCESS_TOKEN_TYPE {
            return Err(invalid_request(format!(
                "subject_token_type must be {ACCESS_TOKEN_TYPE}: only access tokens are exchanged here"
            )));
        }
        if request
            .requested_token_type
            .as_deref()
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
        {
            return Err(invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE}: only access tokens are issued by an exchange"
            )));
        }
        let subject = self.exchangeable(&request.subject_token, "subject_token")?;
        let chain = subject.exchanged_from.as_deref().unwrap_or_default();
        if chain.len() >= MAX_DEPTH {
            return Err(invalid_request(format!(
                "subject_token comes from {MAX_DEPTH} exchanges already: exchange the token it came from"
            )));
        }
        // Not a token for another API made into one for this client's.
        if subject.aud != self.settings.access_token_audience && !client.resources.contains(&subject.aud) {
            return Err(invalid_request(
                "subject_token is for an API that is not one of this client's",
            ));
        }
        // §2.1: the type comes with the token, and only with it.
        let actor = match (&request.actor_token, request.actor_token_type.as_deref()) {
            (None, None) => None,
            (Some(token), Some(ACCESS_TOKEN_TYPE)) => {
                let actor = self.exchangeable(token, "actor_token")?;
                // The client names itself as the actor, never another party it saw.
                if actor.client_id != client.id.as_str() {
                    return Err(invalid_request("actor_token must be an access token of this client"));
                }
                Some(actor)
            }
            (Some(_), Some(_)) => {
                return Err(invalid_request(format!("actor_token_type must be {ACCESS_TOKEN_TYPE}")));
            }
            (Some(_), None) => return Err(invalid_request("actor_token_type is required with actor_token")),
            (None, Some(_)) => return Err(invalid_request("actor_token_type is sent only with actor_token")),
        };
        let scope = exchanged_scope(client, &subject, request.scope)?;
        let asked = match (request.resource.as_deref(), request.audience.as_deref()) {
            (Some(r), Some(a)) if r != a => {
                return Err(Error::oauth(
                    ErrorCode::InvalidTarget,
                    "resource and audience name different APIs: ask for one",
                ));
            }
            (Some(r), _) | (None, Some(r)) => Some(r),
            (None, None) => None,
        };
        let audience = crate::grants::audience(|r| self.resource_allowed(client, r), None, asked)?;
        // The subject token's subject, as its own client saw them: naming the person as
        // this client sees them would hand it a second identifier of the same person (a
        // pairwise one beside the public one, or two sectors' pairwise ones), which OIDC
        // Core §8.1 exists to keep clients from linking. A client's own token
        // (client_credentials) has no grant stored, and that client is its subject.
        let grant = match Uuid::parse_str(&subject.grant_id) {
            Ok(id) => self.store.get_grant(id).await?,
            Err(_) => None,
        };
        let sub = match &grant {
            Some(g) if g.revoked_at.is_some() => {
                return Err(invalid_request(
                    "subject_token is not an active access token of this server",
                ));
            }
            Some(_) => subject.sub.clone(),
            // A person's token (it has an auth_time) whose grant is gone: nothing tells
            // whether it was revoked, so it is not taken as active.
            None if subject.auth_time.is_some() => {
                return Err(invalid_request(
                    "subject_token is not an active access token of this server",
                ));
            }
            None => subject.sub.clone(),
        };
        let act = match &actor {
            Some(a) => {
                let mut act = serde_json::json!({ "sub": a.sub });
                if let Some(earlier) = &subject.act {
                    act["act"] = earlier.clone();
                }
                Some(act)
            }
            None => subject.act.clone(),
        };
        let iat = self.now().unix_timestamp();
        let exp = (iat + self.access_ttl(client).whole_seconds())
            .min(subject.exp)
            .min(actor.as_ref().map_or(i64::MAX, |a| a.exp));
        let mut exchanged_from = vec![portcullis_protocol::claims::ExchangedFrom {
            jti: subject.jti.clone(),
            client_id: subject.client_id.clone(),
            iat: subject.iat,
        }];
        exchanged_from.extend(chain.iter().cloned());
        let bound = dpop_jkt.is_some();
        let claims = AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub,
            aud: audience
                .clone()
                .unwrap_or_else(|| self.settings.access_token_audience.clone()),
            client_id: client.id.as_str().to_owned(),
            scope: scope.as_string(),
            exp,
            iat,
            jti: crate::crypto::random_uuid()?.to_string(),
            grant_id: subject.grant_id.clone(),
            auth_time: subject.auth_time,
            cnf: dpop_jkt.clone().map(|jkt| Confirmation { jkt }),
            act,
            exchanged_from: Some(exchanged_from),
        };
        let issued_jti = claims.jti.clone();
        let ring = self.keys.ring();
        let alg = self.settings.signing_alg;
        let access_token = self
            .signer
            .run(move || crate::jwt::sign(&ring, alg, crate::jwt::ACCESS_TOKEN_TYP, &claims))
            .await??;
        let mut event = Event::new("token.exchanged").client(client.id.as_str()).ip(ip);
        if let Some(g) = &grant {
            event = event.user(g.user_id);
        }
        self.audit(event.detail(serde_json::json!({
            "jti": issued_jti,
            "subject_jti": subject.jti,
            "subject_client_id": subject.client_id,
            "actor_sub": actor.as_ref().map(|a| a.sub.clone()),
            "grant_id": subject.grant_id,
            "scope": scope.as_string(),
            "audience": audience,
            "dpop_jkt": dpop_jkt,
        })));
        Ok(TokenResponse {
            access_token,
            token_type: if bound { dpop::TOKEN_TYPE } else { "Bearer" }.into(),
            expires_in: u64::try_from(exp - iat).unwrap_or(0),
            refresh_token: None,
            id_token: None,
            scope: scope.as_string(),
            issued_token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
        })
    }

    /// The claims of `token` if it is an access token of this server that is active
    /// (signature, expiry, revocation) and not bound to a key; `invalid_request` (§2.2.2)
    /// naming `field` otherwise.
    fn exchangeable(&self, token: &Secret, field: &str) -> Result<AccessTokenClaims> {
        let claims = self
            .active_access_token(token.expose())
            .ok_or_else(|| invalid_request(format!("{field} is not an active access token of this server")))?;
        if claims.cnf.is_some() {
            return Err(invalid_request(format!(
                "{field} is bound to a DPoP key: only its holder may use it, so it is not exchanged"
            )));
        }
        Ok(claims)
    }
}

/// The scopes of the new token: those asked for, all of them among the subject token's
/// and the client's but `openid`; without any asked, every such scope the two share;
/// `offline_access` left out.
fn exchanged_scope(client: &Client, subject: &AccessTokenClaims, asked: Option<ScopeSet>) -> Result<ScopeSet> {
    let held = ScopeSet::parse(&subject.scope).unwrap_or_default();
    let openid = ScopeSet::parse("openid").unwrap_or_default();
    let allowed = held.intersection(&client.scopes).difference(&openid);
    let scope = match asked {
        Some(asked) if !asked.is_empty() => {
            let extra = asked.difference(&allowed);
            if !extra.is_empty() {
                return Err(Error::oauth(
                    ErrorCode::InvalidScope,
                    format!("scope beyond the subject_token's or this client's: {extra}"),
                ));
            }
            asked
        }
        _ => allowed,
    };
    // An exchange never gives a refresh token.
    let scope = crate::authorize::no_refresh_token(scope);
    if scope.is_empty() {
        return Err(Error::oauth(
            ErrorCode::InvalidScope,
            "the subject_token has no scope this client may have",
        ));
    }
    Ok(scope)
}
