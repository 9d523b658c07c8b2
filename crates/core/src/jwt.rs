//! Signing and verifying the JWTs Portcullis issues (RFC 9068 access tokens, OIDC ID
//! tokens) with the key ring.

use aws_lc_rs::digest;
use jsonwebtoken::Validation;
use portcullis_protocol::SigningAlg;
use portcullis_protocol::claims::AccessTokenClaims;
use serde::Serialize;

use crate::crypto::b64url;
use crate::error::{Error, Result};
use crate::keys::KeyRing;

/// RFC 9068 §2.1 media type of JWT access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` with the active key of `alg` as a JWS compact serialization (RFC 7515
/// §7.1); `typ` goes into the header.
pub fn sign<T: Serialize>(ring: &KeyRing, alg: SigningAlg, typ: &str, claims: &T) -> Result<String> {
    let key = ring
        .signer(alg)
        .ok_or_else(|| Error::Unexpected(ring.no_signer(alg).unwrap_or_default()))?;
    let unexpected = |e: serde_json::Error| Error::Unexpected(format!("serializing a JWT: {e}"));
    let header = serde_json::to_vec(&JwsHeader {
        alg: key.alg.as_str(),
        typ,
        kid: &key.kid,
    })
    .map_err(unexpected)?;
    let payload = serde_json::to_vec(claims).map_err(unexpected)?;
    let mut token = b64url(&header);
    token.push('.');
    token.push_str(&b64url(&payload));
    let signature = key.pair.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64url(&signature));
    Ok(token)
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
    verify_access_token_with_kid(ring, token, issuer, now).map(|(_, claims)| claims)
}

/// [`verify_access_token`], also naming the key that signed the token.
pub fn verify_access_token_with_kid(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<(String, AccessTokenClaims), InvalidToken> {
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
    Ok((kid, claims))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Kek;
    use crate::keys::{build_ring, generate};
    use crate::model::KeyState;

    fn claims(exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://id.example".into(),
            sub: "s".into(),
            aud: "api".into(),
            client_id: "c".into(),
            scope: "a b".into(),
            exp,
            iat: exp - 600,
            jti: "j".into(),
            grant_id: "g".into(),
            auth_time: None,
            cnf: None,
            act: None,
            exchanged_from: None,
        }
    }

    #[tokio::test]
    async fn every_algorithm_signs_what_its_published_key_verifies() {
        let kek = Kek::generate().unwrap();
        let now = time::OffsetDateTime::now_utc();
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let rec = generate(&kek, alg, KeyState::Active, now).await.unwrap();
            let ring = build_ring(&kek, &[rec], now).unwrap();
            let c = claims(now.unix_timestamp() + 600);
            let token = sign(&ring, alg, ACCESS_TOKEN_TYP, &c).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, crate::keys::jwt_alg(alg));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(
                verify_access_token(&ring, &token, "https://id.example", now.unix_timestamp()).unwrap(),
                c
            );
            assert_eq!(
                verify_access_token(&ring, &token, "https://other.example", now.unix_timestamp()),
                Err(InvalidToken::WrongIssuer)
            );
            assert_eq!(
                verify_access_token(&ring, &token, "https://id.example", now.unix_timestamp() + 601),
                Err(InvalidToken::Expired)
            );
            let mut tampered = token.clone();
            tampered.insert(token.find('.').unwrap() + 5, 'x');
            assert!(verify_access_token(&ring, &tampered, "https://id.example", now.unix_timestamp()).is_err());
        }
    }
}
