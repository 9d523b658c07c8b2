//! The admin pages without a browser engine (issue 4), on both backends: sign-in and
//! sign-out, CSRF refused on every form without the token (403) and accepted with it,
//! an auditor refused by the server (403) on every change even with a valid token,
//! validation errors shown next to the field with the typed input kept, the bootstrap
//! operator signing in, and an API key created in the UI working on the API.

use portcullis_core::model::{AdminRole, KeyState};
use portcullis_protocol::Secret;
use portcullis_tests::{Backend, both_backends, fresh_database, http, spawn_app, spawn_app_on};
use serde_json::Value;

use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, csrf, operator, set_cookie, sign_in_by_hand};
use crate::code_flow::{PASSWORD, REDIRECT};

/// The value between `id="{id}">` and the next `<`.
pub(crate) fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no #{id} in {html}")) + marker.len();
    html[start..].split('<').next().unwrap().to_owned()
}

async fn sign_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;

    // Not signed in: every page leads to the sign-in page.
    let p = Pages::new(&app);
    for path in [
        "/admin",
        "/admin/clients",
        "/admin/users",
        "/admin/keys",
        "/admin/audit",
        "/admin/api-keys",
    ] {
        let r = p.b.get(format!("{}{path}", app.admin_url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/admin/login", "{path}");
    }
    let (s, loc, _) = p.post("/admin/clients", &[("name", "x")]).await;
    assert!(s == 303 || s == 403, "{s} {loc:?}");

    // The sign-in form: without the token 403; wrong password or unknown user: the
    // same message; right password: the dashboard.
    let (s, _, body) = p
        .post("/admin/login", &[("username", "root"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(s, 403, "{body}");
    let token = p.csrf("/admin/login").await;
    let (s, _, wrong) = p
        .post(
            "/admin/login",
            &[("csrf", &token), ("username", "root"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, unknown) = p
        .post(
            "/admin/login",
            &[("csrf", &token), ("username", "nobody"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(text_of(&wrong, "error"), text_of(&unknown, "error"));
    assert!(wrong.contains("value=\"root\""), "the username is kept");
    // A user account is not an operator account.
    app.user("alice", PASSWORD).await;
    let (_, _, user) = p
        .post(
            "/admin/login",
            &[("csrf", &token), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert!(user.contains("id=\"error\""));

    // Signing in gives the session a new id (session fixation): the cookie changes.
    let (before, token, r) = sign_in_by_hand(&app, "root").await;
    assert!(before.starts_with("portcullis_operator_session="), "{before}");
    assert_eq!(r.status(), 303);
    let after = set_cookie(&r).expect("a new session cookie");
    assert_ne!(before, after, "the session id changes on sign-in");
    // Sent to the admin pages only (not to other services of this host: cookies do not
    // tell ports apart), and kept until the browser closes.
    let attributes = r.headers()["set-cookie"].to_str().unwrap().to_ascii_lowercase();
    assert!(attributes.contains("; path=/admin"), "{attributes}");
    assert!(
        attributes.contains("httponly") && attributes.contains("samesite=lax"),
        "{attributes}"
    );
    assert!(
        !attributes.contains("max-age") && !attributes.contains("expires"),
        "{attributes}"
    );
    let signed = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (s, dash) = signed.get("/admin").await;
    assert_eq!(s, 200);
    assert!(dash.contains("Dashboard") && text_of(&dash, "signed-in-as").starts_with("root"));
    // The old CSRF token died with the old session id.
    let r = http()
        .post(format!("{}/admin/logout", app.admin_url))
        .header("cookie", &after)
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Headers: CSP without inline script, no framing, no caching.
    let r = signed
        .b
        .get(format!("{}/admin/clients", app.admin_url))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let css = signed
        .b
        .get(format!("{}/static/admin.css", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);

    // Sign-out: without the token 403 and still signed in; with it, signed out.
    let (s, _, _) = signed.post("/admin/logout", &[]).await;
    assert_eq!(s, 403);
    assert_eq!(signed.get("/admin").await.0, 200);
    let token = csrf(&signed.get("/admin").await.1);
    let (s, loc, _) = signed.post("/admin/logout", &[("csrf", &token)]).await;
    assert_eq!((s.as_u16(), loc.as_deref()), (303, Some("/admin/login")));
    let r = signed.b.get(format!("{}/admin", app.admin_url)).send().await.unwrap();
    assert_eq!(r.status(), 303);

    app.core.audit.flush().await;
    let events = app
        .core
        .list_audit(&portcullis_core::model::AuditFilter::default())
        .await
        .unwrap()
        .events;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for k in ["admin.login.failure", "admin.login.success", "admin.logout"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let success = events.iter().find(|e| e.event_type == "admin.login.success").unwrap();
    assert_eq!(success.actor.as_deref(), Some("root"));
    assert_eq!(success.ip.as_deref(), Some("127.0.0.1"));
    app.stop().await;
}

/// Every form of the admin pages: refused without the CSRF token, and the action did
/// not happen; accepted with it.
async fn csrf_on_every_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let (key, _) = crate::admin_support::api_key(&app, AdminRole::Auditor).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let c = client.id.as_str();
    let u = alice.id.to_string();
    let new_client = [
        ("name", "Form App"),
        ("kind", "confidential"),
        ("redirect_uris", REDIRECT),
        ("grant_types", "authorization_code"),
        ("scopes", "openid"),
    ];
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/admin/clients".into(), new_client.to_vec()),
        (format!("/admin/clients/{c}"), new_client.to_vec()),
        (format!("/admin/clients/{c}/disable"), vec![]),
        (format!("/admin/clients/{c}/enable"), vec![]),
        (format!("/admin/clients/{c}/rotate-secret"), vec![]),
        (format!("/admin/users/{u}/disable"), vec![]),
        (format!("/admin/users/{u}/enable"), vec![]),
        (
            format!("/admin/users/{u}/password"),
            vec![("password", "another passphrase")],
        ),
        (format!("/admin/users/{u}/profile"), vec![("name", "Alice Renamed")]),
        ("/admin/users".into(), vec![("username", "bob"), ("password", PASSWORD)]),
        ("/admin/keys/rotate".into(), vec![("alg", "RS256"), ("force", "on")]),
        ("/admin/api-keys".into(), vec![("name", "k"), ("role", "admin")]),
        (format!("/admin/api-keys/{key}/revoke"), vec![]),
        (format!("/admin/users/{u}/delete"), vec![]),
        (format!("/admin/clients/{c}/delete"), vec![]),
    ];
    let keys_before = app.core.list_signing_keys().await.unwrap();
    for (path, fields) in &forms {
        let (s, _, body) = p.post(path, fields).await;
        assert_eq!(s, 403, "{path} without a token: {body}");
        let mut wrong = fields.clone();
        wrong.push(("csrf", "forged"));
        assert_eq!(p.post(path, &wrong).await.0, 403, "{path} with a wrong token");
    }
    // Nothing happened.
    assert_eq!(app.core.list_clients(None).await.unwrap().len(), 1);
    assert!(!app.core.get_client(&client.id).await.unwrap().disabled);
    assert_eq!(app.core.list_users(None).await.unwrap().len(), 1);
    assert_eq!(app.core.get_user(alice.id).await.unwrap().name, alice.name);
    assert_eq!(app.core.list_signing_keys().await.unwrap(), keys_before);
    assert_eq!(app.core.list_api_keys().await.unwrap().len(), 1);
    assert!(app.core.list_api_keys().await.unwrap()[0].revoked_at.is_none());

    // With the token, each is accepted.
    let token = p.csrf("/admin").await;
    for (path, fields) in &forms {
        let mut with = fields.clone();
        with.push(("csrf", &token));
        let (s, _, body) = p.post(path, &with).await;
        assert!(s == 200 || s == 303, "{path} with the token: {s} {body}");
    }
    assert!(app.core.get_client(&client.id).await.is_err(), "deleted last");
    assert!(app.core.find_user("bob").await.is_ok());
    assert!(
        app.core.get_user(alice.id).await.is_err(),
        "alice deleted, last but one"
    );
    assert_ne!(app.core.list_signing_keys().await.unwrap(), keys_before);
    assert!(
        app.core
            .list_api_keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.revoked_at.is_some())
    );
    app.stop().await;
}

/// An auditor sees every page but the server refuses every change with 403, even with a
/// valid CSRF token from the auditor's own session; nothing changes.
async fn auditor_is_refused_by_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "watcher", AdminRole::Auditor).await;
    let alice = app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let tokens = crate::code_flow::obtain_tokens(&app, client.id.as_str(), secret.expose(), "alice").await;
    let grant = app.core.list_user_grants(alice.id).await.unwrap()[0].grant.id;
    let session = app.core.list_user_sessions(alice.id).await.unwrap()[0].id.clone();
    let (key, _) = crate::admin_support::api_key(&app, AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "watcher", ADMIN_PASSWORD).await;
    let c = client.id.as_str();
    let u = alice.id.to_string();

    // Read-only pages: 200, and no change controls are offered.
    for path in [
        "/admin".to_owned(),
        "/admin/clients".to_owned(),
        format!("/admin/clients/{c}"),
        "/admin/users".to_owned(),
        format!("/admin/users/{u}"),
        "/admin/keys".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/api-keys".to_owned(),
    ] {
        let (s, html) = p.get(&path).await;
        assert_eq!(s, 200, "{path}");
        let forms: Vec<&str> = html
            .match_indices("<form method=\"post\"")
            .map(|(i, _)| &html[i..i + 80])
            .collect();
        assert_eq!(forms.len(), 1, "{path}: only the sign-out form: {forms:?}");
        assert!(html.contains("auditor"), "{path}");
    }
    // Pages that exist only to change something: 403.
    for path in [
        "/admin/clients/new".to_owned(),
        format!("/admin/clients/{c}/edit"),
        format!("/admin/clients/{c}/delete"),
        "/admin/users/new".to_owned(),
        format!("/admin/users/{u}/delete"),
    ] {
        assert_eq!(p.get(&path).await.0, 403, "{path}");
    }

    let token = p.csrf("/admin").await;
    let g = grant.to_string();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/clients".into(),
            vec![
                ("name", "Sneaky"),
                ("kind", "public"),
                ("redirect_uris", REDIRECT),
                ("grant_types", "authorization_code"),
                ("scopes", "openid"),
            ],
        ),
        (
            format!("/admin/clients/{c}"),
            vec![
                ("name", "Renamed"),
                ("grant_types", "authorization_code"),
                ("redirect_uris", REDIRECT),
            ],
        ),
        (format!("/admin/clients/{c}/disable"), vec![]),
        (format!("/admin/clients/{c}/rotate-secret"), vec![]),
        (format!("/admin/clients/{c}/delete"), vec![]),
        (
            "/admin/users".into(),
            vec![("username", "mallory"), ("password", PASSWORD)],
        ),
        (format!("/admin/users/{u}/disable"), vec![]),
        (
            format!("/admin/users/{u}/password"),
            vec![("password", "mallory's choice")],
        ),
        (
            format!("/admin/users/{u}/profile"),
            vec![("name", "Mallory"), ("email", "mallory@example.com")],
        ),
        (format!("/admin/users/{u}/delete"), vec![]),
        (format!("/admin/users/{u}/sessions/{session}/revoke"), vec![]),
        (format!("/admin/users/{u}/grants/{g}/revoke"), vec![]),
        ("/admin/keys/rotate".into(), vec![("alg", "RS256")]),
        ("/admin/api-keys".into(), vec![("name", "mine"), ("role", "admin")]),
        (format!("/admin/api-keys/{key}/revoke"), vec![]),
    ];
    let keys_before = app.core.list_signing_keys().await.unwrap();
    let client_before = app.core.get_client(&client.id).await.unwrap();
    for (path, fields) in &posts {
        let mut with = fields.clone();
        with.push(("csrf", &token));
        let (s, _, body) = p.post(path, &with).await;
        assert_eq!(s, 403, "{path}: {body}");
        assert!(body.contains("Not allowed"), "{path}");
    }
    // Nothing changed.
    let after = app.core.get_client(&client.id).await.unwrap();
    assert_eq!(after, client_before, "the client is untouched");
    assert_eq!(app.core.list_clients(None).await.unwrap().len(), 1);
    assert_eq!(app.core.list_users(None).await.unwrap().len(), 1);
    let after = app.core.get_user(alice.id).await.unwrap();
    assert_eq!(
        (after.name, after.email, after.email_verified, after.disabled),
        (alice.name, alice.email, alice.email_verified, false),
        "the user is untouched"
    );
    assert!(app.core.login("alice", &Secret::new(PASSWORD), None).await.is_ok());
    assert_eq!(app.core.list_user_sessions(alice.id).await.unwrap().len(), 1);
    assert!(
        app.core
            .active_access_token(tokens["access_token"].as_str().unwrap())
            .is_some()
    );
    assert_eq!(app.core.list_signing_keys().await.unwrap(), keys_before);
    let keys = app.core.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none());
    app.stop().await;
}

/// The operator account made on first start signs in to the admin pages, and an API key
/// made in the UI is shown once and works on the API until revoked in the UI.
async fn bootstrap_operator_and_ui_made_api_key(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    // What `serve` does on a first start, with the password it would print.
    let settings = portcullis_cli::Settings::for_test("http://127.0.0.1:1", &url, portcullis_tests::TEST_KEK);
    let core = portcullis_cli::app::start_core(&settings).await.unwrap();
    let (username, password) = core.bootstrap_admin().await.unwrap().unwrap();
    core.audit.flush().await;
    drop(core);
    let app = spawn_app_on(&url, guard.map(std::sync::Arc::new)).await;
    let p = Pages::sign_in(&app, &username, password.expose()).await;
    let (s, dash) = p.get("/admin").await;
    assert_eq!(s, 200);
    assert!(dash.contains("badge\">admin<"), "the bootstrap operator is an admin");

    let token = p.csrf("/admin/api-keys").await;
    let (s, _, html) = p
        .post(
            "/admin/api-keys",
            &[
                ("csrf", &token),
                ("name", "deploy"),
                ("role", "admin"),
                ("expires_in_days", "soon"),
            ],
        )
        .await;
    assert_eq!(s, 422);
    assert!(html.contains("id=\"expires_in_days-error\"") && html.contains("value=\"deploy\""));
    let (s, _, html) = p
        .post(
            "/admin/api-keys",
            &[
                ("csrf", &token),
                ("name", "deploy"),
                ("role", "admin"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{html}");
    let value = text_of(&html, "api-key-value");
    assert!(value.starts_with("pcak_"));
    let (_, list) = p.get("/admin/api-keys").await;
    assert!(!list.contains(&value), "shown only once");
    assert!(list.contains("deploy"));
    let api = Api::new(&app, &value);
    let (s, v) = api
        .post(
            "/users",
            serde_json::json!({"username": "made-by-script", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = app.core.list_api_keys().await.unwrap()[0].clone();
    assert!(key.expires_at.is_some());
    assert_eq!(key.created_by, username);
    let (s, _, _) = p
        .post(&format!("/admin/api-keys/{}/revoke", key.id), &[("csrf", &token)])
        .await;
    assert_eq!(s, 303);
    let (s, v): (_, Value) = api.get("/users").await;
    assert_eq!(s, 401, "{v}");
    app.stop().await;
}

/// The sign-in form is rate-limited (DESIGN §5): repeated failures from one address are
/// refused with 429 and `Retry-After`, and then even the right password waits.
async fn sign_in_is_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::new(&app);
    let token = p.csrf("/admin/login").await;
    let mut refused = None;
    for attempt in 1..=12 {
        let r =
            p.b.post(format!("{}/admin/login", app.admin_url))
                .form(&[
                    ("csrf", token.as_str()),
                    ("username", "root"),
                    ("password", "guess guess guess"),
                ])
                .send()
                .await
                .unwrap();
        if r.status() == 429 {
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            // The sign-in form again, saying how long to wait.
            let html = r.text().await.unwrap();
            assert!(html.contains("Too many attempts. Try again in"), "{html}");
            assert!(
                html.contains(r#"name="password""#) && html.contains(r#"value="root""#),
                "{html}"
            );
            refused = Some((attempt, retry_after));
            break;
        }
        assert_eq!(r.status(), 200, "attempt {attempt}");
    }
    let (attempt, retry_after) = refused.expect("never rate-limited");
    assert!(attempt > 1, "the first attempts are answered");
    assert!(retry_after.is_some_and(|v| v.parse::<u64>().unwrap() >= 1));
    let r =
        p.b.post(format!("{}/admin/login", app.admin_url))
            .form(&[
                ("csrf", token.as_str()),
                ("username", "root"),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 429, "locked out for now, even with the right password");
    app.stop().await;
}

/// Operator accounts can be managed: a new password ends that operator's sessions (not
/// other operators'), a role change applies at the next request, a deleted account's
/// sessions end, and the last account with the admin role can be neither demoted nor
/// deleted.
async fn operator_accounts_are_managed(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    operator(&app, "ops", AdminRole::Admin).await;
    let root = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let ops = Pages::sign_in(&app, "ops", ADMIN_PASSWORD).await;
    let signed_in = |p: &Pages| {
        let p = p.b.clone();
        let url = format!("{}/admin/clients", app.admin_url);
        async move {
            let r = p.get(url).send().await.unwrap();
            r.status() == 200
        }
    };
    assert!(signed_in(&root).await && signed_in(&ops).await);
    // The account made at first start goes: two others keep the admin role.
    app.core.delete_admin("admin", "test").await.unwrap();
    let names = |admins: Vec<portcullis_core::model::Admin>| {
        admins.into_iter().map(|a| (a.username, a.role)).collect::<Vec<_>>()
    };
    assert_eq!(
        names(app.core.list_admins().await.unwrap()),
        [
            ("ops".to_owned(), AdminRole::Admin),
            ("root".to_owned(), AdminRole::Admin)
        ]
    );

    // A new password for ops: ops's session ends, root's does not; the new one works.
    let new_password = Secret::new("a brand new passphrase");
    app.core.set_admin_password("ops", &new_password, "test").await.unwrap();
    assert!(!signed_in(&ops).await, "the old session ended");
    assert!(signed_in(&root).await);
    let ops = Pages::sign_in(&app, "ops", new_password.expose()).await;
    assert!(signed_in(&ops).await);
    let e = app
        .core
        .set_admin_password("ops", &Secret::new("short"), "test")
        .await
        .unwrap_err();
    assert!(matches!(e, portcullis_core::Error::Invalid { .. }), "{e:?}");

    // Demoted to auditor: read-only at once.
    app.core
        .set_admin_role("ops", AdminRole::Auditor, "test")
        .await
        .unwrap();
    let token = ops.csrf("/admin/clients").await;
    let (s, _, _) = ops.post("/admin/clients", &[("csrf", &token), ("name", "x")]).await;
    assert_eq!(s, 403);

    // root is now the last admin: it keeps the role and its account.
    for e in [
        app.core
            .set_admin_role("root", AdminRole::Auditor, "test")
            .await
            .unwrap_err(),
        app.core.delete_admin("root", "test").await.unwrap_err(),
    ] {
        assert!(e.to_string().contains("last account with the admin role"), "{e}");
    }
    // An auditor can go; its session ends with it.
    app.core.delete_admin("ops", "test").await.unwrap();
    assert!(!signed_in(&ops).await);
    assert!(matches!(
        app.core.delete_admin("ops", "test").await,
        Err(portcullis_core::Error::NotFound(_))
    ));
    assert_eq!(
        names(app.core.list_admins().await.unwrap()),
        [("root".to_owned(), AdminRole::Admin)]
    );
    app.stop().await;
}

/// A filter that cannot be read gets the admin error page (HTML), not axum's text.
async fn unreadable_filters_get_the_error_page(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    for path in [
        "/admin/audit?offset=-1",
        "/admin/audit?offset=abc",
        "/admin/audit?event_type=a&event_type=b",
        "/admin/clients?q=a&q=b",
        "/admin/users?q=a&q=b",
    ] {
        let r = p.b.get(format!("{}{path}", app.admin_url)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains("could not be read"), "{path}");
    }
    let (s, _) = p.get("/admin/audit?offset=0&event_type=login.failure").await;
    assert_eq!(s, 200);
    // A search or filter with NUL (U+0000), which PostgreSQL cannot compare, matches
    // nothing on either store, rather than failing.
    for path in [
        "/admin/clients?q=a%00",
        "/admin/users?q=%00",
        "/admin/audit?event_type=%00",
    ] {
        let (s, html) = p.get(path).await;
        assert_eq!(s, 200, "{path}: {html}");
        // Shown back without the NUL itself.
        assert!(!html.contains('\0'), "{path}");
    }
    let (_, html) = p.get("/admin/users?q=a%00").await;
    assert!(html.contains("a\u{FFFD}"), "{html}");
    // A path segment that is not UTF-8 names no page: the admin "not found" page.
    for path in ["/admin/clients/%FF", "/admin/users/%FF", "/admin/clients/%FF/edit"] {
        let r = p.b.get(format!("{}{path}", app.admin_url)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
    }
    app.stop().await;
}

/// The keys page refuses to rotate a next key created moments ago (clients may cache a
/// JWKS without it) and says why, with nothing changed; the "rotate anyway" box forces it.
async fn a_too_new_next_key_is_rotated_only_when_forced(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let token = p.csrf("/admin/keys").await;
    let before = app.core.list_signing_keys().await.unwrap();
    for force in [None, Some("off")] {
        let mut form = vec![("csrf", token.as_str()), ("alg", "RS256")];
        form.extend(force.map(|v| ("force", v)));
        let (s, _, html) = p.post("/admin/keys/rotate", &form).await;
        assert_eq!(s, 409, "{force:?}: {html}");
        assert!(html.contains(r#"id="form-error""#), "{html}");
        assert!(
            html.contains("Forcing the rotation is needed: the next RS256 key"),
            "{html}"
        );
        assert!(html.contains(r#"id="force""#), "the box to force it is on the page");
        assert_eq!(app.core.list_signing_keys().await.unwrap(), before, "nothing rotated");
    }
    let (s, loc, body) = p
        .post(
            "/admin/keys/rotate",
            &[("csrf", token.as_str()), ("alg", "RS256"), ("force", "on")],
        )
        .await;
    assert_eq!((s.as_u16(), loc.as_deref()), (303, Some("/admin/keys")), "{body}");
    let after = app.core.list_signing_keys().await.unwrap();
    let next_before = before.iter().find(|k| k.state == KeyState::Next).unwrap();
    assert_eq!(
        after.iter().find(|k| k.kid == next_before.kid).unwrap().state,
        KeyState::Active,
        "forced: the next key signs"
    );
    let (_, html) = p.get("/admin/keys").await;
    assert!(html.contains("Rotated the RS256 keys"), "{html}");

    // The retired key (only it) can be withdrawn; with the CSRF token only.
    let retired = before.iter().find(|k| k.state == KeyState::Active).unwrap();
    assert!(html.contains(&format!(r#"id="withdraw-{}""#, retired.kid)), "{html}");
    assert_eq!(html.matches(r#"id="withdraw-"#).count(), 1, "{html}");
    let path = format!("/admin/keys/{}/withdraw", retired.kid);
    assert_eq!(p.post(&path, &[]).await.0, 403);
    let published = |jwks: Value| {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == retired.kid.as_str())
    };
    assert!(published(app.get_json("/jwks").await));
    let (s, loc, body) = p.post(&path, &[("csrf", token.as_str())]).await;
    assert_eq!((s.as_u16(), loc.as_deref()), (303, Some("/admin/keys")), "{body}");
    assert!(!published(app.get_json("/jwks").await), "withdrawn from the JWKS");
    let (_, html) = p.get("/admin/keys").await;
    assert!(html.contains(&format!("Withdrew {}", retired.kid)), "{html}");
    assert!(!html.contains(r#"id="withdraw-"#), "nothing left to withdraw");
    app.stop().await;
}

both_backends!(
    a_too_new_next_key_is_rotated_only_when_forced,
    unreadable_filters_get_the_error_page,
    operator_accounts_are_managed,
    sign_in_is_rate_limited,
    sign_in_and_out,
    csrf_on_every_form,
    auditor_is_refused_by_the_server,
    bootstrap_operator_and_ui_made_api_key,
);
