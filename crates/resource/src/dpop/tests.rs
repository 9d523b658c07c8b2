//! Unit tests of the proof checks (RFC 9449 §4.3), with keys made by aws-lc-rs and proofs
//! signed by hand so that any header or claim, hostile ones included, can be produced.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use serde_json::{Value, json};

use super::*;
use crate::clock::FixedClock;

const NOW: i64 = 1_700_000_000;
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
const BASE: &str = "https://api.example.com";

/// A client's proof key.
enum TestKey {
    Ec256(signature::EcdsaKeyPair),
    Ec384(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    fn ec256() -> Self {
        Self::Ec256(signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    fn ec384() -> Self {
        Self::Ec384(signature::EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap())
    }

    fn ed() -> Self {
        Self::Ed(signature::Ed25519KeyPair::generate().unwrap())
    }

    fn rsa() -> Self {
        Self::Rsa(aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Ec256(_) => "ES256",
            Self::Ec384(_) => "ES384",
            Self::Ed(_) => "EdDSA",
            Self::Rsa(_) => "RS256",
        }
    }

    /// The public JWK, required members only.
    fn jwk(&self) -> Value {
        match self {
            Self::Ec256(pair) | Self::Ec384(pair) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if size == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=size]), "y": b64(&point[size + 1..])})
            }
            Self::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
            Self::Rsa(pair) => {
                let c: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = pair.public_key().into();
                json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
            }
        }
    }

    /// RFC 7638, computed here independently of the code under test.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let s = |m: &str| jwk[m].as_str().unwrap().to_owned();
        let canonical = match jwk["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                s("crv"),
                s("x"),
                s("y")
            ),
            "OKP" => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, s("x")),
            _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
        };
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Ec256(pair) | Self::Ec384(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Self::Ed(pair) => pair.sign(input).as_ref().to_vec(),
            Self::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
        }
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A proof with `header` and `claims` as given, signed for the header's `alg`.
    fn proof_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let alg = header["alg"].as_str().unwrap_or("");
        format!("{input}.{}", b64(&self.sign(alg, input.as_bytes())))
    }

    fn proof(&self, claims: &Value) -> String {
        self.proof_with(&self.header(), claims)
    }
}

/// Good claims for `GET https://api.example.com/notes` with [`TOKEN`] at [`NOW`].
fn claims() -> Value {
    json!({
        "jti": "e1j3V_bKic8-LAEB",
        "htm": "GET",
        "htu": "https://api.example.com/notes",
        "iat": NOW,
        "ath": access_token_hash(TOKEN),
    })
}

fn claims_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    change(&mut c);
    c
}

fn verifier_with(options: DpopOptions) -> DpopVerifier {
    let clock = Arc::new(FixedClock::new(UNIX_EPOCH + Duration::from_secs(NOW as u64)));
    options.build(clock, false).unwrap().unwrap()
}

fn verifier() -> DpopVerifier {
    verifier_with(DpopOptions {
        base_url: Some(BASE.into()),
        ..DpopOptions::default()
    })
}

const GET_NOTES: ProofTarget<'static> = ProofTarget {
    method: "GET",
    path: "/notes",
};

fn check(v: &DpopVerifier, proof: &str) -> Result<CheckedProof, InvalidDpopProof> {
    v.check_proof(proof, GET_NOTES, TOKEN, NOW)
}

#[test]
fn good_proofs_of_every_key_type() {
    let v = verifier();
    let (ec256, ec384, ed, rsa) = (TestKey::ec256(), TestKey::ec384(), TestKey::ed(), TestKey::rsa());
    for (key, algs) in [
        (&ec256, &["ES256"][..]),
        (&ec384, &["ES384"]),
        (&ed, &["EdDSA", "Ed25519"]),
        (&rsa, &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]),
    ] {
        for alg in algs {
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()});
            let checked = check(&v, &key.proof_with(&header, &claims())).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(checked.jkt, key.thumbprint(), "{alg}");
            // Remembered until the window closes, and the margin for a clock stepping back.
            assert_eq!(checked.until, NOW + 300 + 1 + 60);
        }
    }
}

/// RFC 9449 §4.3 steps 2, 4, 5 and RFC 7515 §4.1.11: what the header must be.
#[test]
fn header_checks() {
    let v = verifier();
    let key = TestKey::ec256();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut header = key.header();
        change(&mut header);
        check(&v, &key.proof_with(&header, &claims())).err()
    };
    // `typ` is a media type: the `application/` prefix and case do not matter.
    assert_eq!(with(&|h| h["typ"] = json!("application/dpop+jwt")), None);
    assert_eq!(with(&|h| h["typ"] = json!("DPoP+JWT")), None);
    type Change = dyn Fn(&mut Value);
    let cases: [(&Change, InvalidDpopProof); 10] = [
        (&|h| h["typ"] = json!("JWT"), InvalidDpopProof::WrongType),
        (&|h| h["typ"] = json!("at+jwt"), InvalidDpopProof::WrongType),
        (&|h| h["typ"] = json!(null), InvalidDpopProof::WrongType),
        (
            &|h| {
                h.as_object_mut().unwrap().remove("typ");
            },
            InvalidDpopProof::WrongType,
        ),
        (&|h| h["alg"] = json!("ES512"), InvalidDpopProof::UnsupportedAlgorithm),
        (&|h| h["alg"] = json!("es256"), InvalidDpopProof::UnsupportedAlgorithm),
        (&|h| h["alg"] = json!("ES384"), InvalidDpopProof::InvalidKey),
        (&|h| h["crit"] = json!(["exp"]), InvalidDpopProof::CriticalHeader),
        (
            &|h| {
                h.as_object_mut().unwrap().remove("jwk");
            },
            InvalidDpopProof::InvalidKey,
        ),
        (&|h| h["jwk"]["d"] = json!("c2VjcmV0"), InvalidDpopProof::InvalidKey),
    ];
    for (change, want) in cases {
        assert_eq!(with(change), Some(want));
    }
}

/// RFC 9449 §4.3 step 5: `none` and HMAC are refused by name, whatever the key and
/// signature, including an HMAC keyed with the public key (algorithm confusion).
#[test]
fn none_and_hmac_refused() {
    let v = verifier();
    let key = TestKey::ec256();
    let input = |alg: &str, jwk: Value| {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        )
    };
    let unsigned = format!("{}.", input("none", key.jwk()));
    assert_eq!(check(&v, &unsigned).err(), Some(InvalidDpopProof::UnsupportedAlgorithm));
    for jwk in [key.jwk(), json!({"kty": "oct", "k": b64(b"secret")})] {
        for alg in ["HS256", "HS384", "HS512"] {
            let signing_input = input(alg, jwk.clone());
            let secret = jwk.to_string();
            let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
            let tag = aws_lc_rs::hmac::sign(&hmac, signing_input.as_bytes());
            let proof = format!("{signing_input}.{}", b64(tag.as_ref()));
            assert_eq!(
                check(&v, &proof).err(),
                Some(InvalidDpopProof::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }
}

/// RFC 9449 §4.3 step 6.
#[test]
fn bad_signatures_refused() {
    let v = verifier();
    let (key, other) = (TestKey::ec256(), TestKey::ec256());
    // Signed by another key than the one in the header.
    let swapped = other.proof_with(&key.header(), &claims());
    assert_eq!(check(&v, &swapped).err(), Some(InvalidDpopProof::BadSignature));
    // The claims changed after signing.
    let good = key.proof(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims = b64(claims_with(|c| c["htm"] = json!("POST")).to_string().as_bytes());
    parts[1] = &forged_claims;
    assert_eq!(check(&v, &parts.join(".")).err(), Some(InvalidDpopProof::BadSignature));
    // A signature of the wrong length.
    let short = format!("{}.{}", good.rsplit_once('.').unwrap().0, b64(&[1; 10]));
    assert_eq!(check(&v, &short).err(), Some(InvalidDpopProof::BadSignature));
    // An RSA signature under a PS256 header: another padding.
    let rsa = TestKey::rsa();
    let header = json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": rsa.jwk()});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let pkcs1 = format!("{input}.{}", b64(&rsa.sign("RS256", input.as_bytes())));
    assert_eq!(check(&v, &pkcs1).err(), Some(InvalidDpopProof::BadSignature));
}

/// RFC 9449 §4.3 step 2: one JWS compact serialization, bounded.
#[test]
fn malformed_proofs_refused() {
    let v = verifier();
    let key = TestKey::ed();
    let good = key.proof(&claims());
    let (input, _) = good.rsplit_once('.').unwrap();
    let header_part = good.split('.').next().unwrap();
    let huge = key.proof(&claims_with(|c| c["pad"] = json!("x".repeat(MAX_PROOF_LEN))));
    for bad in [
        String::new(),
        "a.b".into(),
        format!("{good}.x"),
        format!("{input}."),
        format!("{input}.!!"),
        format!("{input}.{}=", good.rsplit_once('.').unwrap().1),
        format!("!!.{}", good.split_once('.').unwrap().1),
        format!("{}.{}", b64(b"not json"), good.split_once('.').unwrap().1),
        format!("{header_part}.{}.{}", b64(b"not json"), b64(&[0; 64])),
    ] {
        assert!(
            matches!(
                check(&v, &bad).err(),
                Some(InvalidDpopProof::Malformed | InvalidDpopProof::BadSignature)
            ),
            "{bad:.80}"
        );
    }
    // Over the size bound, refused before anything is decoded.
    assert!(huge.len() > MAX_PROOF_LEN);
    assert_eq!(check(&v, &huge).err(), Some(InvalidDpopProof::Malformed));
    // A payload that verifies but is not JSON is malformed, not a bad signature.
    let header = b64(key.header().to_string().as_bytes());
    let signing_input = format!("{header}.{}", b64(b"[1,2"));
    let not_json = format!("{signing_input}.{}", b64(&key.sign("EdDSA", signing_input.as_bytes())));
    assert_eq!(check(&v, &not_json).err(), Some(InvalidDpopProof::Malformed));
}

/// RFC 9449 §4.2–4.3: each claim, present and of the right form.
#[test]
fn claim_checks() {
    let v = verifier();
    let key = TestKey::ec256();
    let refused = |change: &dyn Fn(&mut Value)| check(&v, &key.proof(&claims_with(change))).err();
    for claim in ["jti", "htm", "htu", "iat", "ath"] {
        assert_eq!(
            refused(&|c| {
                c.as_object_mut().unwrap().remove(claim);
            }),
            Some(InvalidDpopProof::MissingClaim),
            "{claim}"
        );
        assert_eq!(
            refused(&|c| c[claim] = json!([])),
            Some(InvalidDpopProof::Malformed),
            "{claim}"
        );
    }
    assert_eq!(refused(&|c| c["jti"] = json!("")), Some(InvalidDpopProof::InvalidJti));
    assert_eq!(
        refused(&|c| c["jti"] = json!("é".repeat(257))),
        Some(InvalidDpopProof::InvalidJti)
    );
    assert_eq!(refused(&|c| c["jti"] = json!("é".repeat(256))), None);
    // Step 8: the method, case-sensitive.
    assert_eq!(
        refused(&|c| c["htm"] = json!("POST")),
        Some(InvalidDpopProof::WrongMethod)
    );
    assert_eq!(
        refused(&|c| c["htm"] = json!("get")),
        Some(InvalidDpopProof::WrongMethod)
    );
    // Step 9: the URL, query and fragment ignored, normalised.
    for htu in [
        "https://api.example.com/notes?page=2",
        "https://api.example.com/notes#x",
        "HTTPS://API.example.com:443/notes",
    ] {
        assert_eq!(refused(&|c| c["htu"] = json!(htu)), None, "{htu}");
    }
    for htu in [
        "https://api.example.com/notes/1",
        "https://evil.example.com/notes",
        "http://api.example.com/notes",
        "https://api.example.com:8443/notes",
        "/notes",
    ] {
        assert_eq!(
            refused(&|c| c["htu"] = json!(htu)),
            Some(InvalidDpopProof::WrongUrl),
            "{htu}"
        );
    }
    // Step 12: `ath` of this very token.
    let other_token = access_token_hash("another.token.value");
    assert_eq!(
        refused(&|c| c["ath"] = json!(other_token)),
        Some(InvalidDpopProof::AccessTokenHashMismatch)
    );
    let padded = format!("{}=", access_token_hash(TOKEN));
    assert_eq!(
        refused(&|c| c["ath"] = json!(padded)),
        Some(InvalidDpopProof::AccessTokenHashMismatch)
    );
}

/// RFC 9449 §4.3 step 11 with the default window: 5 minutes old to 60 s ahead.
#[test]
fn iat_window() {
    let v = verifier();
    let key = TestKey::ed();
    let at = |iat: Value| check(&v, &key.proof(&claims_with(|c| c["iat"] = iat))).err();
    assert_eq!(at(json!(NOW - 300)), None);
    assert_eq!(at(json!(NOW - 301)), Some(InvalidDpopProof::Expired));
    assert_eq!(at(json!(NOW + 60)), None);
    assert_eq!(at(json!(NOW + 61)), Some(InvalidDpopProof::NotYetValid));
    // A NumericDate may have a fraction.
    assert_eq!(at(json!(NOW as f64 + 0.5)), None);
    assert_eq!(at(json!(0)), Some(InvalidDpopProof::Expired));
    assert_eq!(at(json!(-1)), Some(InvalidDpopProof::Expired));
    assert_eq!(at(json!(1e300)), Some(InvalidDpopProof::Malformed));
    assert_eq!(at(json!(u64::MAX)), Some(InvalidDpopProof::Malformed));
    assert_eq!(at(json!("1700000000")), Some(InvalidDpopProof::Malformed));

    // A window of its own.
    let strict = verifier_with(DpopOptions {
        base_url: Some(BASE.into()),
        max_age: Duration::from_secs(10),
        max_future: Duration::ZERO,
        ..DpopOptions::default()
    });
    let at = |iat: i64| check(&strict, &key.proof(&claims_with(|c| c["iat"] = json!(iat)))).err();
    assert_eq!(at(NOW - 10), None);
    assert_eq!(at(NOW - 11), Some(InvalidDpopProof::Expired));
    assert_eq!(at(NOW), None);
    assert_eq!(at(NOW + 1), Some(InvalidDpopProof::NotYetValid));
}

/// A token validation that counts how often it ran.
async fn token_bound_to(jkt: Option<String>, runs: &AtomicUsize) -> Result<VerifiedClaims, AuthError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(VerifiedClaims {
        issuer: "https://id.example.com".into(),
        subject: "alice".into(),
        client_id: "app".into(),
        audience: vec!["api".into()],
        scopes: vec![],
        expires_at: NOW + 600,
        issued_at: Some(NOW),
        not_before: None,
        jti: None,
        grant_id: None,
        auth_time: None,
        dpop_jkt: jkt,
        actor: None,
    })
}

/// RFC 9449 §4.3 step 12 and §11.1: the binding, then the replay check; a refused request
/// does not use the proof up, and a replay is refused before the token is looked at.
#[tokio::test]
async fn binding_and_replay() {
    let v = verifier();
    let key = TestKey::ec256();
    let jkt = Some(key.thumbprint());
    let runs = AtomicUsize::new(0);
    let proof = key.proof(&claims());
    let reason = |r: Result<VerifiedClaims, AuthError>| match r {
        Err(AuthError::InvalidToken(t)) => format!("token: {t:?}"),
        Err(AuthError::InvalidDpopProof(p)) => format!("proof: {p:?}"),
        Err(other) => format!("{other:?}"),
        Ok(claims) => format!("ok: {:?}", claims.dpop_jkt),
    };

    let unbound = v.validate(TOKEN, &proof, GET_NOTES, token_bound_to(None, &runs)).await;
    assert_eq!(reason(unbound), "token: NotDpopBound");
    let other_key = Some(TestKey::ec256().thumbprint());
    let mismatch = v
        .validate(TOKEN, &proof, GET_NOTES, token_bound_to(other_key, &runs))
        .await;
    assert_eq!(reason(mismatch), "token: DpopKeyMismatch");
    let failing = v
        .validate(TOKEN, &proof, GET_NOTES, async { Err(InvalidToken::Expired.into()) })
        .await;
    assert_eq!(reason(failing), "token: Expired");
    assert_eq!(v.lock_replay().len(), 0, "nothing is remembered for a refused request");

    let good = v
        .validate(TOKEN, &proof, GET_NOTES, token_bound_to(jkt.clone(), &runs))
        .await;
    assert_eq!(reason(good), format!("ok: {jkt:?}"));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let again = v
        .validate(TOKEN, &proof, GET_NOTES, token_bound_to(jkt.clone(), &runs))
        .await;
    assert_eq!(reason(again), "proof: Replayed");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "a replay is refused before the token is validated"
    );

    // The same `jti` under another key is another proof.
    let other = TestKey::ec256();
    let theirs = other.proof(&claims());
    let ok = v
        .validate(
            TOKEN,
            &theirs,
            GET_NOTES,
            token_bound_to(Some(other.thumbprint()), &runs),
        )
        .await;
    assert!(ok.is_ok());
    // A bad proof never reaches the token.
    let bad = key.proof(&claims_with(|c| c["htm"] = json!("DELETE")));
    let refused = v.validate(TOKEN, &bad, GET_NOTES, token_bound_to(jkt, &runs)).await;
    assert_eq!(reason(refused), "proof: WrongMethod");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

/// When every slot holds a live proof, a new one is refused (503 with the wait) rather than
/// an old one forgotten; once the oldest expires there is room again.
#[tokio::test]
async fn full_replay_cache_refuses_new_proofs() {
    let clock = Arc::new(FixedClock::new(UNIX_EPOCH + Duration::from_secs(NOW as u64)));
    let v = DpopOptions {
        base_url: Some(BASE.into()),
        max_entries: 2,
        ..DpopOptions::default()
    }
    .build(clock.clone(), false)
    .unwrap()
    .unwrap();
    let keys = [TestKey::ed(), TestKey::ed(), TestKey::ed()];
    let runs = AtomicUsize::new(0);
    let now = || unix_seconds(clock.now());
    let send = |n: usize, jti: &'static str, iat: i64| {
        let key = &keys[n];
        let proof = key.proof(&claims_with(|c| (c["jti"], c["iat"]) = (json!(jti), json!(iat))));
        let bound = token_bound_to(Some(key.thumbprint()), &runs);
        let v = &v;
        async move { v.validate(TOKEN, &proof, GET_NOTES, bound).await }
    };
    assert!(send(0, "a", NOW - 100).await.is_ok());
    assert!(send(1, "b", NOW).await.is_ok());
    let full = send(2, "c", NOW).await;
    // "a" is forgotten 300 s + 1 s + the 60 s margin after its `iat`.
    assert!(
        matches!(full, Err(AuthError::DpopReplayCacheFull { retry_after }) if retry_after == Duration::from_secs(261)),
        "{full:?}"
    );
    // The refused proof was not remembered: it passes once there is room.
    clock.advance(Duration::from_secs(261));
    assert_eq!(now(), NOW + 261);
    let later = send(2, "c", NOW).await;
    assert!(later.is_ok(), "{later:?}");
    // "b" is still remembered.
    assert!(matches!(
        send(1, "b", NOW).await,
        Err(AuthError::InvalidDpopProof(InvalidDpopProof::Replayed))
    ));
}

/// One client with one bound token cannot fill the cache: past its share (a tenth of the
/// cache unless configured) its own new proofs are refused with 429 and the time until its
/// oldest expires, while every other key is served. (Before the per-key quota, the victim
/// here got 503 for 361 s.)
#[tokio::test]
async fn one_key_cannot_lock_out_the_others() {
    let clock = Arc::new(FixedClock::new(UNIX_EPOCH + Duration::from_secs(NOW as u64)));
    let v = DpopOptions {
        base_url: Some(BASE.into()),
        max_entries: 1000,
        ..DpopOptions::default()
    }
    .build(clock.clone(), false)
    .unwrap()
    .unwrap();
    let attacker = TestKey::ed();
    let ajkt = Some(attacker.thumbprint());
    let runs = AtomicUsize::new(0);
    // Proofs 60 s in the future are remembered longest: 60 + 300 + 1 + 60 s.
    let attack = |i: usize| {
        attacker.proof(&claims_with(|c| {
            c["jti"] = json!(format!("j{i}"));
            c["iat"] = json!(NOW + 60);
        }))
    };
    for i in 0..100 {
        let r = v
            .validate(TOKEN, &attack(i), GET_NOTES, token_bound_to(ajkt.clone(), &runs))
            .await;
        assert!(r.is_ok(), "{i}: {r:?}");
    }
    for i in 100..1000 {
        let r = v
            .validate(TOKEN, &attack(i), GET_NOTES, token_bound_to(ajkt.clone(), &runs))
            .await;
        assert!(
            matches!(r, Err(AuthError::DpopKeyQuotaExceeded { retry_after }) if retry_after.as_secs() == 421),
            "{i}: {r:?}"
        );
    }
    assert_eq!(v.lock_replay().len(), 100);
    // Every other client goes on being served, each up to its own share.
    for _ in 0..9 {
        let victim = TestKey::ec256();
        let vjkt = Some(victim.thumbprint());
        for i in 0..100 {
            let proof = victim.proof(&claims_with(|c| c["jti"] = json!(format!("v{i}"))));
            let r = v
                .validate(TOKEN, &proof, GET_NOTES, token_bound_to(vjkt.clone(), &runs))
                .await;
            assert!(r.is_ok(), "{r:?}");
        }
    }
    // Only when many keys together fill it is everyone held back.
    let late = TestKey::ec256();
    let r = v
        .validate(
            TOKEN,
            &late.proof(&claims()),
            GET_NOTES,
            token_bound_to(Some(late.thumbprint()), &runs),
        )
        .await;
    assert!(matches!(r, Err(AuthError::DpopReplayCacheFull { .. })), "{r:?}");
}

/// The share of one key as configured, and never more than the cache.
#[tokio::test]
async fn key_quota_as_configured() {
    let runs = AtomicUsize::new(0);
    for (max_entries, per_key, allowed) in [(10, Some(3), 3), (10, Some(50), 10), (5, None, 1), (100, None, 10)] {
        let v = verifier_with(DpopOptions {
            base_url: Some(BASE.into()),
            max_entries,
            max_entries_per_key: per_key,
            ..DpopOptions::default()
        });
        let key = TestKey::ed();
        let mut accepted = 0;
        for i in 0..20 {
            let proof = key.proof(&claims_with(|c| c["jti"] = json!(format!("j{i}"))));
            if v.validate(TOKEN, &proof, GET_NOTES, token_bound_to(Some(key.thumbprint()), &runs))
                .await
                .is_ok()
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, allowed, "{max_entries} {per_key:?}");
    }
}

/// RFC 9449 §11.1 when the clock steps back: a proof stays remembered a margin past its
/// window, so a step back of up to that margin after the window closed cannot bring it
/// back into the window while it is forgotten.
#[tokio::test]
async fn replay_after_the_clock_steps_back() {
    let clock = Arc::new(FixedClock::new(UNIX_EPOCH + Duration::from_secs(NOW as u64)));
    let at = |t: i64| clock.set(UNIX_EPOCH + Duration::from_secs(t as u64));
    let v = DpopOptions {
        base_url: Some(BASE.into()),
        ..DpopOptions::default()
    }
    .build(clock.clone(), false)
    .unwrap()
    .unwrap();
    let key = TestKey::ed();
    let jkt = Some(key.thumbprint());
    let runs = AtomicUsize::new(0);
    let proof = key.proof(&claims()); // iat = NOW
    let other = |jti: &str, iat: i64| key.proof(&claims_with(|c| (c["jti"], c["iat"]) = (json!(jti), json!(iat))));
    let send = |proof: String| {
        let (v, bound) = (&v, token_bound_to(jkt.clone(), &runs));
        async move { v.validate(TOKEN, &proof, GET_NOTES, bound).await }
    };
    let reason = |r: Result<VerifiedClaims, AuthError>| r.err().and_then(|e| e.invalid_dpop_proof_reason());
    assert!(send(proof.clone()).await.is_ok());
    // Just past the window, another request purges what has expired: not this proof yet.
    at(NOW + 301);
    assert!(send(other("o1", NOW + 301)).await.is_ok());
    // The clock steps back 3 s: the proof is in its window again, and still remembered.
    at(NOW + 298);
    assert_eq!(reason(send(proof.clone()).await), Some(InvalidDpopProof::Replayed));
    // Past the margin too it is forgotten...
    at(NOW + 361);
    assert!(send(other("o2", NOW + 361)).await.is_ok());
    assert_eq!(v.lock_replay().len(), 2, "o1 and o2");
    // ... and a step back of up to the margin leaves it out of its window.
    at(NOW + 301);
    assert_eq!(reason(send(proof.clone()).await), Some(InvalidDpopProof::Expired));
    // A longer future window makes a longer margin.
    let v = DpopOptions {
        base_url: Some(BASE.into()),
        max_future: Duration::from_secs(120),
        ..DpopOptions::default()
    }
    .build(clock.clone(), false)
    .unwrap()
    .unwrap();
    at(NOW);
    assert_eq!(
        v.check_proof(&proof, GET_NOTES, TOKEN, NOW).unwrap().until,
        NOW + 300 + 1 + 120
    );
}

#[test]
fn settings_checked_at_build() {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(SystemTime::now()));
    let build = |options: DpopOptions, insecure: bool| options.build(Arc::clone(&clock), insecure);
    let with_base = |url: &str| DpopOptions {
        base_url: Some(url.into()),
        ..DpopOptions::default()
    };
    assert!(
        build(DpopOptions::default(), false).unwrap().is_none(),
        "off without a base URL"
    );
    assert!(build(with_base("https://api.example.com/v1"), false).unwrap().is_some());
    assert!(build(with_base("http://127.0.0.1:8081"), false).unwrap().is_some());
    assert!(build(with_base("http://api.example.com"), true).unwrap().is_some());
    let config_error = |options: DpopOptions, insecure: bool| match build(options, insecure) {
        Err(AuthError::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    assert!(config_error(with_base("http://api.example.com"), false).contains("plain http"));
    assert!(config_error(with_base("https://api.example.com/?a=1"), false).contains("query"));
    assert!(config_error(with_base("https://u:p@api.example.com"), false).contains("user info"));
    assert!(config_error(with_base("/relative"), false).contains("absolute URL"));
    for (max_age, max_future) in [(0, 0), (3601, 0), (300, 301)] {
        let options = DpopOptions {
            max_age: Duration::from_secs(max_age),
            max_future: Duration::from_secs(max_future),
            ..with_base(BASE)
        };
        assert!(
            config_error(options, false).contains("DPoP proof"),
            "{max_age} {max_future}"
        );
    }
    let no_room = DpopOptions {
        max_entries: 0,
        ..with_base(BASE)
    };
    assert!(config_error(no_room, false).contains("replay cache"));
    let no_room_per_key = DpopOptions {
        max_entries_per_key: Some(0),
        ..with_base(BASE)
    };
    assert!(config_error(no_room_per_key, false).contains("per key"));
}

/// RFC 9449 §7.2: a bound token is no bearer token; which reason depends on whether the
/// validator could have taken it with a proof.
#[tokio::test]
async fn bound_tokens_are_not_bearer_tokens() {
    let runs = AtomicUsize::new(0);
    let unbound = token_bound_to(None, &runs).await.unwrap();
    assert!(bearer_only(unbound.clone(), true).is_ok());
    assert!(bearer_only(unbound, false).is_ok());
    let bound = token_bound_to(Some(TestKey::ed().thumbprint()), &runs).await.unwrap();
    assert_eq!(
        bearer_only(bound.clone(), true).err(),
        Some(InvalidToken::DpopBoundAsBearer)
    );
    assert_eq!(bearer_only(bound, false).err(), Some(InvalidToken::BoundToKey));
}

/// RFC 9449 §4.3 step 9 against the path the router routes on: a request path that is not
/// in normal form matches no proof, not even one for the URL it normalises to, since the
/// router may have given it to another handler than that URL's.
#[test]
fn request_path_taken_as_routed() {
    let v = verifier();
    let key = TestKey::ec256();
    let proof = key.proof(&claims()); // htu https://api.example.com/notes
    for path in [
        "/files/../notes",
        "/files/%2e%2e/notes",
        "/files/x/%2E./../notes",
        "/%6Eotes",
        "/note%73",
        "/x\\..\\notes",
        "/./notes",
    ] {
        let target = ProofTarget { method: "GET", path };
        assert_eq!(
            v.check_proof(&proof, target, TOKEN, NOW).err(),
            Some(InvalidDpopProof::WrongUrl),
            "{path}"
        );
    }
    // The proof's own `htu` may still be written any equivalent way.
    let dotted = key.proof(&claims_with(|c| {
        c["htu"] = json!("https://api.example.com/x/../%6Eotes")
    }));
    assert!(check(&v, &dotted).is_ok());
}

/// Signs `claims` under `header` with a junk signature: for keys whose private half we do
/// not have, refused before any signature is checked.
fn junk_signed(header: &Value, sig_len: usize) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes()),
        b64(&vec![0x5a; sig_len])
    )
}

/// RSA proof keys as the authorization server takes them: 2048 to 4096 bits, exponent
/// 65537, no leading zero in the modulus. Anything else is refused as a key, before the
/// signature is checked (an 8192-bit key costs about five ES256 checks, and needs no
/// authentication to send).
#[test]
fn rsa_keys_within_the_authorization_servers_limits() {
    let v = verifier();
    let rsa = TestKey::rsa();
    let jwk = rsa.jwk();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let zero_led = [&[0u8][..], &n].concat();
    let mut cases = vec![json!({"kty": "RSA", "n": b64(&zero_led), "e": "AQAB"})];
    for e in [
        &[0u8][..],
        &[1],
        &[3],
        &[0, 1, 0, 1],
        &[0xff; 8],
        &[1, 0, 0],
        &[1, 0, 1, 0],
    ] {
        cases.push(json!({"kty": "RSA", "n": jwk["n"], "e": b64(e)}));
    }
    for jwk in cases {
        // Signed by the real key, so only the key's form can be at fault.
        let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk});
        assert_eq!(
            check(&v, &rsa.proof_with(&header, &claims())).err(),
            Some(InvalidDpopProof::InvalidKey),
            "{jwk}"
        );
    }
    for bytes in [513, 768, 1024] {
        let mut n = vec![0u8; bytes];
        aws_lc_rs::rand::fill(&mut n).unwrap();
        n[0] |= 0x80;
        for alg in ["RS512", "PS512"] {
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": {"kty": "RSA", "n": b64(&n), "e": "AQAB"}});
            assert_eq!(
                check(&v, &junk_signed(&header, bytes)).err(),
                Some(InvalidDpopProof::InvalidKey),
                "{bytes} {alg}"
            );
        }
    }
    // A 4096-bit modulus is a key; this one signed nothing, so the signature is what fails.
    let mut n = vec![0u8; 512];
    aws_lc_rs::rand::fill(&mut n).unwrap();
    n[0] |= 0x80;
    let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "n": b64(&n), "e": "AQAB"}});
    assert_ne!(
        check(&v, &junk_signed(&header, 512)).err(),
        Some(InvalidDpopProof::InvalidKey)
    );
    // And a real key passes, `typ` written any accepted way.
    for typ in ["dpop+jwt", "application/dpop+jwt", "DPoP+JWT"] {
        let header = json!({"typ": typ, "alg": "PS256", "jwk": rsa.jwk()});
        assert!(check(&v, &rsa.proof_with(&header, &claims())).is_ok(), "{typ}");
    }
}
