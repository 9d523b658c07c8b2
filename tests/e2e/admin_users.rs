//! The user pages of the admin surface, on both backends: the new-user form, editing a
//! user's profile (names, email, verified) with concurrent changes kept, and deleting a
//! user (their tokens refused at once, the name free again for another person).

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, both_backends, spawn_app};

use crate::admin_support::{ADMIN_PASSWORD, Pages, operator};
use crate::code_flow::{PASSWORD, REDIRECT};

/// The new-user form reads `email_verified=off` as unchecked (as the client form's
/// checkboxes), and a name is bounded like a client's.
async fn user_form_fields_are_read_as_meant(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let token = p.csrf("/admin/users/new").await;
    let long = "n".repeat(201);
    for (username, verified, name, expected) in [
        ("vic", "off", "Vic", 303),
        ("val", "on", "Val", 303),
        ("vin", "on", long.as_str(), 422),
    ] {
        let form = [
            ("csrf", token.as_str()),
            ("username", username),
            ("password", PASSWORD),
            ("email", "v@example.com"),
            ("email_verified", verified),
            ("name", name),
        ];
        let (s, _, body) = p.post("/admin/users", &form).await;
        assert_eq!(s.as_u16(), expected, "{username}: {body}");
    }
    assert!(!app.core.find_user("vic").await.unwrap().email_verified);
    assert!(app.core.find_user("val").await.unwrap().email_verified);
    assert!(app.core.find_user("vin").await.is_err());
    app.stop().await;
}

/// An operator edits a user's name and email on the user page: a refused form comes back
/// with what was typed and the error at its field; a saved one is what userinfo serves at
/// once, with sessions and grants kept.
async fn a_users_profile_is_edited(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let tokens = crate::code_flow::obtain_tokens(&app, client.id.as_str(), secret.expose(), "alice").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = || async {
        portcullis_tests::http()
            .get(app.url("/userinfo"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let before = userinfo().await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let page = format!("/admin/users/{}", alice.id);
    let (_, html) = p.get(&page).await;
    assert!(html.contains(r#"id="profile""#), "{html}");
    let token = p.csrf(&page).await;
    let action = format!("{page}/profile");

    let (s, _, body) = p
        .post(
            &action,
            &[
                ("csrf", token.as_str()),
                ("name", "Alice Typed"),
                ("email", "not an address"),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{body}");
    assert!(
        body.contains(r#"id="email-error""#) && body.contains("is not an email address"),
        "{body}"
    );
    assert!(
        body.contains(r#"value="Alice Typed""#) && body.contains(r#"value="not an address""#),
        "kept: {body}"
    );
    let unsaved = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(
        (unsaved.name, unsaved.email),
        (alice.name.clone(), alice.email.clone()),
        "nothing saved"
    );

    // Saved: a new email, not verified (the box left unticked), and a new name.
    sleep_past_second().await;
    let (s, _, body) = p
        .post(
            &action,
            &[
                ("csrf", token.as_str()),
                ("name", " Alice Liddell "),
                ("email", "al@example.org"),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 303, "{body}");
    let saved = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(saved.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(saved.email.as_deref(), Some("al@example.org"));
    assert!(!saved.email_verified);
    let after = userinfo().await;
    assert_eq!(after["name"], "Alice Liddell", "{after}");
    assert_eq!(after["email"], "al@example.org");
    assert_eq!(after["email_verified"], false);
    assert!(
        after["updated_at"].as_i64() > before["updated_at"].as_i64(),
        "{before} {after}"
    );
    assert_eq!(
        app.core.list_user_sessions(alice.id).await.unwrap().len(),
        1,
        "sessions stay"
    );
    assert_eq!(
        app.core.list_user_grants(alice.id).await.unwrap().len(),
        1,
        "grants stay"
    );
    let (_, html) = p.get(&page).await;
    assert!(html.contains("Profile saved."), "{html}");
    // Her session, from a client that sent no User-Agent.
    assert!(html.contains(r#"<td class="ua">Unknown browser</td>"#), "{html}");

    // A form left open while another operator changed the name saves only the email
    // this operator changed.
    let (_, stale) = p.get(&page).await;
    changed_meanwhile(
        &app,
        alice.id,
        portcullis_core::users::ProfileChange {
            name: Some(Some("Changed Meanwhile".into())),
            ..Default::default()
        },
    )
    .await;
    let form = profile_form(&app, &page, &stale);
    // As the browser sends it: the hidden fields, the name as shown, the new email (the
    // box was unticked, so it is not sent).
    let mut fields = form.fields.clone();
    fields.push(("name".into(), "Alice Liddell".into()));
    fields.push(("email".into(), "alice@new.example".into()));
    let (s, _, _) = p
        .post(
            &action,
            &fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(s.as_u16(), 303);
    let both = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(both.name.as_deref(), Some("Changed Meanwhile"), "kept");
    assert_eq!(both.email.as_deref(), Some("alice@new.example"));

    // The box ticked for the address on a form left open while another operator put
    // another address there: refused, rather than verifying an address nobody checked.
    let (_, stale) = p.get(&page).await;
    let form = profile_form(&app, &page, &stale);
    changed_meanwhile(
        &app,
        alice.id,
        portcullis_core::users::ProfileChange {
            email: Some(Some("someone@else.example".into())),
            ..Default::default()
        },
    )
    .await;
    let mut fields = form.fields.clone();
    fields.push(("name".into(), "Changed Meanwhile".into()));
    fields.push(("email".into(), "alice@new.example".into()));
    fields.push(("email_verified".into(), "on".into()));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, _, body) = p.post(&action, &fields).await;
    assert_eq!(s.as_u16(), 422, "{body}");
    assert!(body.contains(r#"id="email_verified-error""#), "{body}");
    assert!(!app.core.get_user(alice.id).await.unwrap().email_verified);
    // Ticked for the address now shown, it is saved; a new address under the box left
    // ticked is not verified.
    let token_fields = |email: &str, was: &str, was_verified: &str| {
        vec![
            ("csrf".to_owned(), token.clone()),
            ("name".to_owned(), "Changed Meanwhile".to_owned()),
            ("email".to_owned(), email.to_owned()),
            ("email_verified".to_owned(), "on".to_owned()),
            ("name_was".to_owned(), "Changed Meanwhile".to_owned()),
            ("email_was".to_owned(), was.to_owned()),
            ("email_verified_was".to_owned(), was_verified.to_owned()),
        ]
    };
    let post = |f: Vec<(String, String)>| {
        let p = &p;
        let action = &action;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            p.post(action, &f).await.0.as_u16()
        }
    };
    assert_eq!(
        post(token_fields("someone@else.example", "someone@else.example", "off")).await,
        303
    );
    assert!(app.core.get_user(alice.id).await.unwrap().email_verified);
    assert_eq!(
        post(token_fields("fixed@else.example", "someone@else.example", "on")).await,
        303
    );
    let fixed = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(fixed.email.as_deref(), Some("fixed@else.example"));
    assert!(
        !fixed.email_verified,
        "a new address is not verified by a box left ticked"
    );

    // Cleared: blank name and email; the box, left ticked, cannot make no address verified.
    let (s, _, _) = p
        .post(
            &action,
            &[
                ("csrf", token.as_str()),
                ("name", ""),
                ("email", ""),
                ("email_verified", "on"),
                ("name_was", "Changed Meanwhile"),
                ("email_was", "fixed@else.example"),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 303);
    assert!(!app.core.get_user(alice.id).await.unwrap().email_verified);
    let cleared = userinfo().await;
    assert!(
        cleared.get("name").is_none() && cleared.get("email").is_none(),
        "{cleared}"
    );
    app.core.audit.flush().await;
    let events = app.audit_events("admin.user.updated").await;
    let actors: Vec<_> = events.iter().map(|e| e.actor.as_deref().unwrap_or_default()).collect();
    assert_eq!(actors.iter().filter(|a| **a == "root").count(), 5, "{actors:?}");
    assert_eq!(actors.iter().filter(|a| **a == "other").count(), 2, "{actors:?}");
    app.stop().await;
}

/// An operator deletes a user from the user page, after a confirmation page: their
/// tokens are refused at once, their sessions end, and the name can be given to a new
/// account, which applications see as another person (another `sub`).
async fn a_user_is_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, sec) = (client.id.as_str(), secret.expose());
    let tokens = crate::code_flow::obtain_tokens(&app, id, sec, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let page = format!("/admin/users/{}", alice.id);
    let (_, html) = p.get(&page).await;
    assert!(html.contains(&format!(r#"href="{page}/delete""#)), "{html}");
    let (s, html) = p.get(&format!("{page}/delete")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Delete alice?") && html.contains("cannot be undone"),
        "{html}"
    );
    assert!(app.core.get_user(alice.id).await.is_ok(), "asking deletes nothing");
    let token = p.csrf(&page).await;
    let (s, location, _) = p.post(&format!("{page}/delete"), &[("csrf", token.as_str())]).await;
    assert_eq!((s.as_u16(), location.as_deref()), (303, Some("/admin/users")));
    assert!(app.core.get_user(alice.id).await.is_err());
    assert_eq!(
        crate::token_endpoint::introspect(&app, id, sec, access).await["active"],
        false,
        "the access token is refused at once"
    );
    let (s, b) = crate::token_endpoint::refresh_grant(&app, (id, sec), refresh, None).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let r = portcullis_tests::http()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(p.get(&page).await.0, 404);
    let (s, _, _) = p.post(&format!("{page}/delete"), &[("csrf", token.as_str())]).await;
    assert_eq!(s.as_u16(), 404, "deleted already");

    // A new alice is another person.
    let again = app.user("alice", PASSWORD).await;
    let tokens = crate::code_flow::obtain_tokens(&app, id, sec, "alice").await;
    let info = crate::token_endpoint::introspect(&app, id, sec, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], again.id.to_string());
    assert_ne!(again.id, alice.id);
    app.core.audit.flush().await;
    let deleted = app.audit_events("admin.user.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].user_id, Some(alice.id));
    app.stop().await;
}

/// Given and family names (OIDC Core §5.1) on the new-user form and the user page: a
/// refused one is kept with the error at its field; a saved one is shown and served by
/// userinfo; a change to one keeps a change made meanwhile to the other.
async fn given_and_family_names_are_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let token = p.csrf("/admin/users/new").await;
    let (_, html) = p.get("/admin/users/new").await;
    assert!(
        html.contains(r#"<label for="given_name">Given name</label>"#)
            && html.contains(r#"<label for="family_name">Family name</label>"#),
        "{html}"
    );
    let bidi = "Liddell\u{202e}";
    let form = |given: &'static str, family: &'static str| {
        [
            ("csrf", token.clone()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("given_name", given.to_owned()),
            ("family_name", family.to_owned()),
        ]
    };
    let post = |f: [(&'static str, String); 5]| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post("/admin/users", &f).await
        }
    };
    let (s, _, body) = post(form("Alice", bidi)).await;
    assert_eq!(s.as_u16(), 422, "{body}");
    assert!(
        body.contains(r#"id="family_name-error""#)
            && body.contains(r#"aria-invalid="true" aria-describedby="family_name-error""#),
        "{body}"
    );
    assert!(body.contains(r#"value="Alice""#), "kept: {body}");
    assert!(app.core.find_user("alice").await.is_err(), "nothing created");
    let (s, _, body) = post(form(" Alice ", "Liddell")).await;
    assert_eq!(s.as_u16(), 303, "{body}");
    let alice = app.core.find_user("alice").await.unwrap();
    assert_eq!(
        (
            alice.given_name.as_deref(),
            alice.family_name.as_deref(),
            alice.name.as_deref()
        ),
        (Some("Alice"), Some("Liddell"), None)
    );
    let page = format!("/admin/users/{}", alice.id);
    let (_, html) = p.get(&page).await;
    assert!(
        html.contains("<dt>Given name</dt><dd>Alice</dd>") && html.contains("<dt>Family name</dt><dd>Liddell</dd>"),
        "{html}"
    );

    // The page's form, left open while another operator changes the given name; this
    // operator changes the family name only.
    let form = profile_form(&app, &page, &html);
    changed_meanwhile(
        &app,
        alice.id,
        portcullis_core::users::ProfileChange {
            given_name: Some(Some("Alicia".into())),
            ..Default::default()
        },
    )
    .await;
    // As the browser sends it: the hidden fields, and the text fields as shown except the
    // family name (the verified box is unticked, without an address, so it is not sent).
    let mut fields = form.fields.clone();
    for (k, v) in [
        ("name", ""),
        ("given_name", "Alice"),
        ("family_name", "Hargreaves"),
        ("email", ""),
    ] {
        fields.push((k.into(), v.into()));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, _, body) = p.post(&format!("{page}/profile"), &fields).await;
    assert_eq!(s.as_u16(), 303, "{body}");
    let saved = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(
        (saved.given_name.as_deref(), saved.family_name.as_deref()),
        (Some("Alicia"), Some("Hargreaves")),
        "the other operator's change is kept"
    );

    // Userinfo serves them with the profile scope.
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let tokens = crate::code_flow::obtain_tokens(&app, client.id.as_str(), secret.expose(), "alice").await;
    let info: serde_json::Value = portcullis_tests::http()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&info["given_name"], &info["family_name"]),
        (&serde_json::json!("Alicia"), &serde_json::json!("Hargreaves")),
        "{info}"
    );

    // A refused edit names its field and keeps what was typed.
    let token = p.csrf(&page).await;
    let long = "g".repeat(201);
    let (s, _, body) = p
        .post(
            &format!("{page}/profile"),
            &[
                ("csrf", token.as_str()),
                ("given_name", long.as_str()),
                ("given_name_was", "Alicia"),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{body}");
    assert!(
        body.contains(r##"<a href="#given_name">given_name</a>"##) && body.contains(&format!(r#"value="{long}""#)),
        "{body}"
    );
    assert_eq!(
        app.core.get_user(alice.id).await.unwrap().given_name.as_deref(),
        Some("Alicia")
    );
    app.core.audit.flush().await;
    let changed: Vec<_> = app
        .audit_events("admin.user.updated")
        .await
        .iter()
        .map(|e| e.detail["changed"].clone())
        .collect();
    assert!(
        changed.contains(&serde_json::json!(["given_name"])) && changed.contains(&serde_json::json!(["family_name"])),
        "{changed:?}"
    );
    app.stop().await;
}

/// The profile form of the user page `html` (at `page`), with the hidden fields it sends.
fn profile_form(app: &portcullis_tests::TestApp, page: &str, html: &str) -> crate::forms::Form {
    let url = url::Url::parse(&app.admin_url).unwrap().join(page).unwrap();
    crate::forms::forms(&url, html)
        .into_iter()
        .find(|f| f.action.path().ends_with("/profile"))
        .unwrap()
}

/// Another operator's change to a user's profile, made while a form is open.
async fn changed_meanwhile(
    app: &portcullis_tests::TestApp,
    user: uuid::Uuid,
    change: portcullis_core::users::ProfileChange,
) {
    app.core.update_user_profile(user, &change, "other").await.unwrap();
}

async fn sleep_past_second() {
    let now = time::OffsetDateTime::now_utc();
    let into = now - now.replace_nanosecond(0).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1) - into.unsigned_abs()).await;
}

both_backends!(
    user_form_fields_are_read_as_meant,
    a_users_profile_is_edited,
    a_user_is_deleted,
    given_and_family_names_are_kept,
);
