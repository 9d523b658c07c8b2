//! Initial access tokens (RFC 7591 §3) on both backends: with `registration = "token"`,
//! `/register` takes a client only with a token an operator handed out (admin UI, API or
//! CLI), as a Bearer token; a missing, unknown, expired, used-up or revoked one is a
//! `401` challenge and nothing is stored; a registration refused for its metadata keeps
//! the token's use; two registrations racing for a last use get one client.

use std::sync::Arc;

use portcullis_core::initial_tokens::NewInitialAccessToken;
use portcullis_core::model::{AdminRole, InitialAccessToken};
use portcullis_tests::{Backend, TestApp, both_backends, http};
use serde_json::{Value, json};

use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, api_key, assert_field, csrf, operator};
use crate::code_flow::REDIRECT;

async fn app(backend: Backend) -> TestApp {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Token;
    })
    .await
}

async fn register(app: &TestApp, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = http().post(app.url("/register")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn token(app: &TestApp, uses: Option<u32>) -> (InitialAccessToken, String) {
    let (t, v) = app
        .core
        .create_initial_access_token(
            &NewInitialAccessToken {
                name: "onboarding".into(),
                days: None,
                uses,
            },
            "test",
        )
        .await
        .unwrap();
    (t, v.expose().to_owned())
}

fn metadata() -> Value {
    json!({"redirect_uris": [REDIRECT], "client_name": "Registered with a token"})
}

async fn uses_left(app: &TestApp, id: uuid::Uuid) -> Option<i64> {
    app.core
        .list_initial_access_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap()
        .uses_left
}

async fn registration_takes_a_good_initial_access_token(backend: Backend) {
    let app = app(backend).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["registration_endpoint"], app.url("/register"));
    let clients = || async { app.core.list_clients(None).await.unwrap().len() };

    // Without one: a bare challenge (RFC 6750 §3.1); a wrong one: invalid_token.
    let r = register(&app, None, &metadata()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"portcullis\"");
    let r = register(&app, Some("pcit_nothing"), &metadata()).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    assert_eq!(clients().await, 0);

    // Two registrations allowed.
    let (t, value) = token(&app, Some(2)).await;
    assert!(value.starts_with("pcit_"));
    let r = register(&app, Some(&value), &metadata()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(uses_left(&app, t.id).await, Some(1));
    app.core.audit.flush().await;
    let registered = app.audit_events("client.registered").await;
    assert_eq!(registered[0].detail["initial_access_token_id"], t.id.to_string());
    // Refused for its metadata: the use stays.
    let r = register(&app, Some(&value), &json!({"redirect_uris": ["http://rp.example/cb"]})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_redirect_uri");
    assert_eq!(uses_left(&app, t.id).await, Some(1));
    // So does one refused for the sector of its pairwise identifiers.
    let two_hosts = json!({"redirect_uris": [REDIRECT, "https://other.example/cb"], "subject_type": "pairwise"});
    let r = register(&app, Some(&value), &two_hosts).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
    assert_eq!(uses_left(&app, t.id).await, Some(1));
    assert_eq!(register(&app, Some(&value), &metadata()).await.status(), 201);
    assert_eq!(uses_left(&app, t.id).await, Some(0));
    // Used up.
    let r = register(&app, Some(&value), &metadata()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(clients().await, 2);

    // The client manages its registration with its own registration access token (RFC
    // 7592), never with the initial one, and the initial one registers nothing with it.
    let uri = first["registration_client_uri"].as_str().unwrap();
    let read = |t: &str| http().get(uri).bearer_auth(t).send();
    assert_eq!(read(&value).await.unwrap().status(), 401);
    let r = read(first["registration_access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rat = first["registration_access_token"].as_str().unwrap();
    assert_eq!(register(&app, Some(rat), &metadata()).await.status(), 401);

    // Revoked, expired: refused.
    let (revoked, revoked_value) = token(&app, None).await;
    app.core.revoke_initial_access_token(revoked.id, "test").await.unwrap();
    assert_eq!(register(&app, Some(&revoked_value), &metadata()).await.status(), 401);
    let now = app.core.now();
    let expired = InitialAccessToken {
        id: uuid::Uuid::new_v4(),
        name: "old".into(),
        token_hash: portcullis_core::crypto::sha256(b"pcit_expired"),
        created_by: "test".into(),
        created_at: now - time::Duration::days(8),
        expires_at: now - time::Duration::seconds(1),
        uses_left: None,
        revoked_at: None,
    };
    app.core.store.insert_initial_access_token(&expired).await.unwrap();
    assert_eq!(register(&app, Some("pcit_expired"), &metadata()).await.status(), 401);
    assert_eq!(clients().await, 2);

    // Without a limit, it registers until it expires.
    let (_, open_value) = token(&app, None).await;
    for _ in 0..3 {
        assert_eq!(register(&app, Some(&open_value), &metadata()).await.status(), 201);
    }

    // Its last use, raced for: one client.
    let (last, last_value) = token(&app, Some(1)).await;
    let before = clients().await;
    let body = metadata();
    let (a, b) = tokio::join!(
        register(&app, Some(&last_value), &body),
        register(&app, Some(&last_value), &body)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 401]);
    assert_eq!(clients().await, before + 1);
    assert_eq!(uses_left(&app, last.id).await, Some(0));
    app.stop().await;
}

/// The admin API and pages: created with its value shown once, listed without it,
/// revoked; bad input named by field; an auditor may look only.
async fn operators_hand_out_and_revoke_tokens(backend: Backend) {
    let app = app(backend).await;
    let admin = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let auditor = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1);
    let (s, created) = admin
        .post("/initial-access-tokens", json!({"name": "CI", "days": 2, "uses": 3}))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        (&created["state"], &created["uses_left"]),
        (&json!("active"), &json!(3))
    );
    let value = created["token"].as_str().unwrap().to_owned();
    assert!(value.starts_with("pcit_"));
    let (_, list) = auditor.get("/initial-access-tokens").await;
    let listed = &list["initial_access_tokens"][0];
    assert_eq!(listed["id"], created["id"]);
    assert!(listed.get("token").is_none(), "the value is shown once");
    assert_eq!(register(&app, Some(&value), &metadata()).await.status(), 201);
    let (s, _) = auditor.post("/initial-access-tokens", json!({"name": "no"})).await;
    assert_eq!(s, 403);
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "days": 366}), "days"),
        (json!({"name": "x", "days": 0}), "days"),
        (json!({"name": "x", "uses": 0}), "uses"),
    ] {
        assert_field(&admin.post("/initial-access-tokens", body).await, field);
    }
    let id = created["id"].as_str().unwrap();
    let (s, revoked) = admin
        .post(&format!("/initial-access-tokens/{id}/revoke"), json!({}))
        .await;
    assert_eq!((s.as_u16(), &revoked["state"]), (200, &json!("revoked")), "{revoked}");
    assert_eq!(register(&app, Some(&value), &metadata()).await.status(), 401);
    let (s, _) = admin
        .post(
            &format!("/initial-access-tokens/{}/revoke", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // The pages.
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, page) = p.get("/admin/initial-tokens").await;
    assert!(page.contains("CI") && page.contains("state-revoked"), "{page}");
    assert!(!page.contains("id=\"not-in-use\""), "{page}");
    let token = csrf(&page);
    let (s, _, html) = p
        .post(
            "/admin/initial-tokens",
            &[
                ("csrf", token.as_str()),
                ("name", "Partner"),
                ("days", "abc"),
                ("uses", ""),
            ],
        )
        .await;
    assert_eq!(s, 422, "{html}");
    assert!(html.contains("id=\"days-error\""), "{html}");
    let (s, _, html) = p
        .post(
            "/admin/initial-tokens",
            &[
                ("csrf", token.as_str()),
                ("name", "Partner"),
                ("days", "3"),
                ("uses", "1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{html}");
    let marker = "<code id=\"initial-token-value\">";
    let start = html.find(marker).expect("the value, once") + marker.len();
    let value = html[start..].split('<').next().unwrap().to_owned();
    assert_eq!(register(&app, Some(&value), &metadata()).await.status(), 201);
    let partner = app
        .core
        .list_initial_access_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "Partner")
        .unwrap();
    assert_eq!(partner.uses_left, Some(0));
    let (s, loc, _) = p
        .post(
            &format!("/admin/initial-tokens/{}/revoke", partner.id),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!((s.as_u16(), loc.as_deref()), (303, Some("/admin/initial-tokens")));
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("admin.initial_access_token.created").await.len(), 2);
    assert_eq!(app.audit_events("admin.initial_access_token.revoked").await.len(), 2);
    app.stop().await;
}

/// With open registration a token is not asked for; the page says so.
async fn open_registration_needs_no_token(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    assert_eq!(register(&app, None, &metadata()).await.status(), 201);
    operator(&app, "root", AdminRole::Auditor).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, page) = p.get("/admin/initial-tokens").await;
    assert!(
        page.contains("id=\"not-in-use\"") && !page.contains("create-token"),
        "{page}"
    );
    app.stop().await;
}

both_backends!(
    registration_takes_a_good_initial_access_token,
    operators_hand_out_and_revoke_tokens,
    open_registration_needs_no_token,
);
