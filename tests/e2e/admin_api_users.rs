//! The admin JSON API's user routes on both backends: create, list, read, edit the
//! profile, delete, disable and enable, set the password, and a user's sessions and grants.

use portcullis_core::crypto::sha256;
use portcullis_core::model::{AdminRole, AuthorizationCode, Consent};
use portcullis_protocol::ScopeSet;
use portcullis_tests::{Backend, both_backends, http, spawn_app};
use serde_json::{Value, json};

use crate::admin_support::{Api, api_key, assert_error, assert_field, events_of};
use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens};

async fn api_users_sessions_and_grants(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let (_, auditor_key) = api_key(&app, AdminRole::Auditor).await;
    let api = Api::new(&app, &admin_key);
    let auditor = Api::new(&app, &auditor_key);
    let alice = json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com",
                       "email_verified": true, "name": "Alice Example",
                       "given_name": "Alice", "family_name": "Example"});

    // Create; validation errors; 409 on a taken name; the auditor may not.
    assert_error(&auditor.post("/users", alice.clone()).await, 403, "forbidden");
    let (s, user) = api.post("/users", alice.clone()).await;
    assert_eq!(s, 201, "{user}");
    let uid = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email_verified"], true);
    assert_eq!(
        (&user["given_name"], &user["family_name"]),
        (&json!("Alice"), &json!("Example"))
    );
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert_error(&api.post("/users", alice.clone()).await, 409, "conflict");
    let mut upper = alice.clone();
    upper["username"] = json!("ALICE");
    assert_error(&api.post("/users", upper).await, 409, "conflict");
    assert_field(
        &api.post("/users", json!({"username": "bob", "password": "short"}))
            .await,
        "password",
    );
    assert_field(
        &api.post("/users", json!({"username": "b o b", "password": PASSWORD}))
            .await,
        "username",
    );
    assert_field(
        &api.post(
            "/users",
            json!({"username": "bob", "password": PASSWORD, "email": "nope"}),
        )
        .await,
        "email",
    );
    for field in ["given_name", "family_name"] {
        let body = json!({"username": "bob", "password": PASSWORD, field: "x".repeat(201)});
        assert_field(&api.post("/users", body).await, field);
    }
    assert_error(
        &api.post("/users", json!({"username": "bob", "pass": "x"})).await,
        400,
        "bad_request",
    );

    // List, search, read.
    api.post("/users", json!({"username": "bob", "password": PASSWORD}))
        .await;
    let (_, list) = api.get("/users").await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (_, found) = auditor.get("/users?search=example.com").await;
    assert_eq!(found["users"].as_array().unwrap().len(), 1);
    assert_eq!(auditor.get(&format!("/users/{uid}")).await.1["name"], "Alice Example");
    assert_error(
        &api.get(&format!("/users/{}", uuid::Uuid::new_v4())).await,
        404,
        "not_found",
    );
    assert_error(&api.get("/users/not-a-uuid").await, 404, "not_found");

    // PATCH changes the profile members it names and keeps the others.
    let path = format!("/users/{uid}");
    assert_error(&auditor.patch(&path, json!({"name": "X"})).await, 403, "forbidden");
    let (s, patched) = api.patch(&path, json!({"name": "Alice Liddell"})).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        (&patched["name"], &patched["email"], &patched["email_verified"]),
        (&json!("Alice Liddell"), &json!("alice@example.com"), &json!(true))
    );
    let (s, patched) = api.patch(&path, json!({"email": null})).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        (&patched["name"], &patched["email"], &patched["email_verified"]),
        (&json!("Alice Liddell"), &Value::Null, &json!(false)),
        "no address, nothing verified"
    );
    // A new address is not verified unless the patch says so.
    let (_, patched) = api.patch(&path, json!({"email": "a@example.org"})).await;
    assert_eq!(patched["email_verified"], false, "{patched}");
    let (_, patched) = api
        .patch(&path, json!({"email": "al@example.org", "email_verified": true}))
        .await;
    assert_eq!(patched["email_verified"], true, "{patched}");
    let (_, patched) = api.patch(&path, json!({"name": "Alice L."})).await;
    assert_eq!(patched["email_verified"], true, "the same address stays verified");
    let (_, patched) = api.patch(&path, json!({"email": "b@example.org"})).await;
    assert_eq!(patched["email_verified"], false, "another one is not: {patched}");
    // The given and family names, each on its own; null clears one.
    let (_, patched) = api.patch(&path, json!({"family_name": "Liddell"})).await;
    assert_eq!(
        (&patched["given_name"], &patched["family_name"], &patched["name"]),
        (&json!("Alice"), &json!("Liddell"), &json!("Alice L."))
    );
    let (_, patched) = api.patch(&path, json!({"given_name": null})).await;
    assert_eq!(
        (&patched["given_name"], &patched["family_name"]),
        (&Value::Null, &json!("Liddell"))
    );
    assert_field(&api.patch(&path, json!({"given_name": 7})).await, "given_name");
    assert_field(
        &api.patch(&path, json!({"family_name": "a\u{202e}b"})).await,
        "family_name",
    );
    // Two patches of different members at once: neither undoes the other.
    for i in 0..10 {
        let (name, email) = (format!("Alice {i}"), format!("alice{i}@example.org"));
        let (a, b) = tokio::join!(
            api.patch(&path, json!({ "name": name })),
            api.patch(&path, json!({ "email": email }))
        );
        assert_eq!((a.0.as_u16(), b.0.as_u16()), (200, 200), "{} {}", a.1, b.1);
        let now = api.get(&path).await.1;
        assert_eq!((&now["name"], &now["email"]), (&json!(name), &json!(email)), "{i}");
    }
    for i in 0..5 {
        let (given, family) = (format!("Alice {i}"), format!("Liddell {i}"));
        let (a, b) = tokio::join!(
            api.patch(&path, json!({ "given_name": given })),
            api.patch(&path, json!({ "family_name": family }))
        );
        assert_eq!((a.0.as_u16(), b.0.as_u16()), (200, 200), "{} {}", a.1, b.1);
        let now = api.get(&path).await.1;
        assert_eq!(
            (&now["given_name"], &now["family_name"]),
            (&json!(given), &json!(family)),
            "{i}"
        );
    }
    assert_field(&api.patch(&path, json!({"email": "nope"})).await, "email");
    assert_field(&api.patch(&path, json!({"name": 7})).await, "name");
    assert_field(
        &api.patch(&path, json!({"email_verified": "yes"})).await,
        "email_verified",
    );
    for refused in ["username", "disabled", "password", "updated_at"] {
        assert_field(&api.patch(&path, json!({ refused: "x" })).await, refused);
    }
    assert_error(
        &api.patch(&format!("/users/{}", uuid::Uuid::new_v4()), json!({"name": "X"}))
            .await,
        404,
        "not_found",
    );
    assert_eq!(api.get(&path).await.1["username"], "alice", "unchanged by the refusals");
    let (s, restored) = api
        .patch(&path, json!({"email": "alice@example.com", "name": "Alice Example"}))
        .await;
    assert_eq!(s, 200, "{restored}");
    // DELETE: the auditor may not; a user is deleted once.
    let (s, bob) = api
        .post("/users", json!({"username": "doomed", "password": PASSWORD}))
        .await;
    assert_eq!(s, 201, "{bob}");
    let doomed = format!("/users/{}", bob["id"].as_str().unwrap());
    assert_error(&auditor.delete(&doomed).await, 403, "forbidden");
    assert_eq!(api.delete(&doomed).await.0, 204);
    assert_error(&api.delete(&doomed).await, 404, "not_found");
    assert_error(&api.get(&doomed).await, 404, "not_found");

    // Alice signs in to an application: one session, one grant.
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let tokens = obtain_tokens(&app, client.id.as_str(), secret.expose(), "alice").await;
    let at = tokens["access_token"].as_str().unwrap();
    let (s, sessions) = auditor.get(&format!("/users/{uid}/sessions")).await;
    assert_eq!(s, 200);
    let sessions = sessions["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    let (s, grants) = auditor.get(&format!("/users/{uid}/grants")).await;
    assert_eq!(s, 200);
    let grants = grants["grants"].as_array().unwrap().clone();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["client_id"], client.id.as_str());
    assert_eq!(grants[0]["client_name"], "Test App");
    let gid = grants[0]["id"].as_str().unwrap().to_owned();
    let sid = sessions[0]["id"].as_str().unwrap().to_owned();

    // Revoking: the auditor may not; the admin can, once; the tokens die at once.
    assert_error(
        &auditor.delete(&format!("/users/{uid}/grants/{gid}")).await,
        403,
        "forbidden",
    );
    assert_error(
        &auditor.delete(&format!("/users/{uid}/sessions/{sid}")).await,
        403,
        "forbidden",
    );
    assert!(app.core.active_access_token(at).is_some());
    // A code the application was given for Alice and has not redeemed yet.
    let now = time::OffsetDateTime::now_utc();
    let pending = AuthorizationCode {
        code_hash: sha256(b"a code given before the revocation"),
        client_id: client.id.clone(),
        user_id: uid.parse().unwrap(),
        redirect_uri: client.redirect_uris[0].clone(),
        redirect_uri_explicit: true,
        scope: ScopeSet::parse("openid").unwrap(),
        code_challenge: None,
        nonce: None,
        auth_time: now,
        sid: "sid".to_owned(),
        expires_at: now + time::Duration::seconds(60),
        created_at: now,
        dpop_jkt: None,
        resource: None,
    };
    app.core.store.insert_code(&pending).await.unwrap();
    let other = uuid::Uuid::new_v4();
    assert_error(
        &api.delete(&format!("/users/{other}/grants/{gid}")).await,
        404,
        "not_found",
    );
    assert_eq!(api.delete(&format!("/users/{uid}/grants/{gid}")).await.0, 204);
    assert!(
        app.core.active_access_token(at).is_none(),
        "the grant's access token is revoked"
    );
    assert_eq!(
        app.core.store.get_code(&pending.code_hash, now).await.unwrap(),
        None,
        "the consent is withdrawn: a code given before starts no grant"
    );
    let refresh = http()
        .post(app.url("/token"))
        .basic_auth(client.id.as_str(), Some(secret.expose()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 400, "the grant's refresh token is gone");
    // Revoked again (a retried call, a stale page): not found, and nothing else changes,
    // such as a consent given since and a code issued under it.
    let consent = Consent {
        user_id: uid.parse().unwrap(),
        client_id: client.id.clone(),
        scope: ScopeSet::parse("openid").unwrap(),
        granted_at: now,
    };
    app.core.store.upsert_consent(&consent).await.unwrap();
    let later = AuthorizationCode {
        code_hash: sha256(b"a code given after the revocation"),
        ..pending.clone()
    };
    app.core.store.insert_code(&later).await.unwrap();
    assert_error(
        &api.delete(&format!("/users/{uid}/grants/{gid}")).await,
        404,
        "not_found",
    );
    assert!(
        app.core
            .store
            .get_consent(consent.user_id, &client.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(app.core.store.get_code(&later.code_hash, now).await.unwrap().is_some());
    assert_eq!(api.get(&format!("/users/{uid}/grants")).await.1["grants"], json!([]));
    assert_error(
        &api.delete(&format!("/users/{uid}/grants/nope")).await,
        404,
        "not_found",
    );

    assert_error(
        &api.delete(&format!("/users/{uid}/sessions/AAAA")).await,
        404,
        "not_found",
    );
    assert_eq!(api.delete(&format!("/users/{uid}/sessions/{sid}")).await.0, 204);
    assert_eq!(
        api.get(&format!("/users/{uid}/sessions")).await.1["sessions"],
        json!([])
    );
    assert_error(
        &api.delete(&format!("/users/{uid}/sessions/{sid}")).await,
        404,
        "not_found",
    );

    // Disable, enable, set the password.
    for action in ["disable", "enable"] {
        assert_error(
            &auditor.post_empty(&format!("/users/{uid}/{action}")).await,
            403,
            "forbidden",
        );
    }
    let (s, v) = api.post_empty(&format!("/users/{uid}/disable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &json!(true)));
    let pw = portcullis_protocol::Secret::new(PASSWORD);
    assert!(
        app.core.login("alice", &pw, None).await.is_err(),
        "a disabled user cannot log in"
    );
    let (s, v) = api.post_empty(&format!("/users/{uid}/enable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &json!(false)));
    assert!(app.core.login("alice", &pw, None).await.is_ok());
    assert_error(
        &auditor
            .post(
                &format!("/users/{uid}/password"),
                json!({"password": "a new passphrase"}),
            )
            .await,
        403,
        "forbidden",
    );
    assert_field(
        &api.post(&format!("/users/{uid}/password"), json!({"password": "short"}))
            .await,
        "password",
    );
    assert_eq!(
        api.post(
            &format!("/users/{uid}/password"),
            json!({"password": "a new passphrase"})
        )
        .await
        .0,
        204
    );
    assert!(app.core.login("alice", &pw, None).await.is_err());
    let new_pw = portcullis_protocol::Secret::new("a new passphrase");
    assert!(app.core.login("alice", &new_pw, None).await.is_ok());
    assert_error(
        &api.post(
            &format!("/users/{}/password", uuid::Uuid::new_v4()),
            json!({"password": "a new passphrase"}),
        )
        .await,
        404,
        "not_found",
    );

    app.core.audit.flush().await;
    for event in [
        "admin.user.created",
        "admin.grant.revoked",
        "admin.session.revoked",
        "admin.user.disabled",
        "admin.user.enabled",
        "user.password_changed",
    ] {
        let evs = events_of(&api, event).await;
        assert!(
            evs.iter()
                .any(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("apikey:")) && e["ip"] == "127.0.0.1"),
            "{event}: {evs:?}"
        );
    }
    app.stop().await;
}

both_backends!(api_users_sessions_and_grants);
