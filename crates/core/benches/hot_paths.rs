//! Criterion benchmarks of the pure hot paths: JWT signing and verification per
//! algorithm, client-secret verification, token-request parsing, PKCE.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark")]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use portcullis_core::crypto::{Kek, digest_eq, pkce_s256_matches, random_token, sha256};
use portcullis_core::jwt::{ACCESS_TOKEN_TYP, sign, verify_access_token};
use portcullis_core::keys::{build_ring, generate};
use portcullis_core::model::KeyState;
use portcullis_protocol::SigningAlg;
use portcullis_protocol::claims::AccessTokenClaims;
use portcullis_protocol::token::TokenRequest;

fn claims(now: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://id.example".into(),
        sub: "4Vq1xkq0Zb0n3Yl2a9sY1g".into(),
        aud: "https://id.example".into(),
        client_id: "4Vq1xkq0Zb0n3Yl2a9sY1g".into(),
        scope: "api:read api:write".into(),
        exp: now + 600,
        iat: now,
        jti: "0e6b4c2e-7c1e-4f4e-9a55-0d1c2b3a4f5e".into(),
        grant_id: "7d5405ab-87f6-4903-a56b-69ad39ac24cd".into(),
        auth_time: None,
        cnf: None,
        act: None,
        exchanged_from: None,
    }
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kek = Kek::generate().unwrap();
    let now = time::OffsetDateTime::now_utc();
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let rec = rt.block_on(generate(&kek, alg, KeyState::Active, now)).unwrap();
        let ring = build_ring(&kek, std::slice::from_ref(&rec), now).unwrap();
        let cl = claims(now.unix_timestamp());
        c.bench_function(&format!("jwt_sign_{alg}"), |b| {
            b.iter(|| sign(&ring, alg, ACCESS_TOKEN_TYP, black_box(&cl)).unwrap())
        });
        let token = sign(&ring, alg, ACCESS_TOKEN_TYP, &cl).unwrap();
        c.bench_function(&format!("jwt_verify_{alg}"), |b| {
            b.iter(|| {
                verify_access_token(&ring, black_box(&token), "https://id.example", now.unix_timestamp()).unwrap()
            })
        });
        if alg == SigningAlg::RS256 {
            // What signing cost through `jsonwebtoken::encode`, which parses the DER
            // private key again for every signature.
            let der = kek.open(&rec.private_key_encrypted, rec.kid.as_bytes()).unwrap();
            let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.typ = Some("at+jwt".into());
            header.kid = Some(rec.kid.clone());
            c.bench_function("jwt_sign_RS256_jsonwebtoken_encode", |b| {
                b.iter(|| jsonwebtoken::encode(&header, black_box(&cl), &key).unwrap())
            });
        }
    }
}

fn secrets_and_parsing(c: &mut Criterion) {
    let secret = random_token().unwrap();
    let stored = sha256(secret.as_bytes());
    c.bench_function("client_secret_verify", |b| {
        b.iter(|| digest_eq(&stored, &sha256(black_box(secret.as_bytes()))))
    });
    let body = "grant_type=client_credentials&scope=api%3Aread+api%3Awrite";
    c.bench_function("token_request_parse", |b| {
        b.iter(|| serde_urlencoded::from_str::<TokenRequest>(black_box(body)).unwrap())
    });
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    c.bench_function("pkce_s256_verify", |b| {
        b.iter(|| pkce_s256_matches(black_box(verifier), challenge))
    });
}

criterion_group!(benches, jwt, secrets_and_parsing);
criterion_main!(benches);
