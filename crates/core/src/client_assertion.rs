//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a
//! confidential client registers its public keys (a JWK Set) instead of getting a secret,
//! and proves who it is with a JWT it signs: `iss` and `sub` its client id, `aud` this
//! server, an `exp` at most an hour ahead, and a `jti` it never sends twice. RFC 9700 §2.5
//! recommends such asymmetric methods: the server holds nothing that lets anyone act as
//! the client.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis_protocol::{ClientId, ErrorCode};
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
/// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
const LEEWAY: i64 = 60;
/// How much longer than an assertion could be accepted its `jti` is kept: nodes' clocks
/// may disagree by more than `LEEWAY`.
const CLOCK_MARGIN: Duration = Duration::minutes(5);

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
    let not_a_set = || invalid_jwks("must be a JWK Set: a JSON object with a keys array");
    let mut value: serde_json::Value = serde_json::from_str(raw).map_err(|_| not_a_set())?;
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

/// Why a parsed JWK cannot verify client assertions, if it cannot. The key material is
/// parsed by aws-lc-rs, as it will be for each signature, so a key that could never
/// verify one (a point off its curve, a malformed modulus) is refused here.
fn check_key(jwk: &Jwk) -> std::result::Result<(), &'static str> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey};
    let b64 = |v: &str| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let (n, e) = match (b64(&rsa.n), b64(&rsa.e)) {
                (Ok(n), Ok(e)) => (n, e),
                _ => return Err("has an n or e that is not base64url"),
            };
            // Bounded above too: verifying with an 8,192-bit key costs ~16 times a 2,048-bit one.
            let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=4096).contains(&bits) {
                return Err("is an RSA key of fewer than 2048 or more than 4096 bits");
            }
            if e != [1, 0, 1] {
                return Err("has an RSA exponent other than 65537 (AQAB)");
            }
            aws_lc_rs::rsa::PublicKeyComponents { n: &n[..], e: &e[..] }
                .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| "cannot be read as an RSA public key (n must have no leading zero bytes)")?;
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (algorithm, size) = match ec.curve {
                EllipticCurve::P256 => (&ECDSA_P256_SHA256_FIXED, 32),
                EllipticCurve::P384 => (&ECDSA_P384_SHA384_FIXED, 48),
                _ => return Err("is on a curve this server does not verify (P-256 and P-384 only)"),
            };
            let (x, y) = match (b64(&ec.x), b64(&ec.y)) {
                (Ok(x), Ok(y)) if x.len() == size && y.len() == size => (x, y),
                _ => return Err("has an x or y of the wrong size for its curve"),
            };
            let point = [&[4u8][..], &x, &y].concat();
            ParsedPublicKey::new(algorithm, point).map_err(|_| "is not a point on its curve")?;
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("is an OKP key that is not Ed25519");
            }
            let x = b64(&okp.x).map_err(|_| "has an x that is not base64url")?;
            ParsedPublicKey::new(&ED25519, x).map_err(|_| "cannot be read as an Ed25519 public key")?;
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

/// A client assertion taken apart, before anything in it is trusted.
struct Parts<'a> {
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, what the signature covers.
    message: &'a str,
    signature: &'a str,
    claims: serde_json::Map<String, serde_json::Value>,
}

/// Why an assertion was refused: the description of the `invalid_client` error, and
/// the reason recorded in the audit event.
#[derive(Debug)]
struct Refusal(String);

fn refusal(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// The algorithm a JWS header names: also `Ed25519` (RFC 9864's fully specified name,
/// which oauth4webapi uses) for EdDSA over Ed25519, the only EdDSA curve accepted.
fn header_alg(name: &str) -> Option<Algorithm> {
    let alg = if name == "Ed25519" {
        Algorithm::EdDSA
    } else {
        name.parse().ok()?
    };
    ALGORITHMS.contains(&alg).then_some(alg)
}

/// The names discovery lists for `ALGORITHMS`.
pub fn algorithm_names() -> Vec<String> {
    let mut names: Vec<String> = ALGORITHMS
        .iter()
        .map(|a| match a {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            _ => "EdDSA",
        })
        .map(str::to_owned)
        .collect();
    names.push("Ed25519".into());
    names
}

fn split(assertion: &str) -> Result<Parts<'_>, Refusal> {
    const NOT_A_JWT: &str = "the client_assertion is not a signed JWT (three base64url parts)";
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(refusal(format!(
            "the client_assertion is longer than {MAX_ASSERTION_BYTES} bytes"
        )));
    }
    let (message, signature) = assertion.rsplit_once('.').ok_or_else(|| refusal(NOT_A_JWT))?;
    let (header, payload) = message.split_once('.').ok_or_else(|| refusal(NOT_A_JWT))?;
    let json = |part: &str| -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part)
            .map_err(|_| refusal(NOT_A_JWT))?;
        serde_json::from_slice(&bytes).map_err(|_| refusal(NOT_A_JWT))
    };
    let header = json(header)?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: no extension this server understands.
        return Err(refusal(
            "the client_assertion's header has crit, which this server does not support",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .and_then(header_alg)
        .ok_or_else(|| {
            refusal("the client_assertion must be signed with RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA")
        })?;
    // RFC 7523bis explicit typing: a JWT typed as something else (an access token, a
    // DPoP proof, a request object) is not a client assertion, whoever signed it.
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != "jwt" && typ != "client-authentication+jwt" {
            return Err(refusal(
                "the client_assertion's typ must be JWT or client-authentication+jwt",
            ));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(refusal("the client_assertion's kid must be a string")),
    };
    Ok(Parts {
        alg,
        kid,
        message,
        signature,
        claims: json(payload)?,
    })
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
            Ok(Err((claimed, Refusal(why)))) => {
                let mut event = Event::new("client.auth_failed")
                    .ip(ip.map(str::to_owned))
                    .detail(serde_json::json!({ "method": "private_key_jwt", "reason": why }));
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
        let parts = match split(assertion) {
            Ok(p) => p,
            Err(r) => return Ok(Err((client_id.and_then(|id| ClientId::parse(id).ok()), r))),
        };
        let string = |name: &str| parts.claims.get(name).and_then(|v| v.as_str());
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
        let keys = match client.as_deref() {
            Some(Client {
                kind: ClientKind::Confidential,
                disabled: false,
                jwks: Some(jwks),
                ..
            }) => {
                serde_json::from_str::<JwkSet>(jwks)
                    .map_err(|e| Error::Unexpected(format!("client {} has unreadable keys: {e}", id.as_str())))?
                    .keys
            }
            _ => Vec::new(),
        };
        let verified = keys
            .iter()
            .filter(|k| {
                parts
                    .kid
                    .as_ref()
                    .is_none_or(|kid| k.common.key_id.as_ref() == Some(kid))
                    && fits(k, parts.alg)
                    && k.common
                        .key_algorithm
                        .as_ref()
                        .is_none_or(|a| named(a) == Some(parts.alg))
            })
            .any(|k| {
                DecodingKey::from_jwk(k).is_ok_and(|key| {
                    jsonwebtoken::crypto::verify(parts.signature, parts.message.as_bytes(), &key, parts.alg)
                        .unwrap_or(false)
                })
            });
        let Some(client) = client.filter(|_| verified) else {
            return Ok(Err((Some(id), refusal(NOT_VERIFIED))));
        };
        // Signed by the client: now its claims count.
        let now = self.now();
        let exp = match self.check_claims(&parts, sub, endpoint, now) {
            Ok(exp) => exp,
            Err(r) => return Ok(Err((Some(id), r))),
        };
        let jti = match string("jti") {
            Some(j) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS => j,
            _ => {
                return Ok(Err((
                    Some(id),
                    refusal("the client_assertion needs a jti of 1 to 256 characters"),
                )));
            }
        };
        // Kept until no node could take the assertion as unexpired: its leeway, and a
        // margin for nodes whose clocks disagree.
        let keep_until = OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|_| Error::Unexpected("exp out of range after its check".into()))?
            + Duration::seconds(LEEWAY)
            + CLOCK_MARGIN;
        if !self
            .store
            .record_client_assertion(&client.id, jti, keep_until, now)
            .await?
        {
            return Ok(Err((
                Some(id),
                refusal("the client_assertion was used before (its jti is spent)"),
            )));
        }
        Ok(Ok(Client::clone(&client)))
    }

    /// RFC 7523 §3: `iss` and `sub` the client, `aud` this server, `exp` not past and at
    /// most an hour ahead, `nbf` and `iat` not in the future, each with `LEEWAY`.
    /// Returns `exp`.
    fn check_claims(
        &self,
        parts: &Parts<'_>,
        client_id: &str,
        endpoint: &str,
        now: OffsetDateTime,
    ) -> std::result::Result<i64, Refusal> {
        let claims = &parts.claims;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(client_id) {
            return Err(refusal("the client_assertion's iss must be the client_id, as a string"));
        }
        let token_endpoint = self.settings.endpoint("/token");
        match claims.get("aud") {
            Some(serde_json::Value::String(aud))
                if *aud == self.settings.issuer || *aud == token_endpoint || aud == endpoint => {}
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
        // RFC 7519 §2 NumericDate: seconds, possibly fractional; rounded the strict way
        // (`exp` down, `nbf` and `iat` up).
        let number = |name: &str, round: fn(f64) -> f64| -> std::result::Result<Option<i64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| f.is_finite() && f.abs() < 1e15)
                            .map(|f| round(f) as i64)
                    })
                    .map(Some)
                    .ok_or_else(|| refusal(format!("the client_assertion's {name} must be a number of seconds"))),
            }
        };
        let now_s = now.unix_timestamp();
        let exp = number("exp", f64::floor)?.ok_or_else(|| refusal("the client_assertion has no exp"))?;
        if exp.saturating_add(LEEWAY) < now_s {
            return Err(refusal("the client_assertion has expired"));
        }
        if exp > now_s.saturating_add(MAX_LIFETIME.whole_seconds() + LEEWAY) {
            return Err(refusal("the client_assertion's exp is more than an hour ahead"));
        }
        if number("nbf", f64::ceil)?.is_some_and(|nbf| nbf > now_s.saturating_add(LEEWAY)) {
            return Err(refusal("the client_assertion is not valid yet (nbf)"));
        }
        if number("iat", f64::ceil)?.is_some_and(|iat| iat > now_s.saturating_add(LEEWAY)) {
            return Err(refusal("the client_assertion was issued in the future (iat)"));
        }
        Ok(exp)
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
