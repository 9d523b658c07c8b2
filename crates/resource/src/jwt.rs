//! Offline checks of RFC 9068 JWT access tokens: the JOSE header, keys parsed from a JWKS,
//! the signature (through `jsonwebtoken` on aws-lc-rs) and the claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::claims::{VerifiedClaims, dpop_binding, split_scope};
use crate::error::{AuthError, InvalidToken};

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
    /// RFC 7515 §4.1.11: whether the header has `crit` at all, whatever its value (even
    /// `null`), since any value of it is either a malformed header or extensions we would
    /// have to understand.
    #[serde(default, rename = "crit", deserialize_with = "present")]
    has_crit: bool,
}

/// For members whose presence is what counts ([`JoseHeader::has_crit`], the private-key
/// members of a DPoP proof's `jwk`): called only when the member is there, whatever its
/// value, even `null`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Splits a JWS compact token (RFC 7515 §7.1) into its three parts and decodes the header,
/// without trusting anything in it. Returns the header and the still-encoded payload.
fn decode_header(token: &str) -> Result<(JoseHeader, &str), InvalidToken> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(InvalidToken::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(InvalidToken::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| InvalidToken::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| InvalidToken::Malformed)?;
    // RFC 7515 §4.1.11: a recipient that does not understand every extension `crit` lists
    // must refuse the token; Portcullis uses none, so we understand none.
    if header.has_crit {
        return Err(InvalidToken::CriticalHeader);
    }
    Ok((header, payload))
}

/// Decodes the header without trusting it, and applies the checks that need no key:
/// `crit`, the algorithm allow-list and RFC 9068 §4 step 2 (`typ`).
pub(crate) fn parse_header(token: &str, allowed: &[Algorithm]) -> Result<(JoseHeader, Algorithm), InvalidToken> {
    parse_typed_header(token, allowed, is_access_token_typ)
}

/// [`parse_header`] for a JWS whose `typ` passes `typ_ok` (a signed introspection answer,
/// RFC 9701 §5, is `token-introspection+jwt`).
pub(crate) fn parse_typed_header(
    token: &str,
    allowed: &[Algorithm],
    typ_ok: impl Fn(&str) -> bool,
) -> Result<(JoseHeader, Algorithm), InvalidToken> {
    let (header, _payload) = decode_header(token)?;
    // Compared by name first, so `none` (RFC 7518 §3.6) or anything the allow-list lacks is
    // refused before a key is even looked up.
    let alg = allowed
        .iter()
        .copied()
        .find(|a| algorithm_name(*a) == header.alg)
        .ok_or(InvalidToken::UnsupportedAlgorithm)?;
    if !header.typ.as_deref().is_some_and(typ_ok) {
        return Err(InvalidToken::WrongType);
    }
    Ok((header, alg))
}

/// The claims [`precheck`] reads from a payload it has not verified.
#[derive(Deserialize)]
struct UnverifiedClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
}

/// Whether a token could be a live access token of our issuer, judged without a key: a JWS
/// compact token (three base64url parts) whose header has `typ` `at+jwt` (RFC 9068 §2.1) and
/// whose payload has `iss` equal to `rules.issuer` (when known) and an `exp` not past
/// (RFC 9068 §2.2). Portcullis issues every access token that way, so a token failing this
/// can never be reported active; introspection mode refuses it without calling the
/// authorization server. Nothing read here is trusted: the signature is not checked.
pub(crate) fn precheck(token: &str, rules: &ClaimRules<'_>) -> Result<(), InvalidToken> {
    let (header, payload) = decode_header(token)?;
    if !header.typ.as_deref().is_some_and(is_access_token_typ) {
        return Err(InvalidToken::WrongType);
    }
    let signature = token.rsplit('.').next().unwrap_or("");
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(InvalidToken::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidToken::Malformed)?;
    let claims: UnverifiedClaims = serde_json::from_slice(&bytes).map_err(|_| InvalidToken::Malformed)?;
    let (Some(iss), Some(exp)) = (claims.iss, claims.exp) else {
        return Err(InvalidToken::MissingClaim);
    };
    rules.check_issuer(&iss)?;
    rules.check_time(exp, None, None)
}

/// The `jti` of a JWS compact token's payload, read without verifying anything (to tell
/// which token an answer speaks of).
pub(crate) fn unverified_jti(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Jti {
        #[serde(default)]
        jti: Option<String>,
    }
    let (_, payload) = decode_header(token).ok()?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Jti>(&bytes).ok()?.jti
}

/// RFC 9068 §4: `typ` must be `at+jwt` or `application/at+jwt`.
fn is_access_token_typ(typ: &str) -> bool {
    is_media_type(typ, "at+jwt")
}

/// Whether the JOSE `typ` names the media type `application/{expected}`: RFC 7515 §4.1.9
/// lets the `application/` prefix be left out, and media types compare case-insensitively
/// (RFC 2045 §5.1).
pub(crate) fn is_media_type(typ: &str, expected: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(head) if head.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    typ.eq_ignore_ascii_case(expected)
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
    /// RFC 7517 §4.3; a value that is not an array of strings makes the key unreadable,
    /// and so skipped.
    #[serde(default)]
    key_ops: Option<Vec<String>>,
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
/// signatures (`use` other than `sig`, or `key_ops` without `verify`), symmetric (`kty: oct`, never accepted from a JWKS), of an unknown type, or
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
    // RFC 7517 §4.3: when `key_ops` is there, the key may be used only for the operations
    // it lists. Both members are checked when both are present (§4.3 asks issuers to keep
    // them consistent, and a key must pass each).
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
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

/// Finds the key for a token. With a `kid`, a key with that id made for the token's `alg`:
/// RFC 7517 §4.5 lets keys of different types share a `kid`, so the first key with the id
/// is not necessarily the one. Without a `kid` (RFC 9068 does not require it), the only key
/// that fits the algorithm, if there is exactly one.
pub(crate) fn find_key<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a VerifyKey, InvalidToken> {
    match kid {
        Some(kid) => {
            let mut named = keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
            if named.peek().is_none() {
                return Err(InvalidToken::UnknownKey);
            }
            named
                .find(|k| k.algorithms.contains(&alg))
                .ok_or(InvalidToken::KeyAlgorithmMismatch)
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
    /// RFC 7800 §3.1: present when the token is bound to a key (read by
    /// [`dpop_binding`]; `null` reads as absent).
    #[serde(default)]
    cnf: Option<serde_json::Value>,
    /// RFC 8693 §4.1 (read by [`crate::claims::actor`]).
    #[serde(default)]
    act: Option<serde_json::Value>,
}

/// Verifies the signature with `key` and returns the payload (claims such as
/// [`RawClaims`]), unchecked.
pub(crate) fn verify_signature_as<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &VerifyKey,
    alg: Algorithm,
) -> Result<T, InvalidToken> {
    // Time, audience and issuer are checked by `check_claims` against our own clock, so
    // `jsonwebtoken` checks only the signature and the (single) algorithm here.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<T>(token, &key.key, &validation)
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

/// The most clock skew a validator tolerates: RFC 7519 §4.1.4 speaks of "no more than a
/// few minutes". More would keep expired tokens working.
pub(crate) const MAX_LEEWAY: std::time::Duration = std::time::Duration::from_secs(300);

/// The checks of the settings both validators share: the audiences they accept name
/// something (an empty one would match tokens with an empty `aud`), and the leeway is at
/// most [`MAX_LEEWAY`].
pub(crate) fn check_rule_settings(audiences: &[String], leeway: std::time::Duration) -> Result<(), AuthError> {
    if audiences.iter().any(|a| a.trim().is_empty()) {
        return Err(AuthError::Config(
            "an audience is empty: it must name this resource server (RFC 9068 §4)".into(),
        ));
    }
    if leeway > MAX_LEEWAY {
        return Err(AuthError::Config(format!(
            "the leeway ({leeway:?}) is over the maximum of {} s: it would keep expired tokens working",
            MAX_LEEWAY.as_secs()
        )));
    }
    Ok(())
}

/// What the claims are checked against.
pub(crate) struct ClaimRules<'a> {
    /// The exact `iss` expected (RFC 9068 §4 step 3).
    pub issuer: Option<&'a str>,
    /// `aud` must contain one of these (RFC 9068 §4 step 4); empty means no check.
    pub audiences: &'a [String],
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
    pub leeway: i64,
    /// Now, seconds since the epoch.
    pub now: i64,
}

impl ClaimRules<'_> {
    /// RFC 7519 §4.1.4 and §4.1.5 with the leeway; and an `iat` (§4.1.6) further in the
    /// future than the leeway means a token from a skewed or forged clock, not valid yet.
    pub(crate) fn check_time(&self, exp: i64, nbf: Option<i64>, iat: Option<i64>) -> Result<(), InvalidToken> {
        if self.now > exp.saturating_add(self.leeway) {
            return Err(InvalidToken::Expired);
        }
        let future = |t: i64| self.now.saturating_add(self.leeway) < t;
        if nbf.is_some_and(future) || iat.is_some_and(future) {
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

/// RFC 9068 §4 steps 3–6 (issuer, audience, time) on signed claims, once every claim
/// RFC 9068 §2.2 makes REQUIRED is known to be there. With DPoP enabled, a DPoP binding
/// (`cnf.jkt`) is returned in the claims, for the caller to demand its proof; a `cnf` this
/// crate cannot check or read refuses the token here, and so does any `cnf` with DPoP off
/// (first of all, as before DPoP support).
pub(crate) fn check_claims(
    raw: RawClaims,
    rules: &ClaimRules<'_>,
    dpop_enabled: bool,
) -> Result<VerifiedClaims, InvalidToken> {
    let dpop_jkt = dpop_binding(raw.cnf, dpop_enabled)?;
    let actor = crate::claims::actor(raw.act)?;
    let (Some(iss), Some(sub), Some(aud), Some(client_id), Some(exp), Some(iat), Some(jti)) =
        (raw.iss, raw.sub, raw.aud, raw.client_id, raw.exp, raw.iat, raw.jti)
    else {
        return Err(InvalidToken::MissingClaim);
    };
    rules.check_issuer(&iss)?;
    let audience = aud.into_vec();
    rules.check_audience(&audience)?;
    rules.check_time(exp, raw.nbf, Some(iat))?;
    Ok(VerifiedClaims {
        issuer: iss,
        subject: sub,
        client_id,
        audience,
        scopes: split_scope(raw.scope.as_deref()),
        expires_at: exp,
        issued_at: Some(iat),
        not_before: raw.nbf,
        jti: Some(jti),
        grant_id: raw.grant_id,
        auth_time: raw.auth_time,
        dpop_jkt,
        actor,
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

    /// RFC 7517 §4.3: a key whose `key_ops` is present and lacks `verify` never verifies,
    /// whatever its `use` says; without `key_ops`, `use` alone decides.
    #[test]
    fn jwks_parsing_honours_key_ops() {
        let rsa = |kid: &str, extra: serde_json::Value| {
            let mut key = serde_json::json!({"kty": "RSA", "kid": kid, "n": "AQAB", "e": "AQAB"});
            if let (Some(key), Some(extra)) = (key.as_object_mut(), extra.as_object()) {
                key.extend(extra.clone());
            }
            key
        };
        let body = serde_json::json!({"keys": [
            rsa("sign-only", serde_json::json!({"key_ops": ["sign"]})),
            rsa("sig-but-encrypt", serde_json::json!({"use": "sig", "key_ops": ["encrypt"]})),
            rsa("empty-ops", serde_json::json!({"key_ops": []})),
            rsa("ops-not-a-list", serde_json::json!({"key_ops": "verify"})),
            rsa("verify", serde_json::json!({"key_ops": ["verify"]})),
            rsa("sign-and-verify", serde_json::json!({"use": "sig", "key_ops": ["sign", "verify"]})),
            rsa("no-ops", serde_json::json!({})),
        ]});
        let keys = keys_from_jwks(body.to_string().as_bytes(), &DEFAULT_ALGORITHMS).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("verify"), Some("sign-and-verify"), Some("no-ops")]);
    }

    #[test]
    fn time_rules_with_leeway() {
        let rules = ClaimRules {
            issuer: None,
            audiences: &[],
            leeway: 30,
            now: 1_000,
        };
        assert!(rules.check_time(1_000, None, None).is_ok());
        assert!(rules.check_time(970, None, None).is_ok());
        assert_eq!(rules.check_time(969, None, None), Err(InvalidToken::Expired));
        assert!(rules.check_time(2_000, Some(1_030), None).is_ok());
        assert_eq!(
            rules.check_time(2_000, Some(1_031), None),
            Err(InvalidToken::NotYetValid)
        );
        assert_eq!(
            rules.check_time(i64::MAX, Some(i64::MAX), None),
            Err(InvalidToken::NotYetValid)
        );
        // RFC 7519 §4.1.6: issued in the future beyond the leeway.
        assert!(rules.check_time(2_000, None, Some(1_030)).is_ok());
        assert_eq!(
            rules.check_time(2_000, None, Some(1_031)),
            Err(InvalidToken::NotYetValid)
        );
    }

    /// RFC 7515 §4.1.11: any `crit`, whatever it lists (or even a malformed one), refuses
    /// the token; we understand no extension.
    #[test]
    fn crit_header_refused() {
        for header in [
            r#"{"alg":"RS256","typ":"at+jwt","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","typ":"at+jwt","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","typ":"at+jwt","crit":[]}"#,
            r#"{"alg":"RS256","typ":"at+jwt","crit":null}"#,
        ] {
            let token = token_with_header(header);
            assert_eq!(
                parse_header(&token, &DEFAULT_ALGORITHMS).err(),
                Some(InvalidToken::CriticalHeader),
                "{header}"
            );
            let rules = ClaimRules {
                issuer: None,
                audiences: &[],
                leeway: 0,
                now: 0,
            };
            assert_eq!(precheck(&token, &rules).err(), Some(InvalidToken::CriticalHeader));
        }
    }

    fn claims_with(change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> RawClaims {
        let mut claims = serde_json::json!({
            "iss": "https://id.example", "sub": "alice", "aud": "api", "client_id": "app",
            "exp": 2_000, "iat": 1_000, "jti": "j1",
        });
        if let Some(map) = claims.as_object_mut() {
            change(map);
        }
        serde_json::from_value(claims).unwrap()
    }

    /// RFC 9068 §2.2: `iat` and `jti` are REQUIRED along with the others, and an `iat`
    /// beyond the leeway in the future is refused.
    #[test]
    fn required_claims() {
        let audiences = ["api".to_owned()];
        let rules = ClaimRules {
            issuer: Some("https://id.example"),
            audiences: &audiences,
            leeway: 30,
            now: 1_000,
        };
        let ok = check_claims(claims_with(|_| {}), &rules, true).unwrap();
        assert_eq!((ok.issued_at, ok.jti.as_deref()), (Some(1_000), Some("j1")));
        for claim in ["iss", "sub", "aud", "client_id", "exp", "iat", "jti"] {
            let missing = claims_with(|c| {
                c.remove(claim);
            });
            assert_eq!(
                check_claims(missing, &rules, true).err(),
                Some(InvalidToken::MissingClaim),
                "{claim}"
            );
        }
        let future = claims_with(|c| {
            c.insert("iat".into(), 1_031.into());
        });
        assert_eq!(
            check_claims(future, &rules, true).err(),
            Some(InvalidToken::NotYetValid)
        );
        let skewed = claims_with(|c| {
            c.insert("iat".into(), 1_030.into());
        });
        assert!(check_claims(skewed, &rules, true).is_ok());
    }

    /// RFC 9449 §6.1: a DPoP binding comes back in the claims; a `cnf` we cannot check or
    /// read refuses the token. With DPoP off, any `cnf` but `null` refuses it first of all,
    /// with the reason it had before DPoP support.
    #[test]
    fn confirmation_claim() {
        let audiences = ["api".to_owned()];
        let rules = ClaimRules {
            issuer: Some("https://id.example"),
            audiences: &audiences,
            leeway: 30,
            now: 1_000,
        };
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let with_cnf = |cnf: &serde_json::Value| {
            claims_with(|c| {
                c.insert("cnf".into(), cnf.clone());
            })
        };
        for dpop_enabled in [true, false] {
            assert_eq!(
                check_claims(claims_with(|_| {}), &rules, dpop_enabled)
                    .unwrap()
                    .dpop_jkt,
                None
            );
            // `null` is no `cnf`, as it was before DPoP support.
            let null = check_claims(with_cnf(&serde_json::json!(null)), &rules, dpop_enabled);
            assert_eq!(null.unwrap().dpop_jkt, None);
        }
        let bound = with_cnf(&serde_json::json!({ "jkt": jkt }));
        assert_eq!(
            check_claims(bound, &rules, true).unwrap().dpop_jkt.as_deref(),
            Some(jkt)
        );
        for (cnf, on) in [
            (serde_json::json!({ "jkt": jkt }), None),
            (serde_json::json!("x"), Some(InvalidToken::Malformed)),
            (serde_json::json!({}), Some(InvalidToken::Malformed)),
            (serde_json::json!({ "jkt": 1 }), Some(InvalidToken::Malformed)),
            (serde_json::json!({ "x5t#S256": "abc" }), Some(InvalidToken::BoundToKey)),
        ] {
            assert_eq!(check_claims(with_cnf(&cnf), &rules, true).err(), on, "{cnf}");
            assert_eq!(
                check_claims(with_cnf(&cnf), &rules, false).err(),
                Some(InvalidToken::BoundToKey),
                "{cnf}"
            );
        }
        // With DPoP off the binding is refused before anything else is looked at.
        let expired_bound = claims_with(|c| {
            c.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
            c.insert("exp".into(), serde_json::json!(1));
            c.remove("sub");
        });
        assert_eq!(
            check_claims(expired_bound, &rules, false).err(),
            Some(InvalidToken::BoundToKey)
        );
    }

    /// What introspection mode refuses without a call.
    #[test]
    fn precheck_rules() {
        let rules = ClaimRules {
            issuer: Some("https://id.example"),
            audiences: &[],
            leeway: 30,
            now: 1_000,
        };
        let token = |header: &str, payload: &str, sig: &str| {
            format!(
                "{}.{}.{sig}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            )
        };
        let at = r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#;
        let good = r#"{"iss":"https://id.example","exp":1000}"#;
        assert!(precheck(&token(at, good, "c2ln"), &rules).is_ok());
        // `exp` just within the leeway; `typ` in its other spelling.
        let recent = r#"{"iss":"https://id.example","exp":970}"#;
        assert!(precheck(&token(at, recent, "c2ln"), &rules).is_ok());
        let app = r#"{"alg":"ES256","typ":"Application/AT+JWT"}"#;
        assert!(precheck(&token(app, good, "c2ln"), &rules).is_ok());
        // Without a known issuer, `iss` must still be there.
        let any_issuer = ClaimRules { issuer: None, ..rules };
        let other = r#"{"iss":"https://other.example","exp":1000}"#;
        assert!(precheck(&token(at, other, "c2ln"), &any_issuer).is_ok());

        let cases = [
            (
                token(r#"{"alg":"RS256","typ":"JWT"}"#, good, "c2ln"),
                InvalidToken::WrongType,
            ),
            (token(r#"{"alg":"RS256"}"#, good, "c2ln"), InvalidToken::WrongType),
            (token(at, other, "c2ln"), InvalidToken::WrongIssuer),
            (
                token(at, r#"{"iss":"https://id.example","exp":969}"#, "c2ln"),
                InvalidToken::Expired,
            ),
            (
                token(at, r#"{"iss":"https://id.example"}"#, "c2ln"),
                InvalidToken::MissingClaim,
            ),
            (token(at, r#"{"exp":1000}"#, "c2ln"), InvalidToken::MissingClaim),
            (
                token(at, r#"{"iss":"https://id.example","exp":"soon"}"#, "c2ln"),
                InvalidToken::Malformed,
            ),
            (token(at, "not json", "c2ln"), InvalidToken::Malformed),
            (token(at, good, ""), InvalidToken::Malformed),
            (token(at, good, "!!"), InvalidToken::Malformed),
            (
                format!("{}.!!.c2ln", URL_SAFE_NO_PAD.encode(at)),
                InvalidToken::Malformed,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(precheck(&t, &rules).err(), Some(want), "{t}");
        }
        for junk in [
            "",
            "x",
            "opaque-token",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(precheck(junk, &rules).err(), Some(InvalidToken::Malformed), "{junk}");
        }
    }

    /// RFC 7517 §4.5: keys of different types may share a `kid`; the one made for the
    /// token's algorithm is used, wherever it stands in the set.
    #[test]
    fn duplicate_kid_picks_the_key_for_the_algorithm() {
        // A real P-256 point, so the EC key parses.
        let ec = serde_json::json!({"kty": "EC", "kid": "dup", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let rsa = serde_json::json!({"kty": "RSA", "kid": "dup", "n": "AQAB", "e": "AQAB"});
        for keys in [[&ec, &rsa], [&rsa, &ec]] {
            let body = serde_json::json!({ "keys": keys });
            let keys = keys_from_jwks(body.to_string().as_bytes(), &DEFAULT_ALGORITHMS).unwrap();
            assert_eq!(keys.len(), 2);
            for alg in [Algorithm::RS256, Algorithm::ES256] {
                let key = find_key(&keys, Some("dup"), alg).unwrap();
                assert!(key.algorithms.contains(&alg), "{alg:?}");
            }
            assert_eq!(
                find_key(&keys, Some("dup"), Algorithm::EdDSA).err(),
                Some(InvalidToken::KeyAlgorithmMismatch)
            );
        }
    }
}
