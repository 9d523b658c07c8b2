//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a
//! confidential client registers its public keys (a JWK Set) instead of getting a secret,
//! and proves who it is with a JWT it signs: `iss` and `sub` its client id, `aud` this
//! server, an `exp` at most an hour ahead, and a `jti` it never sends twice. RFC 9700 §2.5
//! recommends such asymmetric methods: the server holds nothing that lets anyone act as
//! the client.

use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use portcullis_protocol::{ClientId, ErrorCode};
use time::{Duration, OffsetDateTime};

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::jws::{self, Compact, Exp, LEEWAY, PRIVATE_MEMBERS, check_key, fits, named};
use crate::model::{Client, ClientKind};
use crate::service::Portcullis;

/// RFC 7523 §2.2 `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Bounds on what a client registers and sends.
const MAX_JWKS_BYTES: usize = 16 * 1024;
const MAX_KEYS: usize = 8;
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
const MAX_JTI_CHARS: usize = 256;
/// How much longer than an assertion could be accepted its `jti` is kept: nodes' clocks
/// may disagree by more than `LEEWAY`.
const CLOCK_MARGIN: Duration = Duration::minutes(5);

fn invalid_jwks(message: impl Into<String>) -> Error {
    Error::invalid("jwks", message)
}

/// Checks a JWK Set a client registers: 1 to 8 public signing keys (RSA of 2048 bits or
/// more, EC P-256 or P-384, Ed25519), distinct `kid`s. Returns it as compact JSON; blank
/// is none.
pub fn check_jwks(raw: &str) -> Result<Option<String>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_JWKS_BYTES {
        return Err(invalid_jwks(format!("must be at most {MAX_JWKS_BYTES} bytes")));
    }
    let not_a_set = || invalid_jwks("must be a JWK Set: a JSON object with a keys array");
    // No member twice at any depth: which of two a reader takes is its own choice (RFC
    // 8259 §4), and two readers could see two different keys.
    let mut value = match portcullis_protocol::json::object(raw.as_bytes()) {
        Ok(members) => serde_json::Value::Object(members),
        Err(portcullis_protocol::json::ObjectError::Repeated(e)) => {
            return Err(invalid_jwks(format!("names a member twice: {e}")));
        }
        Err(_) => return Err(not_a_set()),
    };
    let keys = value
        .get_mut("keys")
        .and_then(|k| k.as_array_mut())
        .ok_or_else(not_a_set)?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(invalid_jwks(format!("must hold 1 to {MAX_KEYS} keys")));
    }
    let mut kids = Vec::new();
    for (i, key) in keys.iter_mut().enumerate() {
        let n = i + 1;
        // RFC 9864's name for EdDSA over Ed25519, stored under the name jsonwebtoken knows.
        if key.get("alg").and_then(|a| a.as_str()) == Some("Ed25519") {
            key["alg"] = serde_json::Value::String("EdDSA".into());
        }
        if PRIVATE_MEMBERS.iter().any(|m| key.get(m).is_some()) {
            return Err(invalid_jwks(format!(
                "key {n} is a private or symmetric key: register the public keys only"
            )));
        }
        let jwk: Jwk = serde_json::from_value(key.clone()).map_err(|_| {
            invalid_jwks(format!(
                "key {n} is not a public key this server can use (RSA, EC P-256 or P-384, Ed25519)"
            ))
        })?;
        check_key(&jwk).map_err(|why| invalid_jwks(format!("key {n} {why}")))?;
        if let Some(kid) = &jwk.common.key_id {
            if kids.contains(kid) {
                return Err(invalid_jwks(format!("key {n} repeats the kid {kid:?}")));
            }
            kids.push(kid.clone());
        }
    }
    Ok(Some(value.to_string()))
}

/// Why an assertion was refused: the description of the `invalid_client` error, and
/// the reason recorded in the audit event, with a cause for the audit event only (what
/// the caller may not learn).
#[derive(Debug)]
struct Refusal(String, Option<String>);

fn refusal(why: impl Into<String>) -> Refusal {
    Refusal(why.into(), None)
}

/// The assertion taken apart, with its `kid`.
fn split(assertion: &str) -> Result<(Compact<'_>, Option<String>), Refusal> {
    let parts = jws::split(assertion, "the client_assertion", MAX_ASSERTION_BYTES).map_err(refusal)?;
    // RFC 7523bis explicit typing: a JWT typed as something else (an access token, a
    // DPoP proof, a request object) is not a client assertion, whoever signed it.
    if let Some(typ) = parts.header.get("typ") {
        let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != "jwt" && typ != "client-authentication+jwt" {
            return Err(refusal(
                "the client_assertion's typ must be JWT or client-authentication+jwt",
            ));
        }
    }
    // RFC 9101 §10.8: a request object travels through the browser, signed by the
    // client with its iss and an aud of this server; one without typ must not pass as
    // the client's credential for whoever read it there.
    if parts.claims.contains_key("response_type") {
        return Err(refusal(
            "the client_assertion carries response_type: a request object is not a client assertion",
        ));
    }
    let kid = match parts.header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(refusal("the client_assertion's kid must be a string")),
    };
    Ok((parts, kid))
}

impl Portcullis {
    /// Authenticates a client by a `client_assertion` (RFC 7523 §3), sent to `endpoint`
    /// (the URL of the endpoint receiving it). `client_id`, when the request names one,
    /// must be the assertion's `sub`. A failure is `invalid_client` saying what was wrong
    /// (the same words for an unknown client, one without keys and a bad signature, so
    /// they do not tell which clients use keys), and a `client.auth_failed` event with
    /// the reason.
    pub async fn authenticate_client_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        endpoint: &str,
        ip: Option<&str>,
    ) -> Result<Client> {
        match self.verify_assertion(client_id, assertion, endpoint).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err((claimed, Refusal(why, cause)))) => {
                let mut detail = serde_json::json!({ "method": "private_key_jwt", "reason": why });
                if let Some(cause) = cause {
                    detail["cause"] = serde_json::Value::String(cause);
                }
                let mut event = Event::new("client.auth_failed")
                    .ip(ip.map(str::to_owned))
                    .detail(detail);
                if let Some(id) = claimed {
                    event = event.client(id.as_str());
                }
                self.audit(event);
                Err(Error::oauth(
                    ErrorCode::InvalidClient,
                    format!("client authentication failed: {why}"),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// The client, or why not (with the client the assertion names, if it names one).
    async fn verify_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        endpoint: &str,
    ) -> Result<std::result::Result<Client, (Option<ClientId>, Refusal)>> {
        let (parts, kid) = match split(assertion) {
            Ok(p) => p,
            Err(r) => return Ok(Err((client_id.and_then(|id| ClientId::parse(id).ok()), r))),
        };
        let string = |name: &str| parts.claim_str(name);
        let Some(sub) = string("sub") else {
            let claimed = client_id.and_then(|id| ClientId::parse(id).ok());
            return Ok(Err((
                claimed,
                refusal("the client_assertion needs sub, the client_id, as a string"),
            )));
        };
        let Ok(id) = ClientId::parse(sub) else {
            return Ok(Err((None, refusal(NOT_VERIFIED))));
        };
        if client_id.is_some_and(|named| named != sub) {
            return Ok(Err((
                Some(id),
                refusal("the client_assertion's sub is not the client_id"),
            )));
        }
        let client = self.client_cache.get(self.store.as_ref(), &id).await?;
        let verified = match client.as_deref() {
            Some(c) => match self.signed_by_client(c, &parts, kid.as_deref()).await? {
                Ok(verified) => verified,
                Err(why) => {
                    let cause = format!("the keys could not be read from its jwks_uri: {why}");
                    return Ok(Err((Some(id), Refusal(NOT_VERIFIED.into(), Some(cause)))));
                }
            },
            None => false,
        };
        let Some(client) = client.filter(|_| verified) else {
            return Ok(Err((Some(id), refusal(NOT_VERIFIED))));
        };
        // OIDC Registration §2: "MUST be rejected" if signed with another algorithm than
        // the one the client registered.
        if let Some(only) = &client.token_endpoint_auth_signing_alg
            && crate::jws::algorithm_name(parts.alg) != only
        {
            return Ok(Err((
                Some(id),
                refusal("the client_assertion is not signed with the client's token_endpoint_auth_signing_alg"),
            )));
        }
        // Signed by the client: now its claims count.
        let now = self.now();
        let exp = match self.check_claims(&parts, sub, endpoint, now) {
            Ok(exp) => exp,
            Err(r) => return Ok(Err((Some(id), r))),
        };
        let jti = match string("jti") {
            Some(j) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS && !crate::params::holds_nul(j) => j,
            _ => {
                return Ok(Err((
                    Some(id),
                    refusal("the client_assertion needs a jti of 1 to 256 characters, none of them NUL"),
                )));
            }
        };
        // Kept until no node could take the assertion as unexpired: its leeway, and a
        // margin for nodes whose clocks disagree.
        let keep_until = OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|_| Error::Unexpected("exp out of range after its check".into()))?
            + Duration::seconds(LEEWAY)
            + CLOCK_MARGIN;
        if !self.store.record_client_jti(&client.id, jti, keep_until, now).await? {
            return Ok(Err((
                Some(id),
                refusal("the client_assertion was used before (its jti is spent)"),
            )));
        }
        Ok(Ok(Client::clone(&client)))
    }

    /// Whether `parts` is signed by one of the keys `client` registered (inline, or at
    /// its `jwks_uri`) with the key `kid` names, if it names one: `false` for a client
    /// that may not sign (public, disabled, without keys). `Err` with why, when the keys
    /// at its `jwks_uri` could not be read. A signature that does not verify with the
    /// keys known makes the keys be read again (a rollover: the client signs with a key
    /// published since). Client assertions and request objects are checked with it.
    pub(crate) async fn signed_by_client(
        &self,
        client: &Client,
        parts: &Compact<'_>,
        kid: Option<&str>,
    ) -> Result<std::result::Result<bool, String>> {
        let verifies = |keys: &[Jwk]| {
            keys.iter()
                .filter(|k| {
                    kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid))
                        && fits(k, parts.alg)
                        && k.common
                            .key_algorithm
                            .as_ref()
                            .is_none_or(|a| named(a) == Some(parts.alg))
                })
                .any(|k| parts.verifies_with(k))
        };
        if client.kind != ClientKind::Confidential || client.disabled {
            return Ok(Ok(false));
        }
        if let Some(jwks) = &client.jwks {
            let keys = serde_json::from_str::<JwkSet>(jwks)
                .map_err(|e| Error::Unexpected(format!("client {} has unreadable keys: {e}", client.id.as_str())))?;
            return Ok(Ok(verifies(&keys.keys)));
        }
        let Some(url) = &client.jwks_uri else {
            return Ok(Ok(false));
        };
        let asked = std::time::Instant::now();
        let known = self
            .remote_jwks
            .keys(&client.id, url, crate::outbound::Reach::of(client), None)
            .await;
        if known.as_ref().is_ok_and(|keys| verifies(keys)) {
            return Ok(Ok(true));
        }
        Ok(
            match self
                .remote_jwks
                .keys(&client.id, url, crate::outbound::Reach::of(client), Some(asked))
                .await
            {
                // The same keys (no new read): not checked twice.
                Ok(keys) if known.as_ref().is_ok_and(|k| Arc::ptr_eq(k, &keys)) => Ok(false),
                Ok(keys) => Ok(verifies(&keys)),
                Err(why) => Err(why.to_string()),
            },
        )
    }

    /// RFC 7523 §3: `iss` and `sub` the client, `aud` this server, `exp` not past and at
    /// most an hour ahead, `nbf` and `iat` not in the future, each with `LEEWAY`.
    /// Returns `exp`.
    fn check_claims(
        &self,
        parts: &Compact<'_>,
        client_id: &str,
        endpoint: &str,
        now: OffsetDateTime,
    ) -> std::result::Result<i64, Refusal> {
        let claims = &parts.claims;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(client_id) {
            return Err(refusal("the client_assertion's iss must be the client_id, as a string"));
        }
        let token_endpoint = self.settings.endpoint("/token");
        let strict = self.settings.strict_client_assertion_audience;
        match claims.get("aud") {
            Some(serde_json::Value::String(aud)) if *aud == self.settings.issuer => {}
            Some(serde_json::Value::String(aud)) if !strict && (*aud == token_endpoint || aud == endpoint) => {}
            Some(serde_json::Value::String(_)) if strict => {
                // draft-ietf-oauth-rfc7523bis: the issuer only, so that an assertion
                // made for another server's endpoint cannot be played here.
                return Err(refusal(format!(
                    "the client_assertion's aud must be this server's issuer, {}",
                    self.settings.issuer
                )));
            }
            Some(serde_json::Value::Array(_)) => {
                // draft-ietf-oauth-rfc7523bis: one audience, so that an assertion made
                // for another server cannot also name this one.
                return Err(refusal(format!(
                    "the client_assertion's aud must be one string, this server's issuer: {}",
                    self.settings.issuer
                )));
            }
            _ => {
                return Err(refusal(format!(
                    "the client_assertion's aud must name this server: its issuer {} (or the URL of the endpoint called)",
                    self.settings.issuer
                )));
            }
        }
        // RFC 7523 §3: an assertion MUST carry exp (it also bounds its jti's memory).
        parts
            .check_lifetime("the client_assertion", now.unix_timestamp(), Exp::Required)
            .map_err(refusal)?
            .ok_or_else(|| refusal("the client_assertion has no exp"))
    }
}

/// The one answer for an unknown client, a client without keys, and a signature that
/// does not verify.
const NOT_VERIFIED: &str = "the client_assertion is not signed by a key registered for its client (sub)";

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
    }

    /// A real 2048-bit RSA public key, as a JWK with kid `k1`.
    fn rsa_jwk() -> serde_json::Value {
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        serde_json::json!({"kty": "RSA", "kid": "k1", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
    }

    #[test]
    fn registered_keys_are_public_signing_keys() {
        let set = |keys: serde_json::Value| serde_json::json!({ "keys": keys }).to_string();
        assert_eq!(check_jwks("  ").unwrap(), None);
        let good = rsa_jwk();
        assert!(check_jwks(&set(serde_json::json!([good]))).unwrap().is_some());
        let field_error = |raw: &str| match check_jwks(raw) {
            Err(Error::Invalid { field, message }) => {
                assert_eq!(field, "jwks");
                message
            }
            other => panic!("{raw}: {other:?}"),
        };
        let with_n = |n: Vec<u8>| {
            let mut k = good.clone();
            k["n"] = serde_json::json!(b64(&n));
            k
        };
        assert!(field_error(&set(serde_json::json!([with_n(vec![0xc5; 1025])]))).contains("4096"));
        assert!(
            field_error(&set(serde_json::json!([with_n(vec![0x7f; 256])]))).contains("2048"),
            "2047 bits"
        );
        let mut padded = vec![0];
        padded.extend(vec![0xc5; 256]);
        assert!(field_error(&set(serde_json::json!([with_n(padded)]))).contains("leading zero"));
        let mut e3 = good.clone();
        e3["e"] = serde_json::json!("Aw");
        assert!(field_error(&set(serde_json::json!([e3]))).contains("65537"));
        let off_curve = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "y": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
        assert!(field_error(&set(serde_json::json!([off_curve]))).contains("not a point on its curve"));
        assert!(field_error("{}").contains("keys array"));
        assert!(field_error("not json").contains("keys array"));
        assert!(field_error(&set(serde_json::json!([]))).contains("1 to 8"));
        let mut private = good.clone();
        private["d"] = serde_json::json!("AQAB");
        assert!(field_error(&set(serde_json::json!([private]))).contains("private"));
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(field_error(&set(serde_json::json!([oct]))).contains("private or symmetric"));
        let mut enc = good.clone();
        enc["use"] = serde_json::json!("enc");
        assert!(field_error(&set(serde_json::json!([enc]))).contains("use must be sig"));
        let mut hs = good.clone();
        hs["alg"] = serde_json::json!("HS256");
        assert!(field_error(&set(serde_json::json!([hs]))).contains("algorithm"));
        let mut es = good.clone();
        es["alg"] = serde_json::json!("ES256");
        assert!(field_error(&set(serde_json::json!([es]))).contains("algorithm"));
        let twice = set(serde_json::json!([good, good]));
        assert!(field_error(&twice).contains("repeats the kid"));
        // A member named twice, at any depth: refused, not read as the last.
        let one = serde_json::json!({"keys": [good]}).to_string();
        let keys_twice = format!(r#"{{"keys":[],{}"#, &one[1..]);
        assert!(field_error(&keys_twice).contains("twice"), "{keys_twice}");
        let kty_twice = one.replacen(r#""kty":"#, r#""kty":"EC","kty":"#, 1);
        assert!(field_error(&kty_twice).contains("twice"), "{kty_twice}");
        // RFC 9864's name for EdDSA over Ed25519 is registered, stored as EdDSA.
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let stored = check_jwks(&set(serde_json::json!([ed]))).unwrap().unwrap();
        assert!(stored.contains(r#""alg":"EdDSA""#), "{stored}");
        let p521 = serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
        assert!(field_error(&set(serde_json::json!([p521]))).contains("curve"));
        assert!(field_error(&" ".repeat(10).replace(' ', "x").repeat(2000)).contains("bytes"));
    }
}
