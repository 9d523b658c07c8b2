//! The one RFC error enum: every wire error code Portcullis can answer with.

use serde::{Deserialize, Serialize};

/// An OAuth 2.0 / OIDC error code as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §5.2 / §4.1.2.1: the request is missing a parameter, repeats one, or is malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (code, refresh token) is invalid, expired, revoked or mismatched.
    InvalidGrant,
    /// RFC 6749 §5.2 / §4.1.2.1: the client may not use this grant or response type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749 §5.2 / §4.1.2.1: the scope is invalid, unknown or exceeds what is allowed.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the resource owner or server denied the request; RFC 8628 §3.5:
    /// the person denied the device authorization request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the response type is not supported.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: an unexpected condition on the server.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is overloaded or under maintenance.
    TemporarilyUnavailable,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` but the user is not logged in.
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` but consent is needed.
    ConsentRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` but some interaction is needed.
    InteractionRequired,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks the scope the request needs.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
    /// OpenID Connect Core §3.1.2.6: the `request` parameter is not supported.
    RequestNotSupported,
    /// OpenID Connect Core §3.1.2.6: the `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// OpenID Connect Core §3.1.2.6: the `request_uri` cannot be used: not registered by
    /// the client, not readable, or not the content its fragment names.
    InvalidRequestUri,
    /// OpenID Connect Core §3.1.2.6: the `registration` parameter is not supported.
    RegistrationNotSupported,
    /// RFC 9101 §7 and OpenID Connect Core §3.1.2.6: the request object (`request`) is
    /// not valid: not signed by the client, not for this server, expired, or malformed.
    InvalidRequestObject,
    /// OpenID Connect Core Error Code unmet_authentication_requirements 1.0 (IANA OAuth
    /// Extensions Error registry): the request makes essential an authentication
    /// requirement the server cannot meet (an `acr` asked for with `essential`).
    UnmetAuthenticationRequirements,
    /// Rate limiting, sent with HTTP 429 and `Retry-After` (RFC 6585 §4). RFC 6749 has no
    /// code for it; `slow_down` is the one registered code that means "you are calling
    /// too often" (RFC 8628 §3.5, IANA OAuth Extensions Error registry, token endpoint),
    /// whereas `temporarily_unavailable` (RFC 6749 §4.1.2.1) blames the server and is
    /// defined only for authorization redirects. A client that does not know it still
    /// sees a 429 with the time to wait. Also its own RFC 8628 §3.5 meaning: a device
    /// polling sooner than its interval (a 400, as the other polling errors).
    SlowDown,
    /// RFC 9449 §5 and §7.1: the DPoP proof is missing where it is needed, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8 and §9: the DPoP proof must carry the nonce in the `DPoP-Nonce` header.
    UseDpopNonce,
    /// RFC 8707 §2: the `resource` asked for is not one the client may have a token for.
    InvalidTarget,
    /// RFC 8628 §3.5: the person has not decided on the device authorization yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: the device code expired before it was redeemed.
    ExpiredToken,
    /// RFC 7591 §3.2.2: a redirect URI of a client registering itself is not allowed.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: another metadata field of a client registering itself is invalid
    /// or not one this server allows.
    InvalidClientMetadata,
}

impl ErrorCode {
    /// The code exactly as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::RegistrationNotSupported => "registration_not_supported",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::SlowDown => "slow_down",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidTarget => "invalid_target",
            Self::AuthorizationPending => "authorization_pending",
            Self::ExpiredToken => "expired_token",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 6749 §5.2 error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl ErrorResponse {
    /// The description is passed through [`error_description`], so the body never
    /// carries characters RFC 6749 §5.2 does not allow.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: Some(error_description(&description.into())),
        }
    }
}

/// The longest `error_description` written, in characters: a message that quotes what
/// the client sent (a 60 KB redirect URI) is cut there, ending in `...`.
pub const MAX_DESCRIPTION: usize = 1024;

/// RFC 6749 §4.1.2.1 / §5.2: `error_description` may only contain %x20-21 / %x23-5B /
/// %x5D-7E. Applied where errors are rendered, so no message (or value inside one) can
/// break a client's parser: `"` becomes `'`, `\` becomes `/`, `§` becomes `section `,
/// and any other character outside the set becomes `?`. At most [`MAX_DESCRIPTION`]
/// characters.
pub fn error_description(description: &str) -> String {
    let mut out = String::with_capacity(description.len().min(MAX_DESCRIPTION));
    let too_long = description.chars().count() > MAX_DESCRIPTION;
    for (i, c) in description.chars().enumerate() {
        if too_long && i == MAX_DESCRIPTION - 3 {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push('\''),
            '\\' => out.push('/'),
            '§' => out.push_str("section "),
            ' ' | '!' | '#'..='[' | ']'..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(s: &str) -> bool {
        s.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
    }

    #[test]
    fn error_description_is_cut_at_its_longest() {
        let long = format!("redirect_uris: https://a.example/{} is not valid", "x".repeat(60_000));
        let cut = error_description(&long);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION);
        assert!(cut.starts_with("redirect_uris: https://a.example/xxx") && cut.ends_with("..."));
        let exact = "y".repeat(MAX_DESCRIPTION);
        assert_eq!(error_description(&exact), exact);
    }

    #[test]
    fn error_description_keeps_only_the_characters_rfc_6749_allows() {
        assert_eq!(error_description("plain text, fine!"), "plain text, fine!");
        assert_eq!(
            error_description("see RFC 7636 §4.1 for \"x\\y\"\n\u{7f}é"),
            "see RFC 7636 section 4.1 for 'x/y'???"
        );
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        assert!(allowed(&error_description(&all)));
        let body = ErrorResponse::new(ErrorCode::InvalidRequest, "bad \"value\" §3");
        assert_eq!(body.error_description.as_deref(), Some("bad 'value' section 3"));
    }
}
