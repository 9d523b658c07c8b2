//! Public clients, first-party clients, `prompt=login`, `max_age`, `login_hint`, and the
//! session cookie's rotation at login.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_tests::{Backend, both_backends, browser, http, spawn_app};
use serde_json::Value;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::{Step, follow, param};

fn pkce() -> (String, String) {
    let verifier = "public-client-verifier-".repeat(2);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

fn auth_url(issuer: &str, client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&format!("{issuer}/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    u
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portcullis_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

async fn public_client_code_flow_and_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let public = app.public_client(REDIRECT).await;
    app.user("pat", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let b = browser();
    let Step::LeftIssuer(back) = authorize_in_browser(
        &b,
        &app,
        &auth_url(&app.issuer, public.id.as_str(), &challenge, &[]),
        "pat",
        "allow",
    )
    .await
    else {
        panic!("no redirect")
    };
    let code = param(&back, "code").unwrap();
    // Without the verifier: refused as an invalid grant (the code was issued for a
    // challenge; RFC 7636 §4.6, as the OpenID suite and other servers read it), and the
    // code not spent; with it, and only the client_id (auth method none): tokens.
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", public.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", public.id.as_str()),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", public.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

async fn first_party_skips_consent_and_prompts_force_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app
        .core
        .create_client(
            &ClientInput {
                name: "First Party".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid profile".into(),
                first_party: true,
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    app.user("quinn", PASSWORD).await;
    let (_, challenge) = pkce();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();

    // First visit: the login page, prefilled from login_hint; no consent page afterwards.
    let u = auth_url(&app.issuer, client.id.as_str(), &challenge, &[("login_hint", "quinn")]);
    let resp = b.get(u.clone()).send().await.unwrap();
    let cookie_before = session_cookie(&resp);
    let Step::Page { url, html, .. } = follow(&b, &issuer, resp, u.clone()).await else {
        panic!("expected the login page")
    };
    assert_eq!(url.path(), "/login");
    assert!(html.contains("value=\"quinn\""), "login_hint prefills the username");
    let resp = crate::forms::submit(&b, &url, &html, &[("username", "quinn"), ("password", PASSWORD)]).await;
    let cookie_after = session_cookie(&resp);
    assert!(cookie_after.is_some(), "login sets a new session cookie");
    assert_ne!(cookie_before, cookie_after, "the session id is rotated at login");
    let Step::LeftIssuer(back) = follow(&b, &issuer, resp, url).await else {
        panic!("first-party clients skip consent")
    };
    assert!(param(&back, "code").is_some());

    // With a session: no login page; prompt=login and max_age=0 force one.
    let u = auth_url(&app.issuer, client.id.as_str(), &challenge, &[]);
    let resp = b.get(u.clone()).send().await.unwrap();
    assert!(matches!(follow(&b, &issuer, resp, u).await, Step::LeftIssuer(_)));
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let u = auth_url(&app.issuer, client.id.as_str(), &challenge, &[extra]);
        // max_age counts whole seconds since login.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let resp = b.get(u.clone()).send().await.unwrap();
        let Step::Page { url, .. } = follow(&b, &issuer, resp, u.clone()).await else {
            panic!("{extra:?} must show the login page")
        };
        assert_eq!(url.path(), "/login", "{extra:?}");
        let Step::LeftIssuer(back) = authorize_in_browser(&b, &app, &u, "quinn", "allow").await else {
            panic!("no redirect after login")
        };
        assert!(param(&back, "code").is_some());
    }
    // max_age that is not a number: invalid_request to the client.
    let u = auth_url(&app.issuer, client.id.as_str(), &challenge, &[("max_age", "soon")]);
    let resp = b.get(u.clone()).send().await.unwrap();
    assert_eq!(
        param(&crate::forms::location(&u, &resp), "error").as_deref(),
        Some("invalid_request")
    );
    app.stop().await;
}

both_backends!(
    public_client_code_flow_and_refresh,
    first_party_skips_consent_and_prompts_force_login
);
