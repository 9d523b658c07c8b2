//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a
//! confidential client registers its public keys (a JWK Set) instead of getting a secret,
//! and proves who it is with a JWT it signs: `iss` and `sub` its client id, `aud` this
//! server, an `exp` at most an hour ahead, and a `jti` it never sends twice. RFC 9700 §2.5
//! recommends such asymmetric methods: the server holds nothing that lets anyone act as
//! the client.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_protocol::{ClientId, ErrorCode};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::model::{Client, ClientKind};
use crate::service::Portcullis;

/// RFC 7523 §2.2 `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signature algorithms a client assertion may use: asymmetric ones only.
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Bounds on what a client registers and sends.
const MAX_JWKS_BYTES: usize = 16 * 1024;
const MAX_KEYS: usize = 8;
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
const MAX_JTI_CHARS: usize = 256;
/// How far ahead an assertion's `exp` may be: its `jti` is kept until then.
const MAX_LIFETIME: Duration = Duration::hours(1);
/// Clock skew allowed on `exp` and `nbf`, seconds.
const LEEWAY: u64 = 60;

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

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
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|_| invalid_jwks("must be a JWK Set: a JSON object with a keys array"))?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| invalid_jwks("must be a JWK Set: a JSON object with a keys array"))?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(invalid_jwks(format!("must hold 1 to {MAX_KEYS} keys")));
    }
    let mut kids = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let n = i + 1;
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

/// Why a parsed JWK cannot verify client assertions, if it cannot.
fn check_key(jwk: &Jwk) -> std::result::Result<(), &'static str> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &rsa.n)
                .map_err(|_| "has an n that is not base64url")?;
            let bits = n.iter().position(|b| *b != 0).map_or(0, |first| (n.len() - first) * 8);
            if bits < 2048 {
                return Err("is an RSA key of fewer than 2048 bits");
            }
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            if !matches!(ec.curve, EllipticCurve::P256 | EllipticCurve::P384) {
                return Err("is on a curve this server does not verify (P-256 and P-384 only)");
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("is an OKP key that is not Ed25519");
            }
        }
        AlgorithmParameters::OctetKey(_) => return Err("is a symmetric key"),
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("is not for signatures (use must be sig)");
    }
    if let Some(alg) = &jwk.common.key_algorithm {
        let alg = named(alg).ok_or("names an algorithm this server does not accept")?;
        if !ALGORITHMS.contains(&alg) || !fits(jwk, alg) {
            return Err("names an algorithm this server does not accept for it");
        }
    }
    DecodingKey::from_jwk(jwk).map_err(|_| "cannot be read as a public key")?;
    Ok(())
}

/// Whether `alg` is one the key's type signs with.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::{ES256, ES384, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512};
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => alg == ES256,
            EllipticCurve::P384 => alg == ES384,
            _ => false,
        },
        AlgorithmParameters::OctetKeyPair(_) => alg == EdDSA,
        AlgorithmParameters::OctetKey(_) => false,
    }
}

/// The algorithm a JWK's `alg` names, if jsonwebtoken knows it.
fn named(alg: &KeyAlgorithm) -> Option<Algorithm> {
    alg.to_string().parse().ok()
}

/// The claims read before the signature is checked: only to find the client.
#[derive(Deserialize)]
struct Unverified {
    sub: Option<String>,
}

/// The claims of a verified assertion that `Validation` does not check itself.
#[derive(Deserialize)]
struct AssertionClaims {
    /// Optional here so that its absence is told as such (`Validation` requires it).
    exp: Option<i64>,
    jti: Option<String>,
}

/// Why an assertion was refused: the description of the `invalid_client` error.
fn refused(why: impl std::fmt::Display) -> Error {
    Error::oauth(ErrorCode::InvalidClient, format!("client authentication failed: {why}"))
}

impl Portcullis {
    /// Authenticates a client by a `client_assertion` (RFC 7523 §3), sent to `endpoint`
    /// (the URL of the endpoint receiving it). `client_id`, when the request names one,
    /// must be the assertion's `sub`. A failure is `invalid_client` saying what was wrong,
    /// except that an unknown, disabled or secret-holding client is "not registered for
    /// private_key_jwt"; each failure is a `client.auth_failed` event.
    pub async fn authenticate_client_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        endpoint: &str,
        ip: Option<&str>,
    ) -> Result<Client> {
        let result = self.verify_assertion(client_id, assertion, endpoint).await;
        if let Err(Error::OAuth { .. }) = &result {
            let named = client_id.map(str::to_owned).or_else(|| {
                jsonwebtoken::dangerous::insecure_decode::<Unverified>(assertion)
                    .ok()
                    .and_then(|d| d.claims.sub)
            });
            let mut event = Event::new("client.auth_failed").ip(ip.map(str::to_owned));
            if let Some(id) = named.as_deref().and_then(|id| ClientId::parse(id).ok()) {
                event = event.client(id.as_str());
            }
            self.audit(event);
        }
        result
    }

    async fn verify_assertion(&self, client_id: Option<&str>, assertion: &str, endpoint: &str) -> Result<Client> {
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(refused(format!(
                "the client_assertion is longer than {MAX_ASSERTION_BYTES} bytes"
            )));
        }
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|_| refused("the client_assertion is not a signed JWT"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused(
                "the client_assertion must be signed with RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
            ));
        }
        let sub = jsonwebtoken::dangerous::insecure_decode::<Unverified>(assertion)
            .map_err(|_| refused("the client_assertion's claims are not a JSON object"))?
            .claims
            .sub
            .ok_or_else(|| refused("the client_assertion has no sub (it must be the client_id)"))?;
        if client_id.is_some_and(|id| id != sub) {
            return Err(refused("the client_assertion's sub is not the client_id"));
        }
        let not_registered = || refused("the client is not registered for private_key_jwt");
        let id = ClientId::parse(&sub).map_err(|_| not_registered())?;
        let client = self
            .client_cache
            .get(self.store.as_ref(), &id)
            .await?
            .ok_or_else(not_registered)?;
        let jwks = match (&client.jwks, client.kind, client.disabled) {
            (Some(jwks), ClientKind::Confidential, false) => jwks,
            _ => return Err(not_registered()),
        };
        let set: JwkSet = serde_json::from_str(jwks)
            .map_err(|e| Error::Unexpected(format!("client {} has unreadable keys: {e}", client.id.as_str())))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[&sub]);
        validation.sub = Some(sub.clone());
        let token_endpoint = self.settings.endpoint("/token");
        validation.set_audience(&[self.settings.issuer.as_str(), token_endpoint.as_str(), endpoint]);
        let candidates = set.keys.iter().filter(|k| {
            header
                .kid
                .as_ref()
                .is_none_or(|kid| k.common.key_id.as_ref() == Some(kid))
                && fits(k, header.alg)
                && k.common
                    .key_algorithm
                    .as_ref()
                    .is_none_or(|a| named(a) == Some(header.alg))
        });
        let mut verified = None;
        for key in candidates {
            let Ok(decoding) = DecodingKey::from_jwk(key) else {
                continue;
            };
            match jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation) {
                Ok(data) => {
                    verified = Some(data.claims);
                    break;
                }
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {}
                    ErrorKind::ExpiredSignature => return Err(refused("the client_assertion has expired")),
                    ErrorKind::ImmatureSignature => return Err(refused("the client_assertion is not valid yet (nbf)")),
                    ErrorKind::InvalidAudience => {
                        return Err(refused(format!(
                            "the client_assertion's aud must name this server: {} or {token_endpoint}",
                            self.settings.issuer
                        )));
                    }
                    ErrorKind::InvalidIssuer => return Err(refused("the client_assertion's iss is not the client_id")),
                    ErrorKind::InvalidSubject => {
                        return Err(refused("the client_assertion's sub is not the client_id"));
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        return Err(refused(format!("the client_assertion has no {claim}")));
                    }
                    _ => return Err(refused("the client_assertion's claims cannot be read")),
                },
            }
        }
        let claims = verified.ok_or_else(|| {
            refused("the client_assertion's signature does not verify with any of the client's registered keys")
        })?;
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
            .ok_or_else(|| refused("the client_assertion needs a jti of 1 to 256 characters"))?;
        let now = self.now();
        let expires_at = claims
            .exp
            .and_then(|exp| OffsetDateTime::from_unix_timestamp(exp).ok())
            .ok_or_else(|| refused("the client_assertion's exp is out of range"))?;
        if expires_at > now + MAX_LIFETIME + Duration::seconds(LEEWAY as i64) {
            return Err(refused("the client_assertion's exp is more than an hour ahead"));
        }
        if !self
            .store
            .record_client_assertion(&client.id, &jti, expires_at, now)
            .await?
        {
            return Err(refused("the client_assertion was used before (its jti is spent)"));
        }
        Ok(Client::clone(&client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(bits: usize) -> serde_json::Value {
        // A modulus of `bits` bits (its value does not matter to the size check).
        let mut n = vec![0xc1_u8; bits / 8];
        n[0] = 0xd3;
        serde_json::json!({
            "kty": "RSA",
            "kid": "k1",
            "n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &n),
            "e": "AQAB",
        })
    }

    #[test]
    fn registered_keys_are_public_signing_keys() {
        let set = |keys: serde_json::Value| serde_json::json!({ "keys": keys }).to_string();
        assert_eq!(check_jwks("  ").unwrap(), None);
        assert!(check_jwks(&set(serde_json::json!([rsa_jwk(2048)]))).unwrap().is_some());
        let field_error = |raw: &str| match check_jwks(raw) {
            Err(Error::Invalid { field, message }) => {
                assert_eq!(field, "jwks");
                message
            }
            other => panic!("{raw}: {other:?}"),
        };
        assert!(field_error(&set(serde_json::json!([rsa_jwk(1024)]))).contains("2048"));
        assert!(field_error("{}").contains("keys array"));
        assert!(field_error("not json").contains("keys array"));
        assert!(field_error(&set(serde_json::json!([]))).contains("1 to 8"));
        let mut private = rsa_jwk(2048);
        private["d"] = serde_json::json!("AQAB");
        assert!(field_error(&set(serde_json::json!([private]))).contains("private"));
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(field_error(&set(serde_json::json!([oct]))).contains("private or symmetric"));
        let mut enc = rsa_jwk(2048);
        enc["use"] = serde_json::json!("enc");
        assert!(field_error(&set(serde_json::json!([enc]))).contains("use must be sig"));
        let mut hs = rsa_jwk(2048);
        hs["alg"] = serde_json::json!("HS256");
        assert!(field_error(&set(serde_json::json!([hs]))).contains("algorithm"));
        let mut es = rsa_jwk(2048);
        es["alg"] = serde_json::json!("ES256");
        assert!(field_error(&set(serde_json::json!([es]))).contains("algorithm"));
        let twice = set(serde_json::json!([rsa_jwk(2048), rsa_jwk(3072)]));
        assert!(field_error(&twice).contains("repeats the kid"));
        let p521 = serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
        assert!(!field_error(&set(serde_json::json!([p521]))).is_empty());
        assert!(field_error(&" ".repeat(10).replace(' ', "x").repeat(2000)).contains("bytes"));
    }
}
