//! The admin API's keys (issue 4) on both backends: how a key authenticates (revoked,
//! expired, in the query string, guessed: refused), a key answering to its operator as the
//! operator is now (deleted, demoted), and a leaked key withdrawn at once.

use portcullis_core::crypto::sha256;
use portcullis_core::model::{AdminRole, ApiKey};
use portcullis_tests::{Backend, both_backends, http, spawn_app};
use serde_json::{Value, json};
use time::Duration;

use crate::admin_api::kid_in_state;
use crate::admin_support::{
    Api, api_key, api_key_by, assert_error, assert_field, change_operator_in_store_only, events_of,
};
use crate::code_flow::REDIRECT;

async fn api_key_authentication(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_id, admin_key) = api_key(&app, AdminRole::Admin).await;
    let base = format!("{}/admin/api/v1", app.admin_url);
    let get = |url: String, auth: Option<String>| async move {
        let mut req = http().get(url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        (status, www, body)
    };

    // Good key.
    let (s, _, _) = get(format!("{base}/clients"), Some(format!("Bearer {admin_key}"))).await;
    assert_eq!(s, 200);
    let (s, _, _) = get(format!("{base}/clients"), Some(format!("bearer {admin_key}"))).await;
    assert_eq!(s, 200, "the scheme is case-insensitive");

    // No key, wrong scheme, unknown key: 401 with a Bearer challenge.
    for auth in [
        None,
        Some(format!("Basic {admin_key}")),
        Some("Bearer".to_owned()),
        Some("Bearer pcak_unknown".to_owned()),
        Some(format!("Bearer {}x", admin_key)),
    ] {
        let (s, www, body) = get(format!("{base}/clients"), auth.clone()).await;
        assert_eq!(s, 401, "{auth:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
        assert!(www.unwrap().starts_with("Bearer"), "{auth:?}");
    }

    // A key in the query string is refused, even a valid one, even with a valid header.
    for q in [
        format!("access_token={admin_key}"),
        format!("api_key={admin_key}"),
        format!("search={admin_key}"),
        "token=anything".to_owned(),
    ] {
        let (s, _, body) = get(format!("{base}/clients?{q}"), None).await;
        assert!(s == 400 || s == 401, "{q}: {s}");
        assert_ne!(s, 200);
        let (s, _, body2) = get(format!("{base}/clients?{q}"), Some(format!("Bearer {admin_key}"))).await;
        assert_eq!(s, 400, "{q}: {body} {body2}");
        assert_eq!(body2["error"], "bad_request");
    }

    // Revoked: refused at once.
    let (revoked_id, revoked) = api_key(&app, AdminRole::Admin).await;
    let (s, _, _) = get(format!("{base}/users"), Some(format!("Bearer {revoked}"))).await;
    assert_eq!(s, 200);
    app.core.revoke_api_key(revoked_id, "test").await.unwrap();
    let (s, _, body) = get(format!("{base}/users"), Some(format!("Bearer {revoked}"))).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        app.core.revoke_api_key(revoked_id, "test").await.is_err(),
        "revoking twice is NotFound"
    );

    // Expired: refused; one not yet expired works.
    let now = app.core.now();
    for (name, expires_at, expected) in [
        ("expired", now - Duration::seconds(1), 401),
        ("fresh", now + Duration::hours(1), 200),
    ] {
        let value = format!("pcak_{name}-{}", uuid::Uuid::new_v4().simple());
        app.core
            .store
            .insert_api_key(&ApiKey {
                id: uuid::Uuid::new_v4(),
                name: name.into(),
                key_hash: sha256(value.as_bytes()),
                role: AdminRole::Auditor,
                created_by: "admin".into(),
                created_by_id: None,
                created_at: now,
                expires_at: Some(expires_at),
                revoked_at: None,
            })
            .await
            .unwrap();
        let (s, _, body) = get(format!("{base}/keys"), Some(format!("Bearer {value}"))).await;
        assert_eq!(s, expected, "{name}: {body}");
    }

    // Refusals are audited with the reason; the admin key's id is the actor of its work.
    app.core.audit.flush().await;
    let api = Api::new(&app, &admin_key);
    let rejected = events_of(&api, "admin.api_key.rejected").await;
    let reasons: Vec<&str> = rejected.iter().filter_map(|e| e["detail"]["reason"].as_str()).collect();
    for reason in ["unknown", "revoked", "expired"] {
        assert!(reasons.contains(&reason), "{reasons:?}");
    }
    api.post("/keys/rotate", json!({"force": true})).await;
    app.core.audit.flush().await;
    assert_eq!(
        events_of(&api, "key.rotated").await[0]["actor"],
        format!("apikey:{admin_id}")
    );
    app.stop().await;
}

/// An operator's keys can do no more than the operator: demoting them revokes their
/// admin-role keys, deleting them revokes all their keys; other operators' keys stay.
async fn api_keys_follow_their_operator(backend: Backend) {
    let app = spawn_app(backend).await;
    crate::admin_support::operator(&app, "olga", AdminRole::Admin).await;
    let (_, olga_admin) = api_key_by(&app, AdminRole::Admin, "olga").await;
    let (_, olga_auditor) = api_key_by(&app, AdminRole::Auditor, "olga").await;
    let (_, other) = api_key(&app, AdminRole::Admin).await;
    let status = |key: String| {
        let app = &app;
        async move { Api::new(app, &key).get("/clients").await.0.as_u16() }
    };
    app.core
        .set_admin_role("olga", AdminRole::Auditor, "test")
        .await
        .unwrap();
    assert_eq!(
        status(olga_admin.clone()).await,
        401,
        "her admin key went with her role"
    );
    assert_eq!(status(olga_auditor.clone()).await, 200, "what she may still do");
    app.core.delete_admin("olga", "test").await.unwrap();
    assert_eq!(status(olga_auditor).await, 401);
    assert_eq!(status(other).await, 200);
    app.core.audit.flush().await;
    let revoked = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1)
        .get("/audit-events?event_type=admin.api_key.revoked")
        .await
        .1;
    assert_eq!(revoked["events"].as_array().map(Vec::len), Some(2), "{revoked}");
    app.stop().await;
}

/// A key does no more than its operator now may, whatever happened to the key itself: a
/// demotion or deletion that reached the account but not its keys (their revocation comes
/// after, and can fail) leaves them refused, and a key of a deleted account does not come
/// back with a new account of the same name.
async fn api_keys_answer_to_their_operator_as_it_is_now(backend: Backend) {
    let app = spawn_app(backend).await;
    crate::admin_support::operator(&app, "olga", AdminRole::Admin).await;
    let (_, admin_key) = api_key_by(&app, AdminRole::Admin, "olga").await;
    let (_, auditor_key) = api_key_by(&app, AdminRole::Auditor, "olga").await;
    let status = |key: String| {
        let app = &app;
        async move { Api::new(app, &key).get("/clients").await.0.as_u16() }
    };
    assert_eq!(status(admin_key.clone()).await, 200);
    change_operator_in_store_only(&app, "olga", Some(AdminRole::Auditor)).await;
    assert_eq!(status(admin_key.clone()).await, 401, "more than she may now");
    assert_eq!(status(auditor_key.clone()).await, 200, "what she may still do");
    change_operator_in_store_only(&app, "olga", Some(AdminRole::Admin)).await;
    assert_eq!(status(admin_key.clone()).await, 200, "she may again");
    change_operator_in_store_only(&app, "olga", None).await;
    assert_eq!(status(auditor_key.clone()).await, 401, "nobody to answer for it");
    crate::admin_support::operator(&app, "olga", AdminRole::Admin).await;
    for key in [admin_key, auditor_key] {
        assert_eq!(status(key).await, 401, "the new olga did not make it");
    }
    // A key from before creators were recorded by id answers to the account of its
    // creator's name that is older than the key.
    let now = app.core.now();
    for (created_at, expected) in [(now, 200), (now - Duration::days(1), 401)] {
        let value = format!("pcak_legacy-{}", uuid::Uuid::new_v4().simple());
        app.core
            .store
            .insert_api_key(&ApiKey {
                id: uuid::Uuid::new_v4(),
                name: "legacy".into(),
                key_hash: sha256(value.as_bytes()),
                role: AdminRole::Auditor,
                created_by: "olga".into(),
                created_by_id: None,
                created_at,
                expires_at: None,
                revoked_at: None,
            })
            .await
            .unwrap();
        assert_eq!(status(value).await, expected, "made {created_at}");
    }
    app.core.audit.flush().await;
    let rejected = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1)
        .get("/audit-events?event_type=admin.api_key.rejected")
        .await
        .1;
    let reasons: Vec<&str> = rejected["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "operator_demoted").count(),
        1,
        "{rejected}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "operator_deleted").count(),
        4,
        "{rejected}"
    );
    app.stop().await;
}

/// Operators demoted and deleted all at once: exactly one keeps the admin role, and its
/// keys keep working (a demotion refused because another came first takes nothing away).
async fn a_refused_demotion_keeps_the_operators_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut keys = vec![("admin".to_owned(), api_key(&app, AdminRole::Admin).await.1)];
    for i in 0..8 {
        let name = format!("op{i}");
        crate::admin_support::operator(&app, &name, AdminRole::Admin).await;
        keys.push((name.clone(), api_key_by(&app, AdminRole::Admin, &name).await.1));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (name, _)) in keys.iter().enumerate() {
        let (core, name) = (app.core.clone(), name.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                core.set_admin_role(&name, AdminRole::Auditor, "test").await
            } else {
                core.delete_admin(&name, "test").await
            }
        });
    }
    let refused = tasks.join_all().await.into_iter().filter(Result::is_err).count();
    assert_eq!(refused, 1);
    let admins = app.core.list_admins().await.unwrap();
    let last: Vec<_> = admins.iter().filter(|a| a.role == AdminRole::Admin).collect();
    assert_eq!(last.len(), 1, "{admins:?}");
    for (name, key) in keys {
        let key = portcullis_protocol::Secret::new(key);
        let authenticated = app.core.authenticate_api_key(&key, None).await;
        assert_eq!(
            authenticated.is_ok(),
            name == last[0].username,
            "{name}: {authenticated:?}"
        );
    }
    app.stop().await;
}

/// Guessing API keys is limited like admin sign-in (10 a minute per address by default):
/// past it, 429 and no more audit events; a valid key keeps working.
async fn api_key_guessing_is_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, good) = api_key(&app, AdminRole::Auditor).await;
    // A job still using a revoked key is refused every time, but uses up nothing.
    let (revoked_id, revoked) = api_key(&app, AdminRole::Auditor).await;
    app.core.revoke_api_key(revoked_id, "test").await.unwrap();
    for _ in 0..12 {
        assert_eq!(Api::new(&app, &revoked).get("/clients").await.0, 401);
    }
    let mut statuses = Vec::new();
    for i in 0..13 {
        let (s, v) = Api::new(&app, &format!("pcak_guess{i}")).get("/clients").await;
        statuses.push(s.as_u16());
        if s == 429 {
            assert_eq!(v["error"], "rate_limited", "{v}");
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 3], "{statuses:?}");
    let api = Api::new(&app, &good);
    assert_eq!(api.get("/clients").await.0, 200);
    app.core.audit.flush().await;
    assert_eq!(events_of(&api, "admin.api_key.rejected").await.len(), 22);
    app.stop().await;
}

/// A leaked key is withdrawn: rotated out (forced), then withdrawn, it leaves the JWKS
/// and the tokens it signed are refused at once. Only a retired key can be withdrawn.
async fn a_leaked_key_is_withdrawn_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let (_, auditor_key) = api_key(&app, AdminRole::Auditor).await;
    let api = Api::new(&app, &admin_key);
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (s, issued) = app.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(s, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let leaked = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let intro = || crate::token_endpoint::introspect(&app, client.id.as_str(), secret.expose(), &token);
    assert_eq!(intro().await["active"], true);

    // The active key cannot be withdrawn (it signs), nor the next one.
    let (_, keys) = api.get("/keys").await;
    let next = kid_in_state(&keys, "next").as_str().unwrap().to_owned();
    for kid in [&leaked, &next] {
        let got = api.post_empty(&format!("/keys/{kid}/withdraw")).await;
        assert_field(&got, "kid");
        assert!(
            got.1["message"].as_str().unwrap().contains("rotate it out first"),
            "{}",
            got.1
        );
    }
    assert_error(&api.post_empty("/keys/nope/withdraw").await, 404, "not_found");
    let (s, _) = api.post("/keys/rotate", json!({"force": true})).await;
    assert_eq!(s, 200);
    // Retired, it still verifies what it signed, until withdrawn.
    assert_eq!(intro().await["active"], true);
    let path = format!("/keys/{leaked}/withdraw");
    assert_error(&Api::new(&app, &auditor_key).post_empty(&path).await, 403, "forbidden");
    assert_eq!(intro().await["active"], true, "the auditor changed nothing");
    let (s, after) = api.post_empty(&path).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(intro().await["active"], false, "refused at once");
    let jwks = app.get_json("/jwks").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&leaked.as_str()), "{kids:?}");
    assert!(
        kids.contains(&next.as_str()),
        "the new active key is published: {kids:?}"
    );
    // New tokens, signed by the key that replaced it, work.
    let (_, fresh) = app.client_credentials(client.id.as_str(), secret.expose()).await;
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        crate::token_endpoint::introspect(&app, client.id.as_str(), secret.expose(), fresh).await["active"],
        true
    );
    app.core.audit.flush().await;
    let withdrawn = events_of(&api, "key.withdrawn").await;
    assert_eq!(withdrawn[0]["detail"]["kid"], leaked.as_str(), "{withdrawn:?}");
    app.stop().await;
}

both_backends!(
    a_leaked_key_is_withdrawn_at_once,
    api_key_guessing_is_rate_limited,
    api_keys_follow_their_operator,
    api_keys_answer_to_their_operator_as_it_is_now,
    a_refused_demotion_keeps_the_operators_keys,
    api_key_authentication,
);
