//! The device authorization grant (RFC 8628) on both backends: a device asks
//! `/device_authorization` for a device code and a user code, a person signs in on the
//! verification page, types the code and allows or denies, and the device's polling of
//! `/token` answers `authorization_pending`, `slow_down`, `access_denied`,
//! `expired_token` or, once, the tokens.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl};
use portcullis_core::clients::ClientInput;
use portcullis_core::model::{Client, ClientKind};
use portcullis_protocol::{DEVICE_CODE_GRANT, SigningAlg};
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_with};
use serde_json::{Value, json};
use url::Url;

use crate::browser_flow::Browser;
use crate::code_flow::PASSWORD;
use crate::forms::{Step, follow, forms, location, submit_form};

const NOTES: &str = "https://api.example/notes";

/// The claims of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

/// A node whose devices may poll every second (the default is 5) and whose tests may type
/// many codes, with `adjust` applied.
async fn app_with(backend: Backend, adjust: impl FnOnce(&mut portcullis_cli::Settings)) -> TestApp {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.device_poll_interval = 1;
        // Tests type many codes from one address; `verification_page` sets its own limit.
        let limit = portcullis_core::throttle::RateLimit::parse("600/min").unwrap();
        s.core
            .defense
            .rate_limits
            .set(portcullis_core::throttle::Bucket::DeviceIp, limit);
        adjust(s);
    })
    .await
}

/// A client of `kind` for the device grant (with refresh tokens), and its secret.
async fn device_client(app: &TestApp, kind: ClientKind) -> (Client, Option<String>) {
    let input = ClientInput {
        name: "Living-room TV".into(),
        kind: Some(kind),
        grant_types: vec![DEVICE_CODE_GRANT.into(), "refresh_token".into()],
        scopes: "openid profile notes:read".into(),
        resources: vec![NOTES.into()],
        ..Default::default()
    };
    let (client, secret) = app.core.create_client(&input, "test").await.unwrap();
    (client, secret.map(|s| s.expose().to_owned()))
}

/// POSTs `form` to `path` as `(id, secret)`: Basic for a confidential client, `client_id`
/// in the body for a public one; the status and the JSON body.
async fn post(app: &TestApp, path: &str, (id, secret): (&str, Option<&str>), form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    let mut r = http().post(app.url(path));
    match secret {
        Some(s) => r = r.basic_auth(id, Some(s)),
        None => form.push(("client_id", id)),
    }
    let r = r.form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn authorize_device(app: &TestApp, me: (&str, Option<&str>), scope: &str) -> Value {
    let (s, body) = post(app, "/device_authorization", me, &[("scope", scope)]).await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn poll(app: &TestApp, me: (&str, Option<&str>), device_code: &str) -> (u16, Value) {
    post(
        app,
        "/token",
        me,
        &[("grant_type", DEVICE_CODE_GRANT), ("device_code", device_code)],
    )
    .await
}

fn assert_error(got: &(u16, Value), error: &str) {
    assert_eq!((got.0, got.1["error"].as_str()), (400, Some(error)), "{}", got.1);
}

/// Signs `username` in on a fresh form-driving browser, through the verification page
/// opened signed out (with `user_code` from the device's link, if any): the browser and
/// the code form it was sent back to.
async fn sign_in_at_device_page(
    app: &TestApp,
    username: &str,
    user_code: Option<&str>,
) -> (reqwest::Client, Url, String) {
    let b = browser();
    let mut url = Url::parse(&app.url("/device")).unwrap();
    if let Some(code) = user_code {
        url.query_pairs_mut().append_pair("user_code", code);
    }
    let r = b.get(url.clone()).send().await.unwrap();
    let login = location(&url, &r);
    assert_eq!(login.path(), "/login", "signed out: sign in first");
    let html = b.get(login.clone()).send().await.unwrap().text().await.unwrap();
    let form = forms(&login, &html).remove(0);
    let r = submit_form(&b, &form, &[("username", username), ("password", PASSWORD)]).await;
    let back = location(&login, &r);
    assert_eq!(back.path(), "/device", "the sign-in goes back to the verification page");
    let page = b.get(back.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    (b, back, page.text().await.unwrap())
}

/// Types `code` into the code form of `page` (at `url`): the next step.
async fn type_code(app: &TestApp, b: &reqwest::Client, url: &Url, page: &str, code: &str) -> Step {
    let form = forms(url, page).remove(0);
    let r = submit_form(b, &form, &[("user_code", code)]).await;
    let issuer = Url::parse(&app.issuer).unwrap();
    follow(b, &issuer, r, form.action.clone()).await
}

/// Submits the confirmation page's form with `decision`: the page reached.
async fn decide(app: &TestApp, b: &reqwest::Client, step: Step, decision: &str) -> (u16, String) {
    let Step::Page { url, status, html } = step else {
        panic!("not a page: {step:?}")
    };
    assert_eq!(status, 200, "{html}");
    let form = forms(&url, &html).remove(0);
    assert_eq!(form.action.path(), "/device/decision", "{html}");
    let r = submit_form(b, &form, &[("decision", decision)]).await;
    let issuer = Url::parse(&app.issuer).unwrap();
    match follow(b, &issuer, r, form.action.clone()).await {
        Step::Page { status, html, .. } => (status, html),
        other => panic!("{other:?}"),
    }
}

/// Signs `username` in and decides on `user_code` in one go.
async fn sign_in_and_decide(app: &TestApp, username: &str, user_code: &str, decision: &str) -> (u16, String) {
    let (b, url, page) = sign_in_at_device_page(app, username, None).await;
    let step = type_code(app, &b, &url, &page, user_code).await;
    decide(app, &b, step, decision).await
}

/// The whole flow as a person and a device go through it: the `oauth2` crate's device
/// client polls (every second) while the person, in headless Chromium, follows the
/// link the device showed, signs in, checks the code and allows.
async fn device_flow_with_oauth2_and_chromium(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, _) = device_client(&app, ClientKind::Public).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["device_authorization_endpoint"], app.url("/device_authorization"));
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_CODE_GRANT))
    );

    let oauth = BasicClient::new(oauth2::ClientId::new(client.id.as_str().to_owned()))
        .set_device_authorization_url(DeviceAuthorizationUrl::new(app.url("/device_authorization")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap());
    let http_client = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let details: StandardDeviceAuthorizationResponse = oauth
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .request_async(&http_client)
        .await
        .unwrap();
    let user_code = details.user_code().secret().clone();
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(details.verification_uri().as_str(), app.url("/device"));
    let complete = details.verification_uri_complete().unwrap().secret().clone();
    assert_eq!(complete, format!("{}?user_code={user_code}", app.url("/device")));
    assert_eq!(details.expires_in(), Duration::from_secs(600));
    assert_eq!(details.interval(), Duration::from_secs(1));

    // The device polls meanwhile: authorization_pending until the person allows.
    let polling = {
        let (oauth, http_client, details) = (oauth.clone(), http_client.clone(), details.clone());
        tokio::spawn(async move {
            oauth
                .exchange_device_access_token(&details)
                .request_async(&http_client, tokio::time::sleep, Some(Duration::from_secs(60)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!polling.is_finished(), "no tokens before the person allows");

    let browser = Browser::start().await;
    browser.goto(&complete).await;
    browser.wait_for_path("/login").await;
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let at = browser.wait_for_path("/device").await;
    assert_eq!(at.query_pairs().find(|(k, _)| k == "user_code").unwrap().1, user_code);
    browser.screenshot("device-code").await;
    browser.click("#continue").await;
    // The confirmation page is at /device too: wait for what only it has.
    browser.wait_for("#user-code").await;
    assert_eq!(
        browser.text("#user-code").await,
        user_code,
        "the code to compare with the device's"
    );
    let page = browser.source().await;
    assert!(page.contains("Living-room TV"), "names the client");
    browser.screenshot("device-confirm").await;
    browser.click("#allow").await;
    browser.wait_for_path("/device/decision").await;
    assert_eq!(browser.text("#outcome").await, "Device connected");
    browser.quit().await;

    let tokens = tokio::time::timeout(Duration::from_secs(20), polling)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let access = payload(tokens.access_token().secret());
    assert_eq!(access["sub"], alice.id.to_string());
    assert_eq!(access["client_id"], client.id.as_str());
    assert_eq!(access["scope"], "openid profile");
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    let (s, refreshed) = post(
        &app,
        "/token",
        (client.id.as_str(), None),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 200, "{refreshed}");
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("device.approved").await.len(), 1);
    let issued = app.audit_events("token.issued").await;
    assert!(
        issued
            .iter()
            .any(|e| e.detail["grant_type"] == DEVICE_CODE_GRANT && e.user_id == Some(alice.id)),
        "{issued:?}"
    );
    // The person sees the device among their applications, and may revoke it there.
    let grants = app
        .core
        .store
        .list_grants_for_user(alice.id, app.core.now())
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, client.id);
}

/// Polling follows RFC 8628 §3.5: pending, slow_down (and a longer interval), denied,
/// tokens once, then nothing; one client cannot poll another's device code.
/// `refresh` no longer works: its grant was revoked.
async fn refresh_is_refused(app: &TestApp, client: (&str, Option<&str>), refresh: &str) {
    let (s, body) = post(
        app,
        "/token",
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

async fn polling_answers(backend: Backend) {
    let app = app_with(backend, |s| s.core.device_poll_interval = 5).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = device_client(&app, ClientKind::Confidential).await;
    let me = (client.id.as_str(), secret.as_deref());
    let (other, other_secret) = device_client(&app, ClientKind::Confidential).await;
    let them = (other.id.as_str(), other_secret.as_deref());

    let first = authorize_device(&app, me, "openid").await;
    assert_eq!(first["interval"], 5);
    let device_code = first["device_code"].as_str().unwrap();
    assert_error(&poll(&app, me, device_code).await, "authorization_pending");
    // At once again: too soon, and the interval grows by 5 s, so the next is too soon too.
    assert_error(&poll(&app, me, device_code).await, "slow_down");
    assert_error(&poll(&app, me, device_code).await, "slow_down");
    // Another client's device code is no code at all, and its polls change nothing.
    assert_error(&poll(&app, them, device_code).await, "invalid_grant");
    assert_error(&poll(&app, me, "no-such-device-code").await, "invalid_grant");
    let (s, body) = post(&app, "/token", me, &[("grant_type", DEVICE_CODE_GRANT)]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    let (s, page) = sign_in_and_decide(&app, "alice", first["user_code"].as_str().unwrap(), "deny").await;
    assert_eq!(s, 200);
    assert!(page.contains("Device not connected"), "{page}");
    assert_error(&poll(&app, me, device_code).await, "access_denied");
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("device.denied").await.len(), 1);

    // Allowed: the tokens, once, with an ID token for the signed-in person.
    let second = authorize_device(&app, me, "openid profile offline_access").await;
    let device_code = second["device_code"].as_str().unwrap();
    // Typed as people type: lower case, without the dash.
    let typed = second["user_code"].as_str().unwrap().replace('-', " ").to_lowercase();
    let (s, page) = sign_in_and_decide(&app, "alice", &typed, "allow").await;
    assert_eq!(s, 200);
    assert!(page.contains("Device connected"), "{page}");
    let (s, tokens) = poll(&app, me, device_code).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        tokens["scope"], "openid profile",
        "offline_access dropped, as at /authorize"
    );
    let id_token = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], alice.id.to_string());
    assert_eq!(id_token["aud"], client.id.as_str());
    assert!(
        id_token["auth_time"].is_i64() && id_token["sid"].is_string(),
        "{id_token}"
    );
    assert!(id_token.get("nonce").is_none(), "{id_token}");
    assert!(tokens["refresh_token"].is_string());
    // Polled again: whoever polled first may have copied the device code, so the grant it
    // got is revoked (as for a code used twice).
    assert_error(&poll(&app, me, device_code).await, "invalid_grant");
    refresh_is_refused(&app, me, tokens["refresh_token"].as_str().unwrap()).await;
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("code.replay_detected").await.len(), 1);

    // Two polls at the same moment (the device and a copy of its code, behind a load
    // balancer): one gets the tokens, and the other's replay revokes them all the same,
    // even when it lost the race for the redemption rather than came after it.
    for _ in 0..4 {
        let third = authorize_device(&app, me, "openid offline_access").await;
        let device_code = third["device_code"].as_str().unwrap();
        let (s, _) = sign_in_and_decide(&app, "alice", third["user_code"].as_str().unwrap(), "allow").await;
        assert_eq!(s, 200);
        let (a, b) = tokio::join!(poll(&app, me, device_code), poll(&app, me, device_code));
        let (won, lost) = if a.0 == 200 { (a, b) } else { (b, a) };
        assert_eq!(won.0, 200, "{won:?} {lost:?}");
        assert_error(&lost, "invalid_grant");
        let r = http()
            .get(app.url("/userinfo"))
            .bearer_auth(won.1["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the winner's access token still works");
        refresh_is_refused(&app, me, won.1["refresh_token"].as_str().unwrap()).await;
    }

    // The device code belongs in the body only.
    let r = http()
        .post(format!("{}?device_code={device_code}", app.url("/token")))
        .basic_auth(me.0, me.1)
        .form(&[("grant_type", DEVICE_CODE_GRANT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A device code not redeemed in time: `expired_token`, and the page no longer takes its
/// user code.
async fn device_codes_expire(backend: Backend) {
    let app = app_with(backend, |s| s.core.device_code_ttl = time::Duration::seconds(2)).await;
    app.user("alice", PASSWORD).await;
    let (client, _) = device_client(&app, ClientKind::Public).await;
    let me = (client.id.as_str(), None);
    let device = authorize_device(&app, me, "openid").await;
    assert_eq!(device["expires_in"], 2);
    let approved = authorize_device(&app, me, "openid").await;
    let (s, _) = sign_in_and_decide(&app, "alice", approved["user_code"].as_str().unwrap(), "allow").await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_error(
        &poll(&app, me, device["device_code"].as_str().unwrap()).await,
        "expired_token",
    );
    assert_error(
        &poll(&app, me, approved["device_code"].as_str().unwrap()).await,
        "expired_token",
    );
    // Still so after the periodic cleanup: expired requests are kept a day.
    app.core.cleanup(app.core.now()).await;
    assert_error(
        &poll(&app, me, device["device_code"].as_str().unwrap()).await,
        "expired_token",
    );
    let (b, url, page) = sign_in_at_device_page(&app, "alice", None).await;
    match type_code(&app, &b, &url, &page, device["user_code"].as_str().unwrap()).await {
        Step::Page { html, status, .. } => {
            assert_eq!(status, 200);
            assert!(html.contains("not valid, or it has expired"), "{html}");
        }
        other => panic!("{other:?}"),
    }
}

/// What `/device_authorization` refuses, in RFC 6749 §5.2 JSON.
async fn device_authorization_errors(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let (client, secret) = device_client(&app, ClientKind::Confidential).await;
    let me = (client.id.as_str(), secret.as_deref());
    let (public, _) = device_client(&app, ClientKind::Public).await;
    let (web, web_secret) = app.confidential_client("https://rp.example/cb").await;

    let cases: [(&str, (u16, Value), &str); 7] = [
        (
            "a client without the grant",
            post(
                &app,
                "/device_authorization",
                (web.id.as_str(), Some(web_secret.expose())),
                &[("scope", "openid")],
            )
            .await,
            "unauthorized_client",
        ),
        (
            "a scope the client may not use",
            post(&app, "/device_authorization", me, &[("scope", "notes:write")]).await,
            "invalid_scope",
        ),
        (
            "an API the client may not ask for",
            post(
                &app,
                "/device_authorization",
                me,
                &[("scope", "notes:read"), ("resource", "https://api.example/x")],
            )
            .await,
            "invalid_target",
        ),
        (
            "a repeated parameter",
            post(
                &app,
                "/device_authorization",
                me,
                &[("scope", "openid"), ("scope", "profile")],
            )
            .await,
            "invalid_request",
        ),
        (
            "a wrong secret",
            post(
                &app,
                "/device_authorization",
                (me.0, Some("wrong")),
                &[("scope", "openid")],
            )
            .await,
            "invalid_client",
        ),
        (
            "a confidential client naming itself only",
            post(&app, "/device_authorization", (me.0, None), &[("scope", "openid")]).await,
            "invalid_client",
        ),
        (
            "an unknown client",
            post(&app, "/device_authorization", ("nobody", None), &[("scope", "openid")]).await,
            "invalid_client",
        ),
    ];
    for (why, (status, body), error) in cases {
        assert_eq!(body["error"], error, "{why}: {body}");
        let expected = if error == "invalid_client" {
            [400, 401]
        } else {
            [400, 400]
        };
        assert!(expected.contains(&status), "{why}: {status}");
    }
    // An OpenID request's scope values the client may not use are dropped (as at
    // /authorize); the public client asks without a secret.
    let (s, body) = post(
        &app,
        "/device_authorization",
        (public.id.as_str(), None),
        &[("scope", "openid email")],
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // An API asked for is the token's audience; another at /token is invalid_target and
    // spends nothing.
    let device = authorize_device(&app, me, "notes:read").await;
    let for_notes = post(
        &app,
        "/device_authorization",
        me,
        &[("scope", "notes:read"), ("resource", NOTES)],
    )
    .await;
    assert_eq!(for_notes.0, 200, "{}", for_notes.1);
    app.user("alice", PASSWORD).await;
    for d in [&device, &for_notes.1] {
        let (s, _) = sign_in_and_decide(&app, "alice", d["user_code"].as_str().unwrap(), "allow").await;
        assert_eq!(s, 200);
    }
    let code = for_notes.1["device_code"].as_str().unwrap();
    let wrong = post(
        &app,
        "/token",
        me,
        &[
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", code),
            ("resource", "https://api.example/other"),
        ],
    )
    .await;
    assert_error(&wrong, "invalid_target");
    let (s, tokens) = poll(&app, me, code).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(payload(tokens["access_token"].as_str().unwrap())["aud"], NOTES);
    let (s, tokens) = poll(&app, me, device["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(payload(tokens["access_token"].as_str().unwrap())["aud"], app.issuer);
    assert!(tokens.get("id_token").is_none(), "no openid, no ID token: {tokens}");

    // Registration: the device grant needs no redirect URI (the clients above have
    // none) and carries refresh tokens; refresh tokens alone are still refused.
    let alone = ClientInput {
        name: "Refresh alone".into(),
        kind: Some(ClientKind::Public),
        grant_types: vec!["refresh_token".into()],
        scopes: "openid".into(),
        ..Default::default()
    };
    assert!(app.core.create_client(&alone, "test").await.is_err());
}

/// The verification page: sign-in first, codes typed loosely, wrong ones refused with
/// the form again, CSRF on every form, a limit on codes typed per address, and a
/// request whose client was disabled no longer shown.
async fn verification_page(backend: Backend) {
    let app = app_with(backend, |s| {
        s.core.defense.rate_limits.set(
            portcullis_core::throttle::Bucket::DeviceIp,
            portcullis_core::throttle::RateLimit::parse("3/min").unwrap(),
        );
    })
    .await;
    app.user("alice", PASSWORD).await;
    let (client, _) = device_client(&app, ClientKind::Public).await;
    let me = (client.id.as_str(), None);
    let device = authorize_device(&app, me, "openid profile").await;
    let user_code = device["user_code"].as_str().unwrap();

    // The link's code is filled in, not acted on.
    let (b, url, page) = sign_in_at_device_page(&app, "alice", Some(user_code)).await;
    assert!(page.contains(&format!("value=\"{user_code}\"")), "{page}");
    assert!(page.contains("signed in as <strong>alice</strong>"), "{page}");
    // Without the CSRF token: refused.
    let r = b
        .post(app.url("/device"))
        .form(&[("user_code", user_code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A decision without it decides nothing: the code is shown again to decide on
    // (a_stale_decision_is_asked_again).
    let r = b
        .post(app.url("/device/decision"))
        .form(&[("user_code", user_code), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/device?user_code=")
    );
    // A wrong code: the form again, saying so.
    for wrong in ["BCDF-GHJK", "not a code"] {
        match type_code(&app, &b, &url, &page, wrong).await {
            Step::Page { status, html, .. } => {
                assert_eq!(status, 200);
                assert!(html.contains("That code is not valid"), "{html}");
                assert!(html.contains("action=\"/device\""), "{html}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The right one: what the client asks for, and the code to compare.
    let step = type_code(&app, &b, &url, &page, user_code).await;
    let Step::Page { html, .. } = &step else { panic!() };
    assert!(html.contains(user_code) && html.contains("Living-room TV"), "{html}");
    // When and where the device asked (RFC 8628 §5.4).
    assert!(
        html.contains("The device asked less than a minute ago, from the address <strong>127.0.0.1</strong>."),
        "{html}"
    );
    // The fourth code typed from this address this minute is over the limit.
    match type_code(&app, &b, &url, &page, user_code).await {
        Step::Page { status, html, .. } => {
            assert_eq!(status, 429);
            assert!(html.contains("Too many attempts"), "{html}");
        }
        other => panic!("{other:?}"),
    }
    // So is a decision posted straight.
    let (s, _) = decide(&app, &b, step, "allow").await;
    assert_eq!(s, 429);
    let (s, _) = poll(&app, me, device["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 400, "still undecided");

    // A disabled client's request is no longer shown (on a node without the limit).
    let other = spawn_with(&app.database_url, None, |s| s.core.device_poll_interval = 1).await;
    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    let (b, url, page) = sign_in_at_device_page(&other, "alice", None).await;
    match type_code(&other, &b, &url, &page, user_code).await {
        Step::Page { html, .. } => assert!(html.contains("That code is not valid"), "{html}"),
        other => panic!("{other:?}"),
    }
}

/// A public client polling with a DPoP proof gets a bound access token, and its grant is
/// bound to the key, as with a code (RFC 9449 §5).
async fn dpop_bound_device_tokens(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    app.user("alice", PASSWORD).await;
    let (client, _) = device_client(&app, ClientKind::Public).await;
    let me = (client.id.as_str(), None);
    let device = authorize_device(&app, me, "openid").await;
    let (s, _) = sign_in_and_decide(&app, "alice", device["user_code"].as_str().unwrap(), "allow").await;
    assert_eq!(s, 200);
    let key = crate::private_key_jwt::client_key(SigningAlg::ES256, "device").await;
    let url = app.url("/token");
    let r = http()
        .post(&url)
        .header("DPoP", crate::dpop::proof(&key, "POST", &url, None))
        .form(&[
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device["device_code"].as_str().unwrap()),
            ("client_id", client.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = payload(tokens["access_token"].as_str().unwrap());
    let jkt = access["cnf"]["jkt"].as_str().unwrap().to_owned();
    // Refreshed without a proof: refused, and nothing spent.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (s, body) = post(
        &app,
        "/token",
        me,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let r = http()
        .post(&url)
        .header("DPoP", crate::dpop::proof(&key, "POST", &url, None))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(payload(again["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt);
}

/// What changes between the request, the person's decision and the device's poll: the
/// client's scopes (the grant is what the person was shown), the person (disabled), the
/// client (disabled, or no longer allowed the grant), a second decision.
async fn changes_mid_flow(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, _) = device_client(&app, ClientKind::Public).await;
    let me = (client.id.as_str(), None);
    let input = |scopes: &str, grants: &[&str]| ClientInput {
        name: "Living-room TV".into(),
        kind: Some(ClientKind::Public),
        grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
        scopes: scopes.into(),
        resources: vec![NOTES.into()],
        ..Default::default()
    };
    let both = [DEVICE_CODE_GRANT, "refresh_token"];

    // The operator takes `profile` away while the confirmation page is open: Allow shows
    // the page again with what is asked for now; given back before the device polls, it
    // is still not granted.
    let device = authorize_device(&app, me, "openid profile").await;
    let (b, url, page) = sign_in_at_device_page(&app, "alice", None).await;
    let step = type_code(&app, &b, &url, &page, device["user_code"].as_str().unwrap()).await;
    app.core
        .update_client(&client.id, &input("openid notes:read", &both), "test")
        .await
        .unwrap();
    let (s, again) = decide(&app, &b, step, "allow").await;
    assert_eq!(s, 200);
    assert!(again.contains("has changed since this page was shown"), "{again}");
    assert!(again.contains("name=\"scope\" value=\"openid\""), "{again}");
    let again = Step::Page {
        url: Url::parse(&app.url("/device/decision")).unwrap(),
        status: 200,
        html: again,
    };
    let (s, done) = decide(&app, &b, again, "allow").await;
    assert_eq!(s, 200);
    assert!(done.contains("Device connected"), "{done}");
    app.core
        .update_client(&client.id, &input("openid profile notes:read", &both), "test")
        .await
        .unwrap();
    let (s, tokens) = poll(&app, me, device["device_code"].as_str().unwrap()).await;
    assert_eq!((s, tokens["scope"].as_str()), (200, Some("openid")), "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (s, body) = post(
        &app,
        "/token",
        me,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, body["scope"].as_str()), (200, Some("openid")), "{body}");

    // A decision posted again, the other way: the first stands.
    let denied = authorize_device(&app, me, "openid").await;
    let (b, url, page) = sign_in_at_device_page(&app, "alice", None).await;
    let step = type_code(&app, &b, &url, &page, denied["user_code"].as_str().unwrap()).await;
    let Step::Page { html: confirm, .. } = &step else {
        panic!("{step:?}")
    };
    let replay = Step::Page {
        url: url.clone(),
        status: 200,
        html: confirm.clone(),
    };
    let (_, first) = decide(&app, &b, step, "deny").await;
    assert!(first.contains("Device not connected"), "{first}");
    let (s, second) = decide(&app, &b, replay, "allow").await;
    assert_eq!(s, 200);
    assert!(second.contains("That code is not valid"), "{second}");
    assert_error(
        &poll(&app, me, denied["device_code"].as_str().unwrap()).await,
        "access_denied",
    );

    // The person withdraws the application's access (on /account) before the device
    // polled: its approval goes too.
    let approved = authorize_device(&app, me, "openid").await;
    sign_in_and_decide(&app, "alice", approved["user_code"].as_str().unwrap(), "allow").await;
    app.core
        .revoke_own_application(alice.id, client.id.as_str(), None)
        .await
        .unwrap();
    assert_error(
        &poll(&app, me, approved["device_code"].as_str().unwrap()).await,
        "invalid_grant",
    );

    // An operator revokes one of the person's grants to the client while the person's
    // next approval waits for the device's poll: it goes too (the consent is withdrawn).
    let first = authorize_device(&app, me, "openid").await;
    sign_in_and_decide(&app, "alice", first["user_code"].as_str().unwrap(), "allow").await;
    let (s, body) = poll(&app, me, first["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{body}");
    let grant = app.core.list_user_grants(alice.id).await.unwrap()[0].grant.id;
    let approved = authorize_device(&app, me, "openid").await;
    sign_in_and_decide(&app, "alice", approved["user_code"].as_str().unwrap(), "allow").await;
    app.core.revoke_user_grant(alice.id, grant, "test").await.unwrap();
    assert_error(
        &poll(&app, me, approved["device_code"].as_str().unwrap()).await,
        "invalid_grant",
    );

    // The person disabled after allowing: nothing for the device.
    let approved = authorize_device(&app, me, "openid").await;
    sign_in_and_decide(&app, "alice", approved["user_code"].as_str().unwrap(), "allow").await;
    app.core.set_user_disabled(alice.id, true, "test").await.unwrap();
    assert_error(
        &poll(&app, me, approved["device_code"].as_str().unwrap()).await,
        "invalid_grant",
    );
    app.core.set_user_disabled(alice.id, false, "test").await.unwrap();

    // After an approval, the client is no longer allowed the grant, then it is disabled.
    let approved = authorize_device(&app, me, "openid").await;
    sign_in_and_decide(&app, "alice", approved["user_code"].as_str().unwrap(), "allow").await;
    let code = approved["device_code"].as_str().unwrap();
    let mut web = input("openid", &["authorization_code"]);
    web.redirect_uris = vec!["https://rp.example/cb".into()];
    app.core.update_client(&client.id, &web, "test").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await; // the client cache
    let (s, body) = poll(&app, me, code).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    app.core
        .update_client(&client.id, &input("openid", &both), "test")
        .await
        .unwrap();
    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, body) = poll(&app, me, code).await;
    // A public client names itself in the body: a 400, without a `Basic` challenge.
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_client")), "{body}");

    // A public client's poll must name it.
    let r = http()
        .post(app.url("/token"))
        .form(&[("grant_type", DEVICE_CODE_GRANT), ("device_code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

/// The sign-in goes back to the verification page only, whatever the code in the link.
async fn the_way_back_from_sign_in_stays_here(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    app.user("alice", PASSWORD).await;
    let long = "B".repeat(33);
    for (code, back) in [
        ("//evil.example", "/device?user_code=%2F%2Fevil.example"),
        (
            "https://evil.example/",
            "/device?user_code=https%3A%2F%2Fevil.example%2F",
        ),
        (
            "WDJB\r\nSet-Cookie: x=1",
            "/device?user_code=WDJB%0D%0ASet-Cookie%3A+x%3D1",
        ),
        (long.as_str(), "/device"),
    ] {
        let b = browser();
        let mut url = Url::parse(&app.url("/device")).unwrap();
        url.query_pairs_mut().append_pair("user_code", code);
        let r = b.get(url.clone()).send().await.unwrap();
        let login = location(&url, &r);
        let html = b.get(login.clone()).send().await.unwrap().text().await.unwrap();
        let form = forms(&login, &html).remove(0);
        let r = submit_form(&b, &form, &[("username", "alice"), ("password", PASSWORD)]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], back, "{code:?}");
    }
}

/// A device client that registered itself (RFC 7591): the confirmation page says so,
/// as it does not for an operator's client.
async fn self_registered_device_clients_are_marked(backend: Backend) {
    let app = app_with(backend, |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    app.user("alice", PASSWORD).await;
    let r = http()
        .post(app.url("/register"))
        .json(&serde_json::json!({
            "client_name": "Totally the TV",
            "grant_types": [DEVICE_CODE_GRANT],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    let (operator, _) = device_client(&app, ClientKind::Public).await;
    for (id, marked) in [
        (registered["client_id"].as_str().unwrap(), true),
        (operator.id.as_str(), false),
    ] {
        let device = authorize_device(&app, (id, None), "openid").await;
        let (b, url, page) = sign_in_at_device_page(&app, "alice", None).await;
        let step = type_code(&app, &b, &url, &page, device["user_code"].as_str().unwrap()).await;
        let Step::Page { html, .. } = step else {
            panic!("expected the confirmation page")
        };
        assert!(html.contains(r#"id="user-code""#), "{html}");
        assert_eq!(html.contains(r#"id="self-registered""#), marked, "{html}");
    }
    app.stop().await;
}

/// The Allow page left open while the session moved on (someone else signed in in
/// another tab): nothing is decided, and the code comes back filled in for whoever is
/// signed in now, instead of a "form expired" page (found by a browser re-check).
async fn a_stale_decision_is_asked_again(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    app.user("alice", PASSWORD).await;
    let (client, secret) = device_client(&app, ClientKind::Confidential).await;
    let me = (client.id.as_str(), secret.as_deref());
    let started = authorize_device(&app, me, "openid").await;
    let (device_code, user_code) = (
        started["device_code"].as_str().unwrap(),
        started["user_code"].as_str().unwrap(),
    );
    let (b, url, page) = sign_in_at_device_page(&app, "alice", None).await;
    let Step::Page { url: confirm, html, .. } = type_code(&app, &b, &url, &page, user_code).await else {
        panic!("no confirmation page")
    };
    let form = forms(&confirm, &html).remove(0);
    let r = submit_form(&b, &form, &[("decision", "allow"), ("csrf", "stale")]).await;
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with("/device?user_code="), "{back}");
    assert_error(&poll(&app, me, device_code).await, "authorization_pending");
    app.stop().await;
}

both_backends!(
    a_stale_decision_is_asked_again,
    self_registered_device_clients_are_marked,
    changes_mid_flow,
    the_way_back_from_sign_in_stays_here,
    device_flow_with_oauth2_and_chromium,
    polling_answers,
    device_codes_expire,
    device_authorization_errors,
    verification_page,
    dpop_bound_device_tokens,
);
