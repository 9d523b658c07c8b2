//! Request objects (RFC 9101, JWT-Secured Authorization Request; OIDC Core §6.1): a
//! client sends its authorization request as a JWT it signs, in the `request`
//! parameter of `/authorize` or of `/par`, so that nobody on the way (the browser, an
//! extension, a proxy's log) can change it unnoticed.
//!
//! Only signed objects are taken, checked against the keys the client registered for
//! `private_key_jwt` (inline or at its `jwks_uri`), with the asymmetric algorithms of
//! client assertions: the server keeps no secret a client could sign with (secrets are
//! stored hashed), and an unsigned object (`alg` `none`) would protect nothing. As RFC
//! 9101 §5 requires, the parameters inside are the only ones read: those sent beside
//! the object are ignored, except `client_id`, which says whose keys to check it with,
//! and `response_type`, which must agree with the object's when both are sent (OIDC
//! Core §6.1).

use crate::authorize::AuthorizeParams;
use crate::error::Result;
use crate::jws::{self, Compact, Exp, JsonObject};
use crate::model::Client;
use crate::service::Portcullis;

/// Bound on a request object: a URL this long still fits every browser, and the
/// largest `claims` request is far smaller.
pub(crate) const MAX_BYTES: usize = 16 * 1024;
/// Claims of the JWT itself, not parameters of the request.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// Why a request object was refused: `invalid_request_object` (RFC 9101 §7) with this
/// description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

fn refused(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

/// The words for an object not signed by the client's keys, whatever the reason (no
/// keys, a bad signature, keys that could not be read): they do not tell which
/// clients have keys. The reason is logged.
const NOT_VERIFIED: &str = "the request object is not signed by a key registered for the client";

impl Portcullis {
    /// The authorization request carried by `jwt`, the `request` parameter sent for
    /// `client` beside the parameters `outside` (RFC 9101 §6): its signature, then its
    /// claims (`iss` the client, `aud` this server's issuer, an `exp` (if any) at most an
    /// hour ahead, `nbf` and `iat` not in the future, `client_id` the client if present, no
    /// nested `request` or `request_uri`), then its parameters. `client_id` is set to the
    /// client.
    pub(crate) async fn open_request_object(
        &self,
        client: &Client,
        outside: &AuthorizeParams,
        jwt: &str,
    ) -> Result<std::result::Result<AuthorizeParams, Refused>> {
        if self.settings.allow_unsigned_request_objects
            && let Some(claims) = unsecured(jwt)
        {
            return Ok(claims.and_then(|claims| self.open_unsigned(client, outside, &claims)));
        }
        let parts = match split(jwt) {
            Ok(p) => p,
            Err(r) => return Ok(Err(r)),
        };
        let kid = match parts.header.get("kid") {
            None => None,
            Some(serde_json::Value::String(k)) => Some(k.as_str()),
            Some(_) => return Ok(Err(refused("the request object's kid must be a string"))),
        };
        match self.signed_by_client(client, &parts, kid).await? {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    client = client.id.as_str(),
                    "request object not signed by the client's keys"
                );
                return Ok(Err(refused(NOT_VERIFIED)));
            }
            Err(why) => {
                tracing::warn!(client = client.id.as_str(), %why, "request object: the client's jwks_uri could not be read");
                return Ok(Err(refused(NOT_VERIFIED)));
            }
        }
        // OIDC Registration §2: "MUST be rejected" if signed with another algorithm than
        // the one the client registered.
        if let Some(only) = &client.request_object_signing_alg
            && crate::jws::algorithm_name(parts.alg) != only
        {
            return Ok(Err(refused(
                "the request object is not signed with the client's request_object_signing_alg",
            )));
        }
        Ok(self
            .check_request_claims(&parts.claims, client, true)
            .and_then(|()| params(&parts.claims, client, outside)))
    }

    /// An unsigned request object (`alg` `none`, OIDC Core §6.1), taken with
    /// `allow_unsigned_request_objects` only, and never for a client that must sign or
    /// registered an algorithm: its parameters are as trustworthy as those of a plain
    /// request, and no more.
    fn open_unsigned(
        &self,
        client: &Client,
        outside: &AuthorizeParams,
        claims: &JsonObject,
    ) -> std::result::Result<AuthorizeParams, Refused> {
        if client.require_signed_request_object || self.settings.require_signed_request_object {
            return Err(refused("request objects must be signed here"));
        }
        if client.request_object_signing_alg.is_some() {
            return Err(refused(
                "the request object is not signed with the client's request_object_signing_alg",
            ));
        }
        self.check_request_claims(claims, client, false)?;
        params(claims, client, outside)
    }

    /// RFC 9101 §4 and §10.2: `iss` the client, `aud` this server, and a bounded life.
    /// An unsigned object (`signed` false) need not name `iss` and `aud` (OIDC Core
    /// §6.1 asks them of signed ones), but may not name others.
    fn check_request_claims(
        &self,
        claims: &JsonObject,
        client: &Client,
        signed: bool,
    ) -> std::result::Result<(), Refused> {
        let id = client.id.as_str();
        let iss = claims.get("iss");
        if (signed || iss.is_some()) && iss.and_then(|v| v.as_str()) != Some(id) {
            return Err(refused("the request object's iss must be the client_id, as a string"));
        }
        let issuer = self.settings.issuer.as_str();
        let for_us = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => aud == issuer,
            Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(issuer)),
            None => !signed,
            _ => false,
        };
        if !for_us {
            return Err(refused(format!(
                "the request object's aud must be this server's issuer, {issuer}"
            )));
        }
        // RFC 9101 and OIDC Core §6.1 make exp optional (FAPI requires it): the
        // OpenID conformance suite's signed request objects carry none. When present it
        // bounds the object's life.
        jws::check_lifetime(
            claims,
            "the request object",
            self.now().unix_timestamp(),
            Exp::IfPresent,
        )
        .map_err(Refused)?;
        Ok(())
    }
}

/// Takes the object apart: a signed JWT (an encrypted one is named as such), typed as a
/// request object or as a plain JWT if typed at all (RFC 9101 §10.8: a DPoP proof or a
/// client assertion is not a request).
fn split(jwt: &str) -> std::result::Result<Compact<'_>, Refused> {
    if jwt.split('.').count() == 5 {
        return Err(refused(
            "encrypted request objects are not supported; sign it (JWS) only",
        ));
    }
    let parts = jws::split(jwt, "the request object", MAX_BYTES).map_err(Refused)?;
    check_typ(&parts.header)?;
    Ok(parts)
}

/// RFC 9101 §10.8: typed as a request object or as a plain JWT, if typed at all.
fn check_typ(header: &JsonObject) -> std::result::Result<(), Refused> {
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != "oauth-authz-req+jwt" && typ != "jwt" {
            return Err(refused("the request object's typ must be oauth-authz-req+jwt or JWT"));
        }
    }
    Ok(())
}

/// The claims of an unsecured JWT (RFC 7519 §6: `alg` `none`, an empty signature), or
/// `None` if `jwt` is not one (then it is read as a signed one, and refused as such).
fn unsecured(jwt: &str) -> Option<std::result::Result<JsonObject, Refused>> {
    if jwt.len() > MAX_BYTES {
        return None;
    }
    let mut parts = jwt.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = jws::decode_part(header)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return None;
    }
    Some((|| {
        if !signature.is_empty() {
            return Err(refused(
                "an unsigned request object (alg none) must have an empty signature",
            ));
        }
        if header.contains_key("crit") {
            return Err(refused(
                "the request object's crit names an extension this server does not know",
            ));
        }
        check_typ(&header)?;
        jws::decode_part(payload).ok_or_else(|| refused("the request object's payload is not a JSON object"))
    })())
}

/// The request's parameters, from the object's claims: strings as they are, numbers
/// (`max_age`) in decimal, the `claims` request as JSON, a `resource` array as that
/// parameter repeated. Claims this server does not
/// read as parameters are ignored, as unknown parameters are.
fn params(
    claims: &JsonObject,
    client: &Client,
    outside: &AuthorizeParams,
) -> std::result::Result<AuthorizeParams, Refused> {
    let id = client.id.as_str();
    let mut pairs = Vec::new();
    for (name, value) in claims {
        if JWT_CLAIMS.contains(&name.as_str()) || !AuthorizeParams::is_known(name) {
            continue;
        }
        if name == "request" || name == "request_uri" {
            // RFC 9101 §4: no object inside an object.
            return Err(refused(format!("the request object must not contain {name}")));
        }
        let value = match (name.as_str(), value) {
            // RFC 8707 §2 allows several; each counts as the parameter sent once more
            // (one per request here, so more than one is refused as a repeat is).
            ("resource", serde_json::Value::Array(all)) if all.iter().all(serde_json::Value::is_string) => {
                pairs.extend(all.iter().filter_map(|r| Some((name.clone(), r.as_str()?.to_owned()))));
                continue;
            }
            (_, serde_json::Value::String(s)) => s.clone(),
            (_, serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            ("claims", serde_json::Value::Object(_)) => value.to_string(),
            _ => return Err(refused(format!("the request object's {name} must be a string"))),
        };
        pairs.push((name.clone(), value));
    }
    let mut inside = AuthorizeParams::from_pairs(pairs);
    // RFC 9101 §5: the client_id sent beside the object is the one inside, if it names one.
    if inside.client_id.as_deref().is_some_and(|inner| inner != id) {
        return Err(refused(
            "the request object's client_id is not the client_id of the request",
        ));
    }
    inside.client_id = Some(id.to_owned());
    // OIDC Core §6.1: a response_type sent both ways must be the same.
    if let (Some(o), Some(i)) = (&outside.response_type, &inside.response_type)
        && o != i
    {
        return Err(refused(
            "the response_type sent beside the request object is not the one inside it",
        ));
    }
    Ok(inside)
}
