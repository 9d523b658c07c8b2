//! [`VerifiedClaims`]: what a handler learns about the caller once the token checked out.

use crate::error::AuthError;

/// The claims of an access token that passed every check (signature or introspection,
/// issuer, audience, expiry). Handlers receive it from the extractor in [`crate::extract`].
///
/// Field names say what they mean; the doc of each names the claim it comes from
/// (RFC 9068 §2.2, RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// `iss`: the authorization server that issued the token.
    pub issuer: String,
    /// `sub`: the user, or for `client_credentials` tokens the client itself (RFC 9068 §2.2).
    pub subject: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: String,
    /// `aud`: the resource servers the token is meant for.
    pub audience: Vec<String>,
    /// `scope`, split on spaces (RFC 6749 §3.3).
    pub scopes: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: Option<i64>,
    /// `nbf`, seconds since the Unix epoch.
    pub not_before: Option<i64>,
    /// `jti`: the token's unique id.
    pub jti: Option<String>,
    /// `grant_id` (Portcullis): the grant the token came from. JWKS mode only in practice:
    /// introspection mode takes it from the answer, and Portcullis's `/introspect` does not
    /// return it, so there it is `None`.
    pub grant_id: Option<String>,
    /// `auth_time`: when the user authenticated, if a user was involved. JWKS mode only:
    /// always `None` in introspection mode (RFC 7662 §2.2 defines no such member, and
    /// Portcullis's `/introspect` does not return it).
    pub auth_time: Option<i64>,
}

impl VerifiedClaims {
    /// Whether the token carries `scope` (exact, case-sensitive match, RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Fails with [`AuthError::InsufficientScope`] (a `403` with `error="insufficient_scope"`
    /// when returned from a handler) unless the token carries `scope`.
    ///
    /// ```
    /// # use portcullis_resource::{AuthError, VerifiedClaims};
    /// async fn notes_post(claims: VerifiedClaims) -> Result<&'static str, AuthError> {
    ///     claims.require_scope("notes:write")?;
    ///     Ok("created")
    /// }
    /// ```
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        self.require_scopes(&[scope])
    }

    /// Like [`VerifiedClaims::require_scope`] for several scopes, all of which are needed;
    /// the error names them all (RFC 6750 §3: `scope` lists the scopes necessary).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), AuthError> {
        if scopes.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope {
                required: scopes.join(" "),
            })
        }
    }

    /// The scopes joined with spaces, as on the wire.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Splits an RFC 6749 §3.3 scope string; repeated spaces are tolerated.
pub(crate) fn split_scope(scope: Option<&str>) -> Vec<String> {
    scope
        .map(|s| s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: &str) -> VerifiedClaims {
        VerifiedClaims {
            issuer: "https://issuer.example".into(),
            subject: "alice".into(),
            client_id: "app".into(),
            audience: vec!["notes".into()],
            scopes: split_scope(Some(scope)),
            expires_at: 0,
            issued_at: None,
            not_before: None,
            jti: None,
            grant_id: None,
            auth_time: None,
        }
    }

    #[test]
    fn scopes_match_exactly() {
        let c = claims("notes:read  openid");
        assert_eq!(c.scopes, ["notes:read", "openid"]);
        assert!(c.has_scope("notes:read"));
        assert!(!c.has_scope("notes"));
        assert!(!c.has_scope("NOTES:READ"));
        assert!(c.require_scope("openid").is_ok());
        let err = c.require_scopes(&["notes:read", "notes:write"]).unwrap_err();
        assert!(matches!(err, AuthError::InsufficientScope { ref required } if required == "notes:read notes:write"));
    }
}
