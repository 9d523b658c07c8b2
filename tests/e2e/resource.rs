//! `portcullis-resource` against a real Portcullis: JWKS and introspection modes, the
//! axum extractor, every kind of bad token, and key rotation without a restart.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_protocol::claims::AccessTokenClaims;
use portcullis_resource::{
    AuthError, IntrospectionValidator, InvalidToken, JwksValidator, ScopeRequirement, Scoped, Validator,
};
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_app};
use serde_json::Value;

async fn token(app: &TestApp, id: &str, secret: &str, scope: &str) -> String {
    let body: Value = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn invalid(r: Result<portcullis_resource::VerifiedClaims, AuthError>) -> InvalidToken {
    match r {
        Err(AuthError::InvalidToken(k)) => k,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

/// A token signed by the server's real active key, with claims of our choosing.
fn signed_by_server(app: &TestApp, edit: impl FnOnce(&mut AccessTokenClaims), template: &str) -> String {
    let payload = template.split('.').nth(1).unwrap();
    let mut claims: AccessTokenClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    edit(&mut claims);
    let alg = app.core.settings.signing_alg;
    portcullis_core::jwt::sign(&app.core.keys.ring(), alg, "at+jwt", &claims).unwrap()
}

struct ApiWrite;
impl ScopeRequirement for ApiWrite {
    const SCOPES: &'static [&'static str] = &["api:write"];
}
struct ApiRead;
impl ScopeRequirement for ApiRead {
    const SCOPES: &'static [&'static str] = &["api:read"];
}

async fn jwks_mode_against_portcullis(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client("https://app.example/cb").await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let good = token(&app, &id, &sec, "api:read").await;
    let validator = JwksValidator::builder(app.issuer.clone())
        .audience(app.issuer.clone())
        .refetch_interval(portcullis_resource::jwks::MIN_REFETCH_INTERVAL)
        .build()
        .await
        .unwrap();

    let claims = validator.validate(&good).await.unwrap();
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.scopes, vec!["api:read".to_owned()]);
    assert_eq!(claims.issuer, app.issuer);

    // Tampered payload, wrong issuer, expired, wrong audience.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["scope"] = "api:read api:write".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(
        invalid(validator.validate(&parts.join(".")).await),
        InvalidToken::BadSignature
    );
    let wrong_iss = signed_by_server(&app, |c| c.iss = "https://evil.example".into(), &good);
    assert_eq!(invalid(validator.validate(&wrong_iss).await), InvalidToken::WrongIssuer);
    let expired = signed_by_server(&app, |c| c.exp = c.iat - 3600, &good);
    assert_eq!(invalid(validator.validate(&expired).await), InvalidToken::Expired);
    let other_api = JwksValidator::builder(app.issuer.clone())
        .audience("https://other-api.example")
        .build()
        .await
        .unwrap();
    assert_eq!(invalid(other_api.validate(&good).await), InvalidToken::WrongAudience);

    // alg none, and HS256 keyed with the server's public key.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let none = format!("{header}.{}.", good.split('.').nth(1).unwrap());
    assert_eq!(
        invalid(validator.validate(&none).await),
        InvalidToken::UnsupportedAlgorithm
    );
    let jwks: Value = http().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let public_key = jwks["keys"][0].to_string();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid);
    let claims: AccessTokenClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(good.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let hs = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_key.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        invalid(validator.validate(&hs).await),
        InvalidToken::UnsupportedAlgorithm
    );

    // The axum extractor: 200 with the scope, 403 insufficient_scope without, 401 without a token.
    let router = Router::new()
        .route("/read", get(|c: Scoped<ApiRead>| async move { c.subject.clone() }))
        .route("/write", get(|c: Scoped<ApiWrite>| async move { c.subject.clone() }))
        .with_state(Validator::from(validator.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let r = http()
        .get(format!("{api}/read"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{api}/write"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let r = http().get(format!("{api}/read")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http()
        .get(format!("{api}/read"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = http()
        .get(format!("{api}/read?access_token={good}"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "a token in the query string is never accepted");

    // Two rotations: the key that signs afterwards was published after the validator
    // last fetched the JWKS, so it must refetch on the unknown kid, without a restart.
    let core = &app.core;
    for _ in 0..2 {
        core.keys
            .rotate(
                core.store.as_ref(),
                portcullis_protocol::SigningAlg::RS256,
                core.now(),
                core.settings.retired_key_publication(),
                time::Duration::ZERO,
            )
            .await
            .unwrap();
    }
    let rotated = token(&app, &id, &sec, "api:read").await;
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        jsonwebtoken::decode_header(&good).unwrap().kid
    );
    // An unknown kid refetches the JWKS at most once per refetch interval.
    tokio::time::sleep(portcullis_resource::jwks::MIN_REFETCH_INTERVAL + Duration::from_millis(50)).await;
    validator.validate(&rotated).await.unwrap();
    validator.validate(&good).await.unwrap();
    app.stop().await;
}

async fn introspection_mode_sees_revocation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client("https://app.example/cb").await;
    let (rs, rs_secret) = app.confidential_client("https://api.example/cb").await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let t = token(&app, &id, &sec, "api:read").await;
    let validator =
        IntrospectionValidator::builder(app.issuer.clone(), rs.id.to_string(), rs_secret.expose().to_owned())
            .audience(app.issuer.clone())
            .cache_max_ttl(Duration::ZERO)
            .build()
            .await
            .unwrap();
    assert_eq!(validator.validate(&t).await.unwrap().client_id, id);
    let r = http()
        .post(app.url("/revoke"))
        .basic_auth(&id, Some(&sec))
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(invalid(validator.validate(&t).await), InvalidToken::Inactive);
    // Wrong resource-server credentials are a configuration problem, not a bad token.
    let wrong = IntrospectionValidator::builder(app.issuer.clone(), rs.id.to_string(), "wrong")
        .audience(app.issuer.clone())
        .build()
        .await
        .unwrap();
    assert!(matches!(wrong.validate(&t).await, Err(AuthError::Upstream { .. })));
    app.stop().await;
}

/// RFC 9701 with Portcullis: a validator that asks for signed answers verifies them
/// against the JWKS (a resource server registered for ES256 answers too), sees a
/// revocation, and refuses the keys of another issuer when built.
async fn introspection_mode_with_signed_answers(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.signing_alg = portcullis_protocol::SigningAlg::ES256;
    })
    .await;
    let (client, secret) = app.confidential_client("https://app.example/cb").await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let t = token(&app, &id, &sec, "api:read").await;
    let keys = || async {
        JwksValidator::builder(app.issuer.clone())
            .audience(app.issuer.clone())
            .build()
            .await
            .unwrap()
    };
    let (rs, rs_secret) = crate::jwt_introspection::es256_answered_api(&app).await;
    let (default_rs, default_secret) = app.confidential_client("https://api.example/cb").await;
    let mut validators = Vec::new();
    for (rs_id, rs_secret) in [
        (rs.id.to_string(), rs_secret),
        (default_rs.id.to_string(), default_secret.expose().to_owned()),
    ] {
        let validator = IntrospectionValidator::builder(app.issuer.clone(), rs_id, rs_secret)
            .audience(app.issuer.clone())
            .cache_max_ttl(Duration::ZERO)
            .signed_answers(keys().await)
            .build()
            .await
            .unwrap();
        let claims = validator.validate(&t).await.unwrap();
        assert_eq!(claims.client_id, id);
        assert_eq!(claims.scopes, ["api:read"]);
        validators.push(validator);
    }
    let r = http()
        .post(app.url("/revoke"))
        .basic_auth(&id, Some(&sec))
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for validator in &validators {
        assert_eq!(invalid(validator.validate(&t).await), InvalidToken::Inactive);
    }
    let other = portcullis_tests::spawn_app(backend).await;
    let other_keys = JwksValidator::builder(other.issuer.clone())
        .audience(other.issuer.clone())
        .build()
        .await
        .unwrap();
    let e = IntrospectionValidator::builder(app.issuer.clone(), rs.id.to_string(), "unused")
        .audience(app.issuer.clone())
        .signed_answers(other_keys)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Config(_)), "{e:?}");
    other.stop().await;
    app.stop().await;
}

/// A DPoP-bound token from Portcullis (`client_credentials` with a proof) is accepted by
/// both modes with a proof of its key for the API's URL, and refused as a bearer token,
/// with another key's proof, or with a proof for another URL.
async fn dpop_bound_tokens_against_portcullis(backend: Backend) {
    use axum::http::{Method, Uri};
    use portcullis_protocol::SigningAlg;
    use portcullis_resource::InvalidDpopProof;

    use crate::dpop::proof;
    use crate::private_key_jwt::client_key;
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client("https://app.example/cb").await;
    let (rs, rs_secret) = app.confidential_client("https://api.example/cb").await;
    let key = client_key(SigningAlg::ES256, "k").await;
    let thief = client_key(SigningAlg::ES256, "t").await;
    let r = http()
        .post(app.url("/token"))
        .basic_auth(client.id.as_str(), Some(secret.expose()))
        .header("DPoP", proof(&key, "POST", &app.url("/token"), None))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let bound = body["access_token"].as_str().unwrap().to_owned();
    let api = "https://api.example";
    let uri: Uri = "/notes?page=2".parse().unwrap();
    let jwks = Validator::from(
        JwksValidator::builder(app.issuer.clone())
            .audience(app.issuer.clone())
            .dpop_base_url(api)
            .build()
            .await
            .unwrap(),
    );
    let introspection = Validator::from(
        IntrospectionValidator::builder(app.issuer.clone(), rs.id.to_string(), rs_secret.expose().to_owned())
            .audience(app.issuer.clone())
            .dpop_base_url(api)
            .build()
            .await
            .unwrap(),
    );
    for validator in [&jwks, &introspection] {
        let good = proof(&key, "GET", &format!("{api}/notes"), Some(&bound));
        let claims = validator
            .validate_dpop(&bound, &good, &Method::GET, &uri)
            .await
            .unwrap();
        assert_eq!(
            claims.dpop_jkt.as_deref(),
            Some(crate::dpop::thumbprint(&key.jwk).as_str())
        );
        assert_eq!(claims.client_id, client.id.as_str());
        // The same proof again, as a bearer token, another key, another URL.
        assert!(matches!(
            validator.validate_dpop(&bound, &good, &Method::GET, &uri).await,
            Err(AuthError::InvalidDpopProof(InvalidDpopProof::Replayed))
        ));
        assert_eq!(
            invalid(validator.validate(&bound).await),
            InvalidToken::DpopBoundAsBearer
        );
        let stolen = proof(&thief, "GET", &format!("{api}/notes"), Some(&bound));
        assert_eq!(
            invalid(validator.validate_dpop(&bound, &stolen, &Method::GET, &uri).await),
            InvalidToken::DpopKeyMismatch
        );
        let elsewhere = proof(&key, "GET", "https://other.example/notes", Some(&bound));
        assert!(matches!(
            validator.validate_dpop(&bound, &elsewhere, &Method::GET, &uri).await,
            Err(AuthError::InvalidDpopProof(InvalidDpopProof::WrongUrl))
        ));
    }
    app.stop().await;
}

both_backends!(
    jwks_mode_against_portcullis,
    introspection_mode_sees_revocation,
    introspection_mode_with_signed_answers,
    dpop_bound_tokens_against_portcullis,
);
