//! `private_key_jwt` with keys the client publishes at its `jwks_uri` (OIDC Registration
//! §2) on both backends: read when first needed, kept, read again when an assertion is
//! signed by a key not seen (a rollover), never more than once per 10 s per client; a
//! `jwks_uri` that cannot be read, redirects, or publishes a private key authenticates
//! nobody.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, TestApp, both_backends, http};
use serde_json::{Value, json};

use crate::private_key_jwt::{ASSERTION_TYPE, ClientKey, authenticate_at_revoke, claims, client_key, sign};

/// What the client's key host answers, and how often it was asked.
#[derive(Clone, Default)]
pub(crate) struct Published {
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl Published {
    pub(crate) fn set(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }
    pub(crate) fn keys(&self, keys: &[&ClientKey]) {
        let set = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        self.set(200, set.to_string());
    }
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Serves `/jwks` from `published`, and `/moved` as a redirect to it: the base URL.
pub(crate) async fn key_host(published: Published) -> String {
    async fn jwks(State(p): State<Published>) -> impl IntoResponse {
        p.hits.fetch_add(1, Ordering::SeqCst);
        let (status, body) = p.answer.lock().unwrap().clone();
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
    }
    async fn moved() -> impl IntoResponse {
        (StatusCode::FOUND, [("location", "/jwks")])
    }
    let app = axum::Router::new()
        .route("/jwks", axum::routing::get(jwks))
        .route("/moved", axum::routing::get(moved))
        .with_state(published);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn input(jwks_uri: &str) -> ClientInput {
    ClientInput {
        name: "Published keys".into(),
        kind: Some(ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks_uri: Some(jwks_uri.into()),
        ..Default::default()
    }
}

/// `client_credentials` with an assertion signed by `key`: the status and the body.
async fn token(app: &TestApp, client_id: &str, key: &ClientKey) -> (u16, Value) {
    let assertion = sign(key, &claims(client_id, &app.issuer));
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_refused(got: &(u16, Value), why: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (400, Some("invalid_client")),
        "{}",
        got.1
    );
    let description = got.1["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(why), "expected {why:?}: {}", got.1);
}

/// A node that reads a client's keys again after 1 s rather than 10.
async fn app(backend: Backend) -> TestApp {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.jwks_uri_retry_gap = std::time::Duration::from_secs(1);
    })
    .await
}

async fn keys_are_read_kept_and_read_again_for_a_new_key(backend: Backend) {
    let app = app(backend).await;
    let published = Published::default();
    let host = key_host(published.clone()).await;
    let (a, b, c) = (
        client_key(SigningAlg::ES256, "a").await,
        client_key(SigningAlg::RS256, "b").await,
        client_key(SigningAlg::EdDSA, "c").await,
    );
    published.keys(&[&a]);
    let (client, secret) = app
        .core
        .create_client(&input(&format!("{host}/jwks")), "test")
        .await
        .unwrap();
    assert!(secret.is_none(), "a client with a jwks_uri has no secret");
    assert_eq!(client.token_endpoint_auth_method(), "private_key_jwt");
    let id = client.id.as_str();

    let (s, body) = token(&app, id, &a).await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = token(&app, id, &a).await;
    assert_eq!((s, published.hits()), (200, 1), "kept, not read for every request");

    // Rollover: the client publishes its new key, then signs with it at once (as the
    // OpenID conformance suite does right after a token request): the request waits for
    // the retry gap to end and the keys read again.
    published.keys(&[&a, &b]);
    let (s, body) = token(&app, id, &b).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(published.hits(), 2, "read again for the key not seen");
    // A key never published: refused; requests naming it at once share one read, at the
    // end of the gap (the server reads the client's keys at most once per gap).
    let asked = std::time::Instant::now();
    let (first, second) = tokio::join!(token(&app, id, &c), token(&app, id, &c));
    assert_refused(&first, "not signed by a key registered");
    assert_refused(&second, "not signed by a key registered");
    assert_eq!(published.hits(), 3);
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    // Another node reads for itself.
    let other = portcullis_tests::spawn_app_on(&app.database_url, None).await;
    let (s, _) = token(&other, id, &b).await;
    assert_eq!((s, published.hits()), (200, 4));

    // An edit to another URL: its keys, read at once.
    let moved_keys = Published::default();
    let host2 = key_host(moved_keys.clone()).await;
    moved_keys.keys(&[&c]);
    app.core
        .update_client(&client.id, &input(&format!("{host2}/jwks")), "test")
        .await
        .unwrap();
    let (s, body) = token(&app, id, &c).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(moved_keys.hits(), 1);
    // Such a client has no secret to rotate.
    let e = app.core.rotate_client_secret(&client.id, "test").await.unwrap_err();
    assert!(e.to_string().contains("jwks_uri"), "{e}");
}

async fn unreadable_keys_authenticate_nobody(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let key = client_key(SigningAlg::ES256, "k").await;
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    // An error answer, a redirect (not followed), a private key published, not JSON.
    let cases: [(&str, u16, String); 4] = [
        ("/jwks", 500, "{}".into()),
        ("/moved", 200, String::new()),
        ("/jwks", 200, json!({"keys": [private]}).to_string()),
        ("/jwks", 200, "<html>".into()),
    ];
    for (path, status, body) in cases {
        let published = Published::default();
        let host = key_host(published.clone()).await;
        if path == "/moved" {
            published.keys(&[&key]);
        } else {
            published.set(status, body);
        }
        let (client, _) = app
            .core
            .create_client(&input(&format!("{host}{path}")), "test")
            .await
            .unwrap();
        // Told as a bad signature is: the caller learns nothing of the client's keys.
        assert_refused(
            &token(&app, client.id.as_str(), &key).await,
            "not signed by a key registered",
        );
        assert_eq!(published.hits(), usize::from(path != "/moved"), "{path}");
    }
    // A body over 64 KiB is not read.
    let published = Published::default();
    let host = key_host(published.clone()).await;
    let padding = "x".repeat(70 * 1024);
    published.set(200, json!({"keys": [key.jwk], "padding": padding}).to_string());
    let (client, _) = app
        .core
        .create_client(&input(&format!("{host}/jwks")), "test")
        .await
        .unwrap();
    assert_refused(
        &token(&app, client.id.as_str(), &key).await,
        "not signed by a key registered",
    );
    // Disabled, the client's keys are not even read.
    let published = Published::default();
    let host = key_host(published.clone()).await;
    published.keys(&[&key]);
    let (client, _) = app
        .core
        .create_client(&input(&format!("{host}/jwks")), "test")
        .await
        .unwrap();
    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    assert_refused(
        &token(&app, client.id.as_str(), &key).await,
        "not signed by a key registered",
    );
    assert_eq!(published.hits(), 0);

    // The cause is in the audit trail, for operators.
    app.core.audit.flush().await;
    let causes: Vec<String> = app
        .audit_events("client.auth_failed")
        .await
        .into_iter()
        .filter_map(|e| e.detail["cause"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(causes.len(), 5, "{causes:?}");
    for expected in [
        "answered 500",
        "answered 302",
        "publishes a private or symmetric key",
        "not JSON",
        "over 65536 bytes",
    ] {
        assert!(causes.iter().any(|c| c.contains(expected)), "{expected}: {causes:?}");
    }
}

/// A JWK Set read replaces the keys known, even with none: a key the client withdrew is
/// refused once the set was read again. A failed read leaves the keys known.
async fn withdrawn_keys_are_refused(backend: Backend) {
    let app = app(backend).await;
    let published = Published::default();
    let host = key_host(published.clone()).await;
    let (a, b) = (
        client_key(SigningAlg::ES256, "a").await,
        client_key(SigningAlg::ES256, "b").await,
    );
    published.keys(&[&a]);
    let (client, _) = app
        .core
        .create_client(&input(&format!("{host}/jwks")), "test")
        .await
        .unwrap();
    let id = client.id.as_str();
    assert_eq!(token(&app, id, &a).await.0, 200);
    let gap = std::time::Duration::from_millis(1100);

    // The host fails: an assertion by a key not known reads again, and the known keys
    // stay.
    published.set(500, "{}".into());
    tokio::time::sleep(gap).await;
    assert_refused(&token(&app, id, &b).await, "not signed by a key registered");
    assert_eq!(published.hits(), 2);
    assert_eq!(token(&app, id, &a).await.0, 200, "still known");

    // The client withdraws its keys: once read, they are refused.
    published.set(200, json!({"keys": []}).to_string());
    tokio::time::sleep(gap).await;
    assert_refused(&token(&app, id, &b).await, "not signed by a key registered");
    assert_eq!(published.hits(), 3);
    assert_refused(&token(&app, id, &a).await, "not signed by a key registered");
    // And so with a 404.
    published.keys(&[&a]);
    tokio::time::sleep(gap).await;
    assert_eq!(token(&app, id, &a).await.0, 200);
    published.set(404, String::new());
    tokio::time::sleep(gap).await;
    assert_refused(&token(&app, id, &b).await, "not signed by a key registered");
    assert_refused(&token(&app, id, &a).await, "not signed by a key registered");
}

async fn registration_rules(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let key = client_key(SigningAlg::ES256, "k").await;
    let field = |r: portcullis_core::Result<_>| match r {
        Err(portcullis_core::Error::Invalid { field, .. }) => field,
        other => panic!("{:?}", other.map(|_: (portcullis_core::model::Client, _)| ())),
    };
    let both = ClientInput {
        jwks: Some(json!({"keys": [key.jwk]}).to_string()),
        ..input("https://keys.example/jwks")
    };
    assert_eq!(field(app.core.create_client(&both, "test").await), "jwks_uri");
    let public = ClientInput {
        kind: Some(ClientKind::Public),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec!["https://rp.example/cb".into()],
        ..input("https://keys.example/jwks")
    };
    assert_eq!(field(app.core.create_client(&public, "test").await), "jwks_uri");
    for bad in [
        "http://keys.example/jwks",
        "https://keys.example/jwks#k",
        "https://user@keys.example/jwks",
        "keys.example/jwks",
        "https://keys.example\\@evil.example/",
    ] {
        assert_eq!(
            field(app.core.create_client(&input(bad), "test").await),
            "jwks_uri",
            "{bad}"
        );
    }
    // A client that had a secret loses it when it registers a jwks_uri.
    let (client, secret) = app
        .core
        .create_client(
            &ClientInput {
                jwks_uri: None,
                ..input("")
            },
            "test",
        )
        .await
        .unwrap();
    assert!(secret.is_some());
    let edited = app
        .core
        .update_client(&client.id, &input("https://keys.example/jwks"), "test")
        .await
        .unwrap();
    assert!(edited.secret_hash.is_none());
    assert_eq!(edited.jwks_uri.as_deref(), Some("https://keys.example/jwks"));
}

/// Every endpoint that authenticates clients takes keys read from a `jwks_uri`:
/// `/introspect`, `/revoke`, `/par` and `/device_authorization` as `/token` does.
async fn every_client_endpoint_takes_published_keys(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let published = Published::default();
    let host = key_host(published.clone()).await;
    let key = client_key(SigningAlg::ES256, "k").await;
    published.keys(&[&key]);
    let all = ClientInput {
        grant_types: vec![
            "client_credentials".into(),
            "authorization_code".into(),
            portcullis_protocol::DEVICE_CODE_GRANT.into(),
        ],
        redirect_uris: vec!["https://rp.example/cb".into()],
        scopes: "openid api:read".into(),
        ..input(&format!("{host}/jwks"))
    };
    let (client, _) = app.core.create_client(&all, "test").await.unwrap();
    let id = client.id.as_str();
    let (s, tokens) = token(&app, id, &key).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(b"v".repeat(43).as_slice()));
    let cases = [
        ("/introspect", vec![("token", access)], 200),
        (
            "/par",
            vec![
                ("response_type", "code"),
                ("redirect_uri", "https://rp.example/cb"),
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            201,
        ),
        ("/device_authorization", vec![("scope", "openid")], 200),
        ("/revoke", vec![("token", access)], 200),
    ];
    for (path, form, status) in cases {
        // The issuer is the audience every endpoint takes.
        let assertion = sign(&key, &claims(id, &app.issuer));
        let mut fields = vec![
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ];
        fields.extend(form);
        let r = http().post(app.url(path)).form(&fields).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}: {}", r.text().await.unwrap());
    }
    assert_eq!(published.hits(), 1, "read once, kept for all");
    // The token revoked above is no longer active.
    let assertion = sign(&key, &claims(id, &app.issuer));
    let r = http()
        .post(app.url("/introspect"))
        .form(&[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("token", access),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
}

/// A client that registered itself (RFC 7591) may publish its keys at a `jwks_uri`
/// too, read at public addresses only (`outbound`): here loopback stands in for one,
/// allowed by `outbound_allowed_networks`. A node that does not allow it sends no request
/// and authenticates nobody with those keys; it refuses to register such an address too.
async fn a_self_registered_client_is_read_at_public_addresses_only(backend: Backend) {
    let (db, guard) = portcullis_tests::fresh_database(backend).await;
    let allowing = portcullis_tests::spawn_with(&db, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let published = Published::default();
    let host = key_host(published.clone()).await;
    let key = client_key(SigningAlg::ES256, "self-1").await;
    published.keys(&[&key]);
    let metadata = json!({
        "redirect_uris": ["https://rp.example/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": format!("{host}/jwks"),
    });
    let r = http()
        .post(allowing.url("/register"))
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    assert_eq!(registered["jwks_uri"], format!("{host}/jwks"), "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "private_key_jwt");
    assert!(registered.get("client_secret").is_none(), "{registered}");
    let id = registered["client_id"].as_str().unwrap();
    let revoke = async |app: &TestApp| authenticate_at_revoke(app, &allowing.issuer, id, &key).await;
    assert_eq!(revoke(&allowing).await, (200, String::new()));
    assert_eq!(published.hits(), 1);

    // A node that allows public addresses only: the same client, the same database.
    let issuer = allowing.issuer.clone();
    let strict = portcullis_tests::spawn_with(&db, None, |s| {
        s.core.issuer = issuer.clone();
        s.core.access_token_audience = issuer.clone();
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    let (status, body) = revoke(&strict).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client")),
        "{body}"
    );
    assert_eq!(
        published.hits(),
        1,
        "no request was sent (the node's key cache was empty)"
    );
    let r = http()
        .post(strict.url("/register"))
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_client_metadata");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .starts_with("jwks_uri: 127.0.0.1 is not a public address"),
        "{refused}"
    );
    strict.stop().await;
    allowing.stop().await;
}

both_backends!(
    a_self_registered_client_is_read_at_public_addresses_only,
    every_client_endpoint_takes_published_keys,
    withdrawn_keys_are_refused,
    keys_are_read_kept_and_read_again_for_a_new_key,
    unreadable_keys_authenticate_nobody,
    registration_rules,
);
