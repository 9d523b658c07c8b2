//! JWT responses for token introspection (RFC 9701) on both backends: a resource server
//! that asks with `Accept: application/token-introspection+jwt` gets the RFC 7662 answer
//! inside a JWT signed by a JWKS key, typed, for itself, with no `sub` or `exp` of its
//! own; one that does not ask gets JSON; errors stay JSON.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_with};
use serde_json::{Value, json};

use crate::code_flow::REDIRECT;

const JWT: &str = "application/token-introspection+jwt";

/// `/introspect` of `token` by `(id, secret)` with `accept`: status, content type, body.
async fn introspect_as(app: &TestApp, (id, secret): (&str, &str), token: &str, accept: &str) -> (u16, String, String) {
    let r = http()
        .post(app.url("/introspect"))
        .basic_auth(id, Some(secret))
        .header("accept", accept)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(r.headers()["cache-control"], "no-store");
        // The answer depends on `Accept` (RFC 9110 §12.5.5).
        assert_eq!(r.headers()["vary"], "accept");
    }
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

/// The claims of an introspection JWT for `client_id`, once its signature (by a key in
/// `/jwks`), `typ`, `iss` and `aud` are checked; and its algorithm.
async fn verified(app: &TestApp, jwt: &str, client_id: &str) -> (Value, jsonwebtoken::Algorithm) {
    let required = ["iss", "aud", "iat"];
    crate::code_flow::verified_by_jwks(app, jwt, "token-introspection+jwt", client_id, &required).await
}

/// A resource server whose signed introspection answers are ES256: the client and its
/// secret.
pub(crate) async fn es256_answered_api(app: &TestApp) -> (portcullis_core::model::Client, String) {
    let (api, secret) = app
        .core
        .create_client(
            &ClientInput {
                name: "Notes API".into(),
                kind: Some(ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "api:read".into(),
                introspection_signed_response_alg: Some("ES256".into()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    (api, secret.unwrap().expose().to_owned())
}

async fn a_resource_server_may_ask_for_signed_answers(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.signing_alg = SigningAlg::ES256;
    })
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["introspection_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let creds = (client.id.as_str(), secret.expose());
    let (status, body) = app.client_credentials(creds.0, creds.1).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();

    let (status, content_type, plain) = introspect_as(&app, creds, access, "application/json").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain["active"], true);

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let (status, content_type, jwt) = introspect_as(&app, creds, access, JWT).await;
    assert_eq!((status, content_type.as_str()), (200, JWT), "{jwt}");
    let (claims, alg) = verified(&app, &jwt, creds.0).await;
    assert_eq!(alg, jsonwebtoken::Algorithm::RS256, "the default");
    assert_eq!(claims["token_introspection"], plain, "the RFC 7662 answer, whole");
    assert!(
        (before..=before + 5).contains(&claims["iat"].as_i64().unwrap()),
        "{claims}"
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    for own in ["sub", "exp", "scope", "client_id", "active"] {
        assert!(claims.get(own).is_none(), "no top-level {own}: {claims}");
    }

    // Inactive: the answer says so and nothing else. Among other types, and a q=0.
    let (status, _, jwt) = introspect_as(
        &app,
        creds,
        "not-a-token",
        "application/json; q=0.5, application/token-introspection+JWT; q=0.9",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        verified(&app, &jwt, creds.0).await.0["token_introspection"],
        json!({"active": false})
    );
    let (_, content_type, _) = introspect_as(
        &app,
        creds,
        access,
        "application/token-introspection+jwt;q=0, application/json",
    )
    .await;
    assert_eq!(content_type, "application/json");
    // JSON preferred: JSON (RFC 9110 §12.5.1).
    let (_, content_type, _) = introspect_as(
        &app,
        creds,
        access,
        "application/json, application/token-introspection+jwt;q=0.1",
    )
    .await;
    assert_eq!(content_type, "application/json");
    // A refused caller is told so in JSON.
    let (status, content_type, body) = introspect_as(&app, (creds.0, "wrong"), access, JWT).await;
    assert_eq!((status, content_type.as_str()), (401, "application/json"), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_client");

    // A resource server registered with ES256 answers.
    let (api, api_secret) = es256_answered_api(&app).await;
    let api_creds = (api.id.as_str(), api_secret.as_str());
    let (_, _, jwt) = introspect_as(&app, api_creds, access, JWT).await;
    let (claims, alg) = verified(&app, &jwt, api_creds.0).await;
    assert_eq!(alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["aud"], api_creds.0);
    assert_eq!(
        claims["token_introspection"],
        serde_json::from_str::<Value>(&introspect_as(&app, api_creds, access, "application/json").await.2).unwrap()
    );
    let refused = app
        .core
        .create_client(
            &ClientInput {
                name: "Bad".into(),
                kind: Some(ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "api:read".into(),
                introspection_signed_response_alg: Some("HS256".into()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("introspection_signed_response_alg"),
        "{refused}"
    );
    // §5: a token for an API not the caller's is active in JSON (any resource server
    // may introspect), inactive in the signed answer.
    const LEDGER: &str = "https://ledger.example/api";
    let for_ledger = crate::token_endpoint::token_for_api(&app, "Ledger caller", LEDGER).await;
    let for_ledger = for_ledger.as_str();
    let (_, _, plain) = introspect_as(&app, api_creds, for_ledger, "application/json").await;
    assert_eq!(serde_json::from_str::<Value>(&plain).unwrap()["active"], true);
    let (_, _, jwt) = introspect_as(&app, api_creds, for_ledger, JWT).await;
    assert_eq!(
        verified(&app, &jwt, api_creds.0).await.0["token_introspection"],
        json!({"active": false})
    );
    let (ledger_api, ledger_secret) = app
        .core
        .create_client(
            &ClientInput {
                name: "Ledger API".into(),
                kind: Some(ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "api:read".into(),
                resources: vec![LEDGER.into()],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let ledger_creds = (ledger_api.id.as_str(), ledger_secret.as_ref().unwrap().expose());
    let (_, _, jwt) = introspect_as(&app, ledger_creds, for_ledger, JWT).await;
    let answer = verified(&app, &jwt, ledger_creds.0).await.0;
    assert_eq!(answer["token_introspection"]["active"], true, "{answer}");
    assert_eq!(answer["token_introspection"]["aud"], LEDGER);
    app.stop().await;
}

/// RFC 7591 with RFC 9701 §6: a client that registers itself may name the algorithm
/// (echoed, RS256 when it names none); encryption is refused.
async fn a_registered_client_names_its_introspection_algorithm(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.signing_alg = SigningAlg::ES256;
    })
    .await;
    let register = async |body: Value| {
        let r = http().post(app.url("/register")).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, body) = register(json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(
        (status, &body["introspection_signed_response_alg"]),
        (201, &json!("RS256"))
    );
    let (status, body) =
        register(json!({"redirect_uris": [REDIRECT], "introspection_signed_response_alg": "ES256"})).await;
    assert_eq!(
        (status, &body["introspection_signed_response_alg"]),
        (201, &json!("ES256"))
    );
    for (extra, says) in [
        (
            json!({"introspection_signed_response_alg": "HS256"}),
            "introspection_signed_response_alg",
        ),
        (json!({"introspection_encrypted_response_alg": "RSA-OAEP"}), "encrypt"),
    ] {
        let mut metadata = json!({"redirect_uris": [REDIRECT]});
        metadata
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, e) = register(metadata).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{e}"
        );
        assert!(e["error_description"].as_str().unwrap().contains(says), "{e}");
    }
    app.stop().await;
}

both_backends!(
    a_resource_server_may_ask_for_signed_answers,
    a_registered_client_names_its_introspection_algorithm,
);
