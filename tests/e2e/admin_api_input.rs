//! The admin API's input handling on both backends, from a schemathesis fuzz: every
//! refusal is the API's JSON error (unreadable path and query parameters, bodies over the
//! limit), a body must be a JSON object sent as `application/json`, `revision` is for
//! `PUT` only, a write answers what a read returns (whole-second instants), and the
//! OpenAPI description states the limits the server enforces.

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_support::{Api, api_key, assert_error, assert_field};
use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens};

/// Sends `body` as is, with `content_type` if given; asserts the answer is JSON.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut req = api
        .http
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(&api.key)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    assert_eq!(ct.as_deref(), Some("application/json"), "{status}: {text}");
    (status, serde_json::from_str(&text).unwrap())
}

fn client_body(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "confidential",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": "openid profile",
    })
}

async fn client_count(api: &Api) -> usize {
    api.get("/clients").await.1["clients"].as_array().unwrap().len()
}

async fn user_count(api: &Api) -> usize {
    api.get("/users").await.1["users"].as_array().unwrap().len()
}

async fn keys(api: &Api) -> Value {
    let (s, v) = api.get("/keys").await;
    assert_eq!(s, 200, "{v}");
    v["keys"].clone()
}

/// Path and query parameters that cannot be read, and bodies over the API's limit, are
/// answered with the API's JSON errors, not axum's plain text.
async fn api_refusals_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);
    let (s, created) = api.post("/clients", client_body("Billing")).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();

    // `%FF` is not UTF-8: the path cannot be read.
    for (method, path) in [
        (Method::GET, "/clients/%FF"),
        (Method::PUT, "/clients/%FF"),
        (Method::DELETE, "/clients/%FF"),
        (Method::POST, "/clients/%FF/disable"),
        (Method::GET, "/users/%FF"),
        (Method::GET, "/users/%FF/sessions"),
        (Method::DELETE, "/users/%FF/sessions/%FF"),
        (Method::DELETE, "/users/00000000-0000-0000-0000-000000000000/grants/%FF"),
    ] {
        let got = send(
            &api,
            method.clone(),
            path,
            Some("application/json"),
            client_body("X").to_string(),
        )
        .await;
        assert_error(&got, 400, "bad_request");
        assert!(
            got.1["message"].as_str().unwrap().contains("UTF-8"),
            "{method} {path}: {}",
            got.1
        );
    }
    // A query string that does not fit (a repeated parameter, a number out of range, a
    // parameter the list does not take, which would otherwise list everything).
    for path in [
        "/clients?search=a&search=b",
        "/users?search=a&search=b",
        "/users?q=nobody",
        "/clients?name=nobody",
        "/audit-events?offset=4294967296",
        "/audit-events?limit=-1",
    ] {
        assert_error(&send(&api, Method::GET, path, None, "").await, 400, "bad_request");
    }

    // A body over the API's limit (1 MiB), or over the server's for every admin request
    // (2 MiB, read before the API sees it): 413 in JSON, and nothing changes.
    let before = keys(&api).await;
    let big = json!({ "name": "x".repeat(1536 * 1024) }).to_string();
    for (method, path) in [
        (Method::POST, "/clients".to_owned()),
        (Method::PUT, format!("/clients/{id}")),
        (Method::POST, "/users".to_owned()),
        (Method::POST, "/keys/rotate".to_owned()),
    ] {
        let got = send(&api, method, &path, Some("application/json"), big.clone()).await;
        assert_error(&got, 413, "payload_too_large");
    }
    // Over 2 MiB the server refuses before the API sees the body, and closes the
    // connection while a client may still be sending (which makes the answer racy over
    // TCP): the router is asked directly.
    {
        use tower::ServiceExt;
        let request = axum::http::Request::post("/admin/api/v1/clients")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(vec![b' '; 3 * 1024 * 1024]))
            .unwrap();
        let resp = portcullis_cli::app::admin_router(&app.core)
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "payload_too_large", "{v}");
    }
    assert_eq!(client_count(&api).await, 1);
    assert_eq!(
        api.get(&format!("/clients/{id}")).await.1,
        created_without_secret(&created)
    );
    assert_eq!(user_count(&api).await, 0);
    assert_eq!(keys(&api).await, before);
    app.stop().await;
}

fn created_without_secret(created: &Value) -> Value {
    let mut v = created.clone();
    v.as_object_mut().unwrap().remove("client_secret");
    v
}

/// A body must be a JSON object: serde would read an array as a struct's fields in order.
async fn api_bodies_must_be_json_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);
    let (_, user) = api
        .post("/users", json!({"username": "alice", "password": PASSWORD}))
        .await;
    let uid = user["id"].as_str().unwrap().to_owned();
    let (_, client) = api.post("/clients", client_body("Billing")).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let before = keys(&api).await;

    // Every field of ClientBody in order, as serde reads a sequence into the struct.
    let client_array = json!([
        "Array App",
        "confidential",
        [REDIRECT],
        [],
        ["authorization_code"],
        "openid",
        false,
        null,
        null,
        null,
        [],
        null,
        null,
        null,
        null
    ]);
    let user_array = json!(["arrayuser", "password123", null, false, null]);
    for (method, path, body) in [
        (Method::POST, "/clients".to_owned(), client_array.clone()),
        (Method::PUT, format!("/clients/{cid}"), client_array),
        (Method::POST, "/users".to_owned(), user_array),
        (
            Method::POST,
            format!("/users/{uid}/password"),
            json!(["another password"]),
        ),
        (Method::POST, "/keys/rotate".to_owned(), json!(["RS256"])),
        (Method::POST, "/keys/rotate".to_owned(), json!([])),
        (Method::POST, "/keys/rotate".to_owned(), json!(null)),
        (Method::POST, "/users".to_owned(), json!("alice")),
        (Method::POST, "/clients".to_owned(), json!(42)),
    ] {
        let got = api.call(method.clone(), &path, Some(body.clone())).await;
        assert_error(&got, 400, "bad_request");
        assert!(
            got.1["message"].as_str().unwrap().contains("JSON object"),
            "{method} {path} {body}: {}",
            got.1
        );
    }
    // A value of the wrong type names its field, as a value the server refuses does; a
    // field the request does not take is a plain bad request.
    let with = |patch: Value| {
        let mut b = client_body("Typed");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, field) in [
        (with(json!({"name": 123})), "name"),
        (with(json!({"access_token_ttl": "600"})), "access_token_ttl"),
        (with(json!({"redirect_uris": [REDIRECT, 5]})), "redirect_uris[1]"),
        (with(json!({"grant_types": null})), "grant_types"),
    ] {
        for (method, path) in [
            (Method::POST, "/clients".to_owned()),
            (Method::PUT, format!("/clients/{cid}")),
            (Method::PATCH, format!("/clients/{cid}")),
        ] {
            let got = api.call(method.clone(), &path, Some(body.clone())).await;
            assert_field(&got, field);
            assert!(!got.1["message"].as_str().unwrap().contains(" line "), "{}", got.1);
        }
    }
    assert_field(
        &api.post("/users", json!({"username": ["alice"], "password": PASSWORD}))
            .await,
        "username",
    );
    assert_error(
        &api.post("/clients", with(json!({"colour": "red"}))).await,
        400,
        "bad_request",
    );
    assert_eq!(client_count(&api).await, 1);
    assert_eq!(
        api.get(&format!("/clients/{cid}")).await.1,
        created_without_secret(&client)
    );
    assert_eq!(user_count(&api).await, 1);
    assert_eq!(keys(&api).await, before);
    // The password did not change: Alice still signs in with hers.
    let (c, secret) = app.confidential_client(REDIRECT).await;
    let tokens = obtain_tokens(&app, c.id.as_str(), secret.expose(), "alice").await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    app.stop().await;
}

/// `/keys/rotate` reads a body only as `application/json`, like every other endpoint; an
/// empty body needs no content type.
async fn api_key_rotation_body_needs_json_content_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);
    let before = keys(&api).await;
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let got = send(&api, Method::POST, "/keys/rotate", ct, r#"{"alg":"RS256"}"#).await;
        assert_error(&got, 400, "bad_request");
        assert!(
            got.1["message"].as_str().unwrap().contains("application/json"),
            "{ct:?}: {}",
            got.1
        );
        // The same answer as another endpoint gives.
        let other = send(&api, Method::POST, "/clients", ct, client_body("X").to_string()).await;
        assert_error(&other, 400, "bad_request");
    }
    assert_eq!(keys(&api).await, before, "nothing rotated");
    assert_eq!(client_count(&api).await, 0);

    // An empty body, with or without a content type, and a JSON one are all read: each
    // reaches the rotation, which refuses a next key created at start unless forced.
    for (ct, body) in [
        (None, ""),
        (Some("text/plain"), ""),
        (Some("application/json"), ""),
        (Some("application/json; charset=utf-8"), r#"{"alg":"RS256"}"#),
        (Some("application/json"), r#"{"alg":null}"#),
    ] {
        let got = send(&api, Method::POST, "/keys/rotate", ct, body).await;
        assert_field(&got, "force");
    }
    assert_eq!(keys(&api).await, before, "nothing rotated");
    let mut kids = Vec::new();
    for body in [
        r#"{"force":true}"#,
        r#"{"alg":"RS256","force":true}"#,
        r#"{"alg":null,"force":true}"#,
    ] {
        let (s, v) = send(&api, Method::POST, "/keys/rotate", Some("application/json"), body).await;
        assert_eq!(s, 200, "{body}: {v}");
        kids.push(v["next_kid"].as_str().unwrap().to_owned());
    }
    kids.dedup();
    assert_eq!(kids.len(), 3, "every call rotated: {kids:?}");
    app.stop().await;
}

/// `revision` guards a replacement; a new client has none, so `POST` refuses it.
async fn api_client_revision_is_put_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);
    for revision in [json!(0), json!(7)] {
        let mut body = client_body("Revisioned");
        body["revision"] = revision;
        assert_field(&api.post("/clients", body).await, "revision");
    }
    assert_eq!(client_count(&api).await, 0, "nothing registered");
    // Null is the same as leaving it out, as for every other nullable field.
    let mut body = client_body("Plain");
    body["revision"] = Value::Null;
    let (s, created) = api.post("/clients", body).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    // PUT still takes it.
    let mut body = client_body("Plain v2");
    body["revision"] = created["revision"].clone();
    let (s, updated) = api.put(&format!("/clients/{id}"), body.clone()).await;
    assert_eq!(s, 200, "{updated}");
    assert_field(&api.put(&format!("/clients/{id}"), body.clone()).await, "revision");
    // A negative revision is no revision read: said so, not "changed meanwhile".
    body["revision"] = json!(-1);
    let got = api.put(&format!("/clients/{id}"), body).await;
    assert_field(&got, "revision");
    assert!(got.1["message"].as_str().unwrap().contains("0 or more"), "{}", got.1);
    // A refused URI is quoted in the message, shortened.
    let mut body = client_body("Plain v3");
    body["redirect_uris"] = json!([format!("http://evil.example/{}", "x".repeat(1900))]);
    let got = api.put(&format!("/clients/{id}"), body).await;
    assert_field(&got, "redirect_uris");
    assert!(got.1["message"].as_str().unwrap().len() < 400, "{}", got.1);
    app.stop().await;
}

/// Every instant the API prints is whole seconds, as the SQLite store keeps them.
fn assert_whole_seconds(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if (k.ends_with("_at") || k == "at" || k == "auth_time" || k == "publish_until")
                    && let Some(s) = v.as_str()
                {
                    assert!(
                        s.len() == 20 && s.ends_with('Z') && !s.contains('.'),
                        "{k}: {s} is not whole seconds"
                    );
                }
                assert_whole_seconds(v);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_whole_seconds),
        _ => {}
    }
}

/// A write answers exactly what a read right after returns.
async fn api_write_responses_match_reads(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);

    let (s, created) = api.post("/clients", client_body("Billing")).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let read = api.get(&format!("/clients/{id}")).await.1;
    assert_eq!(created_without_secret(&created), read);
    let (s, updated) = api.put(&format!("/clients/{id}"), client_body("Billing v2")).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated, api.get(&format!("/clients/{id}")).await.1);
    for action in ["disable", "enable"] {
        let (s, v) = api.post_empty(&format!("/clients/{id}/{action}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v, api.get(&format!("/clients/{id}")).await.1, "{action}");
        assert_whole_seconds(&v);
    }
    assert_whole_seconds(&created);
    assert_whole_seconds(&updated);

    let (s, user) = api
        .post(
            "/users",
            json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let uid = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user, api.get(&format!("/users/{uid}")).await.1);
    assert_whole_seconds(&user);

    let (s, rotated) = api.post("/keys/rotate", json!({"force": true})).await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["keys"], keys(&api).await);
    assert_whole_seconds(&rotated);

    // What a sign-in leaves: a session, a grant, audit events.
    let (c, secret) = app.confidential_client(REDIRECT).await;
    obtain_tokens(&app, c.id.as_str(), secret.expose(), "alice").await;
    app.core.audit.flush().await;
    for path in [
        format!("/users/{uid}/sessions"),
        format!("/users/{uid}/grants"),
        "/audit-events".to_owned(),
    ] {
        let (s, v) = api.get(&path).await;
        assert_eq!(s, 200, "{v}");
        assert!(
            v.as_object()
                .unwrap()
                .values()
                .any(|l| l.as_array().is_some_and(|l| !l.is_empty()))
        );
        assert_whole_seconds(&v);
    }
    app.stop().await;
}

/// The OpenAPI description states what the server requires and the limits it enforces;
/// each is checked against the server.
async fn api_openapi_states_the_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);
    let (s, doc) = api.get("/openapi.json").await;
    assert_eq!(s, 200);
    let schemas = &doc["components"]["schemas"];
    let paths = &doc["paths"];

    // Required fields: POST needs name, kind and grant_types; PUT name and grant_types.
    assert_eq!(
        paths["/clients"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ClientCreate"
    );
    assert_eq!(
        paths["/clients/{client_id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ClientReplace"
    );
    let create_required = &schemas["ClientCreate"]["allOf"][1]["required"];
    assert_eq!(create_required, &json!(["name", "kind", "grant_types"]));
    for field in create_required.as_array().unwrap() {
        let field = field.as_str().unwrap();
        let mut body = client_body("Missing");
        body.as_object_mut().unwrap().remove(field);
        assert_field(&api.post("/clients", body).await, field);
    }
    let (_, created) = api.post("/clients", client_body("Billing")).await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let replace_required = &schemas["ClientReplace"]["allOf"][1]["required"];
    assert_eq!(replace_required, &json!(["name", "grant_types"]));
    for field in replace_required.as_array().unwrap() {
        let field = field.as_str().unwrap();
        let mut body = client_body("Missing");
        body.as_object_mut().unwrap().remove(field);
        assert_field(&api.put(&format!("/clients/{id}"), body).await, field);
    }
    let mut no_kind = client_body("No kind");
    no_kind.as_object_mut().unwrap().remove("kind");
    assert_eq!(api.put(&format!("/clients/{id}"), no_kind).await.0, 200);

    // Nullable fields are documented as such and accepted as null.
    let input = &schemas["ClientInput"]["properties"];
    for field in [
        "kind",
        "require_pkce",
        "revision",
        "access_token_ttl",
        "logo_uri",
        "jwks_uri",
        "backchannel_logout_uri",
    ] {
        assert!(
            input[field]["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("null"))),
            "{field}: {}",
            input[field]
        );
        let mut body = client_body("Nulls");
        body[field] = Value::Null;
        assert_eq!(api.put(&format!("/clients/{id}"), body).await.0, 200, "{field}");
    }
    let alg =
        &paths["/keys/rotate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["alg"];
    assert_eq!(alg["type"], json!(["string", "null"]));

    // Client limits: the documented bound passes, one past it is refused.
    let max = |v: &Value| usize::try_from(v.as_u64().unwrap()).unwrap();
    let name_max = max(&input["name"]["maxLength"]);
    assert_eq!(name_max, 200);
    let uri_max = max(&input["redirect_uris"]["items"]["maxLength"]);
    assert_eq!(uri_max, 2000);
    let long_uri = |len: usize| {
        let base = "https://rp.example/";
        format!("{base}{}", "p".repeat(len - base.len()))
    };
    for (field, at_limit, over) in [
        ("name", json!("n".repeat(name_max)), json!("n".repeat(name_max + 1))),
        ("name", json!("ok"), json!("tab\tinside")),
        // Bidirectional formatting would let the consent page show another name.
        ("name", json!("Café app"), json!("Safe \u{202e}ppa")),
        ("name", json!("ok"), json!("a\u{2066}b\u{2069}")),
        (
            "redirect_uris",
            json!([long_uri(uri_max)]),
            json!([long_uri(uri_max + 1)]),
        ),
        (
            "logo_uri",
            json!(long_uri(max(&input["logo_uri"]["maxLength"]))),
            json!(long_uri(max(&input["logo_uri"]["maxLength"]) + 1)),
        ),
        (
            "policy_uri",
            json!(long_uri(max(&input["policy_uri"]["maxLength"]))),
            json!(long_uri(max(&input["policy_uri"]["maxLength"]) + 1)),
        ),
        (
            "jwks_uri",
            json!(long_uri(max(&input["jwks_uri"]["maxLength"]))),
            json!(long_uri(max(&input["jwks_uri"]["maxLength"]) + 1)),
        ),
        (
            "backchannel_logout_uri",
            json!(long_uri(max(&input["backchannel_logout_uri"]["maxLength"]))),
            json!(long_uri(max(&input["backchannel_logout_uri"]["maxLength"]) + 1)),
        ),
    ] {
        let mut body = client_body("Limits");
        body[field] = at_limit;
        let (s, v) = api.put(&format!("/clients/{id}"), body.clone()).await;
        assert_eq!(s, 200, "{field}: {v}");
        body[field] = over;
        assert_field(&api.put(&format!("/clients/{id}"), body).await, field);
    }
    for field in ["redirect_uris", "post_logout_redirect_uris", "cors_origins"] {
        let most = max(&input[field]["maxItems"]);
        assert_eq!(most, 50, "{field}");
        let item = |n: usize| match field {
            "cors_origins" => format!("https://app{n}.example"),
            _ => format!("https://rp.example/cb{n}"),
        };
        let mut body = client_body("Many");
        body[field] = json!((0..most).map(item).collect::<Vec<_>>());
        let (s, v) = api.put(&format!("/clients/{id}"), body.clone()).await;
        assert_eq!(s, 200, "{field}: {v}");
        body[field] = json!((0..=most).map(item).collect::<Vec<_>>());
        assert_field(&api.put(&format!("/clients/{id}"), body).await, field);
    }
    for rule in ["refresh_token", "public client", "redirect URI"] {
        assert!(
            input["grant_types"]["description"].as_str().unwrap().contains(rule),
            "the grant_types description names: {rule}"
        );
    }

    // User limits.
    let user = &schemas["UserInput"]["properties"];
    assert_eq!(user["password"]["maxLength"], 1024);
    assert_eq!(schemas["PasswordInput"]["properties"]["password"]["maxLength"], 1024);
    assert_eq!(user["name"]["maxLength"], 200);
    assert_eq!(user["username"]["pattern"], "^[!-~]+$");
    assert!(user["email"]["pattern"].is_string());
    let new_user = |patch: Value| {
        let mut b = json!({"username": "bob", "password": PASSWORD});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (patch, field) in [
        (json!({"password": "p".repeat(1025)}), "password"),
        (json!({"password": "é".repeat(513)}), "password"),
        (json!({"password": "\u{0}".repeat(12)}), "password"),
        (json!({"password": "a long pass\u{7}word"}), "password"),
        (json!({"password": "zzzzzzzzzzzz"}), "password"),
        (json!({"name": "n".repeat(201)}), "name"),
        (json!({"name": "bob\u{200f}"}), "name"),
        (json!({"username": "bo b"}), "username"),
        (json!({"username": "bob\u{7}"}), "username"),
        (json!({"username": "b\u{f6}b"}), "username"),
        (json!({"email": "bob@@example.com"}), "email"),
        (json!({"email": "@example.com"}), "email"),
        (json!({"email": "bob@"}), "email"),
        (json!({"email": "bob <bob@example.com>"}), "email"),
        (json!({"email": "bob;x@example.com"}), "email"),
    ] {
        assert_field(&api.post("/users", new_user(patch.clone())).await, field);
    }
    assert_eq!(user_count(&api).await, 0);
    let (s, v) = api
        .post(
            "/users",
            new_user(json!({"password": "pq".repeat(512), "name": "n".repeat(200), "email": "bob@example.com"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // The audit log's offset is a u32; since must come before until.
    let params = paths["/audit-events"]["get"]["parameters"].as_array().unwrap();
    let param = |name: &str| params.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(param("offset")["schema"]["maximum"], 4_294_967_295_u64);
    assert_eq!(api.get("/audit-events?offset=4294967295").await.0, 200);
    assert_error(&api.get("/audit-events?offset=4294967296").await, 400, "bad_request");
    assert!(
        param("since")["description"]
            .as_str()
            .unwrap()
            .contains("earlier than until")
    );
    assert_field(
        &api.get("/audit-events?since=2030-01-01T00:00:00Z&until=2030-01-01T00:00:00Z")
            .await,
        "until",
    );

    // 413 is documented wherever a body is taken.
    for (path, method) in [
        ("/clients", "post"),
        ("/clients/{client_id}", "put"),
        ("/users", "post"),
        ("/users/{user_id}/password", "post"),
        ("/keys/rotate", "post"),
    ] {
        assert_eq!(
            paths[path][method]["responses"]["413"]["$ref"], "#/components/responses/TooLarge",
            "{method} {path}"
        );
    }
    assert!(
        schemas["Error"]["properties"]["error"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("payload_too_large"))
    );
    app.stop().await;
}

both_backends!(
    api_refusals_are_json,
    api_bodies_must_be_json_objects,
    api_key_rotation_body_needs_json_content_type,
    api_client_revision_is_put_only,
    api_write_responses_match_reads,
    api_openapi_states_the_limits,
);
