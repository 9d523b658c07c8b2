//! After a request is validated: whether the person must log in or consent, recording
//! consent, and issuing the authorization code (RFC 6749 §4.1.2, OIDC Core §3.1.2.3–5).

use portcullis_protocol::{ClientId, ErrorCode, RedirectUri, ScopeSet};

use super::{AuthSession, AuthorizationRequest, AuthorizationResponse, Next, requested_redirect};
use crate::audit::Event;
use crate::crypto::{random_token, sha256};
use crate::error::{Error, Result};
use crate::model::{AuthorizationCode, Client, ClientKind, Consent, User};
use crate::service::Portcullis;

impl Portcullis {
    /// Re-reads the client of a pending request: it may have been disabled or edited
    /// while the person was logging in.
    async fn pending_client(&self, req: &AuthorizationRequest) -> Result<(Client, RedirectUri, ScopeSet)> {
        let stale = || Error::oauth(ErrorCode::InvalidRequest, "the application changed; start again");
        let id = ClientId::parse(&req.client_id).map_err(|_| stale())?;
        let client = self
            .store
            .get_client(&id)
            .await?
            .filter(|c| !c.disabled)
            .ok_or_else(stale)?;
        let uri = requested_redirect(&client, &req.redirect_uri).ok_or_else(stale)?;
        // An API taken from the client while the person was logging in (RFC 8707).
        if req
            .resource
            .as_ref()
            .is_some_and(|r| !self.resource_allowed(&client, r))
        {
            return Err(stale());
        }
        let scope = ScopeSet::parse(&req.scope).map_err(|_| stale())?;
        // A scope the client lost while the person was logging in is no longer granted.
        let scope = scope.intersection(&client.scopes);
        Ok((client, uri, scope))
    }

    /// Decides the next step for a validated request given the session's login.
    pub async fn authorize_next(&self, req: &AuthorizationRequest, auth: Option<&AuthSession>) -> Result<Next> {
        let (client, redirect_uri, scope) = self.pending_client(req).await?;
        let now = self.now().unix_timestamp();
        let user = match auth {
            Some(a) => self
                .store
                .get_user(a.user_id)
                .await?
                .filter(|u| !u.disabled)
                .map(|u| (a, u)),
            None => None,
        };
        let error = |code, desc: &str| {
            Ok(Next::Respond(self.error_response(
                &redirect_uri,
                req.response_mode,
                req.state.as_deref(),
                code,
                desc,
            )))
        };
        // The client lost every scope it asked for, or `openid` (it would get no ID token
        // after sending a nonce), while the person was signing in.
        let requested_openid = req.scope.split(' ').any(|s| s == "openid");
        if scope.is_empty() || (requested_openid && !scope.contains("openid")) {
            return error(
                ErrorCode::InvalidScope,
                "the application may no longer ask for the scope it requested",
            );
        }
        // OIDC Core §3.1.2.1: the person id_token_hint names is not the one signed in.
        // The hint is in the client's terms (its ID tokens' `sub`, OIDC Core §8).
        let signed_in_sub = match (&req.hinted_sub, &user) {
            (Some(_), Some((_, u))) => Some(self.subject(&client, u.id)?),
            _ => None,
        };
        let not_hinted = |_: &User| {
            req.hinted_sub
                .as_ref()
                .is_some_and(|sub| Some(sub) != signed_in_sub.as_ref())
        };
        // A login done during this request satisfies prompt=login and max_age (however
        // long the consent page took; OIDC Core §3.1.2.1).
        // Why a login is needed (`None`: it is not), for `prompt=none`'s error.
        let needs_login = match &user {
            None => Some("the user is not signed in"),
            Some((_, u)) if req.interaction.login_done => {
                // Someone other than the hinted person signed in: "otherwise, it SHOULD
                // return an error, such as login_required" (OIDC Core §3.1.2.1). The
                // client asked for that person's session, not for any login.
                if not_hinted(u) {
                    return error(
                        ErrorCode::LoginRequired,
                        "the user who signed in is not the one the request names",
                    );
                }
                None
            }
            Some((a, u)) => {
                if req.prompt_login {
                    Some("prompt=login asks for a new login")
                // OIDC Core §3.1.2.1: a login more than max_age seconds ago must be
                // repeated. `auth_time` and `now` are whole seconds, so the time elapsed
                // is up to a second more than their difference: a difference of max_age
                // already asks for a login (early rather than late), and max_age=0 is
                // prompt=login (errata), even within the same second.
                } else if req.max_age.is_some_and(|m| now - a.auth_time >= m) {
                    Some("the user's sign-in is not recent enough for max_age (or the client's default_max_age)")
                // With prompt=none that is login_required; otherwise the login page lets
                // the hinted person sign in.
                } else if not_hinted(u) {
                    Some("the user id_token_hint names is not signed in")
                } else {
                    None
                }
            }
        };
        if let Some(why) = needs_login {
            return if req.prompt_none {
                error(ErrorCode::LoginRequired, why)
            } else {
                Ok(Next::Login)
            };
        }
        let Some((auth, user)) = user else {
            return Ok(Next::Login);
        };
        // RFC 8252 §8.6 (and RFC 6749 §10.2): a public client whose redirect URI any
        // program on the device can receive (loopback, private-use scheme) cannot be told
        // from an impostor using its id, so earlier consent and first-party standing do
        // not count: the person approves every such request, and prompt=none gets
        // consent_required.
        let impostor_possible = client.kind == ClientKind::Public && !redirect_uri.proves_client_identity();
        let consented = if impostor_possible {
            req.interaction.consent_done
        } else {
            client.first_party
                || self
                    .store
                    .get_consent(user.id, &client.id)
                    .await?
                    .is_some_and(|c| scope.is_subset(&c.scope))
        };
        let needs_consent = !consented || (req.prompt_consent && !req.interaction.consent_done);
        if needs_consent {
            return if req.prompt_none {
                error(ErrorCode::ConsentRequired, "the user has not consented")
            } else {
                Ok(Next::Consent)
            };
        }
        Ok(Next::Respond(
            self.issue_code(req, &client, redirect_uri, scope, auth).await?,
        ))
    }

    /// The scope a pending request would be granted now (what the consent page asks for):
    /// the requested scope less what its client has lost since. Fails like the request
    /// would if the client was disabled or lost the redirect URI meanwhile.
    /// Also returns the client as it is now (its name, logo and policy for the page).
    pub async fn consent_scope(&self, req: &AuthorizationRequest) -> Result<(Client, ScopeSet)> {
        let (client, _, scope) = self.pending_client(req).await?;
        Ok((client, scope))
    }

    /// Records the person's consent to a pending request (adding to earlier consent).
    pub async fn give_consent(&self, req: &AuthorizationRequest, auth: &AuthSession, ip: Option<String>) -> Result<()> {
        let (client, _, scope) = self.pending_client(req).await?;
        let previous = self.store.get_consent(auth.user_id, &client.id).await?;
        let all = match previous {
            Some(p) => ScopeSet::from_scopes(p.scope.iter().chain(scope.iter()).cloned()),
            None => scope,
        };
        self.store
            .upsert_consent(&Consent {
                user_id: auth.user_id,
                client_id: client.id.clone(),
                scope: all.clone(),
                granted_at: self.now(),
            })
            .await?;
        self.audit(
            Event::new("consent.granted")
                .user(auth.user_id)
                .client(client.id.as_str())
                .ip(ip)
                .detail(serde_json::json!({ "scope": all.as_string() })),
        );
        Ok(())
    }

    /// The person refused: RFC 6749 §4.1.2.1 `access_denied`, to the redirect URI if the
    /// client still has it. The consent page may have been open for a while (a pending
    /// request lives an hour), and an operator may have disabled the client or removed
    /// the URI since (a domain taken over): as for Allow, the client is looked up again,
    /// and a stale request is an error page, never a redirect to an unregistered URI.
    pub async fn deny_consent(
        &self,
        req: &AuthorizationRequest,
        auth: &AuthSession,
        ip: Option<String>,
    ) -> Result<AuthorizationResponse> {
        let (_, redirect_uri, _) = self.pending_client(req).await?;
        self.audit(
            Event::new("consent.denied")
                .user(auth.user_id)
                .client(req.client_id.clone())
                .ip(ip),
        );
        Ok(self.error_response(
            &redirect_uri,
            req.response_mode,
            req.state.as_deref(),
            ErrorCode::AccessDenied,
            "the user denied the request",
        ))
    }

    async fn issue_code(
        &self,
        req: &AuthorizationRequest,
        client: &Client,
        redirect_uri: RedirectUri,
        scope: ScopeSet,
        auth: &AuthSession,
    ) -> Result<AuthorizationResponse> {
        let now = self.now();
        let code = random_token()?;
        let auth_time =
            time::OffsetDateTime::from_unix_timestamp(auth.auth_time).map_err(|e| Error::Unexpected(e.to_string()))?;
        self.store
            .insert_code(&AuthorizationCode {
                code_hash: sha256(code.as_bytes()),
                client_id: client.id.clone(),
                user_id: auth.user_id,
                redirect_uri: redirect_uri.clone(),
                redirect_uri_explicit: req.redirect_uri_explicit,
                scope,
                code_challenge: req.code_challenge.clone(),
                nonce: req.nonce.clone(),
                auth_time,
                sid: auth.sid.clone(),
                expires_at: now + self.settings.code_ttl,
                created_at: now,
                dpop_jkt: req.dpop_jkt.clone(),
                resource: req.resource.clone(),
            })
            .await?;
        let mut params = vec![("code", code)];
        if let Some(s) = &req.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.settings.issuer.clone()));
        Ok(AuthorizationResponse {
            redirect_uri,
            response_mode: req.response_mode,
            params,
        })
    }
}
