//! [`VerifiedClaims`]: what a handler learns about the caller once the token checked out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::{AuthError, InvalidToken};

/// The claims of an access token that passed every check (signature or introspection,
/// issuer, audience, expiry). Handlers receive it from the extractor in [`crate::extract`].
///
/// Field names say what they mean; the doc of each names the claim it comes from
/// (RFC 9068 §2.2, RFC 7662 §2.2). It serializes under those field names (to log or
/// hand on the caller's identity), not as the token's claims.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// `cnf.jkt` (RFC 9449 §6): the RFC 7638 SHA-256 thumbprint (base64url) of the key the
    /// token is bound to, from the JWT or the introspection answer. Claims handed out by
    /// the extractor have it only when the request proved possession of that key with a
    /// DPoP proof; a bound token is never accepted as a bearer token.
    pub dpop_jkt: Option<String>,
    /// `act` (RFC 8693 §4.1): the party acting for [`subject`](Self::subject), when the
    /// token came from a token exchange (delegation): the caller is then `actor`, not the
    /// subject in person. `None` for a token the subject's client got for itself.
    pub actor: Option<Actor>,
}

/// The `act` claim of a delegated token (RFC 8693 §4.1): who acts, and who acted before.
/// The outermost actor is the current one; [`prior`](Self::prior) goes back the chain.
///
/// For a token Portcullis exchanged, [`subject`](Self::subject) is the `sub` the actor's
/// client has in its own `client_credentials` tokens (its client id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Actor {
    /// `act.sub`: the acting party.
    pub subject: String,
    /// `act.iss`, when the actor's `sub` is another issuer's.
    pub issuer: Option<String>,
    /// `act.act`: the party that acted before this one, if any.
    pub prior: Option<Box<Actor>>,
}

impl Actor {
    /// The actors from the current one back to the first (RFC 8693 §4.1).
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |a| a.prior.as_deref())
    }
}

/// Deepest `act` nesting read; a deeper one makes the token malformed (Portcullis
/// exchanges a token at most five times).
const MAX_ACTORS: usize = 16;

/// Reads a token's `act` (RFC 8693 §4.1): `None` when absent or `null`; an object with a
/// string `sub` (and optionally a string `iss` and a nested `act`) otherwise. Anything
/// else makes the token [`InvalidToken::Malformed`]: a delegation this crate cannot read
/// must not pass for the subject acting in person.
pub(crate) fn actor(act: Option<Value>) -> Result<Option<Actor>, InvalidToken> {
    fn read(value: Value, depth: usize) -> Result<Actor, InvalidToken> {
        let Value::Object(mut members) = value else {
            return Err(InvalidToken::Malformed);
        };
        if depth >= MAX_ACTORS {
            return Err(InvalidToken::Malformed);
        }
        let Some(Value::String(subject)) = members.remove("sub") else {
            return Err(InvalidToken::Malformed);
        };
        let issuer = match members.remove("iss") {
            None => None,
            Some(Value::String(iss)) => Some(iss),
            Some(_) => return Err(InvalidToken::Malformed),
        };
        let prior = match members.remove("act") {
            None => None,
            Some(inner) => Some(Box::new(read(inner, depth + 1)?)),
        };
        Ok(Actor { subject, issuer, prior })
    }
    match act.filter(|a| !a.is_null()) {
        None => Ok(None),
        Some(value) => read(value, 0).map(Some),
    }
}

impl VerifiedClaims {
    /// Whether the token carries `scope` (exact, case-sensitive match, RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Fails with [`AuthError::InsufficientScope`] (a `403` with `error="insufficient_scope"`
    /// when returned from a handler) unless the token carries `scope`. For claims that came
    /// with the DPoP scheme (they have a [`dpop_jkt`](Self::dpop_jkt)) the error says so, and
    /// its challenge is a `DPoP` one with `algs` (RFC 9449 §7.1); it has no realm, which only
    /// the validator knows ([`Scoped`](crate::Scoped) includes it).
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
                dpop: self.dpop_jkt.is_some(),
            })
        }
    }

    /// The scopes joined with spaces, as on the wire.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Reads a token's `cnf` (RFC 7800 §3.1): `None` for an unbound token, the `jkt` of a
/// DPoP-bound one (RFC 9449 §6). A `cnf` of `null` is no `cnf`, as it always was here:
/// serde reads it as absent, and a token's meaning must not change when DPoP is turned on.
///
/// With DPoP off (`dpop_enabled` false) any other `cnf` is [`InvalidToken::BoundToKey`], as
/// before DPoP support: the token is bound to something this validator does not check.
/// With DPoP on, a `cnf` that is not an object, is empty, or whose `jkt` is not the
/// base64url of a SHA-256 digest makes the token [`InvalidToken::Malformed`]; a `cnf` with
/// any other member (`x5t#S256` of RFC 8705, or one we do not know) binds the token to
/// something this crate cannot check, so it is [`InvalidToken::BoundToKey`]: never taken as
/// a bearer token, nor as a DPoP one.
pub(crate) fn dpop_binding(cnf: Option<Value>, dpop_enabled: bool) -> Result<Option<String>, InvalidToken> {
    let Some(cnf) = cnf.filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    if !dpop_enabled {
        return Err(InvalidToken::BoundToKey);
    }
    let Value::Object(mut members) = cnf else {
        return Err(InvalidToken::Malformed);
    };
    let jkt = members.remove("jkt");
    if !members.is_empty() {
        return Err(InvalidToken::BoundToKey);
    }
    match jkt {
        Some(Value::String(jkt)) if is_sha256_b64url(&jkt) => Ok(Some(jkt)),
        _ => Err(InvalidToken::Malformed),
    }
}

/// Whether `value` is what RFC 7638 makes of a SHA-256 digest: 43 base64url characters,
/// no padding, decoding to 32 bytes. Anything else could never equal a proof key's
/// thumbprint.
fn is_sha256_b64url(value: &str) -> bool {
    value.len() == 43 && URL_SAFE_NO_PAD.decode(value).is_ok_and(|d| d.len() == 32)
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
            dpop_jkt: None,
            actor: None,
        }
    }

    #[test]
    fn claims_serialize_under_their_field_names() {
        let mut c = claims("notes:read notes:write");
        c.actor = Some(Actor {
            subject: "svc".into(),
            issuer: None,
            prior: None,
        });
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["subject"], "alice");
        assert_eq!(v["scopes"], serde_json::json!(["notes:read", "notes:write"]));
        assert_eq!(v["actor"]["subject"], "svc");
        assert_eq!(v["dpop_jkt"], serde_json::Value::Null);
    }

    /// RFC 8693 §4.1: what an `act` makes of a token.
    #[test]
    fn actor_members() {
        use serde_json::json;
        assert_eq!(actor(None), Ok(None));
        assert_eq!(actor(Some(json!(null))), Ok(None));
        let one = actor(Some(json!({"sub": "svc", "exp": 1}))).unwrap().unwrap();
        assert_eq!(
            (one.subject.as_str(), one.issuer.as_deref(), one.prior.is_none()),
            ("svc", None, true)
        );
        let nested = actor(Some(
            json!({"sub": "b", "iss": "https://other.example", "act": {"sub": "a"}}),
        ))
        .unwrap()
        .unwrap();
        let chain: Vec<(&str, Option<&str>)> = nested
            .chain()
            .map(|a| (a.subject.as_str(), a.issuer.as_deref()))
            .collect();
        assert_eq!(chain, [("b", Some("https://other.example")), ("a", None)]);
        for bad in [
            json!("svc"),
            json!({}),
            json!({"sub": 7}),
            json!({"sub": "b", "iss": 1}),
            json!({"sub": "b", "act": "a"}),
            json!({"sub": "b", "act": {"iss": "x"}}),
        ] {
            assert_eq!(actor(Some(bad.clone())), Err(InvalidToken::Malformed), "{bad}");
        }
        let mut deep = json!({"sub": "first"});
        for i in 0..MAX_ACTORS {
            deep = json!({"sub": format!("a{i}"), "act": deep});
        }
        assert_eq!(actor(Some(deep)), Err(InvalidToken::Malformed));
        let mut deepest_allowed = json!({"sub": "first"});
        for i in 0..MAX_ACTORS - 1 {
            deepest_allowed = json!({"sub": format!("a{i}"), "act": deepest_allowed});
        }
        assert_eq!(
            actor(Some(deepest_allowed)).unwrap().unwrap().chain().count(),
            MAX_ACTORS
        );
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
        assert!(
            matches!(err, AuthError::InsufficientScope { ref required, dpop: false } if required == "notes:read notes:write")
        );
    }

    /// RFC 7800 §3.1, RFC 9449 §6: what a `cnf` makes of a token.
    #[test]
    fn confirmation_members() {
        use serde_json::json;
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        assert_eq!(dpop_binding(None, true), Ok(None));
        assert_eq!(dpop_binding(Some(json!(null)), true), Ok(None));
        assert_eq!(
            dpop_binding(Some(json!({ "jkt": jkt })), true),
            Ok(Some(jkt.to_owned()))
        );
        for malformed in [
            json!("jkt"),
            json!([jkt]),
            json!({}),
            json!({ "jkt": 1 }),
            json!({ "jkt": null }),
            json!({ "jkt": "" }),
            json!({ "jkt": format!("{jkt}=") }),
            json!({ "jkt": &jkt[..42] }),
            json!({ "jkt": jkt.replace('-', "+") }),
        ] {
            assert_eq!(
                dpop_binding(Some(malformed.clone()), true),
                Err(InvalidToken::Malformed),
                "{malformed}"
            );
            // With DPoP off, as before it: bound to what this validator cannot check.
            assert_eq!(
                dpop_binding(Some(malformed.clone()), false),
                Err(InvalidToken::BoundToKey),
                "{malformed}"
            );
        }
        for other in [
            json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
            json!({ "jkt": jkt, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
            json!({ "jwk": { "kty": "EC" } }),
        ] {
            for dpop_enabled in [true, false] {
                assert_eq!(
                    dpop_binding(Some(other.clone()), dpop_enabled),
                    Err(InvalidToken::BoundToKey),
                    "{other}"
                );
            }
        }
        assert_eq!(dpop_binding(None, false), Ok(None));
        assert_eq!(dpop_binding(Some(json!(null)), false), Ok(None));
        assert_eq!(
            dpop_binding(Some(json!({ "jkt": jkt })), false),
            Err(InvalidToken::BoundToKey)
        );
    }

    /// A missing scope says whether the claims came with the DPoP scheme, so the challenge
    /// can answer in it.
    #[test]
    fn insufficient_scope_knows_the_scheme() {
        let mut c = claims("notes:read");
        assert!(matches!(
            c.require_scope("x"),
            Err(AuthError::InsufficientScope { dpop: false, .. })
        ));
        c.dpop_jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
        assert!(matches!(
            c.require_scopes(&["x", "y"]),
            Err(AuthError::InsufficientScope { dpop: true, ref required }) if required == "x y"
        ));
    }
}
