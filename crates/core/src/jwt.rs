//! Signing and verifying the JWTs Portcullis issues (RFC 9068 access tokens, OIDC ID
//! tokens) with the key ring.

use aws_lc_rs::digest;
use jsonwebtoken::{Header, Validation};
use portcullis_protocol::SigningAlg;
use portcullis_protocol::claims::AccessTokenClaims;
use serde::Serialize;

use crate::crypto::b64url;
use crate::error::{Error, Result};
use crate::keys::{KeyRing, jwt_alg};

/// RFC 9068 §2.1 media type of JWT access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Signs `claims` with the active key; `typ` goes into the header.
pub fn sign<T: Serialize>(ring: &KeyRing, typ: &str, claims: &T) -> Result<String> {
    let key = ring
        .active
        .as_ref()
        .ok_or_else(|| Error::Unexpected("no active signing key".into()))?;
    let mut header = Header::new(jwt_alg(key.alg));
    header.typ = Some(typ.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| Error::Unexpected(format!("signing: {e}")))
}

/// OIDC Core §3.1.3.6 `at_hash`: the left half of the hash of the access token, with the
/// hash of the ID token's algorithm (SHA-256 for RS256/ES256; SHA-512 for Ed25519).
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let bytes = d.as_ref();
    b64url(&bytes[..bytes.len() / 2])
}

/// Why a presented access token is not valid; every variant means "inactive".
#[derive(Debug, PartialEq, Eq)]
pub enum InvalidToken {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongType,
    WrongIssuer,
    Expired,
}

/// Verifies a JWT access token this server issued: a published key, its algorithm,
/// `typ: at+jwt`, our issuer, not expired at `now` (no leeway: we issued it).
pub fn verify_access_token(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<AccessTokenClaims, InvalidToken> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken::Malformed)?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP))
    {
        return Err(InvalidToken::WrongType);
    }
    let kid = header.kid.ok_or(InvalidToken::UnknownKey)?;
    let (alg, key) = ring.verifiers.get(&kid).ok_or(InvalidToken::UnknownKey)?;
    if header.alg != *alg {
        return Err(InvalidToken::BadSignature);
    }
    let mut validation = Validation::new(*alg);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => InvalidToken::BadSignature,
            _ => InvalidToken::Malformed,
        }
    })?;
    let claims = data.claims;
    if claims.iss != issuer {
        return Err(InvalidToken::WrongIssuer);
    }
    if claims.exp <= now {
        return Err(InvalidToken::Expired);
    }
    Ok(claims)
}

/// Verifies an `id_token_hint` (OIDC RP-Initiated Logout §2): signed by one of our
/// published keys and issued by us. Expiry is not checked: an expired ID token is a
/// valid hint.
pub fn verify_id_token_hint(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
) -> Result<portcullis_protocol::claims::IdTokenClaims, InvalidToken> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken::Malformed)?;
    let kid = header.kid.ok_or(InvalidToken::UnknownKey)?;
    let (alg, key) = ring.verifiers.get(&kid).ok_or(InvalidToken::UnknownKey)?;
    if header.alg != *alg {
        return Err(InvalidToken::BadSignature);
    }
    let mut validation = Validation::new(*alg);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<portcullis_protocol::claims::IdTokenClaims>(token, key, &validation)
        .map_err(|_| InvalidToken::BadSignature)?
        .claims;
    if claims.iss != issuer {
        return Err(InvalidToken::WrongIssuer);
    }
    Ok(claims)
}
