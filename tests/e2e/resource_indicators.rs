//! Resource indicators (RFC 8707) on both backends: a client registered with the APIs it
//! may ask for (`resources`) gets access tokens whose `aud` is the API it names with
//! `resource` at `/authorize` or `/token`, in every grant; an API it may not ask for is
//! `invalid_target`; a token for an API is not taken at `/userinfo`.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::{AdminRole, ClientKind};
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::{Value, json};
use url::Url;

use crate::admin_support::{Api, api_key, assert_field};
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::{Step, param};

const NOTES: &str = "https://api.example/notes";
const FILES: &str = "https://api.example/files";
const VERIFIER: &str = "resource-verifier-resource-verifier-resource-verifier";

/// The claims of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

async fn token(app: &TestApp, (id, secret): (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn aud(body: &Value) -> Value {
    payload(body["access_token"].as_str().unwrap())["aud"].clone()
}

fn assert_invalid_target(got: &(u16, Value)) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (400, Some("invalid_target")),
        "{}",
        got.1
    );
}

async fn tokens_are_for_the_api_asked_for(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let input = ClientInput {
        name: "Notes app".into(),
        kind: Some(ClientKind::Confidential),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec![
            "authorization_code".into(),
            "refresh_token".into(),
            "client_credentials".into(),
        ],
        scopes: "openid profile notes:read".into(),
        resources: vec![NOTES.into(), FILES.into()],
        ..Default::default()
    };
    let (client, secret) = app.core.create_client(&input, "test").await.unwrap();
    let secret = secret.unwrap();
    let me = (client.id.as_str(), secret.expose());

    // client_credentials: the API named, or the server's audience without one.
    let (s, body) = token(&app, me, &[("grant_type", "client_credentials"), ("resource", NOTES)]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(aud(&body), json!(NOTES));
    let (s, body) = token(&app, me, &[("grant_type", "client_credentials")]).await;
    assert_eq!((s, aud(&body)), (200, json!(app.issuer)), "{body}");
    for bad in ["https://api.example/other", "https://api.example/notes/", "not a uri"] {
        assert_invalid_target(&token(&app, me, &[("grant_type", "client_credentials"), ("resource", bad)]).await);
    }
    // One resource per request: two are a combination this server does not issue a
    // token for (RFC 8707 §2).
    let (s, body) = token(
        &app,
        me,
        &[
            ("grant_type", "client_credentials"),
            ("resource", NOTES),
            ("resource", FILES),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_target")), "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains("one API"),
        "{body}"
    );

    // A code asked for the notes API: its tokens are for it, and only for it.
    let auth = |resource: &str| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", me.0)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "openid notes:read")
            .append_pair("state", "s1")
            .append_pair(
                "code_challenge",
                &portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(VERIFIER.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource);
        u
    };
    // An API the client may not ask for: an error at its redirect URI.
    let r = browser()
        .get(auth(FILES.replace("files", "billing").as_str()))
        .send()
        .await
        .unwrap();
    let to = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&to, "error").as_deref(), Some("invalid_target"), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("s1"), "{to}");
    let code = match authorize_in_browser(&browser(), &app, &auth(NOTES), "alice", "allow").await {
        Step::LeftIssuer(u) => param(&u, "code").unwrap(),
        other => panic!("no redirect back: {other:?}"),
    };
    let exchange = |resource: Option<&'static str>| {
        let mut f = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        if let Some(r) = resource {
            f.push(("resource", r));
        }
        f
    };
    // Another API than the code's: refused, and the code is not spent.
    assert_invalid_target(&token(&app, me, &exchange(Some(FILES))).await);
    let (s, tokens) = token(&app, me, &exchange(Some(NOTES))).await;
    assert_eq!((s, aud(&tokens)), (200, json!(NOTES)), "{tokens}");
    // Not a token for /userinfo, which is the server's own API.
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("another API")
    );
    // Introspection reports the API.
    let r = http()
        .post(app.url("/introspect"))
        .basic_auth(me.0, Some(me.1))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        (info["active"].as_bool(), info["aud"].as_str()),
        (Some(true), Some(NOTES)),
        "{info}"
    );

    // Refreshes keep the grant's API; naming another is refused and spends nothing.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = |resource: Option<&'static str>, rt: &str| {
        let mut f = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt.to_owned()),
        ];
        if let Some(r) = resource {
            f.push(("resource", r.to_owned()));
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(app, me, &f).await
        }
    };
    assert_invalid_target(&send(form(Some(FILES), &refresh)).await);
    let (s, body) = send(form(Some(NOTES), &refresh)).await;
    assert_eq!((s, aud(&body)), (200, json!(NOTES)), "{body}");
    let (s, body) = send(form(None, body["refresh_token"].as_str().unwrap())).await;
    assert_eq!((s, aud(&body)), (200, json!(NOTES)), "{body}");

    // A used refresh token with a bad resource still goes to reuse detection (RFC 9700
    // §4.14.2): the grant ends.
    assert_eq!(send(form(Some(FILES), &refresh)).await.1["error"], "invalid_grant");
    let (s, _) = send(form(None, body["refresh_token"].as_str().unwrap())).await;
    assert_eq!(s, 400, "the grant was revoked");
    // A fresh grant for the notes API.
    let code = match authorize_in_browser(&browser(), &app, &auth(NOTES), "alice", "allow").await {
        Step::LeftIssuer(u) => param(&u, "code").unwrap(),
        other => panic!("no redirect back: {other:?}"),
    };
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (s, body) = token(&app, me, &exchange).await;
    assert_eq!((s, aud(&body)), (200, json!(NOTES)), "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // The operator takes the notes API from the client: the grant's refreshes are refused
    // and spend nothing, so giving it back lets them work again.
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let (s, patched) = api
        .patch(&format!("/clients/{}", me.0), json!({"resources": [FILES]}))
        .await;
    assert_eq!((s.as_u16(), &patched["resources"]), (200, &json!([FILES])), "{patched}");
    assert_invalid_target(&send(form(None, &refresh)).await);
    let (s, _) = api
        .patch(&format!("/clients/{}", me.0), json!({"resources": [FILES, NOTES]}))
        .await;
    assert_eq!(s.as_u16(), 200);
    let (s, body) = send(form(None, &refresh)).await;
    assert_eq!((s, aud(&body)), (200, json!(NOTES)), "{body}");
    // Registration refuses what is not an absolute https URI without a fragment.
    for bad in [
        "api.example/notes",
        "https://api.example/notes#x",
        "http://api.example/notes",
        "ftp://api.example",
        "http://localhost\\@evil.example/",
        "https:api.example",
        "https:/api.example",
        "https://api.example/ü",
    ] {
        let got = api
            .patch(&format!("/clients/{}", me.0), json!({"resources": [bad]}))
            .await;
        assert_field(&got, "resources");
    }
    // The admin page shows and edits them.
    crate::admin_support::operator(&app, "root", AdminRole::Admin).await;
    let p = crate::admin_support::Pages::sign_in(&app, "root", crate::admin_support::ADMIN_PASSWORD).await;
    let (_, page) = p.get(&format!("/admin/clients/{}", me.0)).await;
    assert!(
        page.contains("APIs (resource indicators)") && page.contains(FILES),
        "{page}"
    );
    let (_, form) = p.get(&format!("/admin/clients/{}/edit", me.0)).await;
    assert!(form.contains(&format!(">{FILES}\n{NOTES}</textarea>")), "{form}");
    app.stop().await;
}

both_backends!(tokens_are_for_the_api_asked_for);
