//! The public key in a DPoP proof's header (RFC 9449 §4.2 `jwk`): which keys are accepted
//! for which `alg`, the verification key built from it, and its RFC 7638 thumbprint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType, Jwk,
    OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::error::InvalidDpopProof;
use crate::jwt::present;

/// The smallest RSA modulus accepted (RFC 8725 §3.5, NIST SP 800-57: 2048 bits).
const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted, as at the authorization server: verification cost
/// grows with it (an 8192-bit key costs about five times an ES256 check, paid before the
/// request is authenticated), and no client needs more.
const MAX_RSA_BITS: usize = 4096;

/// The one RSA public exponent accepted, as at the authorization server: 65537 (`AQAB`),
/// what every library generates. A large exponent makes each check slower; a tiny one has
/// no use but to probe verifiers.
const RSA_EXPONENT: [u8; 3] = [1, 0, 1];

/// The `alg` of a proof, if it is one we accept (RFC 9449 §4.3 step 5): the asymmetric JWS
/// algorithms of [`super::PROOF_ALGORITHMS`]. `Ed25519` (RFC 9864) is EdDSA restricted to
/// Ed25519, the only EdDSA curve accepted anyway. `none` and HMAC never: a proof must be
/// signed by the private half of the key it carries.
pub(crate) fn proof_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        _ => return None,
    })
}

/// The members of a proof's `jwk` we read (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2). The
/// private-key members are read for their presence only: a proof carrying one is refused
/// (RFC 9449 §4.3 step 7), whatever else it holds.
#[derive(Deserialize)]
struct RawProofJwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    /// EC and OKP private key, RSA private exponent (RFC 7518 §6.2.2.1, §6.3.2.1).
    #[serde(default, deserialize_with = "present")]
    d: bool,
    /// RSA CRT members (RFC 7518 §6.3.2.2–6.3.2.7).
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    /// A symmetric key's value (RFC 7518 §6.4.1).
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

impl RawProofJwk {
    fn has_private_members(&self) -> bool {
        self.d || self.p || self.q || self.dp || self.dq || self.qi || self.oth || self.k
    }
}

/// A proof's public key, checked against the proof's `alg`, ready to verify with.
pub(crate) struct ProofKey {
    key: DecodingKey,
    /// RFC 7638 SHA-256 thumbprint, base64url: what a bound token's `cnf.jkt` must equal.
    pub thumbprint: String,
}

impl ProofKey {
    /// Checks the header's `jwk` for `alg` (named `alg_name` in the header) and builds the
    /// key. Any failure is [`InvalidDpopProof::InvalidKey`]: not an object, a private or
    /// symmetric key, a type, curve or size not accepted, one that does not fit `alg`, or a
    /// member that is not canonical base64url of the right length.
    pub(crate) fn from_jwk(jwk: serde_json::Value, alg_name: &str, alg: Algorithm) -> Result<Self, InvalidDpopProof> {
        const BAD: InvalidDpopProof = InvalidDpopProof::InvalidKey;
        let raw: RawProofJwk = serde_json::from_value(jwk).map_err(|_| BAD)?;
        if raw.has_private_members() {
            return Err(BAD);
        }
        // RFC 7517 §4.2–4.4, as for the issuer's keys: a key marked for another use, or
        // for another algorithm, does not verify this proof.
        if raw.use_.as_deref().is_some_and(|u| u != "sig")
            || raw
                .key_ops
                .as_ref()
                .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
            || raw
                .alg
                .as_deref()
                .is_some_and(|a| proof_algorithm(a) != Some(alg) || !same_name(a, alg_name))
        {
            return Err(BAD);
        }
        let algorithm = match (alg, raw.kty.as_str(), raw.crv.as_deref()) {
            (
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
                "RSA",
                _,
            ) => {
                let (Some(n), Some(e)) = (raw.n, raw.e) else {
                    return Err(BAD);
                };
                let modulus = decode(&n).ok_or(BAD)?;
                let exponent = decode(&e).ok_or(BAD)?;
                // RFC 7518 §6.3.1.1: no leading zero octet, so one key has one encoding (and
                // one thumbprint).
                if modulus.first() == Some(&0)
                    || !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bit_length(&modulus))
                    || exponent != RSA_EXPONENT
                {
                    return Err(BAD);
                }
                AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n,
                    e,
                })
            }
            (Algorithm::ES256, "EC", Some("P-256")) => ec(EllipticCurve::P256, 32, raw.x, raw.y)?,
            (Algorithm::ES384, "EC", Some("P-384")) => ec(EllipticCurve::P384, 48, raw.x, raw.y)?,
            (Algorithm::EdDSA, "OKP", Some("Ed25519")) => {
                let x = raw.x.ok_or(BAD)?;
                if decode(&x).is_none_or(|b| b.len() != 32) {
                    return Err(BAD);
                }
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x,
                })
            }
            _ => return Err(BAD),
        };
        let jwk = Jwk {
            common: CommonParameters::default(),
            algorithm,
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| BAD)?;
        // jsonwebtoken's RFC 7638 thumbprint: the required members in lexicographic order,
        // SHA-256, base64url. It writes the member values into the JSON unescaped and
        // panics on a curve that does not fit the key type; here every value was checked
        // above to be base64url (nothing to escape) and the curve fits the type by
        // construction, so neither can happen.
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256);
        Ok(Self { key, thumbprint })
    }

    /// Verifies the JWS signature (base64url, already checked to decode) over
    /// `signing_input` with jsonwebtoken on aws-lc-rs.
    pub(crate) fn verify(&self, signature: &str, signing_input: &[u8], alg: Algorithm) -> Result<(), InvalidDpopProof> {
        match jsonwebtoken::crypto::verify(signature, signing_input, &self.key, alg) {
            Ok(true) => Ok(()),
            Ok(false) => Err(InvalidDpopProof::BadSignature),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::Base64(_) => Err(InvalidDpopProof::Malformed),
                // The key family fits `alg` by construction; a key the backend will not load
                // (a point off the curve, say) is the key's fault.
                _ => Err(InvalidDpopProof::InvalidKey),
            },
        }
    }
}

/// Whether the key's `alg` member names the header's `alg`, `EdDSA` and `Ed25519` being
/// taken as one (a client may label its key with either).
fn same_name(key_alg: &str, header_alg: &str) -> bool {
    let ed = |a: &str| a == "EdDSA" || a == "Ed25519";
    key_alg == header_alg || (ed(key_alg) && ed(header_alg))
}

/// An EC key of `curve` whose coordinates are `size` bytes each (RFC 7518 §6.2.1.2: the
/// full size, leading zeros kept).
fn ec(
    curve: EllipticCurve,
    size: usize,
    x: Option<String>,
    y: Option<String>,
) -> Result<AlgorithmParameters, InvalidDpopProof> {
    let (Some(x), Some(y)) = (x, y) else {
        return Err(InvalidDpopProof::InvalidKey);
    };
    if decode(&x).is_none_or(|b| b.len() != size) || decode(&y).is_none_or(|b| b.len() != size) {
        return Err(InvalidDpopProof::InvalidKey);
    }
    Ok(AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
        key_type: EllipticCurveKeyType::EC,
        curve,
        x,
        y,
    }))
}

/// Strict base64url without padding (RFC 7515 §2): the `base64` engine refuses padding and
/// non-zero trailing bits, so one key has one encoding here.
fn decode(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value).ok()
}

/// Bits of a big-endian unsigned integer, leading zeros not counted.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        Some(first) => {
            let rest = bytes.len() - first - 1;
            let top = bytes.get(first).map_or(0, |b| 8 - b.leading_zeros() as usize);
            rest * 8 + top
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// RFC 7638 §3.1's example key and its thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    /// A real P-256 point (RFC 7515 appendix A.3).
    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    /// RFC 8037 appendix A.2's Ed25519 public key, and its thumbprint (appendix A.3).
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const ED_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    fn key(jwk: serde_json::Value, alg: &str) -> Result<ProofKey, InvalidDpopProof> {
        ProofKey::from_jwk(jwk, alg, proof_algorithm(alg).unwrap_or(Algorithm::HS256))
    }

    #[test]
    fn thumbprints_match_the_rfc_examples() {
        let rsa = json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(key(rsa, "RS256").unwrap().thumbprint, RFC7638_THUMBPRINT);
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X});
        assert_eq!(key(ed.clone(), "EdDSA").unwrap().thumbprint, ED_THUMBPRINT);
        assert_eq!(key(ed, "Ed25519").unwrap().thumbprint, ED_THUMBPRINT);
        // Members outside the required ones change nothing (RFC 7638 §3.2).
        let ec = |extra: serde_json::Value| {
            let mut jwk = json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y});
            if let (Some(jwk), Some(extra)) = (jwk.as_object_mut(), extra.as_object()) {
                jwk.extend(extra.clone());
            }
            key(jwk, "ES256").unwrap().thumbprint
        };
        assert_eq!(ec(json!({})), ec(json!({"kid": "k", "use": "sig", "alg": "ES256"})));
        // And it is the RFC 7638 form, computed independently here.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{P256_X}","y":"{P256_Y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(ec(json!({})), URL_SAFE_NO_PAD.encode(digest));
    }

    /// RFC 9449 §4.3 steps 5 and 7: only public asymmetric keys that fit `alg`.
    #[test]
    fn unacceptable_keys_refused() {
        let rsa = json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"});
        let ec = json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y});
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X});
        assert!(key(rsa.clone(), "PS256").is_ok());
        assert!(key(ec.clone(), "ES256").is_ok());
        let with = |base: &serde_json::Value, member: &str, value: serde_json::Value| {
            let mut jwk = base.clone();
            jwk[member] = value;
            jwk
        };
        let small_n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]); // 1024 bits
        let padded_small_n = URL_SAFE_NO_PAD.encode([[0u8; 128], [0xC5u8; 128]].concat());
        let huge_n = URL_SAFE_NO_PAD.encode(vec![0xC5u8; 1025]); // 8200 bits
        let n_4104 = URL_SAFE_NO_PAD.encode(vec![0xC5u8; 513]);
        let n_8192 = URL_SAFE_NO_PAD.encode(vec![0xC5u8; 1024]);
        // The RFC 7638 key's modulus with a leading zero octet: the same key, another
        // encoding (RFC 7518 §6.3.1.1 forbids it).
        let zero_led_n = URL_SAFE_NO_PAD.encode([&[0u8][..], &decode(RFC7638_N).unwrap()].concat());
        let cases = [
            // Private members, whatever their value.
            (
                with(&ec, "d", json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI")),
                "ES256",
            ),
            (
                with(&ed, "d", json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")),
                "EdDSA",
            ),
            (with(&rsa, "d", json!(null)), "RS256"),
            (with(&rsa, "p", json!("AQAB")), "RS256"),
            (with(&rsa, "q", json!("AQAB")), "RS256"),
            (with(&rsa, "dp", json!("AQAB")), "RS256"),
            (with(&rsa, "dq", json!("AQAB")), "RS256"),
            (with(&rsa, "qi", json!("AQAB")), "RS256"),
            (with(&rsa, "oth", json!([])), "RS256"),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "ES256"),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "HS256"),
            // Key and algorithm that do not fit.
            (rsa.clone(), "ES256"),
            (ec.clone(), "RS256"),
            (ec.clone(), "ES384"),
            (ed.clone(), "ES256"),
            (with(&ec, "crv", json!("P-384")), "ES384"),
            (with(&ec, "crv", json!("P-521")), "ES256"),
            (with(&ec, "crv", json!("Ed25519")), "EdDSA"),
            (with(&ed, "crv", json!("X25519")), "EdDSA"),
            (with(&ed, "crv", json!("P-256")), "ES256"),
            (with(&ec, "alg", json!("ES384")), "ES256"),
            (with(&rsa, "alg", json!("RS256")), "PS256"),
            (with(&ec, "use", json!("enc")), "ES256"),
            (with(&ec, "key_ops", json!(["sign"])), "ES256"),
            // Sizes and encodings.
            (with(&rsa, "n", json!(small_n)), "RS256"),
            (with(&rsa, "n", json!(padded_small_n)), "RS256"),
            (with(&rsa, "n", json!(huge_n)), "RS256"),
            (with(&rsa, "n", json!(n_4104)), "RS256"),
            (with(&rsa, "n", json!(n_8192)), "RS512"),
            (with(&rsa, "n", json!(zero_led_n)), "RS256"),
            (with(&rsa, "e", json!("")), "RS256"),
            // Exponents: 65537 only, as at the authorization server.
            (with(&rsa, "e", json!("AA")), "RS256"),
            (with(&rsa, "e", json!("AQ")), "RS256"),
            (with(&rsa, "e", json!("Aw")), "RS256"),
            (with(&rsa, "e", json!("AAEAAQ")), "RS256"),
            (with(&rsa, "e", json!("AQAA")), "RS256"),
            (with(&rsa, "e", json!("AQAC")), "RS256"),
            (with(&rsa, "e", json!(URL_SAFE_NO_PAD.encode([0xffu8; 8]))), "RS256"),
            (with(&ec, "x", json!(&P256_X[..40])), "ES256"),
            (with(&ec, "x", json!(format!("{P256_X}="))), "ES256"),
            (with(&ec, "y", json!(P256_Y.replace('_', "/"))), "ES256"),
            (with(&ec, "y", json!(null)), "ES256"),
            (with(&ed, "x", json!(&ED_X[..20])), "EdDSA"),
            (with(&ed, "x", json!(1)), "EdDSA"),
            (json!({"kty": "EC", "crv": "P-256", "x": P256_X}), "ES256"),
            (json!({"crv": "P-256", "x": P256_X, "y": P256_Y}), "ES256"),
            (json!("not an object"), "ES256"),
            (json!([ec.clone()]), "ES256"),
        ];
        for (jwk, alg) in cases {
            assert_eq!(
                key(jwk.clone(), alg).err(),
                Some(InvalidDpopProof::InvalidKey),
                "{alg} {jwk}"
            );
        }
        // RSA from 2048 to 4096 bits.
        for bytes in [256, 384, 512] {
            let n = URL_SAFE_NO_PAD.encode(vec![0xC5u8; bytes]);
            assert!(key(with(&rsa, "n", json!(n)), "PS384").is_ok(), "{bytes}");
        }
        // A key labelled with either name of EdDSA serves both.
        assert!(key(with(&ed, "alg", json!("Ed25519")), "EdDSA").is_ok());
        assert!(key(with(&ed, "alg", json!("EdDSA")), "Ed25519").is_ok());
    }

    #[test]
    fn algorithm_names() {
        for name in PROOF_NAMES {
            assert!(proof_algorithm(name).is_some(), "{name}");
        }
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "ES512", "es256", "RSA-OAEP", "",
        ] {
            assert_eq!(proof_algorithm(name), None, "{name}");
        }
    }

    const PROOF_NAMES: [&str; 10] = [
        "ES256", "ES384", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    ];

    /// The `algs` offered in challenges are exactly the names accepted.
    #[test]
    fn offered_algorithms_are_the_accepted_ones() {
        let offered: Vec<&str> = super::super::PROOF_ALGORITHMS.split(' ').collect();
        assert_eq!(offered, PROOF_NAMES);
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
        assert_eq!(bit_length(&[0x80; 256]), 2048);
    }
}
