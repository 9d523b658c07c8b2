//! Malformed input a sweep of every endpoint found mishandled, on both backends:
//! - NUL (U+0000): PostgreSQL's text cannot hold it and SQLite's can, so an input that
//!   would be stored or looked up with one is refused in its endpoint's format (or found
//!   nowhere) before it reaches a store. It was a 500 on PostgreSQL only.
//! - `Authorization` or `Content-Type` sent twice (RFC 9110 §5.3: not lists): refused,
//!   where the first copy used to count.
//! - A sign-out `state` of any length, echoed into the redirect's URL: bounded as at
//!   `/authorize`.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::{AdminRole, AuditFilter, ClientKind};
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, both_backends, browser, http, spawn_app};
use serde_json::{Value, json};
use url::Url;

use crate::admin_support::{Api, api_key, assert_field};
use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens};
use crate::defense::sign_in;
use crate::dpop::{jws, proof_parts};
use crate::private_key_jwt::{ASSERTION_TYPE, claims, client_key, sign};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The JSON error body of `r`, once it is seen to be a 400 with the error `code`.
async fn refused(r: reqwest::Response, code: &str, what: &str) -> Value {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{what}: {body}");
    body
}

async fn nul_characters_are_refused_alike(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());

    // /authorize: invalid_request at the registered redirect URI, with the state.
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("nonce", "n\0m")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    let r = browser().get(u).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let param = |name: &str| back.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param("error").as_deref(), Some("invalid_request"), "{back}");
    assert!(param("error_description").unwrap().contains("NUL"), "{back}");
    assert_eq!(param("state").as_deref(), Some("st"));

    // Form bodies of the protocol endpoints: RFC 6749 §5.2 invalid_request.
    for (path, form) in [
        ("/token", vec![("grant_type", "client_credentials"), ("scope", "api\0")]),
        (
            "/par",
            vec![
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("nonce", "n\0"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ),
        ("/revoke", vec![("token", "a\0b")]),
        ("/introspect", vec![("token", "a\0b")]),
    ] {
        let r = http()
            .post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        refused(r, "invalid_request", path).await;
    }

    // A client assertion and a DPoP proof whose jti holds one: invalid_client and
    // invalid_dpop_proof, as any other unusable jti.
    let key = client_key(SigningAlg::ES256, "es-1").await;
    let input = ClientInput {
        name: "Keyed".into(),
        kind: Some(ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks: Some(json!({"keys": [key.jwk]}).to_string()),
        ..Default::default()
    };
    let (keyed, _) = app.core.create_client(&input, "test").await.unwrap();
    let keyed = keyed.id.as_str().to_owned();
    let mut assertion = claims(&keyed, &app.url("/token"));
    assertion["jti"] = json!("a\0b");
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sign(&key, &assertion)),
        ])
        .send()
        .await
        .unwrap();
    let body = refused(r, "invalid_client", "an assertion").await;
    assert!(body["error_description"].as_str().unwrap().contains("jti"), "{body}");
    let (header, mut proof) = proof_parts(&key, "POST", &app.url("/token"), None);
    proof["jti"] = json!("a\0b");
    let r = http()
        .post(app.url("/token"))
        .header("DPoP", jws(&key, &header, &proof))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sign(&key, &claims(&keyed, &app.url("/token")))),
        ])
        .send()
        .await
        .unwrap();
    refused(r, "invalid_dpop_proof", "a DPoP proof").await;

    // Pages: a username with one is not correct; a request id with one is not open.
    let b = browser();
    let a = sign_in(&b, &app, "al\0ice", PASSWORD, None).await;
    assert_eq!(a.status, 200, "{}", a.html);
    assert!(
        a.html.contains("The username or password is not correct."),
        "{}",
        a.html
    );
    // Its audit event is stored on both stores, the NUL replaced (PostgreSQL's jsonb
    // refused it, and with it every event of its batch).
    app.core.audit.flush().await;
    let failures = app
        .core
        .list_audit(&AuditFilter {
            event_type: Some("login.failure".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        failures.events.iter().any(|e| e.detail["username"] == "al\u{FFFD}ice"),
        "{:?}",
        failures.events
    );
    let r = b.get(app.url("/consent?req=%00")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not open"));

    // The admin API's searches and filters: 400 invalid_field naming the field.
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &admin_key);
    for (path, field) in [
        ("/users?search=%00", "search"),
        ("/clients?search=a%00", "search"),
        ("/audit-events?event_type=%00", "event_type"),
        ("/audit-events?client_id=%00", "client_id"),
    ] {
        assert_field(&api.get(path).await, field);
    }
    app.stop().await;
}

/// RFC 9110 §5.3, RFC 6750 §2: `Authorization` and `Content-Type` are not lists; sent
/// twice, which copy counts is anyone's guess (a proxy may have read the other).
async fn headers_sent_twice_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{id}:{secret}"))
    );
    let form = "grant_type=client_credentials";
    let token = |headers: &[(&str, &str)]| {
        let mut r = http().post(app.url("/token")).body(form);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    for (what, request) in [
        (
            "good Authorization first",
            token(&[
                ("content-type", FORM),
                ("authorization", &basic),
                ("authorization", "Basic eDp5"),
            ]),
        ),
        (
            "good Authorization last",
            token(&[
                ("content-type", FORM),
                ("authorization", "Basic eDp5"),
                ("authorization", &basic),
            ]),
        ),
        (
            "two Content-Types",
            token(&[
                ("content-type", FORM),
                ("content-type", "application/json"),
                ("authorization", &basic),
            ]),
        ),
    ] {
        let r = request.send().await.unwrap();
        refused(r, "invalid_request", what).await;
    }
    // Once each, the same request works.
    let r = token(&[("content-type", FORM), ("authorization", &basic)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");

    // UserInfo: a second Authorization is a malformed request, in the Bearer challenge.
    let r = http()
        .get(app.url("/userinfo"))
        .header("authorization", "Bearer one")
        .header("authorization", "Bearer two")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request"),
        "{:?}",
        r.headers()
    );
    // Posted with two Content-Types, whatever carries the token.
    app.user("alice", PASSWORD).await;
    let tokens = obtain_tokens(&app, &id, &secret, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = http()
        .post(app.url("/userinfo"))
        .bearer_auth(access)
        .header("content-type", FORM)
        .header("content-type", "text/plain")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // An access_token without a value, in the query beside the header, is omitted (RFC
    // 6749 §3.1): no token in the query; so is an empty client_secret at /token.
    let r = http()
        .get(app.url("/userinfo?access_token="))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(app.url("/token?client_secret="))
        .header("content-type", FORM)
        .header("authorization", &basic)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The admin API: two keys, or two Content-Types, are refused too.
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &admin_key);
    let r = api
        .http
        .get(format!("{}/clients", api.base))
        .bearer_auth(&admin_key)
        .header("authorization", "Bearer not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api
        .http
        .post(format!("{}/users", api.base))
        .bearer_auth(&admin_key)
        .header("content-type", "application/json")
        .header("content-type", "text/plain")
        .body(r#"{"username":"twice","password":"a long passphrase"}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(app.core.find_user("twice").await.is_err());
    app.stop().await;
}

/// A sign-out request's `state` is bounded as `/authorize`'s is: it is sent back in the
/// redirect's URL.
async fn an_overlong_logout_state_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let logout = |state: &str| {
        let mut u = Url::parse(&app.url("/logout")).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", client.id.as_str())
            .append_pair("post_logout_redirect_uri", &format!("{REDIRECT}/logged-out"))
            .append_pair("state", state);
        u
    };
    let r = browser().get(logout(&"s".repeat(2049))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("longer than 2048"));
    // Posted (RP-Initiated Logout §2), it is refused before it is put in a URL.
    let r = browser()
        .post(app.url("/logout"))
        .form(&[("client_id", client.id.as_str()), ("state", &"s".repeat(20_000))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // At the bound, nobody signed in: straight back, with the state.
    let r = browser().get(logout(&"s".repeat(2048))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}/logged-out?state={}", "s".repeat(2048))
    );
    app.stop().await;
}

/// RFC 8259 §4 leaves which of two members of one name counts to each reader: a body
/// naming one twice at any depth (a `jwks` with `keys` twice) is refused on every path
/// that takes keys, not read as the last.
async fn members_named_twice_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &admin_key);
    let key = client_key(SigningAlg::ES256, "k1").await;
    let jwk = key.jwk.to_string();
    let body = format!(
        r#"{{"name":"Keyed","kind":"confidential","grant_types":["client_credentials"],"scopes":"api:read","jwks":{{"keys":[],"keys":[{jwk}]}}}}"#
    );
    let r = api
        .http
        .post(format!("{}/clients", api.base))
        .bearer_auth(&admin_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("twice"));
    // Core's own check, which the admin form and the CLI's --jwks-file go through.
    let input = ClientInput {
        name: "Keyed".into(),
        kind: Some(ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks: Some(format!(r#"{{"keys":[],"keys":[{jwk}]}}"#)),
        ..Default::default()
    };
    let err = app.core.create_client(&input, "test").await.unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert!(
        app.core
            .list_clients(None)
            .await
            .unwrap()
            .iter()
            .all(|c| c.name != "Keyed")
    );
    app.stop().await;
}

both_backends!(
    members_named_twice_are_refused,
    nul_characters_are_refused_alike,
    headers_sent_twice_are_refused,
    an_overlong_logout_state_is_refused
);
