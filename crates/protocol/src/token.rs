//! Token endpoint (RFC 6749 §3.2, §4, §5), revocation (RFC 7009) and introspection
//! (RFC 7662) request and response bodies.

use serde::{Deserialize, Serialize};

use crate::types::{PkceVerifier, RedirectUri, ScopeSet, Secret};

/// The grant-specific part of a token request, tagged on `grant_type`, so a missing
/// `code` or `refresh_token` fails while deserializing (RFC 6749 §4.1.3, §6, §4.4.2).
#[derive(Debug, Deserialize)]
#[serde(tag = "grant_type", rename_all = "snake_case")]
pub enum TokenRequest {
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5.
    AuthorizationCode {
        code: Secret,
        redirect_uri: Option<RedirectUri>,
        code_verifier: Option<PkceVerifier>,
        /// RFC 8707 §2.2: the API the access token is for.
        resource: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Secret,
        scope: Option<ScopeSet>,
        resource: Option<String>,
    },
    /// RFC 6749 §4.4.2.
    ClientCredentials {
        scope: Option<ScopeSet>,
        resource: Option<String>,
    },
    /// RFC 8628 §3.4.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode {
        device_code: Secret,
        resource: Option<String>,
    },
    /// RFC 8693 §2.1.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange(TokenExchangeRequest),
}

/// RFC 8693 §2.1 token exchange request, beside the client's authentication.
#[derive(Debug, Deserialize)]
pub struct TokenExchangeRequest {
    pub subject_token: Secret,
    pub subject_token_type: String,
    pub actor_token: Option<Secret>,
    pub actor_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub scope: Option<ScopeSet>,
    /// RFC 8707 / RFC 8693: the API the new token is for, as an absolute URI.
    pub resource: Option<String>,
    /// RFC 8693 §2.1: the API by its logical name; here one of the client's resources.
    pub audience: Option<String>,
}

/// RFC 8628 §3.1 device authorization request, beside the client's authentication.
#[derive(Debug, Deserialize)]
pub struct DeviceAuthorizationRequest {
    /// Required here (RFC 6749 §3.3 lets the server refuse a request without one); parsed
    /// by the server, so a malformed one is `invalid_scope`.
    pub scope: Option<String>,
    /// RFC 8707 §2: the API the token is to be for.
    pub resource: Option<String>,
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    /// As shown to people, with a dash in the middle.
    pub user_code: String,
    pub verification_uri: String,
    /// The verification page with the user code filled in, for a QR code or a link.
    pub verification_uri_complete: String,
    pub expires_in: i64,
    /// Seconds the device waits between polls.
    pub interval: i64,
}

/// The device code is a credential: kept out of logs.
impl std::fmt::Debug for DeviceAuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorizationResponse")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// RFC 6749 §5.1 successful token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// RFC 8693 §2.2.1: the type of the token issued by a token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// RFC 7009 §2.1 `token_type_hint` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// RFC 7009 §2.1 revocation request; RFC 7662 §2.1 introspection request has the same shape.
#[derive(Debug, Deserialize)]
pub struct TokenOperationRequest {
    pub token: Secret,
    /// Unknown hints are ignored (RFC 7662 §2.1: the server may ignore the hint).
    #[serde(default, deserialize_with = "lenient_hint")]
    pub token_type_hint: Option<TokenTypeHint>,
}

fn lenient_hint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TokenTypeHint>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(match raw.as_deref() {
        Some("access_token") => Some(TokenTypeHint::AccessToken),
        Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
        _ => None,
    })
}

/// RFC 7662 §2.2 introspection response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// RFC 9449 §6.2: the key a DPoP-bound access token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::claims::Confirmation>,
    /// RFC 8693 §4.1: who acts for the subject, in a token from a token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

impl IntrospectionResponse {
    /// RFC 7662 §2.2: an inactive token reveals nothing else.
    pub fn inactive() -> Self {
        Self::default()
    }
}
