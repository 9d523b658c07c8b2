//! JWT claim sets Portcullis signs: RFC 9068 access tokens and OIDC ID tokens, and the
//! userinfo response.

use serde::{Deserialize, Serialize};

/// RFC 9068 §2.2 JWT access token claims (header `typ: at+jwt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The grant this token was issued from; revoking the grant revokes the token.
    pub grant_id: String,
    /// RFC 9068 §2.2.1: time of the user's authentication, when a user is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9449 §6.1: the key a DPoP-bound token is bound to; such a token is refused
    /// as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the party acting for the subject (a token from a token exchange
    /// with an actor token), with the earlier actors nested in its own `act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// A token from a token exchange: the tokens it was exchanged from, the nearest first,
    /// so that revoking any of them (or disabling its client) revokes this one too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanged_from: Option<Vec<ExchangedFrom>>,
}

/// One token a token was exchanged from: what its revocation is looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangedFrom {
    pub jti: String,
    pub client_id: String,
    pub iat: i64,
}

/// RFC 7800 §3.1 confirmation, here always by RFC 7638 JWK SHA-256 thumbprint (RFC 9449
/// §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url, without padding.
    pub jkt: String,
}

/// OpenID Connect Core §2 ID token claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// OIDC Core §3.1.3.6: left half of SHA-256 of the access token, base64url.
    pub at_hash: String,
    /// OIDC Front/Back-Channel Logout: the session id.
    pub sid: String,
    /// OIDC Core §2: authorized party, the client the token was issued to.
    pub azp: String,
    // No profile or email claims: OIDC Core §5.4 returns the claims of those scopes from
    // the UserInfo endpoint whenever an access token is issued (always, here), and an ID
    // token travels back as `id_token_hint` in URLs, where an email address would end
    // up in access logs.
}

/// Claims about the user, released by scope (OIDC Core §5.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// OIDC Core §5.3.2 userinfo response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(flatten)]
    pub claims: UserClaims,
}
