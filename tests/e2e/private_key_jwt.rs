//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9) on both
//! backends: a client registered with its public keys (admin API, admin page) gets no
//! secret and authenticates at `/token`, `/introspect` and `/revoke` with JWTs signed by
//! its private keys; every way an assertion can be wrong is refused with
//! `invalid_client` saying why, and none is accepted twice.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_core::crypto::Kek;
use portcullis_core::model::{AdminRole, KeyState};
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, api_key, assert_field, operator};
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key pair: its private half signs assertions, its public JWK is registered.
pub(crate) struct ClientKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
}

/// A fresh key of `alg` (made as the server makes its own), named `kid`.
pub(crate) async fn client_key(alg: SigningAlg, kid: &str) -> ClientKey {
    let kek = Kek::from_bytes([7; 32]);
    let rec = portcullis_core::keys::generate(&kek, alg, KeyState::Active, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let der = kek.open(&rec.private_key_encrypted, rec.kid.as_bytes()).unwrap();
    let (alg, encoding) = match alg {
        SigningAlg::RS256 => (Algorithm::RS256, EncodingKey::from_rsa_der(&der)),
        SigningAlg::ES256 => (Algorithm::ES256, EncodingKey::from_ec_der(&der)),
        SigningAlg::EdDSA => (Algorithm::EdDSA, EncodingKey::from_ed_der(&der)),
    };
    let mut jwk: Value = serde_json::from_str(&rec.public_jwk).unwrap();
    jwk["kid"] = json!(kid);
    ClientKey {
        kid: kid.to_owned(),
        alg,
        encoding,
        jwk,
    }
}

/// The claims of a good assertion from `client_id` to `aud`, expiring in a minute.
pub(crate) fn claims(client_id: &str, aud: &str) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

pub(crate) fn sign(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// Authenticates `client_id` with an assertion signed by `key` for `issuer` where it
/// costs nothing: `/revoke` of a made-up token at `app`. The status and the body (empty
/// when authenticated, RFC 7009 §2.2).
pub(crate) async fn authenticate_at_revoke(
    app: &TestApp,
    issuer: &str,
    client_id: &str,
    key: &ClientKey,
) -> (u16, String) {
    let assertion = sign(key, &claims(client_id, issuer));
    let r = http()
        .post(app.url("/revoke"))
        .form(&[
            ("token", "not-a-token"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// POSTs `form` with the assertion to `path`: the status and the JSON body.
async fn post(app: &TestApp, path: &str, assertion: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut fields = vec![
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    fields.extend_from_slice(form);
    let r = http().post(app.url(path)).form(&fields).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const CLIENT_CREDENTIALS: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// A `client_credentials` request refused with `invalid_client` whose description
/// contains `why`: a 400, since the client did not use HTTP authentication (no `Basic`
/// challenge, which clients such as openid-client take for a different failure).
async fn refused(app: &TestApp, assertion: &str, extra: &[(&str, &str)], why: &str) {
    let mut fields = vec![
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    fields.extend_from_slice(&CLIENT_CREDENTIALS);
    fields.extend_from_slice(extra);
    let r = http().post(app.url("/token")).form(&fields).send().await.unwrap();
    assert!(
        r.headers().get("www-authenticate").is_none(),
        "{why}: {:?}",
        r.headers()
    );
    let s = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_client")),
        "{why}: {body}"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(why), "expected {why:?}: {body}");
}

async fn assertions_authenticate_a_client(backend: Backend) {
    let app = spawn(backend).await;
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &admin_key);
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let ed = client_key(SigningAlg::EdDSA, "ed-1").await;
    let (s, created) = api
        .post(
            "/clients",
            json!({"name": "Keyed", "kind": "confidential", "grant_types": ["client_credentials"],
                   "scopes": "api:read", "jwks": {"keys": [es.jwk, ed.jwk]}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["client_secret"], Value::Null, "no secret: {created}");
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(created["jwks"]["keys"][1]["kid"], "ed-1");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let token_endpoint = app.url("/token");

    // Discovery says so.
    let meta = app.get_json("/.well-known/openid-configuration").await;
    for member in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert!(
            meta[member].as_array().unwrap().contains(&json!("private_key_jwt")),
            "{member}: {meta}"
        );
    }
    let algs = meta["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for (alg, listed) in [("ES256", true), ("EdDSA", true), ("Ed25519", true), ("HS256", false)] {
        assert_eq!(algs.contains(&json!(alg)), listed, "{alg}: {algs:?}");
    }

    // A good assertion, to the token endpoint or to the issuer, by either key.
    let good = sign(&es, &claims(&id, &token_endpoint));
    let (s, body) = post(&app, "/token", &good, &CLIENT_CREDENTIALS).await;
    assert_eq!(s, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let to_issuer = sign(&ed, &claims(&id, &app.issuer));
    let (s, body) = post(
        &app,
        "/token",
        &to_issuer,
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // Never twice (RFC 7523 §3 item 7).
    refused(&app, &good, &[], "used before").await;

    // Each claim that can be wrong: (claim, its value or None to leave it out, why).
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&id, &token_endpoint);
        change(&mut c);
        c
    };
    let cases: [(&str, Option<Value>, &str); 10] = [
        ("aud", Some(json!("https://elsewhere.example/token")), "aud"),
        // One audience only (draft-ietf-oauth-rfc7523bis): an assertion that also names
        // another server could have been made for it.
        (
            "aud",
            Some(json!(["https://elsewhere.example", app.issuer])),
            "one string",
        ),
        ("iat", Some(json!(now + 600)), "in the future"),
        ("iss", Some(json!([id.clone()])), "iss"),
        ("iss", Some(json!("someone-else")), "iss"),
        ("exp", Some(json!(now - 120)), "expired"),
        ("exp", Some(json!(now + 7200)), "more than an hour"),
        ("nbf", Some(json!(now + 600)), "not valid yet"),
        ("jti", None, "jti"),
        ("exp", None, "exp"),
    ];
    for (claim, value, why) in cases {
        let changed = with(&|c| match &value {
            Some(v) => c[claim] = v.clone(),
            None => drop(c.as_object_mut().unwrap().remove(claim)),
        });
        refused(&app, &sign(&es, &changed), &[], why).await;
    }
    refused(
        &app,
        &sign(&es, &with(&|_| ())),
        &[("client_id", "another")],
        "client_id",
    )
    .await;
    // Another kind of JWT the client signed is not an assertion.
    let mut typed = Header::new(es.alg);
    typed.kid = Some(es.kid.clone());
    typed.typ = Some("at+jwt".into());
    let access_like = jsonwebtoken::encode(&typed, &with(&|_| ()), &es.encoding).unwrap();
    refused(&app, &access_like, &[], "typ").await;
    typed.typ = Some("client-authentication+jwt".into());
    let explicit = jsonwebtoken::encode(&typed, &with(&|_| ()), &es.encoding).unwrap();
    assert_eq!(post(&app, "/token", &explicit, &CLIENT_CREDENTIALS).await.0, 200);
    // NumericDate may be fractional (RFC 7519 §2).
    let fractional = sign(&es, &with(&|c| c["exp"] = json!(now as f64 + 59.5)));
    assert_eq!(post(&app, "/token", &fractional, &CLIENT_CREDENTIALS).await.0, 200);
    // Signed by a key the client did not register (under a registered kid), or with a
    // shared-secret algorithm.
    let stranger = client_key(SigningAlg::ES256, "es-1").await;
    let claimed = with(&|_| ());
    refused(&app, &sign(&stranger, &claimed), &[], "not signed by a key registered").await;
    // Its jti is not used up by that: the client's own assertion with it works.
    let (s, body) = post(&app, "/token", &sign(&es, &claimed), &CLIENT_CREDENTIALS).await;
    assert_eq!(s, 200, "{body}");
    // An unknown client gets the same words (which clients use keys is not told).
    let unknown = sign(&es, &claims("no-such-client", &token_endpoint));
    refused(&app, &unknown, &[], "not signed by a key registered").await;
    // Expired, but within the 60 s of leeway: accepted once, and only once (its record
    // used to be taken over as soon as exp had passed).
    let late = sign(&es, &with(&|c| c["exp"] = json!(now - 30)));
    assert_eq!(post(&app, "/token", &late, &CLIENT_CREDENTIALS).await.0, 200);
    refused(&app, &late, &[], "used before").await;
    // RFC 9864's name for EdDSA over Ed25519, as oauth4webapi signs.
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"Ed25519","kid":"ed-1"}"#,
    );
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        with(&|_| ()).to_string(),
    );
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &ed.encoding, Algorithm::EdDSA).unwrap();
    let (s, body) = post(&app, "/token", &format!("{message}.{signature}"), &CLIENT_CREDENTIALS).await;
    assert_eq!(s, 200, "{body}");
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &with(&|_| ()),
        &EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    refused(&app, &hs, &[], "signed with").await;
    refused(&app, "not-a-jwt", &[], "not a signed JWT").await;

    // One method per request; the type and the assertion go together.
    let fresh = sign(&es, &claims(&id, &token_endpoint));
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some("x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &fresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = http()
        .post(app.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_assertion", &fresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &fresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    // The assertion was not used up by those refusals.
    let (s, body) = post(&app, "/token", &fresh, &CLIENT_CREDENTIALS).await;
    assert_eq!(s, 200, "{body}");

    // A client with a secret cannot use an assertion, nor this one a secret.
    let (secret_client, secret) = app.confidential_client(REDIRECT).await;
    let theirs = sign(&es, &claims(secret_client.id.as_str(), &token_endpoint));
    refused(&app, &theirs, &[], "not signed by a key registered").await;
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some(secret.expose()))
        .form(&CLIENT_CREDENTIALS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Introspection and revocation, with the endpoint's own URL as the audience.
    let (s, info) = post(
        &app,
        "/introspect",
        &sign(&ed, &claims(&id, &app.url("/introspect"))),
        &[("token", &access)],
    )
    .await;
    assert_eq!((s, &info["active"]), (200, &json!(true)), "{info}");
    let (s, _) = post(
        &app,
        "/revoke",
        &sign(&es, &claims(&id, &app.url("/revoke"))),
        &[("token", &access)],
    )
    .await;
    assert_eq!(s, 200);
    assert!(app.core.active_access_token(&access).is_none(), "revoked");

    // Its secret cannot be rotated while it has keys; without them it can.
    let path = format!("/clients/{id}");
    assert_field(&api.post_empty(&format!("{path}/rotate-secret")).await, "jwks");
    let (s, patched) = api.patch(&path, json!({"jwks": null})).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["token_endpoint_auth_method"], "client_secret_basic");
    refused(
        &app,
        &sign(&es, &claims(&id, &token_endpoint)),
        &[],
        "not signed by a key registered",
    )
    .await;
    let (s, rotated) = api.post_empty(&format!("{path}/rotate-secret")).await;
    assert_eq!(s, 200, "{rotated}");
    // Keys registered again end that secret.
    let (s, _) = api.patch(&path, json!({"jwks": {"keys": [es.jwk]}})).await;
    assert_eq!(s, 200);
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some(rotated["client_secret"].as_str().unwrap()))
        .form(&CLIENT_CREDENTIALS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the secret ended with the new keys");

    // Keys that cannot be registered.
    let mut private = es.jwk.clone();
    private["d"] = json!("AAAA");
    for bad in [
        json!({"keys": []}),
        json!({"keys": [private]}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        json!("not a set"),
    ] {
        assert_field(&api.patch(&path, json!({ "jwks": bad })).await, "jwks");
    }
    assert_field(
        &api.post(
            "/clients",
            json!({"name": "SPA", "kind": "public", "grant_types": ["authorization_code"],
                   "redirect_uris": ["https://spa.example/cb"], "jwks": {"keys": [es.jwk]}}),
        )
        .await,
        "jwks",
    );
    assert_field(
        &api.patch(&path, json!({"jwks": {"keys": [{"kty": "RSA"}]}})).await,
        "jwks",
    );

    app.core.audit.flush().await;
    let failures = app.audit_events("client.auth_failed").await;
    let reasons: Vec<&str> = failures
        .iter()
        .filter(|e| e.client_id.as_deref() == Some(id.as_str()) && e.detail["method"] == "private_key_jwt")
        .filter_map(|e| e.detail["reason"].as_str())
        .collect();
    for expected in [
        "used before",
        "has expired",
        "not signed by a key registered",
        "one string",
        "aud",
    ] {
        assert!(reasons.iter().any(|r| r.contains(expected)), "{expected}: {reasons:?}");
    }
    app.stop().await;
}

/// A person signs in to an app that authenticates with `private_key_jwt`: the code is
/// exchanged with an RS256 assertion; the app's keys are registered on the admin page.
async fn code_flow_with_an_assertion(backend: Backend) {
    let app = spawn(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    app.user("alice", PASSWORD).await;
    let rsa = client_key(SigningAlg::RS256, "rsa-1").await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let token = p.csrf("/admin/clients/new").await;
    let jwks = json!({"keys": [rsa.jwk]}).to_string();
    let form = |jwks: &str| {
        vec![
            ("csrf", token.clone()),
            ("name", "Keyed web app".to_owned()),
            ("kind", "confidential".to_owned()),
            ("redirect_uris", REDIRECT.to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("scopes", "openid profile".to_owned()),
            ("require_pkce", "on".to_owned()),
            ("first_party", "on".to_owned()),
            ("jwks", jwks.to_owned()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post("/admin/clients", &f).await
        }
    };
    let (s, _, html) = send(form(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#)).await;
    assert_eq!(s.as_u16(), 422, "{html}");
    assert!(
        html.contains(r#"id="jwks-error""#) && html.contains("symmetric"),
        "{html}"
    );
    let (s, _, html) = send(form(&jwks)).await;
    assert_eq!(s.as_u16(), 200, "{html}");
    assert!(
        html.contains("private_key_jwt") && !html.contains(r#"id="client-secret""#),
        "{html}"
    );
    let id = html
        .split(r#"<code id="client-id">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(
        page.contains("private_key_jwt (1 keys: rsa-1)") && !page.contains(r#"id="rotate-secret""#),
        "{page}"
    );

    let verifier = "v".repeat(50);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let mut auth = url::Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let back = match authorize_in_browser(&browser(), &app, &auth, "alice", "allow").await {
        crate::forms::Step::LeftIssuer(u) => u,
        other => panic!("no redirect back: {other:?}"),
    };
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (s, tokens) = post(&app, "/token", &sign(&rsa, &claims(&id, &app.url("/token"))), &exchange).await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    app.stop().await;
}

/// A client authenticated by its keys has the per-client `/token` limit of any
/// confidential client (it has no secret, which once decided that).
async fn a_keyed_client_has_its_own_rate_limit(backend: Backend) {
    use portcullis_core::throttle::{Bucket, RateLimit};
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        let limits = &mut s.core.defense.rate_limits;
        limits.set(Bucket::TokenClient, RateLimit::parse("3/min").unwrap());
        limits.set(Bucket::TokenIp, RateLimit::parse("100/min").unwrap());
    })
    .await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let input = portcullis_core::clients::ClientInput {
        name: "Keyed".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks: Some(json!({"keys": [es.jwk]}).to_string()),
        ..Default::default()
    };
    let (client, secret) = app.core.create_client(&input, "test").await.unwrap();
    assert!(secret.is_none());
    let id = client.id.as_str();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let assertion = sign(&es, &claims(id, &app.url("/token")));
        statuses.push(post(&app, "/token", &assertion, &CLIENT_CREDENTIALS).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    app.stop().await;
}

/// With `strict_client_assertion_audience` (draft-ietf-oauth-rfc7523bis), the issuer is
/// the only audience taken: the token endpoint's URL and the URL of the endpoint called
/// are refused, so an assertion made for another server's endpoint cannot be played here.
async fn strict_audience_is_the_issuer_only(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.strict_client_assertion_audience = true;
    })
    .await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let input = portcullis_core::clients::ClientInput {
        name: "Keyed".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks: Some(json!({"keys": [es.jwk]}).to_string()),
        ..Default::default()
    };
    let (client, _) = app.core.create_client(&input, "test").await.unwrap();
    let id = client.id.as_str();
    for aud in [app.url("/token"), app.url("/introspect")] {
        let assertion = sign(&es, &claims(id, &aud));
        refused(&app, &assertion, &[], "must be this server's issuer").await;
    }
    let (s, body) = post(
        &app,
        "/token",
        &sign(&es, &claims(id, &app.issuer)),
        &CLIENT_CREDENTIALS,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = post(
        &app,
        "/introspect",
        &sign(&es, &claims(id, &app.url("/introspect"))),
        &[("token", "x")],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_client")), "{body}");
    app.stop().await;
}

async fn spawn(backend: Backend) -> TestApp {
    portcullis_tests::spawn_app(backend).await
}

both_backends!(
    assertions_authenticate_a_client,
    code_flow_with_an_assertion,
    a_keyed_client_has_its_own_rate_limit,
    strict_audience_is_the_issuer_only,
);
