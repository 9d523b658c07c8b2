//! Signed JWTs that clients make: client assertions (`client_assertion`, RFC 7523) and
//! DPoP proofs (`dpop`, RFC 9449). Both are checked against public keys the client
//! chose, with asymmetric algorithms only, by jsonwebtoken's aws-lc-rs backend; what they
//! share (taking the compact form apart, the keys and algorithms accepted, NumericDates)
//! is here.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

pub(crate) type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The signature algorithms a client assertion or a DPoP proof may use: asymmetric ones
/// only, never HMAC (the server holds no key the client signs with) or `none`.
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

/// Clock skew allowed on the `exp`, `nbf` and `iat` of a JWT a client made, seconds.
pub(crate) const LEEWAY: i64 = 60;
/// How far ahead the `exp` of a client's assertion or request object may be, seconds:
/// an assertion's `jti` is kept until then, and a request object leaks with the URL it
/// travels in (an hour is also the bound FAPI 2.0 sets on `exp - nbf`).
const MAX_LIFETIME: i64 = 3600;

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a parsed JWK cannot verify a client's signatures, if it cannot. The key material is
/// parsed by aws-lc-rs, as it will be for each signature, so a key that could never
/// verify one (a point off its curve, a malformed modulus) is refused here.
pub(crate) fn check_key(jwk: &Jwk) -> std::result::Result<(), &'static str> {
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
pub(crate) fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
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
pub(crate) fn named(alg: &KeyAlgorithm) -> Option<Algorithm> {
    alg.to_string().parse().ok()
}

/// The algorithm a JWS header names: also `Ed25519` (RFC 9864's fully specified name,
/// which oauth4webapi uses) for EdDSA over Ed25519, the only EdDSA curve accepted.
pub(crate) fn header_alg(name: &str) -> Option<Algorithm> {
    let alg = if name == "Ed25519" {
        Algorithm::EdDSA
    } else {
        name.parse().ok()?
    };
    ALGORITHMS.contains(&alg).then_some(alg)
}

/// The JWA name of one of `ALGORITHMS` (EdDSA for Ed25519 as well).
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        _ => "EdDSA",
    }
}

/// The names discovery lists for `ALGORITHMS`.
pub fn algorithm_names() -> Vec<String> {
    let mut names: Vec<String> = ALGORITHMS.iter().map(|a| algorithm_name(*a).to_owned()).collect();
    names.push("Ed25519".into());
    names
}

/// Whether `Compact::check_lifetime` requires an `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exp {
    Required,
    IfPresent,
}

/// A compact JWS taken apart, before anything in it is trusted.
pub(crate) struct Compact<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) header: JsonObject,
    pub(crate) claims: JsonObject,
    /// `header.payload`, what the signature covers.
    message: &'a str,
    signature: &'a str,
}

impl Compact<'_> {
    /// Whether `jwk` verifies the signature.
    pub(crate) fn verifies_with(&self, jwk: &Jwk) -> bool {
        DecodingKey::from_jwk(jwk).is_ok_and(|key| {
            jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), &key, self.alg).unwrap_or(false)
        })
    }

    /// A header member, if it is a string.
    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(|v| v.as_str())
    }

    /// A claim, if it is a string.
    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(|v| v.as_str())
    }

    /// RFC 7519 §4.1.4–4.1.6 for a short-lived JWT a client made, called `what` in the
    /// error ("the client_assertion", "the request object"): an `exp` (required, or
    /// only checked when present, as `exp` says) not past and at most an hour ahead,
    /// `nbf` and `iat` (when present) not in the future, each with `LEEWAY` seconds of
    /// clock skew. Returns `exp`, or why not.
    pub(crate) fn check_lifetime(&self, what: &str, now: i64, exp: Exp) -> Result<Option<i64>, String> {
        check_lifetime(&self.claims, what, now, exp)
    }

    /// A NumericDate claim (`numeric_date`).
    pub(crate) fn numeric_date(&self, name: &str, round: fn(f64) -> f64) -> Result<Option<i64>, ()> {
        numeric_date(&self.claims, name, round)
    }
}

/// `Compact::check_lifetime` of `claims` (an unsecured JWT's too).
pub(crate) fn check_lifetime(claims: &JsonObject, what: &str, now: i64, exp: Exp) -> Result<Option<i64>, String> {
    let number = |name: &str, round: fn(f64) -> f64| {
        numeric_date(claims, name, round).map_err(|()| format!("{what}'s {name} must be a number of seconds"))
    };
    let found = number("exp", f64::floor)?;
    if exp == Exp::Required && found.is_none() {
        return Err(format!("{what} has no exp"));
    }
    if let Some(exp) = found {
        if exp.saturating_add(LEEWAY) < now {
            return Err(format!("{what} has expired"));
        }
        if exp > now.saturating_add(MAX_LIFETIME + LEEWAY) {
            return Err(format!("{what}'s exp is more than an hour ahead"));
        }
    }
    if number("nbf", f64::ceil)?.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY)) {
        return Err(format!("{what} is not valid yet (nbf)"));
    }
    if number("iat", f64::ceil)?.is_some_and(|iat| iat > now.saturating_add(LEEWAY)) {
        return Err(format!("{what} was issued in the future (iat)"));
    }
    Ok(found)
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), rounded with
/// `round` (`f64::floor` for an `exp`, `f64::ceil` for an `nbf` or `iat`: the strict
/// way). `Err` with `name` if it is not a number.
pub(crate) fn numeric_date(claims: &JsonObject, name: &str, round: fn(f64) -> f64) -> Result<Option<i64>, ()> {
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
            .ok_or(()),
    }
}

/// One part of a compact JWT (header or payload): base64url without padding, holding a
/// JSON object.
pub(crate) fn decode_part(part: &str) -> Option<JsonObject> {
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Takes a compact JWS apart: three base64url parts, JSON header and payload, no `crit`
/// (RFC 7515 §4.1.11: no extension this server understands), an `alg` of `ALGORITHMS`.
/// Errors name the token as `what` ("the client_assertion", "the DPoP proof").
pub(crate) fn split<'a>(token: &'a str, what: &str, max_bytes: usize) -> Result<Compact<'a>, String> {
    let not_a_jwt = || format!("{what} is not a signed JWT (three base64url parts)");
    if token.len() > max_bytes {
        return Err(format!("{what} is longer than {max_bytes} bytes"));
    }
    let (message, signature) = token.rsplit_once('.').ok_or_else(not_a_jwt)?;
    let (header, payload) = message.split_once('.').ok_or_else(not_a_jwt)?;
    let json = |part: &str| decode_part(part).ok_or_else(not_a_jwt);
    let header = json(header)?;
    if header.contains_key("crit") {
        return Err(format!("{what}'s header has crit, which this server does not support"));
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .and_then(header_alg)
        .ok_or_else(|| {
            format!("{what} must be signed with RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA")
        })?;
    Ok(Compact {
        alg,
        header,
        claims: json(payload)?,
        message,
        signature,
    })
}
