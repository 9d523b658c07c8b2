//! Offline checks of RFC 9068 JWT access tokens: the JOSE header, keys parsed from a JWKS,
//! the signature (through `jsonwebtoken` on aws-lc-rs) and the claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::claims::{VerifiedClaims, split_scope};
use crate::error::InvalidToken;

/// Longest token we look at; Portcullis tokens are well under 2 KiB. Bounds the work a
/// garbage header can cause.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The algorithms accepted unless configured otherwise: what Portcullis can sign with
/// (DESIGN §3 "Signing keys").
pub(crate) const DEFAULT_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Whether an algorithm may be put in an allow-list. HMAC algorithms never: with a JWKS
/// the only "secret" a validator could use is a public key, which is the classic
/// algorithm-confusion attack (RFC 8725 §2.1, §3.1).
pub(crate) fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The JOSE header fields we use (RFC 7515 §4.1, RFC 9068 §2.1).
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// Decodes the header without trusting it, and applies the checks that need no key:
/// the algorithm allow-list and RFC 9068 §4 step 2 (`typ`).
pub(crate) fn parse_header(token: &str, allowed: &[Algorithm]) -> Result<(JoseHeader, Algorithm), InvalidToken> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(InvalidToken::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(InvalidToken::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| InvalidToken::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| InvalidToken::Malformed)?;
    // Compared by name first, so `none` (RFC 7518 §3.6) or anything the allow-list lacks is
    // refused before a key is even looked up.
    let alg = allowed
        .iter()
        .copied()
        .find(|a| algorithm_name(*a) == header.alg)
        .ok_or(InvalidToken::UnsupportedAlgorithm)?;
    if !header.typ.as_deref().is_some_and(is_access_token_typ) {
        return Err(InvalidToken::WrongType);
    }
    Ok((header, alg))
}

/// RFC 9068 §4: `typ` must be `at+jwt` or `application/at+jwt`; media types compare
/// case-insensitively (RFC 7515 §4.1.9 and RFC 2045 §5.1).
fn is_access_token_typ(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(head) if head.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    typ.eq_ignore_ascii_case("at+jwt")
}

/// The JWA name of an algorithm (RFC 7518 §3.1, RFC 8037 §3.1).
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// A verification key from the JWKS, with the algorithms it may verify.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The parameters of a JWK we read (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2). Every field
/// is optional here so that one odd key does not make the whole set unreadable.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// Most keys we keep from one JWKS: bounds memory if the document is odd.
const MAX_KEYS: usize = 64;

/// Parses a JWKS document into the keys usable with `allowed`. Keys that are not for
/// signatures, symmetric (`kty: oct`, never accepted from a JWKS), of an unknown type, or
/// malformed are skipped with a debug log rather than failing the whole set.
pub(crate) fn keys_from_jwks(body: &[u8], allowed: &[Algorithm]) -> Result<Vec<VerifyKey>, serde_json::Error> {
    let set: RawJwkSet = serde_json::from_slice(body)?;
    let mut keys = Vec::new();
    for value in set.keys.into_iter().take(MAX_KEYS) {
        let Ok(raw) = serde_json::from_value::<RawJwk>(value) else {
            tracing::debug!("skipping a JWK that is not an object with a kty");
            continue;
        };
        match key_from_jwk(&raw, allowed) {
            Some(key) => keys.push(key),
            None => tracing::debug!(kid = ?raw.kid, kty = %raw.kty, "skipping unusable JWK"),
        }
    }
    Ok(keys)
}

fn key_from_jwk(jwk: &RawJwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    // RFC 7517 §4.2: a key marked for encryption must not verify signatures.
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (key, family): (DecodingKey, &[Algorithm]) = match jwk.kty.as_str() {
        "RSA" => (
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        "EC" => {
            let alg: &[Algorithm] = match jwk.crv.as_deref()? {
                "P-256" => &[Algorithm::ES256],
                "P-384" => &[Algorithm::ES384],
                _ => return None,
            };
            (
                DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
                alg,
            )
        }
        "OKP" if jwk.crv.as_deref() == Some("Ed25519") => (
            DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
            &[Algorithm::EdDSA],
        ),
        _ => return None,
    };
    // RFC 7517 §4.4: when the key names its algorithm, only that one may be used with it.
    let algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .filter(|a| jwk.alg.as_deref().is_none_or(|name| name == algorithm_name(*a)))
        .collect();
    if algorithms.is_empty() {
        return None;
    }
    Some(VerifyKey {
        kid: jwk.kid.clone(),
        algorithms,
        key,
    })
}

/// Finds the key for a token. With a `kid`, the key with that id; without one (RFC 9068 does
/// not require it), the only key that fits the algorithm, if there is exactly one.
pub(crate) fn find_key<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a VerifyKey, InvalidToken> {
    match kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(InvalidToken::UnknownKey)?;
            if key.algorithms.contains(&alg) {
                Ok(key)
            } else {
                Err(InvalidToken::KeyAlgorithmMismatch)
            }
        }
        None => {
            let mut fitting = keys.iter().filter(|k| k.algorithms.contains(&alg));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(InvalidToken::UnknownKey),
            }
        }
    }
}

/// `aud` may be one string or an array (RFC 7519 §4.1.3); Portcullis sends a string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a],
            Self::Many(a) => a,
        }
    }
}

/// The claims as signed, before any check (RFC 9068 §2.2). Everything is optional here so
/// a missing claim is reported as such rather than as a malformed token.
#[derive(Deserialize)]
pub(crate) struct RawClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    grant_id: Option<String>,
    #[serde(default)]
    auth_time: Option<i64>,
}

/// Verifies the signature with `key` and returns the claims, unchecked.
pub(crate) fn verify_signature(token: &str, key: &VerifyKey, alg: Algorithm) -> Result<RawClaims, InvalidToken> {
    // Time, audience and issuer are checked by `check_claims` against our own clock, so
    // `jsonwebtoken` checks only the signature and the (single) algorithm here.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => InvalidToken::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => InvalidToken::UnsupportedAlgorithm,
                ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey => InvalidToken::KeyAlgorithmMismatch,
                _ => InvalidToken::Malformed,
            }
        })
}

/// What the claims are checked against.
pub(crate) struct ClaimRules<'a> {
    /// The exact `iss` expected (RFC 9068 §4 step 3).
    pub issuer: Option<&'a str>,
    /// `aud` must contain one of these (RFC 9068 §4 step 4); empty means no check.
    pub audiences: &'a [String],
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway: i64,
    /// Now, seconds since the epoch.
    pub now: i64,
}

impl ClaimRules<'_> {
    /// RFC 7519 §4.1.4 and §4.1.5 with the leeway.
    pub(crate) fn check_time(&self, exp: i64, nbf: Option<i64>) -> Result<(), InvalidToken> {
        if self.now > exp.saturating_add(self.leeway) {
            return Err(InvalidToken::Expired);
        }
        if nbf.is_some_and(|nbf| self.now.saturating_add(self.leeway) < nbf) {
            return Err(InvalidToken::NotYetValid);
        }
        Ok(())
    }

    /// Both builders refuse to build without an audience; were the list empty all the
    /// same, no token would pass.
    pub(crate) fn check_audience(&self, aud: &[String]) -> Result<(), InvalidToken> {
        if aud.iter().any(|a| self.audiences.contains(a)) {
            Ok(())
        } else {
            Err(InvalidToken::WrongAudience)
        }
    }

    pub(crate) fn check_issuer(&self, iss: &str) -> Result<(), InvalidToken> {
        match self.issuer {
            Some(expected) if expected != iss => Err(InvalidToken::WrongIssuer),
            _ => Ok(()),
        }
    }
}

/// RFC 9068 §4 steps 3–6 (issuer, audience, time) on signed claims.
pub(crate) fn check_claims(raw: RawClaims, rules: &ClaimRules<'_>) -> Result<VerifiedClaims, InvalidToken> {
    let (Some(iss), Some(sub), Some(aud), Some(client_id), Some(exp)) =
        (raw.iss, raw.sub, raw.aud, raw.client_id, raw.exp)
    else {
        return Err(InvalidToken::MissingClaim);
    };
    rules.check_issuer(&iss)?;
    let audience = aud.into_vec();
    rules.check_audience(&audience)?;
    rules.check_time(exp, raw.nbf)?;
    Ok(VerifiedClaims {
        issuer: iss,
        subject: sub,
        client_id,
        audience,
        scopes: split_scope(raw.scope.as_deref()),
        expires_at: exp,
        issued_at: raw.iat,
        not_before: raw.nbf,
        jti: raw.jti,
        grant_id: raw.grant_id,
        auth_time: raw.auth_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn typ_variants() {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"] {
            assert!(is_access_token_typ(typ), "{typ}");
        }
        for typ in ["JWT", "jwt", "application/jwt", "at+jwtx", "", "application/"] {
            assert!(!is_access_token_typ(typ), "{typ}");
        }
    }

    #[test]
    fn header_checks() {
        let allowed = DEFAULT_ALGORITHMS;
        let ok = token_with_header(r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#);
        let (h, alg) = parse_header(&ok, &allowed).unwrap();
        assert_eq!((alg, h.kid.as_deref()), (Algorithm::RS256, Some("k")));

        let cases = [
            (r#"{"alg":"none","typ":"at+jwt"}"#, InvalidToken::UnsupportedAlgorithm),
            (r#"{"alg":"HS256","typ":"at+jwt"}"#, InvalidToken::UnsupportedAlgorithm),
            (r#"{"alg":"rs256","typ":"at+jwt"}"#, InvalidToken::UnsupportedAlgorithm),
            (r#"{"alg":"RS256","typ":"JWT"}"#, InvalidToken::WrongType),
            (r#"{"alg":"RS256"}"#, InvalidToken::WrongType),
            (r#"{"typ":"at+jwt"}"#, InvalidToken::Malformed),
        ];
        for (header, want) in cases {
            assert_eq!(
                parse_header(&token_with_header(header), &allowed).err(),
                Some(want),
                "{header}"
            );
        }
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.x", &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(parse_header(bad, &allowed).err(), Some(InvalidToken::Malformed));
        }
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB"},
            {"kid": "no-kty"},
            "not an object"
        ]});
        let keys = keys_from_jwks(body.to_string().as_bytes(), &DEFAULT_ALGORITHMS).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        // "ps" names PS256, which the default allow-list lacks.
        assert_eq!(kids, [Some("rsa")]);
        assert!(find_key(&keys, Some("rsa"), Algorithm::RS256).is_ok());
        assert_eq!(
            find_key(&keys, Some("rsa"), Algorithm::ES256).err(),
            Some(InvalidToken::KeyAlgorithmMismatch)
        );
        assert_eq!(
            find_key(&keys, Some("other"), Algorithm::RS256).err(),
            Some(InvalidToken::UnknownKey)
        );
        assert!(find_key(&keys, None, Algorithm::RS256).is_ok());
        assert!(keys_from_jwks(b"[]", &DEFAULT_ALGORITHMS).is_err());
    }

    #[test]
    fn time_rules_with_leeway() {
        let rules = ClaimRules {
            issuer: None,
            audiences: &[],
            leeway: 30,
            now: 1_000,
        };
        assert!(rules.check_time(1_000, None).is_ok());
        assert!(rules.check_time(970, None).is_ok());
        assert_eq!(rules.check_time(969, None), Err(InvalidToken::Expired));
        assert!(rules.check_time(2_000, Some(1_030)).is_ok());
        assert_eq!(rules.check_time(2_000, Some(1_031)), Err(InvalidToken::NotYetValid));
        assert_eq!(
            rules.check_time(i64::MAX, Some(i64::MAX)),
            Err(InvalidToken::NotYetValid)
        );
    }
}
