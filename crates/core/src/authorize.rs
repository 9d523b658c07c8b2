//! The authorization endpoint's use cases (RFC 6749 §4.1.1–4.1.2, OIDC Core §3.1.2):
//! validate a request, decide whether the person must log in or consent, record
//! consent, and issue the authorization code.

use portcullis_protocol::{ClientId, CodeChallenge, ErrorCode, GrantType, RedirectUri, ScopeSet};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::jwt::verify_id_token_hint;
use crate::model::{Client, ClientKind};
use crate::service::Portcullis;

mod claims;
mod decide;
mod params;

use claims::ClaimsRequest;
pub use params::AuthorizeParams;

/// How the authorization response travels (OAuth 2.0 Multiple Response Types §2.1,
/// OAuth 2.0 Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where the person has got to in this request's interaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The person logged in after this request was made (satisfies `prompt=login`).
    pub login_done: bool,
    /// The person consented to this request (satisfies `prompt=consent`).
    pub consent_done: bool,
}

/// A validated authorization request, kept in the browser session while the person
/// logs in and consents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub redirect_uri_explicit: bool,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub response_mode: ResponseMode,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The `sub` of a valid `id_token_hint` (OIDC Core §3.1.2.1), or the `sub` value the
    /// `claims` parameter asks for (§5.5.1): the person the client expects to be signed in.
    #[serde(default)]
    pub hinted_sub: Option<String>,
    pub requested_at: i64,
    #[serde(default)]
    pub interaction: Interaction,
    /// RFC 9449 §10: the code is bound to this DPoP key.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the API asked for, one of the client's `resources`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The client registered itself (RFC 7591): the login page says so.
    #[serde(default)]
    pub self_registered: bool,
}

/// The logged-in person in a browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSession {
    pub user_id: Uuid,
    /// Unix time of the authentication (OIDC `auth_time`).
    pub auth_time: i64,
    /// Session id published in ID tokens (`sid`); not the cookie value.
    pub sid: String,
    /// `admin::password_stamp` of the password signed in with, as read when it was
    /// checked: a session whose stamp no longer matches the account's (a password change
    /// that overtook the sign-in) is not signed in. Empty in sessions of earlier versions.
    #[serde(default)]
    pub stamp: String,
}

/// An authorization response (success or error) addressed to a validated redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    pub redirect_uri: RedirectUri,
    pub response_mode: ResponseMode,
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// The redirect URI with the parameters appended to its query (RFC 6749 §4.1.2),
    /// keeping any query the registered URI already had.
    pub fn query_url(&self) -> String {
        let mut url = self.redirect_uri.url().clone();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &self.params {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    /// An error response (RFC 6749 §4.1.2.1), not a code.
    pub fn is_error(&self) -> bool {
        self.params.iter().any(|(k, _)| *k == "error")
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// Why an authorization request cannot proceed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI is not valid: tell the person, never redirect
    /// (RFC 6749 §4.1.2.1).
    Page(String),
    /// Send the error to the client's validated redirect URI.
    Redirect(AuthorizationResponse),
    Internal(Error),
}

impl From<Error> for AuthorizeError {
    fn from(e: Error) -> Self {
        Self::Internal(e)
    }
}

/// What happens next for a validated request.
#[derive(Debug)]
pub enum Next {
    Login,
    Consent,
    /// Success or error: redirect (or form-post) to the client.
    Respond(AuthorizationResponse),
}

/// The longest `state`, `nonce`, `login_hint`, `scope` or `claims` taken (a longer one
/// is `invalid_request`), and the longest `state` of a sign-out request.
pub const MAX_PARAM_LEN: usize = 2048;

/// RFC 9126 §5: the refusal of a request not pushed, for a client (or a server) that
/// takes only pushed ones.
const PAR_ONLY: &str =
    "authorization requests of this client are taken only through the pushed authorization request endpoint (RFC 9126)";

/// RFC 8707 §2: several `resource` values are allowed, and a combination the server
/// will not issue a token for is `invalid_target`. Here a token is for one API.
pub const ONE_RESOURCE: &str = "this server issues tokens for one API (resource) per request";

/// How a request reached `check_authorization`.
#[derive(Debug, Clone, Copy)]
struct Via {
    /// Pushed to `/par` (RFC 9126).
    pushed: bool,
    /// As a request object the client signed (RFC 9101).
    signed: bool,
}

/// The redirect URI of a request, as requested (with its port), when `client`
/// registered it — RFC 9700 §4.1.3 exact match, or, for a native app, RFC 8252 §7.3
/// any port on a loopback IP literal ([`RedirectUri::matches_request`]). The code
/// records and the response goes to the URI as requested, so the token request must
/// repeat that port. The port exception is the native apps': public clients, and those
/// that registered themselves (RFC 8252 §8.4: an app instance that registers gets a
/// secret of its own, and a new port every run). A loopback URI an operator registered
/// for a confidential client (a web server in development) is matched exactly, as OIDC
/// Core §3.1.2.1 asks.
fn requested_redirect(client: &Client, requested: &str) -> Option<RedirectUri> {
    let native = client.kind == ClientKind::Public || client.self_registered;
    let registered = |r: &RedirectUri| {
        if native {
            r.matches_request(requested)
        } else {
            r.as_str() == requested
        }
    };
    if !client.redirect_uris.iter().any(registered) {
        return None;
    }
    RedirectUri::parse(requested).ok()
}

/// The scope a request for `client` asks for with `raw` (RFC 6749 §3.3), or what is wrong
/// with it (an `invalid_scope` description that does not echo what the client sent, RFC
/// 6749 §4.1.2.1). OIDC Core §3.1.2.1: in an OpenID request, "scope values used that are
/// not understood by an implementation SHOULD be ignored"; values this client may not use
/// are dropped (RFC 6749 §3.3 lets the server narrow), and the consent page and the token
/// response's `scope` show what is granted. A plain OAuth 2.0 request, or a client that
/// may not use `openid`, still gets invalid_scope.
///
/// Without a scope (absent or empty), the client's default (`default_scope`, RFC 6749
/// §3.3: "a pre-defined default value"); a client with none gets invalid_scope.
pub(crate) fn requested_scope(client: &Client, raw: Option<&str>) -> std::result::Result<ScopeSet, String> {
    let scope = ScopeSet::parse(raw.unwrap_or_default()).map_err(|e| e.0)?;
    if scope.is_empty() {
        let default = default_scope(client);
        if default.is_empty() {
            return Err(
                "scope is required: this application has no scope to be granted by default (only OpenID scopes)".into(),
            );
        }
        return Ok(default);
    }
    let scope = if scope.contains("openid") && client.scopes.contains("openid") {
        scope.intersection(&client.scopes)
    } else {
        scope
    };
    if !scope.difference(&client.scopes).is_empty() {
        return Err("a requested scope is not allowed for this client".into());
    }
    Ok(without_offline_access(client, scope))
}

/// OIDC Core §11: `offline_access` asks for a refresh token; a client that gets none (no
/// `refresh_token` grant) is not told it was granted.
pub(crate) fn without_offline_access(client: &Client, scope: ScopeSet) -> ScopeSet {
    if client.grant_types.contains(&GrantType::RefreshToken) {
        return scope;
    }
    no_refresh_token(scope)
}

/// The scope of tokens given without a refresh token: `offline_access` left out (OIDC
/// Core §11), unless it is all there is (a token needs a scope).
pub(crate) fn no_refresh_token(scope: ScopeSet) -> ScopeSet {
    if !scope.contains("offline_access") {
        return scope;
    }
    let without = scope.difference(&ScopeSet::parse("offline_access").unwrap_or_default());
    if without.is_empty() { scope } else { without }
}

/// RFC 8707 §2: the API a request asks for, one of those registered for the client, or an
/// `invalid_target` description.
pub(crate) fn requested_resource(
    allowed: impl Fn(&str) -> bool,
    raw: Option<&str>,
) -> std::result::Result<Option<String>, &'static str> {
    match raw {
        Some(r) if allowed(r) => Ok(Some(r.to_owned())),
        Some(_) => Err("resource is not an API this client may ask for tokens to"),
        None => Ok(None),
    }
}

/// What a request without a scope is granted (RFC 6749 §3.3): every scope of the client
/// but the OpenID ones (`openid`, `profile`, `email`, `offline_access`), which a client
/// asks for by name: a sign-in (an ID token, a nonce to check) is never implied.
pub(crate) fn default_scope(client: &Client) -> ScopeSet {
    ScopeSet::from_scopes(
        client
            .scopes
            .iter()
            .filter(|s| !matches!(s.as_str(), "openid" | "profile" | "email" | "offline_access"))
            .cloned(),
    )
}

/// Plain-words description of a scope for the consent page.
pub fn scope_description(scope: &str) -> String {
    match scope {
        "openid" => "Sign you in with your account identifier".into(),
        "profile" => "See your name and username".into(),
        "email" => "See your email address and whether it is verified".into(),
        "offline_access" => "Keep access while you are not using the app".into(),
        other => format!("Access “{other}”"),
    }
}

impl Portcullis {
    fn error_response(
        &self,
        redirect_uri: &RedirectUri,
        mode: ResponseMode,
        state: Option<&str>,
        code: ErrorCode,
        description: &str,
    ) -> AuthorizationResponse {
        let mut params = vec![
            ("error", code.as_str().to_owned()),
            // RFC 6749 §4.1.2.1: only the characters the RFC allows reach the client.
            ("error_description", portcullis_protocol::error_description(description)),
        ];
        if let Some(s) = state {
            params.push(("state", s.to_owned()));
        }
        // RFC 9207 §2: the issuer identifies who answered, against mix-up attacks.
        params.push(("iss", self.settings.issuer.clone()));
        AuthorizationResponse {
            redirect_uri: redirect_uri.clone(),
            response_mode: mode,
            params,
        }
    }

    /// Validates an authorization request sent to `/authorize` from address `ip`. The
    /// client and redirect URI are checked before anything else; only after they are
    /// known good are errors redirected.
    pub async fn validate_authorization(
        &self,
        p: &AuthorizeParams,
        ip: Option<&str>,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        // OIDC Core §6.2: a request object read from a URL the client registered. Those
        // `/par` hands out are taken before this (`take_pushed_request`).
        let by_reference = p
            .request_uri
            .as_deref()
            .filter(|uri| p.request.is_none() && !uri.starts_with(crate::par::REQUEST_URI_PREFIX));
        let inside = match (by_reference, p.request.as_deref()) {
            (Some(uri), _) => Some(self.request_by_reference(p, uri, ip).await?),
            (None, Some(jwt)) => Some(self.front_channel_request_object(p, jwt).await?),
            (None, None) => None,
        };
        match inside {
            Some(inside) => {
                self.check_authorization(
                    &inside,
                    Via {
                        pushed: false,
                        signed: true,
                    },
                )
                .await
            }
            None => {
                self.check_authorization(
                    p,
                    Via {
                        pushed: false,
                        signed: false,
                    },
                )
                .await
            }
        }
    }

    /// The parameters of the request object `jwt` sent to `/authorize` with `p` (RFC
    /// 9101 §5). The client is found by the `client_id` beside it, with the errors
    /// `/authorize` shows as pages. An object that is not valid is `invalid_request_object`
    /// sent to the `redirect_uri` beside it if the client registered it, else shown:
    /// nothing inside can be trusted yet.
    async fn front_channel_request_object(
        &self,
        p: &AuthorizeParams,
        jwt: &str,
    ) -> Result<AuthorizeParams, AuthorizeError> {
        if p.duplicated.iter().any(|d| d == "client_id" || d == "request") {
            return Err(AuthorizeError::Page("The request repeats client_id or request.".into()));
        }
        let client = self.requesting_client(p.client_id.as_deref()).await?;
        let fail = |code: ErrorCode, description: &str| self.error_beside(p, &client, code, description);
        if p.request.is_some() && p.request_uri.is_some() {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "request and request_uri cannot both be sent",
            ));
        }
        self.open_request_object(&client, p, jwt)
            .await?
            .map_err(|refused| fail(ErrorCode::InvalidRequestObject, &refused.0))
    }

    /// The parameters of the request object at `uri`, the `request_uri` sent to
    /// `/authorize` with `p` (OIDC Core §6.2): it must be one of the client's
    /// `request_uris` (compared without the fragment, which a client changes with the
    /// content), of a client that could use what it holds (keys to verify it, the code
    /// grant, no pushed requests required), then is read (`read_request_uri`) and opened
    /// as a request sent by value. Every failure after the URL is found registered is one
    /// `invalid_request_uri` with the same words, sent as `front_channel_request_object`
    /// sends its errors, so that nobody learns from the answers what a URL holds; the
    /// reason is logged.
    async fn request_by_reference(
        &self,
        p: &AuthorizeParams,
        uri: &str,
        ip: Option<&str>,
    ) -> Result<AuthorizeParams, AuthorizeError> {
        if p.duplicated.iter().any(|d| d == "client_id" || d == "request_uri") {
            return Err(AuthorizeError::Page(
                "The request repeats client_id or request_uri.".into(),
            ));
        }
        let client = self.requesting_client(p.client_id.as_deref()).await?;
        let fail = |description: &str| self.error_beside(p, &client, ErrorCode::InvalidRequestUri, description);
        let (url, _) = crate::request_uri::split_fragment(uri);
        let registered = client
            .request_uris
            .iter()
            .any(|r| crate::request_uri::split_fragment(r).0 == url);
        if !registered {
            return Err(fail(
                "request_uri is not one of the client's request_uris (only registered ones are read)",
            ));
        }
        // Refused by `check_authorization` anyway: not worth a read.
        if self.settings.require_pushed_authorization_requests || client.require_pushed_authorization_requests {
            return Err(self.error_beside(p, &client, ErrorCode::InvalidRequest, PAR_ONLY));
        }
        let unusable = |why: &str| {
            tracing::info!(
                client = client.id.as_str(),
                url,
                reason = why,
                "a request_uri could not be used"
            );
            fail("the request object at request_uri could not be used (the reason is in the server's log)")
        };
        if !client.has_keys() || !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(unusable("the client has no keys to verify it, or not the code grant"));
        }
        let body = self
            .read_request_uri(&client, uri, ip)
            .await
            .map_err(|why| unusable(&why))?;
        self.open_request_object(&client, p, body.trim())
            .await?
            .map_err(|refused| unusable(&refused.0))
    }

    /// An error about a request object (by value or by reference) of `client`: sent to
    /// the `redirect_uri` beside it, with the `state` beside it, if the client registered
    /// that URI; shown otherwise, since nothing inside can be trusted yet.
    fn error_beside(&self, p: &AuthorizeParams, client: &Client, code: ErrorCode, description: &str) -> AuthorizeError {
        match p
            .redirect_uri
            .as_deref()
            .and_then(|raw| requested_redirect(client, raw))
        {
            Some(to) => AuthorizeError::Redirect(self.error_response(
                &to,
                ResponseMode::Query,
                p.state.as_deref(),
                code,
                description,
            )),
            None => AuthorizeError::Page(format!("The application's request cannot be used: {description}.")),
        }
    }

    /// The enabled client a request names with `client_id`, or the page saying why not.
    async fn requesting_client(&self, client_id: Option<&str>) -> Result<Client, AuthorizeError> {
        let client_id = client_id.ok_or_else(|| AuthorizeError::Page("The request has no client_id.".into()))?;
        let client_id =
            ClientId::parse(client_id).map_err(|_| AuthorizeError::Page("The client_id is not valid.".into()))?;
        match self.store.get_client(&client_id).await.map_err(Error::from)? {
            Some(c) if !c.disabled => Ok(c),
            _ => Err(AuthorizeError::Page(
                "The application that sent you here is not registered.".into(),
            )),
        }
    }

    /// `validate_authorization` for a request pushed to `/par` (RFC 9126), `signed` when
    /// it came as a request object (opened already).
    pub(crate) async fn validate_pushed_authorization(
        &self,
        p: &AuthorizeParams,
        signed: bool,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        self.check_authorization(p, Via { pushed: true, signed }).await
    }

    async fn check_authorization(&self, p: &AuthorizeParams, via: Via) -> Result<AuthorizationRequest, AuthorizeError> {
        // RFC 6749 §4.1.2.1: problems with client_id or redirect_uri are never redirected.
        if p.duplicated.iter().any(|d| d == "client_id" || d == "redirect_uri") {
            return Err(AuthorizeError::Page(
                "The request repeats client_id or redirect_uri.".into(),
            ));
        }
        let client = self.requesting_client(p.client_id.as_deref()).await?;
        let (redirect_uri, explicit) = match p.redirect_uri.as_deref() {
            Some(raw) => {
                // RFC 9700 §4.1.3: exact string comparison; RFC 8252 §7.3: any port on
                // a loopback IP literal. The URI is kept as requested, port included.
                (
                    requested_redirect(&client, raw).ok_or_else(|| {
                        AuthorizeError::Page("The redirect_uri is not registered for this application.".into())
                    })?,
                    true,
                )
            }
            // OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an OpenID request. Shown,
            // never redirected: which URI to answer at is exactly what is missing.
            None if p.scope.as_deref().is_some_and(|s| s.split(' ').any(|v| v == "openid")) => {
                return Err(AuthorizeError::Page(
                    "The request has no redirect_uri, which OpenID Connect requires.".into(),
                ));
            }
            // RFC 6749 §3.1.2.3: a plain OAuth 2.0 request may leave it out when the
            // client registered exactly one.
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(AuthorizeError::Page(
                        "The request has no redirect_uri and the application has several.".into(),
                    ));
                }
            },
        };

        let state = p.state.clone();
        let mode = match p.response_mode.as_deref() {
            None | Some("query") => Ok(ResponseMode::Query),
            Some("form_post") => Ok(ResponseMode::FormPost),
            Some(_) => Err("response_mode must be query or form_post"),
        };
        let fail = |code: ErrorCode, desc: &str| {
            AuthorizeError::Redirect(self.error_response(
                &redirect_uri,
                *mode.as_ref().unwrap_or(&ResponseMode::Query),
                state.as_deref(),
                code,
                desc,
            ))
        };
        let mode = mode.map_err(|d| fail(ErrorCode::InvalidRequest, d))?;
        // RFC 9126 §5 for the server, §6 for the client.
        if (self.settings.require_pushed_authorization_requests || client.require_pushed_authorization_requests)
            && !via.pushed
        {
            return Err(fail(ErrorCode::InvalidRequest, PAR_ONLY));
        }
        // RFC 9101 §10.5 for the server and for the client.
        if (self.settings.require_signed_request_object || client.require_signed_request_object) && !via.signed {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "authorization requests of this client are taken only as request objects it signs (request, RFC \
                 9101)",
            ));
        }
        if p.duplicated.iter().any(|d| d == "resource") {
            return Err(fail(ErrorCode::InvalidTarget, ONE_RESOURCE));
        }
        if let Some(d) = p.duplicated.first() {
            return Err(fail(ErrorCode::InvalidRequest, &format!("parameter {d} is repeated")));
        }
        if [&p.state, &p.nonce, &p.login_hint, &p.scope, &p.claims]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN))
        {
            return Err(fail(ErrorCode::InvalidRequest, "a parameter is too long"));
        }
        if [&p.state, &p.nonce, &p.login_hint, &p.claims, &p.max_age, &p.prompt]
            .iter()
            .any(|v| v.as_deref().is_some_and(crate::params::holds_nul))
        {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "a parameter holds a NUL character (U+0000)",
            ));
        }
        // RFC 9101 §4: no request object inside one (`validate_authorization` and
        // `/par` open the outer one before this).
        if p.request.is_some() {
            return Err(fail(
                ErrorCode::InvalidRequestObject,
                "a request object cannot carry another",
            ));
        }
        // RFC 9101 §5.2: the request URIs `/par` hands out and those the client registered
        // are opened before this (`take_pushed_request`, `validate_authorization`); one
        // left here came where none is read (beside a request object, or inside one).
        if p.request_uri.is_some() {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "request_uri cannot be used here: send it alone, with client_id, to the authorization endpoint",
            ));
        }
        // OIDC Core §7.2.1: for self-issued OPs only; clients are registered by an operator.
        if p.registration.is_some() {
            return Err(fail(
                ErrorCode::RegistrationNotSupported,
                "the registration parameter is not supported",
            ));
        }
        match p.response_type.as_deref() {
            None => return Err(fail(ErrorCode::InvalidRequest, "response_type is required")),
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(fail(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        let scope = requested_scope(&client, p.scope.as_deref()).map_err(|d| fail(ErrorCode::InvalidScope, &d))?;
        // OIDC Core §5.5: the `claims` parameter of an OpenID request. The claims it asks
        // for are released as their scope's are: that scope is added when the client may
        // use it (the consent page and the token response's `scope` show it), and they
        // come from the UserInfo endpoint, as every scope's claims do here (ID tokens
        // carry none; §5.5.1 lets the OP leave any out). A plain OAuth 2.0 request's
        // `claims` means nothing and is ignored.
        let (scope, claimed_sub) = match p.claims.as_deref() {
            Some(raw) if scope.contains("openid") => {
                let request = ClaimsRequest::parse(raw).map_err(|d| fail(ErrorCode::InvalidRequest, d))?;
                // §5.5.1.1: an `acr` essential for the ID token with values must be met with
                // one of them, or the request fails as an authentication would. This server
                // asserts no authentication context class, so it can meet none.
                if request.essential_acr {
                    return Err(fail(
                        ErrorCode::UnmetAuthenticationRequirements,
                        "acr is essential in the claims parameter, and this server asserts no acr value",
                    ));
                }
                (scope.union(&request.scopes().intersection(&client.scopes)), request.sub)
            }
            _ => (scope, None),
        };
        // RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only; required for public clients
        // and, by default, for all.
        match p.code_challenge_method.as_deref() {
            None | Some("S256") => {}
            Some("plain") => {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "code_challenge_method plain is not allowed; use S256",
                ));
            }
            Some(_) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method must be S256")),
        }
        let code_challenge = match p.code_challenge.as_deref() {
            Some(c) => {
                if p.code_challenge_method.is_none() {
                    // RFC 7636 §4.3 defaults to plain, which is refused.
                    return Err(fail(
                        ErrorCode::InvalidRequest,
                        "code_challenge_method=S256 is required",
                    ));
                }
                Some(
                    CodeChallenge::parse(c)
                        .map_err(|e| fail(ErrorCode::InvalidRequest, &e.0))?
                        .as_str()
                        .to_owned(),
                )
            }
            // A client that registered itself (and whose registration no operator took
            // over) needs PKCE while `registration_require_pkce` is on, whatever it was
            // when it registered: turning the setting back on after a conformance run
            // leaves no client without it.
            None if client.require_pkce
                || (client.registration_token_hash.is_some() && self.settings.registration_require_pkce) =>
            {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "code_challenge (PKCE, S256) is required",
                ));
            }
            // A method with no challenge: the client means PKCE and lost the challenge.
            // Its code would carry no binding, which it would learn only at /token.
            None if p.code_challenge_method.is_some() => {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "code_challenge_method was sent without code_challenge",
                ));
            }
            None => None,
        };
        // RFC 9449 §10: the key the code is to be bound to.
        let dpop_jkt = match p.dpop_jkt.as_deref() {
            Some(j) if crate::dpop::is_thumbprint(j) => Some(j.to_owned()),
            Some(_) => {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "dpop_jkt must be a JWK SHA-256 thumbprint: 43 base64url characters",
                ));
            }
            None => None,
        };
        let resource = requested_resource(|r| self.resource_allowed(&client, r), p.resource.as_deref())
            .map_err(|d| fail(ErrorCode::InvalidTarget, d))?;
        let mut prompt_none = false;
        let mut prompt_login = false;
        let mut prompt_consent = false;
        let mut prompt_others = false;
        if let Some(prompt) = p.prompt.as_deref() {
            for v in prompt.split(' ').filter(|v| !v.is_empty()) {
                match v {
                    "none" => prompt_none = true,
                    // OIDC Core §3.1.2.1 select_account: the login page is where the
                    // person can sign in as someone else, so it is treated like login.
                    "login" | "select_account" => {
                        prompt_login = true;
                        prompt_others = true;
                    }
                    "consent" => {
                        prompt_consent = true;
                        prompt_others = true;
                    }
                    // Values the spec does not define are ignored rather than refused,
                    // so an extension a client sends does not break its sign-in.
                    _ => prompt_others = true,
                }
            }
            // OIDC Core §3.1.2.1: none with any other value is an error.
            if prompt_none && prompt_others {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "prompt=none cannot be combined with other values",
                ));
            }
        }
        let max_age = match p.max_age.as_deref() {
            // OIDC Registration §2 default_max_age: "The max_age request parameter
            // overrides this default value".
            None => client.default_max_age,
            Some(m) => Some(
                m.parse::<i64>()
                    .ok()
                    .filter(|m| *m >= 0)
                    .ok_or_else(|| fail(ErrorCode::InvalidRequest, "max_age must be a non-negative integer"))?,
            ),
        };
        // OIDC Core §3.1.2.1 id_token_hint: an ID token we issued; an expired one is
        // still a valid hint. Anything else is invalid_request.
        let hinted_sub = match p.id_token_hint.as_deref() {
            Some(t) => {
                let hint = verify_id_token_hint(&self.keys.ring(), t, &self.settings.issuer).map_err(|_| {
                    fail(
                        ErrorCode::InvalidRequest,
                        "id_token_hint is not an ID token this server issued",
                    )
                })?;
                // Issued to another client: its `sub` names the person as this one sees
                // them only if both see people alike (OIDC Core §8); a pairwise
                // identifier cannot be translated.
                if hint.aud != client.id.as_str() {
                    let other = match ClientId::parse(&hint.aud) {
                        Ok(id) => self.store.get_client(&id).await.map_err(Error::from)?,
                        Err(_) => None,
                    };
                    let alike = match other {
                        Some(other) => other.pairwise_sector == client.pairwise_sector,
                        // Deleted since: a public identifier is everyone's.
                        None => client.pairwise_sector.is_none() && uuid::Uuid::parse_str(&hint.sub).is_ok(),
                    };
                    if !alike {
                        return Err(fail(
                            ErrorCode::InvalidRequest,
                            "id_token_hint was issued to another application, which sees people under other identifiers",
                        ));
                    }
                }
                Some(hint.sub)
            }
            None => None,
        };
        // §5.5.1: a `sub` value asked for is the person the client expects, as with
        // id_token_hint; the two must agree.
        let hinted_sub = match (hinted_sub, claimed_sub) {
            (Some(h), Some(c)) if h != c => {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "id_token_hint and the claims parameter name different users",
                ));
            }
            (h, c) => h.or(c),
        };
        Ok(AuthorizationRequest {
            client_id: client.id.as_str().to_owned(),
            client_name: client.name.clone(),
            self_registered: client.self_registered,
            redirect_uri: redirect_uri.as_str().to_owned(),
            redirect_uri_explicit: explicit,
            scope: scope.as_string(),
            state,
            nonce: p.nonce.clone(),
            code_challenge,
            response_mode: mode,
            prompt_none,
            prompt_login,
            prompt_consent,
            max_age,
            login_hint: p.login_hint.clone(),
            hinted_sub,
            requested_at: self.now().unix_timestamp(),
            interaction: Interaction::default(),
            dpop_jkt,
            resource,
        })
    }
}
