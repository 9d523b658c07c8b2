//! Dynamic client registration's policy for the clients it lets in (RFC 7591, RFC 9700
//! §4.11.2, RFC 8252): their error answers and sign-out returns wait for a click unless
//! configured otherwise, native apps may use any loopback port, PKCE may be left out only
//! where configured, and a registered `default_max_age` asks for a new login.

use portcullis_core::registration::RegistrationMode;
use portcullis_tests::{Backend, TestApp, both_backends, browser};
use serde_json::{Value, json};
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT};
use crate::conformance_review::authorize_url;
use crate::forms::{Step, follow, param, submit};
use crate::registration::{manage, open_registration, register};

/// RFC 9700 §4.11.2: an error for a self-registered client, before the person has seen
/// a page, is shown with the host it goes to and a link on; an operator's client is
/// answered at once.
async fn errors_of_self_registered_clients_are_shown_first(backend: Backend) {
    let app = open_registration(backend).await;
    let (status, registered) = register(
        &app,
        &json!({"client_name": "Evil Co", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let self_registered = registered["client_id"].as_str().unwrap().to_owned();
    let operator = app.public_client(REDIRECT).await;
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(b"verifier"));
    let url = |client: &str, extra: &[(&str, &str)]| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "st")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra);
        u
    };
    /// What the case is, its extra parameters, the error expected.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        ("a scope it may not have", &[("scope", "admin")], "invalid_scope"),
        (
            "prompt=none for nobody signed in",
            &[("scope", "openid"), ("prompt", "none")],
            "login_required",
        ),
        (
            "the same, as form_post",
            &[("scope", "openid"), ("prompt", "none"), ("response_mode", "form_post")],
            "login_required",
        ),
    ];
    for (label, extra, error) in cases {
        let form_post = extra.contains(&("response_mode", "form_post"));
        let r = browser().get(url(&self_registered, extra)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{label}: shown, not redirected");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.unwrap();
        assert!(html.contains(r#"id="self-registered""#), "{label}: {html}");
        assert!(
            html.contains("<strong>rp.example</strong>") && html.contains("Evil Co"),
            "{label}: {html}"
        );
        assert!(html.contains(&format!("<code>{error}</code>")), "{label}: {html}");
        if form_post {
            assert!(
                html.contains(&format!(r#"<form method="post" action="{REDIRECT}">"#)),
                "{label}: {html}"
            );
            assert!(
                html.contains(&format!(r#"name="error" value="{error}""#)),
                "{label}: {html}"
            );
            assert!(!html.contains("form_post.js"), "{label}: never sent on by itself");
        } else {
            let link = format!(r#"href="{REDIRECT}?error={error}"#);
            assert!(html.contains(&link), "{label}: {html}");
        }
        let r = browser().get(url(operator.id.as_str(), extra)).send().await.unwrap();
        if form_post {
            assert_eq!(r.status(), 200, "{label}");
            assert!(r.text().await.unwrap().contains("form_post.js"), "{label}");
        } else {
            assert_eq!(r.status(), 303, "{label}: an operator's client is answered at once");
            let to = r.headers()["location"].to_str().unwrap();
            assert!(to.starts_with(&format!("{REDIRECT}?error={error}")), "{label}: {to}");
        }
    }
    app.stop().await;
}

/// RFC 9700 §4.11.2 after the login page, and at `/logout`: an error found once the
/// person signed in (a `claims` request naming someone else) is shown, not sent; a
/// sign-out offers a self-registered client's redirect as a link. Its logo from another
/// host is not shown. An operator's client is redirected as before.
async fn self_registered_clients_never_redirect_by_themselves(backend: Backend) {
    let app = open_registration(backend).await;
    app.user("alice", PASSWORD).await;
    let (status, registered) = register(
        &app,
        &json!({
            "client_name": "Evil Co",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["https://rp.example/bye"],
            "logo_uri": "https://bank.example/logo.png",
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let id = registered["client_id"].as_str().unwrap();
    let issuer = Url::parse(&app.issuer).unwrap();
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(b"verifier"));
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("claims", r#"{"id_token":{"sub":{"value":"somebody-else"}}}"#);
    let b = browser();
    let resp = b.get(auth.clone()).send().await.unwrap();
    let Step::Page { url, html, .. } = follow(&b, &issuer, resp, auth.clone()).await else {
        panic!("expected the login page")
    };
    assert_eq!(url.path(), "/login");
    assert!(
        html.contains(r#"id="self-registered""#) && html.contains("<strong>rp.example</strong>"),
        "{html}"
    );
    let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
    match follow(&b, &issuer, resp, url.clone()).await {
        Step::Page { html, status, .. } => {
            assert_eq!(status, 200);
            assert!(html.contains("<code>login_required</code>"), "{html}");
            assert!(
                html.contains(&format!(r#"href="{REDIRECT}?error=login_required"#)),
                "{html}"
            );
        }
        Step::LeftIssuer(u) => panic!("sent to {u} by itself"),
    }

    // Its consent page shows no logo from another host than its redirect URIs'.
    let mut plain = auth.clone();
    plain.query_pairs_mut().clear();
    for (k, v) in auth.query_pairs().filter(|(k, _)| k != "claims") {
        plain.query_pairs_mut().append_pair(&k, &v);
    }
    let resp = b.get(plain.clone()).send().await.unwrap();
    let Step::Page { url, html, .. } = follow(&b, &issuer, resp, plain.clone()).await else {
        panic!("expected the consent page")
    };
    assert_eq!(url.path(), "/consent", "{html}");
    assert!(
        !html.contains("client-logo") && !html.contains("bank.example"),
        "{html}"
    );

    // Sign-out, nobody signed in: a link, not a redirect.
    let logout = |client: &str, to: &str| {
        let mut u = Url::parse(&app.url("/logout")).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", client)
            .append_pair("post_logout_redirect_uri", to)
            .append_pair("state", "s1");
        u
    };
    let r = browser()
        .get(logout(id, "https://rp.example/bye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="self-registered""#), "{html}");
    assert!(html.contains(r#"href="https://rp.example/bye?state=s1""#), "{html}");
    // Signed in: confirmed, then the same.
    let r = b.get(logout(id, "https://rp.example/bye")).send().await.unwrap();
    let logout_url = logout(id, "https://rp.example/bye");
    let Step::Page { url, html, .. } = follow(&b, &issuer, r, logout_url).await else {
        panic!("expected the confirmation page")
    };
    assert!(html.contains("offered a link back"), "{html}");
    let resp = submit(&b, &url, &html, &[]).await;
    match follow(&b, &issuer, resp, url.clone()).await {
        Step::Page { html, .. } => {
            assert!(html.contains("You are signed out"), "{html}");
            assert!(html.contains(r#"href="https://rp.example/bye?state=s1""#), "{html}");
        }
        Step::LeftIssuer(u) => panic!("sent to {u} by itself"),
    }
    // An operator's client is sent back at once.
    let (operator, _) = app
        .core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: "Ops app".into(),
                kind: Some(portcullis_core::model::ClientKind::Public),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec!["https://rp.example/bye".into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                ..Default::default()
            },
            "ops",
        )
        .await
        .unwrap();
    let r = browser()
        .get(logout(operator.id.as_str(), "https://rp.example/bye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://rp.example/bye?state=s1");
    app.stop().await;
}

/// OIDC Registration §2 `default_max_age`: with none named in the request, a login
/// older than it is repeated; a request's own `max_age` overrides it. Kept, echoed and
/// replaced with the registration; a value that is no number of seconds is refused.
async fn default_max_age_asks_for_a_new_login(backend: Backend) {
    let app = open_registration(backend).await;
    app.user("alice", PASSWORD).await;
    for bad in [json!(-1), json!("60"), json!(1.5), json!(31_536_001)] {
        let (status, body) = register(&app, &json!({"redirect_uris": [REDIRECT], "default_max_age": bad})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{bad}: {body}"
        );
    }
    // A whole number written as a float is one.
    let (status, body) = register(&app, &json!({"redirect_uris": [REDIRECT], "default_max_age": 60.0})).await;
    assert_eq!((status, &body["default_max_age"]), (201, &json!(60)), "{body}");
    let (status, registered) = register(&app, &json!({"redirect_uris": [REDIRECT], "default_max_age": 0})).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["default_max_age"], 0);
    let id = registered["client_id"].as_str().unwrap();
    let authorize = |extra: &[(&str, &str)]| authorize_url(&app, id, REDIRECT, extra);
    let b = browser();
    let issuer = Url::parse(&app.issuer).unwrap();
    let u = authorize(&[]);
    let Step::LeftIssuer(back) = crate::code_flow::authorize_in_browser(&b, &app, &u, "alice", "allow").await else {
        panic!("expected a code")
    };
    assert!(param(&back, "code").is_some(), "{back}");
    // Signed in a moment ago, and consented: the login page all the same...
    let Step::Page { url, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("expected the login page")
    };
    assert_eq!(url.path(), "/login");
    // ...unless the request names its own max_age.
    let u = authorize(&[("max_age", "3600")]);
    let Step::LeftIssuer(back) = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("max_age=3600 overrides default_max_age")
    };
    assert!(param(&back, "code").is_some(), "{back}");

    // Read back, and taken away by a replacement that leaves it out (RFC 7592 §2.2).
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let read: Value = manage(reqwest::Method::GET, uri, Some(token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["default_max_age"], 0, "{read}");
    // A read hands out a new registration access token (RFC 7592 §3).
    let token = read["registration_access_token"].as_str().unwrap_or(token);
    let replaced = manage(
        reqwest::Method::PUT,
        uri,
        Some(token),
        Some(&json!({"client_id": id, "redirect_uris": [REDIRECT]})),
    )
    .await;
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert!(replaced.get("default_max_age").is_none(), "{replaced}");
    let u = authorize(&[]);
    let Step::LeftIssuer(back) = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("no default_max_age any more: straight back with a code")
    };
    assert!(param(&back, "code").is_some(), "{back}");
    app.stop().await;
}

/// RFC 8252 §7.3 and §8.4: an app that registers itself on a loopback IP redirect URI
/// (a native app instance, with a secret of its own) may ask on any port, as a public
/// client may; path and host still match exactly.
async fn self_registered_native_apps_use_any_loopback_port(backend: Backend) {
    let app = open_registration(backend).await;
    let (status, registered) = register(&app, &json!({"redirect_uris": ["http://127.0.0.1/cb"]})).await;
    assert_eq!(status, 201, "{registered}");
    assert!(
        registered["client_secret"].is_string(),
        "a confidential client: {registered}"
    );
    let id = registered["client_id"].as_str().unwrap();
    let ask = |redirect: &str| {
        let u = authorize_url(&app, id, redirect, &[]);
        async move { browser().get(u).send().await.unwrap() }
    };
    let r = ask("http://127.0.0.1:53121/cb").await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?req="));
    let r = ask("http://127.0.0.1:53121/other").await;
    assert_eq!(r.status(), 400, "another path is another URI");
    app.stop().await;
}

/// `registration_require_pkce = false` (for the OpenID conformance suite's dynamic
/// tests, which send no PKCE): a confidential client that registers itself may leave
/// PKCE out; a public one still may not. On by default (`a_client_registers_and_signs_in`).
async fn confidential_clients_may_register_without_pkce_when_configured(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = portcullis_tests::spawn_with(&url, guard.clone(), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_require_pkce = false;
    })
    .await;
    let without_pkce = |app: &TestApp, id: &str| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "st"),
            ("nonce", "n-0S6_WzA2Mj"),
        ]);
        async move { browser().get(u).send().await.unwrap() }
    };
    let (status, confidential) = register(&app, &json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(status, 201, "{confidential}");
    let confidential = confidential["client_id"].as_str().unwrap();
    let r = without_pkce(&app, confidential).await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?req="));
    let (status, public) = register(
        &app,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{public}");
    let r = without_pkce(&app, public["client_id"].as_str().unwrap()).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("code_challenge (PKCE, S256) is required"), "{html}");
    app.stop().await;

    // The setting back on (its default): the client registered meanwhile needs PKCE too.
    let again = portcullis_tests::spawn_with(&url, guard, |s| {
        s.core.registration = RegistrationMode::Open;
    })
    .await;
    let html = without_pkce(&again, confidential).await.text().await.unwrap();
    assert!(html.contains("code_challenge (PKCE, S256) is required"), "{html}");
    again.stop().await;
}

/// `registration_confirm_redirects = false` (for the OpenID conformance suite's
/// dynamic tests): a self-registered client's errors and sign-out returns redirect at
/// once, as an operator's client's do, instead of being shown as a link first
/// (`self_registered_clients_never_redirect_by_themselves`, the default).
async fn self_registered_redirects_go_at_once_when_configured(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_confirm_redirects = false;
    })
    .await;
    let (status, registered) = register(
        &app,
        &json!({"redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["https://rp.example/bye"]}),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let id = registered["client_id"].as_str().unwrap();
    // prompt=none, nobody signed in: login_required, sent to the client.
    let u = authorize_url(&app, id, REDIRECT, &[("prompt", "none")]);
    let r = browser().get(u).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    // An error found before the request is validated (a bad response_type) too.
    let u = authorize_url(&app, id, REDIRECT, &[("response_type", "token")]);
    let r = browser().get(u).send().await.unwrap();
    assert_eq!(r.status(), 303);
    // Sign-out, nobody signed in: straight back.
    let mut u = Url::parse(&app.url("/logout")).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", id)
        .append_pair("post_logout_redirect_uri", "https://rp.example/bye")
        .append_pair("state", "s1");
    let r = browser().get(u).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://rp.example/bye?state=s1");
    app.stop().await;
}

both_backends!(
    self_registered_redirects_go_at_once_when_configured,
    confidential_clients_may_register_without_pkce_when_configured,
    self_registered_native_apps_use_any_loopback_port,
    default_max_age_asks_for_a_new_login,
    self_registered_clients_never_redirect_by_themselves,
    errors_of_self_registered_clients_are_shown_first,
);
