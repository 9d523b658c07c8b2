//! Request objects by reference (OIDC Core §6.2, RFC 9101 §5.2) and those of clients that
//! register themselves, on both backends: read from the client's registered `request_uris`
//! only, unsigned ones only where configured, and signed with the keys a client that
//! authenticates with a secret registered beside it.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, both_backends, browser, http};
use serde_json::{Value, json};
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::Step;
use crate::jwks_uri::{Published, key_host};
use crate::private_key_jwt::client_key;
use crate::registration::{open_registration, register};
use crate::request_object::{
    BESIDE, authorize_url, b64, client_with, keyed_client, object, param, refused_with, send, signed,
};

/// OIDC Core §6.2: a request object read from one of the client's `request_uris`
/// (compared without the fragment), checked against the SHA-256 hash a fragment names,
/// then taken as one sent by value; anything else is `invalid_request_uri`.
async fn request_objects_by_reference(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let es = client_key(SigningAlg::ES256, "es-ref").await;
    let published = Published::default();
    let base = key_host(published.clone()).await;
    let at = format!("{base}/jwks");
    let jwks = json!({"keys": [es.jwk]});
    let (client, _) = app
        .core
        .create_client(
            &ClientInput {
                name: "Requests by reference".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid profile".into(),
                jwks: Some(jwks.to_string()),
                request_uris: vec![format!("{at}#{}", b64(&[0u8; 32]))],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let id = client.id.as_str().to_owned();
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["request_uri_parameter_supported"], true);
    assert_eq!(meta["require_request_uri_registration"], true);

    let object_jwt = signed(&es, &object(&app, &id, &[]));
    published.set(200, object_jwt.clone());
    // Read at the registered URL (its registered fragment is another content's: a
    // request names the one it sends); the parameters beside it are not read.
    let url = authorize_url(
        &app,
        &[
            ("client_id", id.as_str()),
            ("request_uri", &at),
            ("scope", "openid"),
            ("state", "outside-state"),
        ],
    );
    let back = match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => u,
        other => panic!("no redirect to the client: {other:?}"),
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(published.hits(), 1);
    // With the hash of what is there: taken (to the login page).
    let hashed = format!("{at}#{}", b64(&portcullis_core::crypto::sha256(object_jwt.as_bytes())));
    let r = browser()
        .get(authorize_url(&app, &[("client_id", &id), ("request_uri", &hashed)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));

    // Refused, at the redirect URI beside it with the state beside it.
    let refused = async |request_uri: &str, extra: &[(&str, &str)], code: &str, why: &str| {
        let mut pairs = vec![("client_id", id.as_str()), ("request_uri", request_uri)];
        pairs.extend_from_slice(&BESIDE);
        pairs.extend_from_slice(extra);
        let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{why}");
        let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT), "{why}: {back}");
        assert_eq!(param(&back, "error").as_deref(), Some(code), "{why}: {back}");
        assert_eq!(param(&back, "state").as_deref(), Some("outside-state"), "{back}");
        let description = param(&back, "error_description").unwrap_or_default();
        assert!(description.contains(why), "expected {why:?}: {description}");
        assert!(param(&back, "code").is_none());
    };
    let hits = published.hits();
    refused(
        &format!("{base}/moved"),
        &[],
        "invalid_request_uri",
        "not one of the client's request_uris",
    )
    .await;
    refused(
        &format!("{at}?x=1"),
        &[],
        "invalid_request_uri",
        "not one of the client's request_uris",
    )
    .await;
    assert_eq!(published.hits(), hits, "an unregistered URL is not read");
    refused(
        &at,
        &[("request", &object_jwt)],
        "invalid_request",
        "cannot both be sent",
    )
    .await;
    // Whatever went wrong once the URL is found registered, the answer is the same (the
    // log says why): nobody learns from it what a URL holds.
    const UNUSABLE: &str = "the request object at request_uri could not be used";
    let other_hash = format!("{at}#{}", b64(&portcullis_core::crypto::sha256(b"another object")));
    refused(&other_hash, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(404, String::new());
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(
        200,
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(object(&app, &id, &[]).to_string().as_bytes())
        ),
    );
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(
        200,
        signed(&es, &object(&app, &id, &[("pad", json!("x".repeat(20_000)))])),
    );
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    // What a URL with a fragment held is kept: its hash says it is the same.
    let hits = published.hits();
    for _ in 0..2 {
        let r = browser()
            .get(authorize_url(&app, &[("client_id", &id), ("request_uri", &hashed)]))
            .send()
            .await
            .unwrap();
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    }
    assert_eq!(published.hits(), hits, "read once, before");
    let r = browser()
        .get(authorize_url(
            &app,
            &[("client_id", &id), ("request_uri", &at), ("request_uri", &at)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a repeated request_uri is shown, never read");

    // A client that takes only pushed requests costs no read; a client that registered
    // itself is read only at public addresses (loopback is not one).
    let mut pushed_only = app.core.get_client(&client.id).await.unwrap();
    pushed_only.require_pushed_authorization_requests = true;
    app.core.store.update_client(&pushed_only, &[]).await.unwrap();
    let hits = published.hits();
    refused(&at, &[], "invalid_request", "pushed authorization request endpoint").await;
    let mut self_registered = app.core.get_client(&client.id).await.unwrap();
    self_registered.require_pushed_authorization_requests = false;
    self_registered.self_registered = true;
    app.core.store.update_client(&self_registered, &[]).await.unwrap();
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    assert_eq!(published.hits(), hits);
    app.stop().await;
}

/// OIDC Registration §2: a client that registers itself may name `request_uris`: with
/// keys to sign what they hold, at names (not addresses) the server may read; echoed.
async fn request_uris_are_registered(backend: Backend) {
    let app = open_registration(backend).await;
    let es = client_key(SigningAlg::ES256, "es").await;
    let keyed = |uris: Value| {
        json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [es.jwk]},
            "request_uris": uris,
        })
    };
    let (status, reg) = register(&app, &keyed(json!(["https://rp.example/request.jwt"]))).await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["request_uris"], json!(["https://rp.example/request.jwt"]));
    // An operator's edit (which cannot name them) keeps them.
    let id = portcullis_protocol::ClientId::parse(reg["client_id"].as_str().unwrap()).unwrap();
    let before = app.core.get_client(&id).await.unwrap();
    app.core
        .update_client(
            &id,
            &ClientInput {
                name: "Renamed".into(),
                kind: Some(before.kind),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                jwks: before.jwks.clone(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        app.core.get_client(&id).await.unwrap().request_uris,
        ["https://rp.example/request.jwt"]
    );
    let nine: Vec<String> = (0..9).map(|i| format!("https://rp.example/r{i}.jwt")).collect();
    for (metadata, why) in [
        (keyed(json!(["http://127.0.0.1:8080/request.jwt"])), "request_uris: "),
        (keyed(json!(["https://rp.example/r.jwt#short"])), "base64url SHA-256"),
        (keyed(json!(["ftp://rp.example/r.jwt"])), "request_uris"),
        (keyed(json!(nine)), "at most 8"),
        (
            json!({"redirect_uris": [REDIRECT], "request_uris": ["https://rp.example/request.jwt"]}),
            "register jwks or jwks_uri",
        ),
    ] {
        let (status, e) = register(&app, &metadata).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{e}"
        );
        assert!(e["error_description"].as_str().unwrap().contains(why), "{why}: {e}");
    }
    app.stop().await;
}

/// `allow_unsigned_request_objects` (OIDC Core §6.1, for the OpenID conformance suite's
/// dynamic plan): an unsigned object (`alg` `none`, empty signature) is read like a plain
/// request; `iss` and `aud` may be left out but not be wrong; a client that must sign,
/// or registered an algorithm, still must. Discovery lists `none` then, and only then.
async fn unsigned_objects_when_allowed(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.allow_unsigned_request_objects = true;
    })
    .await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], false).await;
    let unsigned = |claims: &Value, signature: &str| {
        format!(
            "{}.{}.{signature}",
            b64(br#"{"alg":"none"}"#),
            b64(claims.to_string().as_bytes())
        )
    };
    let bare = object(
        &app,
        &id,
        &[("iss", Value::Null), ("aud", Value::Null), ("exp", Value::Null)],
    );
    let next = send(&app, &id, &unsigned(&bare, ""), &BESIDE).await.unwrap();
    assert_eq!(next.path(), "/login", "{next}");
    for (jwt, why) in [
        (
            unsigned(&object(&app, &id, &[("iss", json!("someone-else"))]), ""),
            "iss must be the client_id",
        ),
        (
            unsigned(&object(&app, &id, &[("aud", json!("https://other.example"))]), ""),
            "aud must be this server's issuer",
        ),
        (unsigned(&bare, "c2ln"), "must have an empty signature"),
    ] {
        refused_with(&app, &id, &jwt, "invalid_request_object", why).await;
    }
    // A client that must sign its objects.
    let strict = client_with(&app, &[&es], false, true).await;
    let bare = object(&app, &strict, &[]);
    refused_with(
        &app,
        &strict,
        &unsigned(&bare, ""),
        "invalid_request_object",
        "must be signed",
    )
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    let algs = meta["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.contains(&json!("none")), "{algs:?}");
    app.stop().await;

    // Off (the default): refused as any object without a signature, and not listed.
    let app = portcullis_tests::spawn_app(backend).await;
    let id = keyed_client(&app, &[&es], false).await;
    let bare = object(&app, &id, &[]);
    refused_with(
        &app,
        &id,
        &unsigned(&bare, ""),
        "invalid_request_object",
        "must be signed with",
    )
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    let algs = meta["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(!algs.contains(&json!("none")), "{algs:?}");
    app.stop().await;
}

/// OIDC Registration §2 lists `jwks` apart from the token endpoint's method: a client
/// that registers itself with a secret method and keys (as the OpenID conformance suite
/// does) authenticates with its secret and signs its request objects with its keys.
async fn secret_clients_sign_objects_with_registered_keys(backend: Backend) {
    let app = open_registration(backend).await;
    let rs = client_key(SigningAlg::RS256, "rs-1").await;
    let (status, registered) = register(
        &app,
        &json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
            "jwks": {"keys": [rs.jwk]},
            "request_object_signing_alg": "RS256",
        }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "client_secret_basic");
    let id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().expect("a secret");
    let next = send(&app, id, &signed(&rs, &object(&app, id, &[])), &BESIDE)
        .await
        .unwrap();
    assert_eq!(next.path(), "/login", "{next}");
    for (password, expected) in [(secret, 200), ("wrong", 401)] {
        let r = http()
            .post(app.url("/revoke"))
            .basic_auth(id, Some(password))
            .form(&[("token", "not-a-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{password}");
    }
    // An operator's edit keeps the secret and the keys.
    let client_id = portcullis_protocol::ClientId::parse(id).unwrap();
    let stored = app.core.get_client(&client_id).await.unwrap();
    let edited = app
        .core
        .update_client(
            &client_id,
            &ClientInput {
                name: "Edited".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                jwks: stored.jwks.clone(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert!(edited.secret_hash.is_some() && edited.jwks.is_some());
    assert_eq!(edited.token_endpoint_auth_method(), "client_secret_basic");
    // A public client has no use for keys.
    let (status, body) = register(
        &app,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "jwks": {"keys": [rs.jwk]}}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );
    app.stop().await;
}

both_backends!(
    secret_clients_sign_objects_with_registered_keys,
    unsigned_objects_when_allowed,
    request_objects_by_reference,
    request_uris_are_registered,
);
