//! Pushed authorization requests (RFC 9126) on both backends: a client pushes its
//! authorization request, authenticated, and sends the browser to `/authorize` with the
//! `request_uri` it got; the pushed parameters are the only ones read, the request_uri
//! works once and for its client only, and a bad pushed request is a JSON error.

use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use reqwest::header::CACHE_CONTROL;
use serde_json::Value;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::Step;

const VERIFIER: &str = "par-verifier-par-verifier-par-verifier-par-verifier";

fn challenge() -> String {
    portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(VERIFIER.as_bytes()))
}

/// The parameters of a good request, with `change` applied (a `None` value removes one).
fn request(change: &[(&'static str, Option<&str>)]) -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = vec![
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile".into()),
        ("state", "pushed-state".into()),
        ("nonce", "pushed-nonce".into()),
        ("code_challenge", challenge()),
        ("code_challenge_method", "S256".into()),
    ];
    for (name, value) in change {
        p.retain(|(k, _)| k != name);
        if let Some(v) = value {
            p.push((name, (*v).to_owned()));
        }
    }
    p
}

/// POSTs `form` to `/par` as the confidential client `(id, secret)`, or as a public client
/// naming itself when `secret` is `None`.
async fn push(app: &TestApp, (id, secret): (&str, Option<&str>), form: &[(&'static str, String)]) -> (u16, Value) {
    let mut r = http().post(app.url("/par"));
    let mut form = form.to_vec();
    match secret {
        Some(s) => r = r.basic_auth(id, Some(s)),
        None => form.push(("client_id", id.to_owned())),
    }
    let r = r.form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 201 {
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    u
}

async fn pushed_requests_are_used_once_by_their_client(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str(), secret.expose());
    let meta = app.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["pushed_authorization_request_endpoint"], app.url("/par"));
    assert_eq!(meta["require_pushed_authorization_requests"], false);

    let (s, pushed) = push(&app, (id, Some(secret)), &request(&[])).await;
    assert_eq!(s, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 90);
    let uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");

    // The browser's own parameters, other than client_id, are not read: a redirect_uri
    // or scope added there changes nothing.
    let url = authorize_url(
        &app,
        &[
            ("client_id", id),
            ("request_uri", &uri),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid email"),
            ("state", "tampered"),
        ],
    );
    let back = match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => u,
        other => panic!("no redirect to the client: {other:?}"),
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let param = |name: &str| back.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some("pushed-state"));
    let code = param("code").unwrap();
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid profile", "{tokens}");
    let payload = tokens["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "pushed-nonce");

    // Used once: the same link again is a page, not a redirect.
    let again = authorize_url(&app, &[("client_id", id), ("request_uri", &uri)]);
    let r = browser().get(again).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("has expired, was already used"));

    // For its own client only, and only with client_id.
    let (other, _) = app.confidential_client(REDIRECT).await;
    let (_, pushed) = push(&app, (id, Some(secret)), &request(&[])).await;
    let uri = pushed["request_uri"].as_str().unwrap().to_owned();
    for pairs in [
        vec![("client_id", other.id.as_str()), ("request_uri", uri.as_str())],
        vec![("request_uri", uri.as_str())],
        vec![
            ("client_id", id),
            ("request_uri", "urn:ietf:params:oauth:request_uri:unknown"),
        ],
    ] {
        let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{pairs:?}");
        assert!(r.headers().get("location").is_none());
    }
    // Those attempts did not use it up: its own client still can.
    let r = browser()
        .get(authorize_url(&app, &[("client_id", id), ("request_uri", &uri)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "on to the login page");
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    app.stop().await;
}

/// A pushed request is checked as `/authorize` checks one, and the answer is JSON.
async fn bad_pushed_requests_are_json_errors(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let me = (client.id.as_str(), Some(secret.expose()));
    let some_uri = "urn:ietf:params:oauth:request_uri:x";
    for (change, error) in [
        (
            vec![("redirect_uri", Some("https://evil.example/cb"))],
            "invalid_request",
        ),
        (vec![("code_challenge", None)], "invalid_request"),
        (vec![("code_challenge_method", Some("plain"))], "invalid_request"),
        (vec![("response_type", Some("token"))], "unsupported_response_type"),
        (vec![("scope", Some("admin"))], "invalid_scope"),
        (vec![("request_uri", Some(some_uri))], "invalid_request"),
        (vec![("client_id", Some("another-client"))], "invalid_request"),
        (vec![("prompt", Some("none login"))], "invalid_request"),
    ] {
        let (s, body) = push(&app, me, &request(&change)).await;
        assert_eq!((s, body["error"].as_str()), (400, Some(error)), "{change:?}: {body}");
        assert!(
            body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    // Without client authentication, or with a wrong secret.
    let r = http().post(app.url("/par")).form(&request(&[])).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (s, body) = push(&app, (client.id.as_str(), Some("wrong")), &request(&[])).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    // A machine client cannot push: it has no authorization code grant.
    let machine = portcullis_core::clients::ClientInput {
        name: "Batch".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        ..Default::default()
    };
    let (machine, machine_secret) = app.core.create_client(&machine, "test").await.unwrap();
    let machine_secret = machine_secret.unwrap();
    let (s, body) = push(
        &app,
        (machine.id.as_str(), Some(machine_secret.expose())),
        &request(&[]),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    // A public client names itself.
    let public = app.public_client(REDIRECT).await;
    let (s, body) = push(&app, (public.id.as_str(), None), &request(&[])).await;
    assert_eq!(s, 201, "{body}");
    app.stop().await;
}

/// With `require_pushed_authorization_requests`, discovery says so and an authorization
/// request with its parameters in the URL is refused at the client's redirect URI; a
/// pushed one goes through.
async fn pushed_requests_can_be_required(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.require_pushed_authorization_requests = true;
    })
    .await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["require_pushed_authorization_requests"], true);
    let mut plain = vec![("client_id", id.to_owned())];
    plain.extend(request(&[]));
    let pairs: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let param = |name: &str| back.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param("error").as_deref(), Some("invalid_request"));
    assert_eq!(param("state").as_deref(), Some("pushed-state"));
    // An unknown client is still a page, never a redirect.
    let r = browser()
        .get(authorize_url(
            &app,
            &[("client_id", "nobody"), ("redirect_uri", REDIRECT)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Pushed, it goes on to the login page.
    let (s, pushed) = push(&app, (id, Some(secret.expose())), &request(&[])).await;
    assert_eq!(s, 201, "{pushed}");
    let uri = pushed["request_uri"].as_str().unwrap();
    let r = browser()
        .get(authorize_url(&app, &[("client_id", id), ("request_uri", uri)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    app.stop().await;
}

/// A client registered with `require_pushed_authorization_requests` (RFC 9126 §6; admin
/// API, admin page) has its plain authorization requests refused at its redirect URI,
/// while other clients' go through; its pushed ones work.
async fn one_client_can_require_pushed_requests(backend: Backend) {
    use portcullis_core::model::AdminRole;

    use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, api_key, operator};
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (other, _) = app.confidential_client(REDIRECT).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let (s, created) = api
        .post(
            "/clients",
            serde_json::json!({"name": "Pushed only", "kind": "confidential", "redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code"], "scopes": "openid profile",
                   "require_pushed_authorization_requests": true}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{created}");
    assert_eq!(created["require_pushed_authorization_requests"], true);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let plain = |client: &str| {
        let mut p = vec![("client_id", client.to_owned())];
        p.extend(request(&[]));
        p
    };
    let pairs = plain(&id);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let param = |u: &Url, name: &str| u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert!(param(&back, "error_description").unwrap().contains("pushed"), "{back}");
    // Another client's plain request goes on to the login page.
    let pairs = plain(other.id.as_str());
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    // Pushed, it works to the end.
    let (s, pushed) = push(&app, (&id, Some(&secret)), &request(&[])).await;
    assert_eq!(s, 201, "{pushed}");
    let uri = pushed["request_uri"].as_str().unwrap();
    let url = authorize_url(&app, &[("client_id", id.as_str()), ("request_uri", uri)]);
    match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => assert!(param(&u, "code").is_some(), "{u}"),
        other => panic!("no redirect back: {other:?}"),
    }
    // The admin page shows it and its edit form keeps it.
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(page.contains("Pushed authorization requests required"), "{page}");
    let (_, form) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert!(
        form.contains(r#"id="require_pushed_authorization_requests" checked"#),
        "{form}"
    );
    app.stop().await;
}

both_backends!(
    one_client_can_require_pushed_requests,
    pushed_requests_can_be_required,
    pushed_requests_are_used_once_by_their_client,
    bad_pushed_requests_are_json_errors
);
