//! DPoP (RFC 9449): a client proves, with each request, that it holds a private key, and
//! the tokens it gets are bound to that key. A DPoP-bound access token is useless to
//! whoever steals it without the key, and so is a public client's refresh token (RFC
//! 9700 §2.2 recommends sender-constrained tokens).
//!
//! A proof is a JWT the client signs for one request: `typ` `dpop+jwt`, its public key
//! in the header (`jwk`), and the request's method (`htm`) and URL (`htu`), a time
//! (`iat`), a one-time `jti` and, with an access token, the token's hash (`ath`).

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use portcullis_protocol::{ClientId, ErrorCode};
use time::OffsetDateTime;

use crate::crypto::{b64url, sha256};
use crate::error::{Error, Result};
use crate::jws::{self, PRIVATE_MEMBERS, check_key, fits, named};
use crate::service::Portcullis;

/// RFC 9449 §4.2: the `typ` of a proof.
pub const PROOF_TYP: &str = "dpop+jwt";
/// The token type of a DPoP-bound access token (RFC 9449 §5, §7.1), in token and
/// introspection responses and as the `Authorization` scheme.
pub const TOKEN_TYPE: &str = "DPoP";
const MAX_PROOF_BYTES: usize = 8 * 1024;
const MAX_JTI_CHARS: usize = 256;
/// How old a proof may be (`iat`), seconds: a client makes a new one for each request.
pub const MAX_AGE: i64 = 300;
/// How far ahead of this server's clock a proof's `iat` may be, seconds.
const LEEWAY: i64 = 60;
/// How much longer than a proof could be accepted its `jti` is kept: nodes' clocks may
/// disagree.
const CLOCK_MARGIN: i64 = 300;

/// Where proofs' `jti`s are recorded among the clients' one-time `jti`s: a name no
/// client has (generated client ids are base64url, without spaces).
const PROOFS_NAMESPACE: &str = "dpop proofs";

/// RFC 9449 §8: a nonce is good for the window it was made in (`NONCE_WINDOW` seconds)
/// and the `NONCE_WINDOWS_PAST` before it, so for 2 to 3 minutes; one made in the next
/// window (a node whose clock is ahead) is good too.
const NONCE_WINDOW: i64 = 60;
const NONCE_WINDOWS_PAST: i64 = 2;
/// What the nonces' HMAC keys are derived for (`Kek::tags`).
const NONCE_PURPOSE: &str = "portcullis dpop nonce";

fn nonce_window(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(NONCE_WINDOW)
}

fn use_dpop_nonce() -> Error {
    Error::oauth(
        ErrorCode::UseDpopNonce,
        "the DPoP proof needs the nonce this server sends in the DPoP-Nonce header",
    )
}

fn invalid_proof(why: impl Into<String>) -> Error {
    Error::oauth(ErrorCode::InvalidDpopProof, why)
}

/// The RFC 7638 JWK SHA-256 thumbprint, base64url: what a token is bound to (`cnf.jkt`).
/// Only for a key `check_key` accepted (jsonwebtoken's `thumbprint` panics on a curve
/// that does not belong to the key type).
fn thumbprint(jwk: &Jwk) -> String {
    jwk.thumbprint(ThumbprintHash::SHA256)
}

/// Whether `value` has the form of a JWK SHA-256 thumbprint (RFC 9449 §10 `dpop_jkt`):
/// 32 bytes, base64url without padding.
pub fn is_thumbprint(value: &str) -> bool {
    value.len() == 43
        && base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, value)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// Whether the proof's `htu` names `endpoint`: RFC 9449 §4.3 item 9 compares them
/// without query and fragment, after RFC 3986 §6.2.2–6.2.3 normalisation: parsing does
/// the case of the scheme and host, the default port and dot segments, and
/// `normalize_percent` the percent-encoding of the path.
fn same_target(htu: &str, endpoint: &str) -> bool {
    // RFC 3986 §2 and §3: an absolute URI has no spaces, control characters, backslashes
    // or characters outside ASCII, and an authority after `//`; the URL parser would
    // mend each of these (WHATWG URL), which a proof's htu does not need.
    if !htu.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') || !htu.contains("://") {
        return false;
    }
    let bare = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            let path = normalize_percent(u.path());
            u.set_path(&path);
            u
        })
    };
    matches!((bare(htu), bare(endpoint)), (Some(a), Some(b)) if a == b)
}

/// RFC 3986 §6.2.2.1–6.2.2.2: an unreserved character percent-encoded is the character
/// (`%74oken` is `token`), and the hex digits of the other escapes are upper case.
fn normalize_percent(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                let c = char::from((hi * 16 + lo) as u8);
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                    out.push(c);
                } else {
                    out.push_str(&format!("%{:02X}", hi * 16 + lo));
                }
                i += 3;
            }
            (b, _, _) => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    out
}

/// The request a proof came with.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    /// The HTTP method, `POST` or `GET`.
    pub method: &'a str,
    /// The path of the endpoint on this server, `/token`.
    pub path: &'a str,
    /// The access token sent with the proof, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
}

impl Portcullis {
    /// The nonce to send in `DPoP-Nonce` (RFC 9449 §8) when `require_dpop_nonce` is on:
    /// the window it was made in and an HMAC of it under a key derived from the KEK, so
    /// any node can check it without storing anything.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.settings.require_dpop_nonce.then(|| self.dpop_nonce_at(self.now()))
    }

    /// The nonce of the window `at` is in.
    pub fn dpop_nonce_at(&self, at: OffsetDateTime) -> String {
        let window = nonce_window(at).to_be_bytes();
        let tag = self.kek.tags(NONCE_PURPOSE, &window).next().unwrap_or_default();
        b64url(&[&window[..], &tag[..16]].concat())
    }

    /// Whether `nonce` is one this server made in the last few windows, with its KEK or
    /// one it replaces (`previous_keks`).
    fn dpop_nonce_is_fresh(&self, nonce: &str) -> bool {
        let Ok(bytes) = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, nonce) else {
            return false;
        };
        let Some((window, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let now = nonce_window(self.now());
        let made = i64::from_be_bytes(*window);
        if made < now - NONCE_WINDOWS_PAST || made > now + 1 || tag.len() != 16 {
            return false;
        }
        self.kek
            .tags(NONCE_PURPOSE, window)
            .any(|t| crate::crypto::digest_eq_slice(&t[..16], tag))
    }

    /// RFC 9449 §8, before anything is spent: with `require_dpop_nonce`, a proof without
    /// a fresh nonce gets `use_dpop_nonce` before the client authenticates, so the retry
    /// the client is asked for can use the same client assertion (whose `jti` the
    /// authentication records). Only the nonce is looked at here: a malformed proof passes
    /// to be refused, with its reason, by `verify_dpop_proof`.
    pub fn dpop_nonce_precheck(&self, proof: &str) -> Result<()> {
        if !self.settings.require_dpop_nonce {
            return Ok(());
        }
        match jws::split(proof, "the DPoP proof", MAX_PROOF_BYTES) {
            Ok(parts) if !self.has_fresh_nonce(&parts) => Err(use_dpop_nonce()),
            _ => Ok(()),
        }
    }

    fn has_fresh_nonce(&self, parts: &jws::Compact<'_>) -> bool {
        parts.claim_str("nonce").is_some_and(|n| self.dpop_nonce_is_fresh(n))
    }

    /// Checks a DPoP proof (RFC 9449 §4.3) and returns the thumbprint of its key. Refused
    /// with `invalid_dpop_proof` saying why; a proof is accepted once.
    pub async fn verify_dpop_proof(&self, proof: &str, ctx: ProofContext<'_>) -> Result<String> {
        let parts = jws::split(proof, "the DPoP proof", MAX_PROOF_BYTES).map_err(invalid_proof)?;
        // RFC 7515 §4.1.9: a media type, compared without case, `application/` optional.
        let typ = parts.header_str("typ").map(str::to_ascii_lowercase);
        if typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t)) != Some(PROOF_TYP) {
            return Err(invalid_proof("the DPoP proof's typ must be dpop+jwt"));
        }
        let mut jwk = match parts.header.get("jwk") {
            Some(v @ serde_json::Value::Object(_)) => v.clone(),
            _ => {
                return Err(invalid_proof(
                    "the DPoP proof's header needs jwk, the public key it is signed with",
                ));
            }
        };
        if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
            return Err(invalid_proof(
                "the DPoP proof's jwk holds a private or symmetric key: send the public key only",
            ));
        }
        // RFC 9864's name for EdDSA over Ed25519, under the name jsonwebtoken knows.
        if jwk.get("alg").and_then(|a| a.as_str()) == Some("Ed25519") {
            jwk["alg"] = serde_json::Value::String("EdDSA".into());
        }
        let jwk: Jwk = serde_json::from_value(jwk).map_err(|_| {
            invalid_proof(
                "the DPoP proof's jwk is not a public key this server can use (RSA, EC P-256 or P-384, Ed25519)",
            )
        })?;
        check_key(&jwk).map_err(|why| invalid_proof(format!("the DPoP proof's jwk {why}")))?;
        let alg_fits = fits(&jwk, parts.alg)
            && jwk
                .common
                .key_algorithm
                .as_ref()
                .is_none_or(|a| named(a) == Some(parts.alg));
        if !alg_fits {
            return Err(invalid_proof("the DPoP proof's alg is not one its jwk signs with"));
        }
        if !parts.verifies_with(&jwk) {
            return Err(invalid_proof("the DPoP proof's signature does not verify with its jwk"));
        }
        // Signed by the key it names: now its claims count.
        let jti = match parts.claim_str("jti") {
            Some(j) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS && !crate::params::holds_nul(j) => j,
            _ => {
                return Err(invalid_proof(
                    "the DPoP proof needs a jti of 1 to 256 characters, none of them NUL",
                ));
            }
        };
        if parts.claim_str("htm") != Some(ctx.method) {
            return Err(invalid_proof(format!(
                "the DPoP proof's htm must be {}, the method of this request",
                ctx.method
            )));
        }
        let endpoint = self.settings.endpoint(ctx.path);
        if !parts.claim_str("htu").is_some_and(|htu| same_target(htu, &endpoint)) {
            return Err(invalid_proof(format!(
                "the DPoP proof's htu must be {endpoint}, the URL of this request"
            )));
        }
        let now = self.now();
        let now_s = now.unix_timestamp();
        let iat = parts
            .numeric_date("iat", f64::ceil)
            .map_err(|()| invalid_proof("the DPoP proof's iat must be a number of seconds"))?
            .ok_or_else(|| invalid_proof("the DPoP proof has no iat"))?;
        if iat > now_s.saturating_add(LEEWAY) {
            return Err(invalid_proof(
                "the DPoP proof was made in the future (iat): check the client's clock",
            ));
        }
        if iat < now_s.saturating_sub(MAX_AGE) {
            return Err(invalid_proof(
                "the DPoP proof is more than 5 minutes old (iat): make a new proof for each request",
            ));
        }
        let ath = ctx.access_token.map(|token| b64url(&sha256(token.as_bytes())));
        if ath.is_some() && parts.claim_str("ath") != ath.as_deref() {
            return Err(invalid_proof(
                "the DPoP proof's ath must be the SHA-256 hash of the access token, base64url",
            ));
        }
        // §8: with nonces required, one this server made recently; a client without one
        // gets `use_dpop_nonce` and the nonce in `DPoP-Nonce`, and tries again.
        if self.settings.require_dpop_nonce && !self.has_fresh_nonce(&parts) {
            return Err(use_dpop_nonce());
        }
        let jkt = thumbprint(&jwk);
        // RFC 9449 §11.1: kept until no node would take the proof as recent enough, and
        // for every client: a proof one client sent cannot be used by another.
        let keep_until = OffsetDateTime::from_unix_timestamp(iat.saturating_add(MAX_AGE + CLOCK_MARGIN))
            .map_err(|_| Error::Unexpected("iat out of range after its check".into()))?;
        let key = format!("{jkt} {jti}");
        let namespace = ClientId::parse(PROOFS_NAMESPACE).map_err(|e| Error::Unexpected(e.0))?;
        if !self.store.record_client_jti(&namespace, &key, keep_until, now).await? {
            return Err(invalid_proof(
                "the DPoP proof was used before (its jti is spent): make a new proof for each request",
            ));
        }
        Ok(jkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert!(is_thumbprint("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
        assert!(!is_thumbprint("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X"));
        assert!(!is_thumbprint("NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs"));
    }

    #[test]
    fn htu_is_compared_without_query_and_fragment_after_normalisation() {
        let at = "https://auth.example.com/token";
        assert!(same_target("https://auth.example.com/token", at));
        assert!(same_target("HTTPS://Auth.Example.COM:443/token?x=1#f", at));
        assert!(!same_target("https://auth.example.com/token/", at));
        assert!(!same_target("https://auth.example.com:8443/token", at));
        assert!(!same_target("http://auth.example.com/token", at));
        assert!(!same_target("https://evil.example.com/token", at));
        assert!(!same_target("/token", at));
        for mended in [
            " https://auth.example.com/token",
            "https://auth.example.com/to\tken",
            "https:auth.example.com/token",
            "https:\\\\auth.example.com\\token",
            "https://auth.example.com/token\u{0}",
        ] {
            assert!(!same_target(mended, at), "{mended:?}");
        }
        // RFC 3986 §6.2.2: percent-encoded unreserved characters are those characters,
        // hex digits are compared in upper case, and dot segments are removed.
        assert!(same_target("https://auth.example.com/%74oken", at));
        assert!(same_target("https://auth.example.com/a/../token", at));
        assert!(!same_target("https://auth.example.com/tok%2Fen", at));
        assert_eq!(normalize_percent("/a%2fb%7E%zz%4"), "/a%2Fb~%zz%4");
    }
}
