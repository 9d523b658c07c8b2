//! The `claims` parameter of an OpenID authorization request (OIDC Core §5.5), as far as
//! this server acts on it.

use portcullis_protocol::ScopeSet;

/// An OIDC Core §5.5 `claims` request, as far as this server acts on it: which scopes
/// release the claims asked for, and a `sub` value asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ClaimsRequest {
    /// Names of the claims asked for, in `userinfo` or `id_token`.
    pub(super) names: Vec<String>,
    /// §5.5.1: `{"sub": {"value": "..."}}`. The spec says so of the ID token; a value
    /// asked of userinfo is held to the same (stricter, and what the client means).
    pub(super) sub: Option<String>,
    /// §5.5.1.1: `acr` asked for in `id_token` with `"essential": true` and the values
    /// it must have (`values`, or one `value`): a requirement the authentication must
    /// meet. An essential `acr` without values, or one asked of `userinfo`, is a claim
    /// like any other, which §5.5.1 forbids failing a request for.
    pub(super) essential_acr: bool,
}

impl ClaimsRequest {
    /// Parses the JSON object of §5.5: members `userinfo` and `id_token` (others are
    /// ignored), each an object whose members are claim names with `null` or an object
    /// (`essential` a boolean and `values` an array, when present).
    pub(super) fn parse(raw: &str) -> Result<Self, &'static str> {
        const BAD: &str = "claims must be a JSON object as OIDC Core §5.5 describes";
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| BAD)?;
        let top = value.as_object().ok_or(BAD)?;
        let mut out = Self::default();
        for member in ["userinfo", "id_token"] {
            let Some(requested) = top.get(member) else {
                continue;
            };
            for (name, rule) in requested.as_object().ok_or(BAD)? {
                match rule {
                    serde_json::Value::Null => {}
                    serde_json::Value::Object(rule) => {
                        if rule.get("essential").is_some_and(|e| !e.is_boolean())
                            || rule.get("values").is_some_and(|v| !v.is_array())
                        {
                            return Err(BAD);
                        }
                        if member == "id_token"
                            && name == "acr"
                            && rule.get("essential") == Some(&serde_json::Value::Bool(true))
                            && (rule
                                .get("values")
                                .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                                || rule.get("value").is_some_and(|v| !v.is_null()))
                        {
                            out.essential_acr = true;
                        }
                        if let Some(v) = rule.get("value").filter(|_| name == "sub") {
                            let v = v.as_str().ok_or(BAD)?;
                            if out.sub.as_deref().is_some_and(|s| s != v) {
                                return Err("claims names two different sub values");
                            }
                            out.sub = Some(v.to_owned());
                        }
                    }
                    _ => return Err(BAD),
                }
                if !out.names.contains(name) {
                    out.names.push(name.clone());
                }
            }
        }
        Ok(out)
    }

    /// The scopes whose claims (OIDC Core §5.4) were asked for.
    pub(super) fn scopes(&self) -> ScopeSet {
        let mut scopes = Vec::new();
        for name in &self.names {
            let scope = match name.as_str() {
                "name" | "family_name" | "given_name" | "middle_name" | "nickname" | "preferred_username"
                | "profile" | "picture" | "website" | "gender" | "birthdate" | "zoneinfo" | "locale" | "updated_at" => {
                    "profile"
                }
                "email" | "email_verified" => "email",
                _ => continue,
            };
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        ScopeSet::parse(&scopes.join(" ")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_requests() {
        let r = ClaimsRequest::parse(
            r#"{"userinfo":{"name":{"essential":true},"email":null,"x-custom":null},
                "id_token":{"auth_time":{"essential":true},"sub":{"value":"u1"},"acr":{"values":["a"]}},
                "other":{"ignored":1}}"#,
        )
        .unwrap();
        assert_eq!(r.sub.as_deref(), Some("u1"));
        assert_eq!(r.scopes().as_string(), "email profile");
        // acr asked for without `essential` (or with it false) may go unanswered.
        assert!(!r.essential_acr);
        let not_essential = ClaimsRequest::parse(r#"{"id_token":{"acr":{"essential":false,"values":["a"]}}}"#);
        assert!(!not_essential.unwrap().essential_acr);
        for essential in [
            r#"{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:3"]}}}"#,
            r#"{"id_token":{"acr":{"essential":true,"value":"urn:example:loa:3"}}}"#,
        ] {
            assert!(ClaimsRequest::parse(essential).unwrap().essential_acr, "{essential}");
        }
        // §5.5.1: no error for a claim not returned, essential or not, but for §5.5.1.1's
        // `acr` with values in the ID token.
        for claim in [
            r#"{"id_token":{"acr":{"essential":true}}}"#,
            r#"{"userinfo":{"acr":{"essential":true}}}"#,
            r#"{"userinfo":{"acr":{"essential":true,"values":["urn:example:loa:3"]}}}"#,
            // Values that name no class ask for none.
            r#"{"id_token":{"acr":{"essential":true,"values":[]}}}"#,
            r#"{"id_token":{"acr":{"essential":true,"value":null}}}"#,
        ] {
            assert!(!ClaimsRequest::parse(claim).unwrap().essential_acr, "{claim}");
        }
        assert_eq!(
            ClaimsRequest::parse(r#"{"id_token":{"auth_time":null}}"#)
                .unwrap()
                .scopes()
                .as_string(),
            ""
        );
        for bad in [
            "",
            "[]",
            "null",
            r#"{"userinfo":[]}"#,
            r#"{"userinfo":{"name":true}}"#,
            r#"{"userinfo":{"name":{"essential":"yes"}}}"#,
            r#"{"userinfo":{"name":{"values":"a"}}}"#,
            r#"{"id_token":{"sub":{"value":1}}}"#,
            r#"{"id_token":{"sub":{"value":"a"}},"userinfo":{"sub":{"value":"b"}}}"#,
        ] {
            assert!(ClaimsRequest::parse(bad).is_err(), "{bad}");
        }
    }
}
