//! The admin JSON API (issue 4) on both backends: every route, its validation errors,
//! role checks (an auditor key gets 403 on every write and changes nothing), revoked and
//! expired keys refused (401), a key in the query string refused; and the OpenAPI
//! description served and matching what the router answers.

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

use crate::admin_support::{Api, api_key, assert_error, assert_field, events_of};
use crate::code_flow::{PASSWORD, REDIRECT};

fn client_body(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "confidential",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://rp.example/bye"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes": "openid profile email api:read",
        "cors_origins": ["https://rp.example"],
        "access_token_ttl": 300,
        "logo_uri": "https://rp.example/logo.png",
    })
}

/// `client_credentials` at the token endpoint: the status tells whether the secret works.
async fn client_credentials_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `kid` of the key in `state` in a `/keys` listing.
pub(crate) fn kid_in_state(keys: &Value, state: &str) -> Value {
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == state)
        .unwrap()["kid"]
        .clone()
}

async fn api_clients(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_id, admin_key) = api_key(&app, AdminRole::Admin).await;
    let (_, auditor_key) = api_key(&app, AdminRole::Auditor).await;
    let api = Api::new(&app, &admin_key);
    let auditor = Api::new(&app, &auditor_key);

    // Register: 201 with the secret, which works at the token endpoint.
    let (s, created) = api.post("/clients", client_body("Billing")).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["kind"], "confidential");
    assert_eq!(created["scopes"], "api:read email openid profile");
    assert_eq!(created["access_token_ttl"], 300);
    assert_eq!(created["disabled"], false);
    assert_eq!(client_credentials_status(&app, &id, &secret).await, 200);
    let (s, public) = api
        .post(
            "/clients",
            json!({"name": "SPA", "kind": "public", "redirect_uris": ["http://127.0.0.1:3000/cb"],
                   "grant_types": ["authorization_code"], "scopes": "openid", "require_pkce": false}),
        )
        .await;
    assert_eq!(s, 201, "{public}");
    assert_eq!(public["client_secret"], Value::Null);
    assert_eq!(public["require_pkce"], true, "PKCE is forced for public clients");
    let public_id = public["client_id"].as_str().unwrap().to_owned();

    // Validation errors name the field; nothing is created.
    let bad = |patch: Value| {
        let mut b = client_body("Bad");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (patch, field) in [
        (json!({"name": ""}), "name"),
        (json!({"kind": "secretive"}), "kind"),
        (json!({"redirect_uris": ["http://rp.example/cb"]}), "redirect_uris"),
        (
            json!({"redirect_uris": ["https://rp.example/cb#frag"]}),
            "redirect_uris",
        ),
        (json!({"redirect_uris": ["/relative"]}), "redirect_uris"),
        (json!({"redirect_uris": ["myapp:/cb"]}), "redirect_uris"),
        (
            json!({"post_logout_redirect_uris": ["javascript:alert(1)"]}),
            "post_logout_redirect_uris",
        ),
        (json!({"grant_types": []}), "grant_types"),
        (json!({"grant_types": ["implicit"]}), "grant_types"),
        (json!({"scopes": "open\"id"}), "scopes"),
        (json!({"access_token_ttl": 5}), "access_token_ttl"),
        (json!({"refresh_token_ttl": 999999999}), "refresh_token_ttl"),
        (json!({"cors_origins": ["https://rp.example/path"]}), "cors_origins"),
        (json!({"logo_uri": "ftp://rp.example/logo"}), "logo_uri"),
        (json!({"policy_uri": "not a url"}), "policy_uri"),
        (json!({"tos_uri": "http://rp.example/terms"}), "tos_uri"),
    ] {
        assert_field(&api.post("/clients", bad(patch.clone())).await, field);
    }
    // Loopback http and private-use schemes are fine.
    let (s, v) = api
        .post(
            "/clients",
            bad(json!({"name": "Native", "redirect_uris": ["http://[::1]:8080/cb", "com.example.app:/cb"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // Unreadable bodies.
    assert_error(&api.post("/clients", json!({"nme": "typo"})).await, 400, "bad_request");
    let raw = api
        .http
        .post(format!("{}/clients", api.base))
        .bearer_auth(&admin_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["error"], "bad_request");

    // List and search.
    let (s, list) = api.get("/clients").await;
    assert_eq!(s, 200);
    assert_eq!(list["clients"].as_array().unwrap().len(), 3);
    let (_, found) = api.get("/clients?search=BILL").await;
    assert_eq!(found["clients"].as_array().unwrap().len(), 1);
    assert_eq!(found["clients"][0]["client_id"], id.as_str());
    // A space: in no client's name here, and never in a (base64url) client_id, where
    // "zzz" once was.
    let (_, none) = api.get("/clients?search=no%20such").await;
    assert_eq!(none["clients"], json!([]));

    // Read, replace.
    let (s, got) = api.get(&format!("/clients/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["name"], "Billing");
    assert!(got.get("client_secret").is_none(), "the secret is never read back");
    let mut changed = client_body("Billing v2");
    changed["first_party"] = json!(true);
    changed["access_token_ttl"] = Value::Null;
    let (s, updated) = api.put(&format!("/clients/{id}"), changed).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["name"], "Billing v2");
    assert_eq!(updated["first_party"], true);
    assert_eq!(updated["access_token_ttl"], Value::Null);
    let mut kind_change = client_body("Billing v3");
    kind_change["kind"] = json!("public");
    assert_field(&api.put(&format!("/clients/{id}"), kind_change).await, "kind");
    assert_field(
        &api.put(
            &format!("/clients/{id}"),
            bad(json!({"redirect_uris": ["http://evil.example/cb"]})),
        )
        .await,
        "redirect_uris",
    );
    assert_eq!(api.get(&format!("/clients/{id}")).await.1["name"], "Billing v2");

    // The auditor reads but every write is 403 and changes nothing.
    assert_eq!(auditor.get("/clients").await.0, 200);
    assert_eq!(auditor.get(&format!("/clients/{id}")).await.0, 200);
    assert_error(&auditor.post("/clients", client_body("Nope")).await, 403, "forbidden");
    assert_error(
        &auditor.put(&format!("/clients/{id}"), client_body("Nope")).await,
        403,
        "forbidden",
    );
    assert_error(&auditor.delete(&format!("/clients/{id}")).await, 403, "forbidden");
    for action in ["disable", "enable", "rotate-secret"] {
        assert_error(
            &auditor.post_empty(&format!("/clients/{id}/{action}")).await,
            403,
            "forbidden",
        );
    }
    assert_eq!(api.get("/clients").await.1["clients"].as_array().unwrap().len(), 3);
    assert_eq!(client_credentials_status(&app, &id, &secret).await, 200);

    // Disable and enable.
    let (s, v) = api.post_empty(&format!("/clients/{id}/disable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &json!(true)));
    assert_eq!(client_credentials_status(&app, &id, &secret).await, 401);
    let (s, v) = api.post_empty(&format!("/clients/{id}/enable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &json!(false)));
    assert_eq!(client_credentials_status(&app, &id, &secret).await, 200);

    // Rotate: the new secret works, the old one does not; a public client has none.
    let (s, rotated) = api.post_empty(&format!("/clients/{id}/rotate-secret")).await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["client_id"], id.as_str());
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(client_credentials_status(&app, &id, &secret).await, 401);
    assert_eq!(client_credentials_status(&app, &id, new_secret).await, 200);
    assert_field(
        &api.post_empty(&format!("/clients/{public_id}/rotate-secret")).await,
        "kind",
    );

    // Delete: 204, then 404 everywhere; its tokens stop working.
    let token: Value = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some(new_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = token["access_token"].as_str().unwrap();
    assert!(app.core.active_access_token(at).is_some());
    assert_eq!(api.delete(&format!("/clients/{id}")).await.0, 204);
    assert!(
        app.core.active_access_token(at).is_none(),
        "a deleted client's tokens die"
    );
    assert_error(&api.get(&format!("/clients/{id}")).await, 404, "not_found");
    assert_error(&api.delete(&format!("/clients/{id}")).await, 404, "not_found");
    assert_error(
        &api.put(&format!("/clients/{id}"), client_body("X")).await,
        404,
        "not_found",
    );
    assert_error(
        &api.post_empty(&format!("/clients/{id}/disable")).await,
        404,
        "not_found",
    );
    assert_error(&api.get("/clients/not%20an%20id").await, 404, "not_found");

    // Every change above is audited with the key as actor and the caller's address.
    app.core.audit.flush().await;
    let actor = format!("apikey:{admin_id}");
    for event in [
        "admin.client.created",
        "admin.client.updated",
        "admin.client.disabled",
        "admin.client.enabled",
        "admin.client.secret_rotated",
        "admin.client.deleted",
    ] {
        let evs = events_of(&api, event).await;
        assert!(!evs.is_empty(), "no {event} event");
        assert!(
            evs.iter()
                .all(|e| e["actor"] == actor.as_str() && e["ip"] == "127.0.0.1"),
            "{event}: {evs:?}"
        );
    }
    assert!(events_of(&api, "admin.client.deleted").await[0]["client_id"] == id.as_str());
    app.stop().await;
}

/// `PATCH` changes what it names and keeps the rest (RFC 7396): a setting a script does
/// not know about is not wiped, as a `PUT` that leaves it out would.
async fn api_client_patch_keeps_what_it_does_not_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let auditor = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1);
    let mut body = client_body("Billing");
    body["first_party"] = json!(true);
    body["policy_uri"] = json!("https://rp.example/privacy");
    body["tos_uri"] = json!("https://rp.example/terms");
    let (s, created) = api.post("/clients", body).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["tos_uri"], "https://rp.example/terms");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/clients/{id}");
    let (_, before) = api.get(&path).await;
    let settings_but = |v: &Value, skip: &[&str]| {
        let mut v = v.clone();
        for k in ["revision", "updated_at"].iter().chain(skip) {
            v.as_object_mut().unwrap().remove(*k);
        }
        v
    };

    // As a merge patch: only the name changes.
    let r = api
        .http
        .patch(format!("{}{path}", api.base))
        .bearer_auth(&api.key)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"name": "Billing (EU)"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["name"], "Billing (EU)");
    assert_eq!(after["revision"], 1);
    assert_eq!(settings_but(&after, &["name"]), settings_but(&before, &["name"]));
    assert_eq!(api.get(&path).await.1, after, "as stored");

    // null takes the default; a list is replaced whole.
    let (s, v) = api
        .patch(
            &path,
            json!({"logo_uri": null, "access_token_ttl": null, "cors_origins": ["https://b.example"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["logo_uri"], &v["access_token_ttl"]), (&Value::Null, &Value::Null));
    assert_eq!(v["cors_origins"], json!(["https://b.example"]));
    assert_eq!(
        settings_but(&v, &["logo_uri", "access_token_ttl", "cors_origins"]),
        settings_but(&after, &["logo_uri", "access_token_ttl", "cors_origins"])
    );
    let current = api.get(&path).await.1;

    // Refused, changing nothing: a stale revision, a member that is not a setting, an
    // invalid value, the kind, an auditor, an unknown client.
    for (patch, field) in [
        (json!({"revision": 0, "name": "Old"}), "revision"),
        (json!({"client_id": "other"}), "client_id"),
        (json!({"disabled": true}), "disabled"),
        (json!({"updated_at": current["updated_at"]}), "updated_at"),
        (json!({"redirect_uris": ["javascript:alert(1)"]}), "redirect_uris"),
        (json!({"kind": "public"}), "kind"),
    ] {
        assert_field(&api.patch(&path, patch).await, field);
    }
    assert_field(&api.patch(&path, json!({"name": 5})).await, "name");
    assert_error(&auditor.patch(&path, json!({"name": "X"})).await, 403, "forbidden");
    assert_error(
        &api.patch("/clients/nope", json!({"name": "X"})).await,
        404,
        "not_found",
    );
    assert_eq!(api.get(&path).await.1, current);
    // A repeated member is refused, as on PUT.
    let r = api
        .http
        .patch(format!("{}{path}", api.base))
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body(r#"{"name": "A", "name": "B"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(api.get(&path).await.1, current);
    // With the current revision it goes through.
    let (s, v) = api.patch(&path, json!({"revision": 2, "first_party": false})).await;
    assert_eq!(
        (s.as_u16(), &v["first_party"], &v["revision"]),
        (200, &json!(false), &json!(3)),
        "{v}"
    );

    // Without a revision, patches sent at once all apply, each to the client as it is.
    let patches = (0..6).map(|i| {
        let (base, key, path) = (api.base.clone(), api.key.clone(), path.clone());
        tokio::spawn(async move {
            let r = http()
                .patch(format!("{base}{path}"))
                .bearer_auth(key)
                .json(&json!({ "name": format!("Billing {i}") }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    });
    for p in patches.collect::<Vec<_>>() {
        let (status, body) = p.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(api.get(&path).await.1["revision"], 9);
    // The trail says which settings each edit changed.
    app.core.audit.flush().await;
    let changed: Vec<Value> = events_of(&api, "admin.client.updated")
        .await
        .iter()
        .map(|e| e["detail"]["changed"].clone())
        .collect();
    assert_eq!(
        changed[6..],
        vec![
            json!(["first_party"]),
            json!(["access_token_ttl", "cors_origins", "logo_uri"]),
            json!(["name"]),
        ]
    );
    assert!(changed[..6].iter().all(|c| *c == json!(["name"])), "{changed:?}");
    app.stop().await;
}

/// `jwks_uri` (OIDC Registration §2), where a `private_key_jwt` client publishes its keys:
/// written by `POST`, `PUT` and `PATCH` and read back as written; registering it ends the
/// client's secret, `null` removes it. Refused values name the field and change nothing.
async fn api_client_jwks_uri(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    const PUBLISHED: &str = "https://rp.example/.well-known/jwks.json";
    let mut body = client_body("Published");
    body["jwks_uri"] = json!(PUBLISHED);
    let (s, created) = api.post("/clients", body.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["client_secret"], Value::Null, "no secret: {created}");
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(
        (&created["jwks_uri"], &created["jwks"]),
        (&json!(PUBLISHED), &Value::Null)
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/clients/{id}");
    let (_, read) = api.get(&path).await;
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read, expected);
    let (_, list) = api.get("/clients?search=Published").await;
    assert_eq!(list["clients"][0]["jwks_uri"], PUBLISHED);
    // No secret to rotate: the keys are how it authenticates.
    assert_field(&api.post_empty(&format!("{path}/rotate-secret")).await, "jwks_uri");

    // PATCH changes it alone; PUT replaces it (http on a loopback host is fine).
    let (s, v) = api
        .patch(&path, json!({"jwks_uri": "https://rp.example/keys/v2"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["jwks_uri"], "https://rp.example/keys/v2");
    assert_eq!(v["name"], "Published");
    assert_eq!(api.get(&path).await.1, v, "as stored");
    body["jwks_uri"] = json!("http://127.0.0.1:8080/jwks");
    let (s, v) = api.put(&path, body.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["jwks_uri"], "http://127.0.0.1:8080/jwks");
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(api.get(&path).await.1, v, "as stored");

    // Refused, naming jwks_uri, on every write: http on another host, a fragment, user
    // and password, not a URL, not a string, keys inline as well, a public client.
    let current = api.get(&path).await.1;
    let jwk = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
    let refused = [
        json!({"jwks_uri": "http://rp.example/jwks"}),
        json!({"jwks_uri": "https://rp.example/jwks#keys"}),
        json!({"jwks_uri": "https://user:pw@rp.example/jwks"}),
        json!({"jwks_uri": "/jwks"}),
        json!({"jwks_uri": 5}),
        json!({"jwks_uri": "https://rp.example/jwks", "jwks": jwk}),
    ];
    let clients_before = api.get("/clients").await.1;
    for patch in &refused {
        let mut b = client_body("Refused");
        let mut replacement = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
            replacement[k] = v.clone();
        }
        assert_field(&api.post("/clients", b).await, "jwks_uri");
        assert_field(&api.put(&path, replacement).await, "jwks_uri");
        assert_field(&api.patch(&path, patch.clone()).await, "jwks_uri");
    }
    // Keys inline on a client that has a jwks_uri: remove the one to register the other.
    assert_field(&api.patch(&path, json!({"jwks": jwk})).await, "jwks_uri");
    let (s, v) = api
        .post(
            "/clients",
            json!({"name": "SPA", "kind": "public", "redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code"], "scopes": "openid",
                   "jwks_uri": PUBLISHED}),
        )
        .await;
    assert_field(&(s, v), "jwks_uri");
    assert_eq!(api.get("/clients").await.1, clients_before, "nothing created");
    assert_eq!(api.get(&path).await.1, current, "nothing changed");

    // A secret client given a jwks_uri: its secret stops working at once.
    let (_, billing) = api.post("/clients", client_body("Billing")).await;
    let billing_id = billing["client_id"].as_str().unwrap().to_owned();
    let secret = billing["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(client_credentials_status(&app, &billing_id, &secret).await, 200);
    let (s, v) = api
        .patch(&format!("/clients/{billing_id}"), json!({"jwks_uri": PUBLISHED}))
        .await;
    assert_eq!(
        (s.as_u16(), &v["token_endpoint_auth_method"]),
        (200, &json!("private_key_jwt")),
        "{v}"
    );
    assert_eq!(client_credentials_status(&app, &billing_id, &secret).await, 401);

    // null removes it: the client has no way to authenticate until a secret is issued.
    let (s, v) = api.patch(&path, json!({"jwks_uri": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["jwks_uri"], &v["token_endpoint_auth_method"]),
        (&Value::Null, &json!("client_secret_basic"))
    );
    let (s, rotated) = api.post_empty(&format!("{path}/rotate-secret")).await;
    assert_eq!(s, 200, "{rotated}");
    let secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(client_credentials_status(&app, &id, secret).await, 200);
    // The trail names the setting.
    app.core.audit.flush().await;
    let changed: Vec<Value> = events_of(&api, "admin.client.updated")
        .await
        .iter()
        .filter(|e| e["client_id"] == id.as_str())
        .map(|e| e["detail"]["changed"].clone())
        .collect();
    assert!(changed.iter().all(|c| *c == json!(["jwks_uri"])), "{changed:?}");
    assert_eq!(changed.len(), 3, "{changed:?}");
    app.stop().await;
}

/// `require_signed_request_object` (RFC 9101 §10.5): false unless sent, written by
/// `POST`, `PUT` and `PATCH` and read back as written, for a client with keys inline or
/// at a URL. A client without keys cannot have it (400 naming the member), nor lose its
/// keys while it has it; refused writes change nothing, and the trail names the setting.
async fn api_client_require_signed_request_object(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    const FIELD: &str = "require_signed_request_object";
    let jwk = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
    let mut body = client_body("Signed only");
    body["jwks"] = jwk.clone();
    body[FIELD] = json!(true);
    let (s, created) = api.post("/clients", body.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created[FIELD], true);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/clients/{id}");
    let (_, read) = api.get(&path).await;
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read, expected);
    let (_, list) = api.get("/clients?search=Signed").await;
    assert_eq!(list["clients"][0][FIELD], true);
    let (s, published) = api
        .post(
            "/clients",
            json!({"name": "Published", "kind": "confidential", "redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code"], "scopes": "openid",
                   "jwks_uri": "https://rp.example/jwks", FIELD: true}),
        )
        .await;
    assert_eq!((s.as_u16(), &published[FIELD]), (201, &json!(true)), "{published}");
    // Left out: false.
    let (s, billing) = api.post("/clients", client_body("Billing")).await;
    assert_eq!((s.as_u16(), &billing[FIELD]), (201, &json!(false)), "{billing}");
    let billing_path = format!("/clients/{}", billing["client_id"].as_str().unwrap());

    // PATCH changes it alone; PUT replaces it, and leaving it out of a PUT clears it.
    let (s, v) = api.patch(&path, json!({FIELD: false})).await;
    assert_eq!(
        (s.as_u16(), &v[FIELD], &v["name"]),
        (200, &json!(false), &json!("Signed only")),
        "{v}"
    );
    assert_eq!(api.get(&path).await.1, v, "as stored");
    let (s, v) = api.patch(&path, json!({FIELD: true})).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &json!(true)), "{v}");
    assert_eq!(api.get(&path).await.1, v, "as stored");
    let mut replacement = body.clone();
    replacement.as_object_mut().unwrap().remove(FIELD);
    let (s, v) = api.put(&path, replacement).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &json!(false)), "{v}");
    let (s, v) = api.put(&path, body.clone()).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &json!(true)), "{v}");
    assert_eq!(api.get(&path).await.1, v, "as stored");

    // Refused, naming it: on a client without keys (POST, PUT, PATCH), keys removed while
    // it is set, and not a boolean.
    let current = api.get(&path).await.1;
    let billing_before = api.get(&billing_path).await.1;
    let clients_before = api.get("/clients").await.1;
    let mut keyless = client_body("Keyless");
    keyless[FIELD] = json!(true);
    assert_field(&api.post("/clients", keyless.clone()).await, FIELD);
    let (s, v) = api
        .post(
            "/clients",
            json!({"name": "SPA", "kind": "public", "redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code"], "scopes": "openid", FIELD: true}),
        )
        .await;
    assert_field(&(s, v), FIELD);
    assert_field(&api.put(&billing_path, keyless).await, FIELD);
    assert_field(&api.patch(&billing_path, json!({FIELD: true})).await, FIELD);
    assert_field(&api.patch(&path, json!({"jwks": null})).await, FIELD);
    let mut without_keys = body.clone();
    without_keys.as_object_mut().unwrap().remove("jwks");
    assert_field(&api.put(&path, without_keys).await, FIELD);
    assert_field(&api.patch(&path, json!({FIELD: "yes"})).await, FIELD);
    assert_eq!(api.get("/clients").await.1, clients_before, "nothing created");
    assert_eq!(api.get(&path).await.1, current, "nothing changed");
    assert_eq!(api.get(&billing_path).await.1, billing_before, "nothing changed");

    // null takes the default; then the keys may go.
    let (s, v) = api.patch(&path, json!({FIELD: null})).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &json!(false)), "{v}");
    let (s, v) = api.patch(&path, json!({"jwks": null})).await;
    assert_eq!((s.as_u16(), &v["jwks"]), (200, &Value::Null), "{v}");
    // The trail names the setting.
    app.core.audit.flush().await;
    let changed: Vec<Value> = events_of(&api, "admin.client.updated")
        .await
        .iter()
        .filter(|e| e["client_id"] == id.as_str())
        .map(|e| e["detail"]["changed"].clone())
        .collect();
    assert_eq!(
        changed.iter().filter(|c| **c == json!([FIELD])).count(),
        5,
        "{changed:?}"
    );
    app.stop().await;
}

/// `backchannel_logout_uri` (OpenID Connect Back-Channel Logout 1.0 §2.2), where the
/// client is sent logout tokens: none unless sent, written by `POST`, `PUT` and `PATCH`
/// and read back as written, `null` removes it. Refused values are a 400 naming the
/// member and change nothing; the trail names the setting.
async fn api_client_backchannel_logout_uri(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    const FIELD: &str = "backchannel_logout_uri";
    const LOGOUT: &str = "https://rp.example/backchannel-logout";
    let mut body = client_body("Told of sign-outs");
    body[FIELD] = json!(LOGOUT);
    let (s, created) = api.post("/clients", body.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created[FIELD], LOGOUT);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/clients/{id}");
    let (_, read) = api.get(&path).await;
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read, expected);
    let (_, list) = api.get("/clients?search=sign-outs").await;
    assert_eq!(list["clients"][0][FIELD], LOGOUT);
    // Left out: none, as null.
    let (s, billing) = api.post("/clients", client_body("Billing")).await;
    assert_eq!((s.as_u16(), &billing[FIELD]), (201, &Value::Null), "{billing}");

    // PATCH changes it alone; PUT replaces it (http on a loopback host is fine), and
    // leaving it out of a PUT removes it.
    let (s, v) = api.patch(&path, json!({FIELD: "https://rp.example/logout/v2"})).await;
    assert_eq!(
        (s.as_u16(), &v[FIELD], &v["name"]),
        (200, &json!("https://rp.example/logout/v2"), &json!("Told of sign-outs")),
        "{v}"
    );
    assert_eq!(api.get(&path).await.1, v, "as stored");
    body[FIELD] = json!("http://127.0.0.1:8080/logout");
    let (s, v) = api.put(&path, body.clone()).await;
    assert_eq!(
        (s.as_u16(), &v[FIELD]),
        (200, &json!("http://127.0.0.1:8080/logout")),
        "{v}"
    );
    assert_eq!(api.get(&path).await.1, v, "as stored");
    let mut replacement = body.clone();
    replacement.as_object_mut().unwrap().remove(FIELD);
    let (s, v) = api.put(&path, replacement).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &Value::Null), "{v}");
    let (s, v) = api.put(&path, body.clone()).await;
    assert_eq!(
        (s.as_u16(), &v[FIELD]),
        (200, &json!("http://127.0.0.1:8080/logout")),
        "{v}"
    );

    // Refused, naming it, on every write: http on another host, a fragment, user and
    // password, not absolute, not a string.
    let current = api.get(&path).await.1;
    let clients_before = api.get("/clients").await.1;
    for bad in [
        json!("http://rp.example/logout"),
        json!("https://rp.example/logout#now"),
        json!("https://user:pw@rp.example/logout"),
        json!("/logout"),
        json!(5),
    ] {
        let mut b = client_body("Refused");
        b[FIELD] = bad.clone();
        let mut replacement = body.clone();
        replacement[FIELD] = bad.clone();
        assert_field(&api.post("/clients", b).await, FIELD);
        assert_field(&api.put(&path, replacement).await, FIELD);
        assert_field(&api.patch(&path, json!({FIELD: bad})).await, FIELD);
    }
    assert_eq!(api.get("/clients").await.1, clients_before, "nothing created");
    assert_eq!(api.get(&path).await.1, current, "nothing changed");

    // null removes it.
    let (s, v) = api.patch(&path, json!({FIELD: null})).await;
    assert_eq!((s.as_u16(), &v[FIELD]), (200, &Value::Null), "{v}");
    assert_eq!(api.get(&path).await.1, v, "as stored");
    // The trail names the setting: the two PATCHes, the three PUTs and the null.
    app.core.audit.flush().await;
    let changed: Vec<Value> = events_of(&api, "admin.client.updated")
        .await
        .iter()
        .filter(|e| e["client_id"] == id.as_str())
        .map(|e| e["detail"]["changed"].clone())
        .collect();
    assert!(changed.iter().all(|c| *c == json!([FIELD])), "{changed:?}");
    assert_eq!(changed.len(), 5, "{changed:?}");
    app.stop().await;
}

async fn api_keys_audit_dashboard_and_openapi(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin_key) = api_key(&app, AdminRole::Admin).await;
    let (_, auditor_key) = api_key(&app, AdminRole::Auditor).await;
    let api = Api::new(&app, &admin_key);
    let auditor = Api::new(&app, &auditor_key);

    // Keys: list, rotate (body optional), validation, role.
    let (s, keys) = auditor.get("/keys").await;
    assert_eq!(s, 200);
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"active") && states.contains(&"next"), "{states:?}");
    let next = kid_in_state(&keys, "next");
    assert_error(&auditor.post_empty("/keys/rotate").await, 403, "forbidden");
    assert_field(&api.post("/keys/rotate", json!({"alg": "HS256"})).await, "alg");
    // Only algorithms in use have keys (here RS256, for access and ID tokens alike).
    assert_field(&api.post("/keys/rotate", json!({"alg": "ES256"})).await, "alg");
    // The next key was created at start: too new to sign, refused without force, and
    // nothing changes.
    let (s, refused) = api.post("/keys/rotate", json!({"alg": "RS256"})).await;
    assert_field(&(s, refused.clone()), "force");
    assert!(
        refused["message"].as_str().unwrap().contains(next.as_str().unwrap()),
        "{refused}"
    );
    let (_, unchanged) = api.get("/keys").await;
    assert_eq!(unchanged, keys);
    assert_field(&api.post("/keys/rotate", json!({"force": "yes"})).await, "force");
    let (s, rotated) = api.post("/keys/rotate", json!({"alg": "RS256", "force": true})).await;
    assert_eq!(s, 200, "{rotated}");
    let listed = rotated["keys"].as_array().unwrap();
    let state_of = |kid: &Value| listed.iter().find(|k| &k["kid"] == kid).unwrap()["state"].clone();
    assert_eq!(state_of(&next), "active", "the next key now signs");
    assert_eq!(state_of(&rotated["next_kid"]), "next");
    assert!(
        listed
            .iter()
            .any(|k| k["state"] == "retired" && k["publish_until"].is_string())
    );
    assert_field(&api.post_empty("/keys/rotate").await, "force");
    let (s, again) = api.post("/keys/rotate", json!({"force": true})).await;
    assert_eq!(s, 200, "{again}");

    // Dashboard.
    app.user("carol", PASSWORD).await;
    let bad = portcullis_protocol::Secret::new("wrong password");
    for _ in 0..2 {
        let _ = app.core.login("carol", &bad, Some("192.0.2.7".into())).await;
    }
    app.core.audit.flush().await;
    let (s, d) = auditor.get("/dashboard").await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["users"], 1);
    assert_eq!(d["clients"], 0);
    assert_eq!(d["active_grants"], 0);
    assert_eq!(d["failed_logins_24h"], 2);

    // Audit: filters, paging, validation.
    let (s, page) = auditor.get("/audit-events").await;
    assert_eq!(s, 200);
    let all = page["events"].as_array().unwrap();
    assert!(all.len() >= 5, "{all:?}");
    let (_, failures) = auditor.get("/audit-events?event_type=login.failure").await;
    let failures = failures["events"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .all(|e| e["ip"] == "192.0.2.7" && e["detail"]["username"] == "carol")
    );
    let (_, rotations) = auditor.get("/audit-events?event_type=key.rotated&limit=1").await;
    assert_eq!(rotations["events"].as_array().unwrap().len(), 1);
    assert_eq!(rotations["next_offset"], 1);
    let (_, second) = auditor
        .get("/audit-events?event_type=key.rotated&limit=1&offset=1")
        .await;
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_offset"], Value::Null);
    assert_ne!(rotations["events"][0]["id"], second["events"][0]["id"]);
    let carol = app.core.find_user("carol").await.unwrap();
    let (_, by_user) = auditor.get(&format!("/audit-events?user_id={}", carol.id)).await;
    assert!(
        by_user["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == carol.id.to_string())
    );
    assert!(!by_user["events"].as_array().unwrap().is_empty());
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.core.audit.flush().await;
    let (_, by_client) = auditor.get(&format!("/audit-events?client_id={}", client.id)).await;
    assert_eq!(by_client["events"][0]["event_type"], "admin.client.created");
    let future = (time::OffsetDateTime::now_utc() + Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let past = (time::OffsetDateTime::now_utc() - Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (_, none) = auditor.get(&format!("/audit-events?since={}", enc(&future))).await;
    assert_eq!(none["events"], json!([]));
    let (_, window) = auditor
        .get(&format!("/audit-events?since={}&until={}", enc(&past), enc(&future)))
        .await;
    assert!(
        window["events"].as_array().unwrap().len() > all.len(),
        "everything so far is in the window"
    );
    assert_field(&auditor.get("/audit-events?since=yesterday").await, "since");
    assert_field(
        &auditor
            .get(&format!("/audit-events?since={}&until={}", enc(&future), enc(&past)))
            .await,
        "until",
    );
    assert_field(&auditor.get("/audit-events?user_id=carol").await, "user_id");
    assert_field(&auditor.get("/audit-events?limit=500").await, "limit");
    assert_field(&auditor.get("/audit-events?limit=0").await, "limit");
    assert_error(&auditor.get("/audit-events?limit=-1").await, 400, "bad_request");
    assert_error(&auditor.get("/audit-events?colour=red").await, 400, "bad_request");

    // OpenAPI: served as JSON without a key; every operation it lists is routed (it
    // answers 401 without a key, not 404 or 405), and unknown routes are JSON 404s.
    let r = http()
        .get(format!("{}/admin/api/v1/openapi.json", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            operations += 1;
            let concrete = path
                .replace("{client_id}", "c1")
                .replace("{user_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{session_id}", "s1")
                .replace("{grant_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{kid}", "k1")
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            let url = format!("{}/admin/api/v1{concrete}", app.admin_url);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = http().request(m, url).send().await.unwrap().status().as_u16();
            let expected = if path == "/openapi.json" { 200 } else { 401 };
            assert_eq!(status, expected, "{method} {path}");
        }
    }
    assert_eq!(operations, 30);
    assert_error(&api.get("/nothing-here").await, 404, "not_found");
    assert_error(&api.get("/").await, 404, "not_found");
    assert_error(&api.get("").await, 404, "not_found");
    assert_error(
        &api.call(Method::PATCH, "/clients", None).await,
        405,
        "method_not_allowed",
    );
    app.stop().await;
}

/// The client and user lists come a page at a time: `limit` (100 by default, at most
/// 1000) after `offset`, with `next_offset` until the last page; a search pages too.
async fn api_lists_are_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1);
    for i in 0..5 {
        app.core
            .create_client(
                &portcullis_core::clients::ClientInput {
                    name: format!("Paged {i}"),
                    kind: Some(portcullis_core::model::ClientKind::Confidential),
                    grant_types: vec!["client_credentials".into()],
                    scopes: "api:read".into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
    }
    app.core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: "Other".into(),
                kind: Some(portcullis_core::model::ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "api:read".into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let names = |v: &Value, list: &str| {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c[if list == "clients" { "name" } else { "username" }]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let (s, all) = api.get("/clients").await;
    assert_eq!((s.as_u16(), &all["next_offset"]), (200, &Value::Null), "{all}");
    assert_eq!(names(&all, "clients").len(), 6, "one page holds them all by default");
    let (_, first) = api.get("/clients?search=paged&limit=2").await;
    assert_eq!(names(&first, "clients"), ["Paged 0", "Paged 1"]);
    assert_eq!(first["next_offset"], 2);
    let (_, second) = api.get("/clients?search=paged&limit=2&offset=2").await;
    assert_eq!(names(&second, "clients"), ["Paged 2", "Paged 3"]);
    let (_, last) = api.get("/clients?search=paged&limit=2&offset=4").await;
    assert_eq!(names(&last, "clients"), ["Paged 4"]);
    assert_eq!(last["next_offset"], Value::Null);
    let (_, past) = api.get("/clients?limit=2&offset=40").await;
    assert_eq!((names(&past, "clients").len(), &past["next_offset"]), (0, &Value::Null));
    // Exactly a page's worth: no next page.
    let (_, exact) = api.get("/clients?search=paged&limit=5").await;
    assert_eq!(
        (names(&exact, "clients").len(), &exact["next_offset"]),
        (5, &Value::Null)
    );

    for name in ["ann", "bea", "cid"] {
        app.user(name, PASSWORD).await;
    }
    let (_, users) = api.get("/users?limit=2").await;
    assert_eq!(
        (names(&users, "users"), &users["next_offset"]),
        (vec!["ann".to_owned(), "bea".into()], &json!(2))
    );
    let (_, users) = api.get("/users?limit=2&offset=2").await;
    assert_eq!(
        (names(&users, "users"), &users["next_offset"]),
        (vec!["cid".to_owned()], &Value::Null)
    );

    for path in [
        "/clients?limit=1001",
        "/users?limit=5000",
        "/clients?limit=0",
        "/users?limit=0",
    ] {
        assert_field(&api.get(path).await, "limit");
    }
    for path in ["/clients?offset=-1", "/users?limit=x"] {
        let (s, v) = api.get(path).await;
        assert_eq!(s.as_u16(), 400, "{path}: {v}");
    }
    app.stop().await;
}

both_backends!(
    api_lists_are_paged,
    api_clients,
    api_keys_audit_dashboard_and_openapi,
    api_client_patch_keeps_what_it_does_not_name,
    api_client_jwks_uri,
    api_client_require_signed_request_object,
    api_client_backchannel_logout_uri,
);
