//! Sessions per device: a person lists their browser sessions and applications on the
//! account page and ends them one by one; a password change ends them all.

use std::sync::Arc;

use portcullis_protocol::Secret;
use portcullis_tests::{Backend, TestApp, both_backends, browser, fresh_database, http, spawn_app, spawn_with};
use url::Url;

use super::sign_in;
use crate::code_flow::{PASSWORD, REDIRECT, hinted_request, obtain_tokens};
use crate::forms::{forms, submit_form};

async fn account_page(b: &reqwest::Client, app: &TestApp) -> (u16, String) {
    let resp = b.get(app.url("/account")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn introspect_active(app: &TestApp, id: &str, secret: &str, token: &str) -> bool {
    crate::token_endpoint::introspect(app, id, secret, token).await["active"]
        .as_bool()
        .unwrap()
}

async fn sessions_and_applications_are_listed_and_revocable(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.defense.trusted_proxies.networks =
            vec![portcullis_core::net::TrustedProxies::parse_network("127.0.0.1").unwrap()];
    })
    .await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    let laptop = browser();
    const PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/131.0.0.0 Mobile Safari/537.36";
    let phone = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(PHONE)
        .build()
        .unwrap();
    assert_eq!(
        sign_in(&laptop, &app, "alice", PASSWORD, Some("192.0.2.1"))
            .await
            .status,
        200
    );
    assert_eq!(
        sign_in(&phone, &app, "alice", PASSWORD, Some("192.0.2.2")).await.status,
        200
    );
    let tokens = obtain_tokens(&app, &id, &secret, "alice").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Signed out: sign in first.
    let resp = browser().get(app.url("/account")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login");

    let (status, html) = account_page(&laptop, &app).await;
    assert_eq!(status, 200);
    assert!(html.contains("192.0.2.1") && html.contains("192.0.2.2"), "{html}");
    // Each browser as people name it, what it sent beside it.
    assert!(
        html.contains(&format!(r#"<strong title="{PHONE}">Chrome on Android</strong>"#)),
        "{html}"
    );
    assert!(
        html.contains(r#"aria-label="Sign out Chrome on Android, signed in"#),
        "{html}"
    );
    assert_eq!(html.matches(r#"<span class="badge">this browser</span>"#).count(), 1);
    assert!(html.contains("Test App"), "{html}");
    // What the application may do, in the consent page's words; each button says what it
    // acts on (WCAG 2.4.6).
    assert!(
        html.contains("Sign you in with your account identifier; See your name and username"),
        "{html}"
    );
    assert!(html.contains(r#"aria-label="Remove access for Test App""#), "{html}");
    assert_eq!(html.matches(r#"aria-label="Sign out "#).count(), 3, "{html}");
    // Three sessions: laptop, phone, and the browser obtain_tokens used.
    assert_eq!(app.core.list_user_sessions(alice.id).await.unwrap().len(), 3);

    // A form without its CSRF token is refused and changes nothing.
    let page = Url::parse(&app.url("/account")).unwrap();
    let session_forms: Vec<_> = forms(&page, &html)
        .into_iter()
        .filter(|f| f.action.path() == "/account/sessions/revoke")
        .collect();
    assert_eq!(session_forms.len(), 3);
    let phone_session = app
        .core
        .list_user_sessions(alice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.ip.as_deref() == Some("192.0.2.2"))
        .unwrap();
    let resp = laptop
        .post(app.url("/account/sessions/revoke"))
        .form(&[("session", phone_session.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(account_page(&phone, &app).await.0, 200);

    // The laptop signs the phone out.
    let form = session_forms
        .iter()
        .find(|f| f.fields.iter().any(|(k, v)| k == "session" && *v == phone_session.id))
        .unwrap();
    assert_eq!(submit_form(&laptop, form, &[]).await.status(), 303);
    assert_eq!(account_page(&phone, &app).await.0, 303, "the phone is signed out");
    // Sent again (a second click, another tab): back to the account page, not a 404.
    let again = submit_form(&laptop, form, &[]).await;
    assert_eq!(
        (again.status().as_u16(), again.headers()["location"].to_str().unwrap()),
        (303, "/account")
    );
    assert_eq!(account_page(&laptop, &app).await.0, 200, "the laptop is not");
    // Another person's session cannot be named.
    let err = app
        .core
        .revoke_own_session(uuid::Uuid::new_v4(), &phone_session.id, None)
        .await;
    assert!(err.is_err());

    // Removing the application revokes its tokens at once.
    assert!(introspect_active(&app, &id, &secret, &access).await);
    let (_, html) = account_page(&laptop, &app).await;
    let form = forms(&page, &html)
        .into_iter()
        .find(|f| f.action.path() == "/account/applications/revoke")
        .unwrap();
    assert_eq!(submit_form(&laptop, &form, &[]).await.status(), 303);
    assert!(!introspect_active(&app, &id, &secret, &access).await);
    let again = submit_form(&laptop, &form, &[]).await;
    assert_eq!(
        (again.status().as_u16(), again.headers()["location"].to_str().unwrap()),
        (303, "/account")
    );
    let resp = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (_, html) = account_page(&laptop, &app).await;
    assert!(html.contains("No application has access"), "{html}");

    // A password change ends every session and grant.
    let tokens = obtain_tokens(&app, &id, &secret, "alice").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    app.core
        .set_user_password(alice.id, &Secret::new("a brand new password"), "test")
        .await
        .unwrap();
    assert_eq!(account_page(&laptop, &app).await.0, 303);
    assert!(app.core.list_user_sessions(alice.id).await.unwrap().is_empty());
    assert!(app.core.list_user_grants(alice.id).await.unwrap().is_empty());
    assert!(!introspect_active(&app, &id, &secret, &access).await);
    app.stop().await;
}

/// Where a `prompt=none` request for the client `id` sends `b` back to (the ID token of an
/// earlier sign-in as hint).
async fn silent_authorization(b: &reqwest::Client, app: &TestApp, id: &str, id_token: &str) -> String {
    let resp = b.get(hinted_request(app, id, id_token)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// A consent outlives its grants (here the client revoked its refresh token): the
/// application can still get codes without asking, so the account page lists it, and
/// removing it there ends that, codes already given and not yet redeemed included.
async fn a_consent_without_live_grants_is_listed_and_removable(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(Arc::new), |_| {}).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    let tokens = obtain_tokens(&app, &id, &secret, "alice").await;
    let resp = http()
        .post(app.url("/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(app.core.list_user_grants(alice.id).await.unwrap().is_empty());

    let laptop = browser();
    assert_eq!(sign_in(&laptop, &app, "alice", PASSWORD, None).await.status, 200);
    let id_token = tokens["id_token"].as_str().unwrap();
    let back = silent_authorization(&laptop, &app, &id, id_token).await;
    assert!(back.starts_with(REDIRECT) && back.contains("code="), "{back}");
    let given = Url::parse(&back).unwrap();
    let given = given.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let redeem = |code: String| {
        let (app, id, secret) = (&app, &id, &secret);
        async move {
            let resp = http()
                .post(app.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    // RFC 7636 Appendix B: the verifier of `hinted_request`'s challenge.
                    ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (_, html) = account_page(&laptop, &app).await;
    assert!(html.contains(r#"aria-label="Remove access for Test App""#), "{html}");
    assert!(
        html.contains("Sign you in with your account identifier; See your name and username"),
        "{html}"
    );

    let page = Url::parse(&app.url("/account")).unwrap();
    let form = forms(&page, &html)
        .into_iter()
        .find(|f| f.action.path() == "/account/applications/revoke")
        .unwrap();
    assert_eq!(submit_form(&laptop, &form, &[]).await.status(), 303);
    let (_, html) = account_page(&laptop, &app).await;
    assert!(html.contains("No application has access"), "{html}");
    let back = silent_authorization(&laptop, &app, &id, id_token).await;
    assert!(back.contains("error=consent_required"), "{back}");
    // The code given before the removal starts no grant now.
    let (status, body) = redeem(given).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(app.core.list_user_grants(alice.id).await.unwrap().is_empty());
    app.stop().await;
}

/// The password form on the account page: what `b` gets for it filled in with
/// `current`, `new` and `again`.
async fn change_password(b: &reqwest::Client, app: &TestApp, current: &str, new: &str, again: &str) -> (u16, String) {
    let (status, html) = account_page(b, app).await;
    assert_eq!(status, 200, "signed in");
    let page = Url::parse(&app.url("/account")).unwrap();
    let form = forms(&page, &html)
        .into_iter()
        .find(|f| f.action.path() == "/account/password")
        .expect("a password form");
    let fields = [
        ("current_password", current),
        ("new_password", new),
        ("new_password_again", again),
    ];
    let resp = submit_form(b, &form, &fields).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A person changes their own password on the account page: the current one is checked
/// (under the sign-in lockout), the new one against the policy; then every session and
/// grant of the account ends, as when an operator sets it, and only the new one signs in.
async fn a_person_changes_their_own_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    let (laptop, phone) = (browser(), browser());
    assert_eq!(sign_in(&laptop, &app, "alice", PASSWORD, None).await.status, 200);
    assert_eq!(sign_in(&phone, &app, "alice", PASSWORD, None).await.status, 200);
    let access = obtain_tokens(&app, &id, &secret, "alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    const NEW: &str = "a brand new passphrase";

    // Refused, with the reason next to the form, and nothing changed.
    // The field the error is about is the one marked invalid (WCAG 3.3.1) and focused.
    let marked = |html: &str, id: &str| {
        let input = &html[html.find(&format!(r#"id="{id}""#)).unwrap()..];
        {
            // Invalid, and focused so that the page opens at it (the form is at the bottom).
            let tag = &input[..input.find('>').unwrap()];
            tag.contains(r#"aria-invalid="true""#) && tag.contains("autofocus")
        }
    };
    for (current, new, again, reason, field) in [
        (
            "not my password",
            NEW,
            NEW,
            "The current password is not right.",
            "current_password",
        ),
        (
            PASSWORD,
            NEW,
            "a brand new passphrasf",
            "The two new passwords are not the same.",
            "new_password",
        ),
        (
            PASSWORD,
            "short",
            "short",
            "The new password must be at least 8 characters.",
            "new_password",
        ),
        (
            PASSWORD,
            PASSWORD,
            PASSWORD,
            "The new password is the password you have now.",
            "new_password",
        ),
        // NIST SP 800-63B §5.1.1.2: a commonly used password, in any case.
        (
            PASSWORD,
            "Sunshine",
            "Sunshine",
            "most commonly used passwords",
            "new_password",
        ),
    ] {
        let (status, html) = change_password(&laptop, &app, current, new, again).await;
        assert_eq!(status, 400, "{reason}");
        assert!(html.contains(reason), "{reason}: {html}");
        let other = if field == "new_password" {
            "current_password"
        } else {
            "new_password"
        };
        assert!(marked(&html, field) && !marked(&html, other), "{reason}: {html}");
        assert!(
            !html.contains(new) && !html.contains(current),
            "typed passwords are not sent back"
        );
    }
    assert!(introspect_active(&app, &id, &secret, &access).await);
    assert_eq!(account_page(&phone, &app).await.0, 200);
    // Without its CSRF token the form is refused.
    let resp = laptop
        .post(app.url("/account/password"))
        .form(&[
            ("current_password", PASSWORD),
            ("new_password", NEW),
            ("new_password_again", NEW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let (status, html) = change_password(&laptop, &app, PASSWORD, NEW, NEW).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"id="password-changed""#), "{html}");
    assert_eq!(account_page(&laptop, &app).await.0, 303, "this browser is signed out");
    assert_eq!(account_page(&phone, &app).await.0, 303, "and every other");
    assert!(app.core.list_user_grants(alice.id).await.unwrap().is_empty());
    assert!(!introspect_active(&app, &id, &secret, &access).await);
    let old = browser();
    sign_in(&old, &app, "alice", PASSWORD, None).await;
    assert_eq!(
        account_page(&old, &app).await.0,
        303,
        "the old password no longer signs in"
    );
    // Sent to sign in by the account page, the person comes back to it.
    let r = laptop
        .post(app.url("/login"))
        .form(&[("username", "alice")])
        .send()
        .await
        .unwrap();
    // No CSRF token: nothing in the form is used; the form comes back to be sent again.
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("This page had expired, so nothing was sent.")
    );
    let back = sign_in(&laptop, &app, "alice", NEW, None).await;
    assert_eq!(back.status, 303, "the new one does, {}", back.html);
    assert_eq!(account_page(&laptop, &app).await.0, 200);
    // Once: the next sign-in in this browser shows the signed-in page.
    assert_eq!(sign_in(&laptop, &app, "alice", NEW, None).await.status, 200);
    // Any sign-in uses the wish up, one for an application's request included.
    app.user("bob", PASSWORD).await;
    let b = browser();
    assert_eq!(account_page(&b, &app).await.0, 303);
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256");
    crate::code_flow::authorize_in_browser(&b, &app, &auth, "bob", "allow").await;
    assert_eq!(sign_in(&b, &app, "bob", PASSWORD, None).await.status, 200);
    app.core.audit.flush().await;
    let changed = app.audit_events("user.password_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].user_id, Some(alice.id));
    assert_eq!(changed[0].detail["self_service"], true);
    let failures = app.audit_events("login.failure").await;
    assert!(
        failures.iter().any(|e| e.detail["password_change"] == true),
        "a wrong current password is a failed sign-in: {failures:?}"
    );

    // Guessing the current password from a signed-in browser meets the sign-in lockout
    // (5 failures per name and address by default).
    for _ in 0..5 {
        assert_eq!(change_password(&laptop, &app, "guess", NEW, NEW).await.0, 400);
    }
    assert_eq!(
        change_password(&laptop, &app, NEW, "another passphrase", "another passphrase")
            .await
            .0,
        429
    );
    app.stop().await;
}

/// A sign-in whose session reaches the store after a password change, a disable or a
/// delete ended the account's sessions (it checked the password just before) is not
/// signed in: the session carries a stamp of the password it signed in with, and the
/// account is read again. Here the late session is put back by hand.
async fn a_sign_in_overtaken_by_an_account_change_is_not_signed_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice", PASSWORD).await;
    let store = &app.core.store;
    // Signs `b` in and returns its stored session, as a sign-in racing a change would
    // write it after the change.
    let signed_in = |b: reqwest::Client| {
        let app = &app;
        async move {
            assert_eq!(sign_in(&b, app, "alice", PASSWORD, None).await.status, 200);
            assert_eq!(account_page(&b, app).await.0, 200);
            let handle = app.core.list_user_sessions(alice.id).await.unwrap().remove(0).id;
            let hash = portcullis_core::model::Digest::try_from(
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, handle)
                    .unwrap()
                    .as_slice(),
            )
            .unwrap();
            let row = app
                .core
                .store
                .load_session(&hash, app.core.now())
                .await
                .unwrap()
                .unwrap();
            (b, row)
        }
    };

    // A password change (as an operator's reset, or the person's own).
    let (b, row) = signed_in(browser()).await;
    app.core
        .set_user_password(alice.id, &Secret::new("a brand new passphrase"), "test")
        .await
        .unwrap();
    assert!(store.create_session(&row).await.unwrap(), "the late session is stored");
    assert_eq!(account_page(&b, &app).await.0, 303, "but is not signed in");
    assert!(
        app.core.list_user_sessions(alice.id).await.unwrap().is_empty(),
        "and is ended"
    );
    // The page wrote to the session (it asks to come back after signing in): under a
    // new id, not the ended cookie value.
    assert!(
        store
            .load_session(&row.id_hash, app.core.now())
            .await
            .unwrap()
            .is_none()
    );

    // Disabled meanwhile.
    app.core
        .set_user_password(alice.id, &Secret::new(PASSWORD), "test")
        .await
        .unwrap();
    let (b, row) = signed_in(browser()).await;
    app.core.set_user_disabled(alice.id, true, "test").await.unwrap();
    assert!(store.create_session(&row).await.unwrap());
    assert_eq!(account_page(&b, &app).await.0, 303);
    app.stop().await;
}

/// NIST SP 800-63B §4.1.3: a signed-in session ends `session_max_age` after the sign-in,
/// however active it is (here 2 s, with a request every second).
async fn a_session_ends_at_its_maximum_age_however_active(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.session_max_age = time::Duration::seconds(2);
    })
    .await;
    app.user("alice", PASSWORD).await;
    let b = browser();
    assert_eq!(sign_in(&b, &app, "alice", PASSWORD, None).await.status, 200);
    assert_eq!(account_page(&b, &app).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(account_page(&b, &app).await.0, 200, "still within its age");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(account_page(&b, &app).await.0, 303, "past its age: signed out");
    // Signing in again starts a new one, and goes back to the account page it came from.
    assert_eq!(sign_in(&b, &app, "alice", PASSWORD, None).await.status, 303);
    assert_eq!(account_page(&b, &app).await.0, 200);
    app.stop().await;
}

both_backends!(
    a_person_changes_their_own_password,
    a_sign_in_overtaken_by_an_account_change_is_not_signed_in,
    a_session_ends_at_its_maximum_age_however_active,
    sessions_and_applications_are_listed_and_revocable,
    a_consent_without_live_grants_is_listed_and_removable,
);
