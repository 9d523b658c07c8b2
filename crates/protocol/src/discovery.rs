//! Server metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 share one document.

use serde::{Deserialize, Serialize};

/// The metadata document. Every field names something Portcullis implements; optional
/// fields are omitted rather than advertised empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// RFC 8414 §2 and OIDC Discovery §3: where clients register themselves (RFC 7591);
    /// present only when the server takes such registrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.1.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
    #[serde(default)]
    pub backchannel_logout_session_supported: bool,
    /// OpenID Connect Front-Channel Logout 1.0 §3.
    #[serde(default)]
    pub frontchannel_logout_supported: bool,
    #[serde(default)]
    pub frontchannel_logout_session_supported: bool,
    /// RFC 9126 §5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5.
    #[serde(default)]
    pub require_signed_request_object: bool,
    /// RFC 8628 §4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub response_modes_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// OIDC Discovery §3: the algorithms UserInfo responses may be signed with (a client
    /// registers one with `userinfo_signed_response_alg`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub userinfo_signing_alg_values_supported: Vec<String>,
    /// RFC 9701 §7: the algorithms introspection answers asked for as JWTs may be signed
    /// with (a client registers one with `introspection_signed_response_alg`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub introspection_signing_alg_values_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms of `private_key_jwt` client assertions (RFC 8414 §2).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// RFC 9101 §10.1, OIDC Discovery §3: the algorithms request objects may be signed with.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub request_object_signing_alg_values_supported: Vec<String>,
    /// RFC 9449 §5.1: the algorithms of DPoP proofs.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    pub prompt_values_supported: Vec<String>,
    /// RFC 9207 §3: the `iss` parameter is sent in authorization responses.
    pub authorization_response_iss_parameter_supported: bool,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    /// OIDC Discovery §3: a `request_uri` must be one of the client's `request_uris`.
    pub require_request_uri_registration: bool,
}
