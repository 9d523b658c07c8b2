//! Pushed authorization requests (RFC 9126): a client sends its authorization request
//! straight to the server, authenticated, and gets back a `request_uri` to send the
//! browser to `/authorize` with instead. The parameters never travel through the
//! browser, so they can be neither read nor changed there, and a confidential client's
//! request is known to come from it. The request is validated when pushed, kept in the
//! store (so any node can serve the browser) for `LIFETIME`, and used once.

use portcullis_protocol::{ClientId, ErrorCode, GrantType};
use serde::Serialize;
use time::Duration;

use crate::authorize::{AuthorizationRequest, AuthorizeError, AuthorizeParams};
use crate::crypto::{random_token, sha256};
use crate::error::{Error, Result};
use crate::model::Client;
use crate::service::Portcullis;

/// RFC 9126 §2.2: the form of the `request_uri` values this server hands out.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request waits for the browser (RFC 9126 §2.2 suggests 5 to 600 s:
/// long enough for a redirect, short enough that a leaked one is soon worthless).
pub const LIFETIME: Duration = Duration::seconds(90);

/// RFC 9126 §2.2 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedRequest {
    pub request_uri: String,
    pub expires_in: i64,
}

impl Portcullis {
    /// Validates an authorization request pushed by `client` (already authenticated) as
    /// `/authorize` would, and keeps it. Errors are the ones `/authorize` would give, as
    /// JSON (RFC 9126 §2.3): a bad redirect URI, which `/authorize` shows as a page, is
    /// `invalid_request`.
    ///
    /// The request may be a request object (RFC 9126 §3, RFC 9101): its parameters are
    /// then the only ones read. `proof_jkt` is the thumbprint of the key of the DPoP
    /// proof sent with the push (RFC 9449 §10.1), which binds the code as `dpop_jkt`
    /// would.
    pub async fn push_authorization_request(
        &self,
        client: &Client,
        params: &AuthorizeParams,
        proof_jkt: Option<String>,
    ) -> Result<PushedRequest> {
        let mut params = params.clone();
        match params.client_id.as_deref() {
            Some(id) if id != client.id.as_str() => {
                return Err(Error::oauth(
                    ErrorCode::InvalidRequest,
                    "client_id is not the client that authenticated",
                ));
            }
            Some(_) => {}
            None => params.client_id = Some(client.id.as_str().to_owned()),
        }
        // Before the redirect URI: a machine client has none to check against.
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        // §2.1: a pushed request cannot itself point at one.
        if params.request_uri.is_some() {
            return Err(Error::oauth(ErrorCode::InvalidRequest, "request_uri cannot be pushed"));
        }
        if params.duplicated.iter().any(|d| d == "request") {
            return Err(Error::oauth(ErrorCode::InvalidRequest, "parameter request is repeated"));
        }
        let signed = params.request.is_some();
        if let Some(jwt) = params.request.take() {
            params = self
                .open_request_object(client, &params, &jwt)
                .await?
                .map_err(|refused| Error::oauth(ErrorCode::InvalidRequestObject, refused.0))?;
        }
        if let Some(jkt) = proof_jkt {
            match &params.dpop_jkt {
                Some(asked) if *asked != jkt => {
                    return Err(Error::oauth(
                        ErrorCode::InvalidDpopProof,
                        "dpop_jkt is not the thumbprint of the DPoP proof's key",
                    ));
                }
                _ => params.dpop_jkt = Some(jkt),
            }
        }
        let request = self
            .validate_pushed_authorization(&params, signed)
            .await
            .map_err(pushed_error)?;
        let token = random_token()?;
        let now = self.now();
        let json = serde_json::to_string(&request).map_err(|e| Error::Unexpected(e.to_string()))?;
        self.store
            .insert_pushed_request(&sha256(token.as_bytes()), &client.id, &json, now + LIFETIME)
            .await?;
        Ok(PushedRequest {
            request_uri: format!("{REQUEST_URI_PREFIX}{token}"),
            expires_in: LIFETIME.whole_seconds(),
        })
    }

    /// The pushed request a `request_uri` names, used up by this call (RFC 9126 §4): it
    /// must be one this server handed out to `client_id`, unexpired and unused. The other
    /// parameters of the browser's request are not read. A failure is a page: nothing
    /// says where a redirect would be safe.
    pub async fn take_pushed_request(
        &self,
        client_id: Option<&str>,
        request_uri: &str,
    ) -> std::result::Result<AuthorizationRequest, AuthorizeError> {
        let gone = || {
            AuthorizeError::Page(
                "This sign-in link has expired, was already used, or is not this application's. Go back to the \
                 application and start again."
                    .into(),
            )
        };
        let client_id = client_id.ok_or_else(|| AuthorizeError::Page("The request has no client_id.".into()))?;
        let client_id = ClientId::parse(client_id).map_err(|_| gone())?;
        let token = request_uri.strip_prefix(REQUEST_URI_PREFIX).ok_or_else(gone)?;
        let now = self.now();
        // Another client's attempt leaves it for its own client.
        let json = self
            .store
            .take_pushed_request(&sha256(token.as_bytes()), &client_id, now)
            .await
            .map_err(|e| AuthorizeError::Internal(e.into()))?
            .ok_or_else(gone)?;
        let mut request: AuthorizationRequest =
            serde_json::from_str(&json).map_err(|e| AuthorizeError::Internal(Error::Unexpected(e.to_string())))?;
        // The person's part starts now.
        request.requested_at = now.unix_timestamp();
        Ok(request)
    }
}

/// A validation failure of a pushed request, as the JSON error RFC 9126 §2.3 asks for.
fn pushed_error(e: AuthorizeError) -> Error {
    match e {
        AuthorizeError::Page(message) => Error::oauth(ErrorCode::InvalidRequest, message),
        AuthorizeError::Redirect(response) => {
            let param = |name: &str| response.params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
            let code = param("error")
                .and_then(|c| serde_json::from_value::<ErrorCode>(serde_json::Value::String(c)).ok())
                .unwrap_or(ErrorCode::InvalidRequest);
            Error::oauth(code, param("error_description").unwrap_or_default())
        }
        AuthorizeError::Internal(e) => e,
    }
}
