//! Pairwise subject identifiers (OpenID Connect Core §8.1) on both backends: a pairwise
//! client sees each person under an identifier of its sector's own, the same in its ID
//! tokens, access tokens, UserInfo and introspection answers, stable across nodes and
//! restarts; clients of one sector agree, clients of two cannot match people up; hints
//! (`id_token_hint`, a `claims` `sub`) are read in the client's terms.

use std::sync::Arc;

use openidconnect::core::CoreUserInfoClaims;
use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::{Value, json};
use url::Url;

use crate::admin_support::{Api, api_key, assert_field};
use crate::code_flow::{
    PASSWORD, REDIRECT, id_claims_with_at_hash, obtain_tokens_with, relying_party, rp_http_client, sign_in_through,
};
use crate::conformance::{prompt_none_error, sign_in};
use portcullis_core::model::AdminRole;

/// A confidential code-flow client (redirect `REDIRECT`, on rp.example) seeing people
/// as `subject_type` says, in `sector` if named: its id and secret.
async fn client(app: &TestApp, subject_type: &str, sector: Option<&str>) -> (String, String) {
    client_at(app, subject_type, sector, &[REDIRECT]).await
}

async fn client_at(app: &TestApp, subject_type: &str, sector: Option<&str>, redirects: &[&str]) -> (String, String) {
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: format!("{subject_type} client"),
                kind: Some(ClientKind::Confidential),
                redirect_uris: redirects.iter().map(|r| (*r).to_owned()).collect(),
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: "openid profile offline_access".into(),
                subject_type: Some(subject_type.into()),
                sector_identifier: sector.map(str::to_owned),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    (c.id.as_str().to_owned(), s.unwrap().expose().to_owned())
}

/// The claims of a JWT, unverified (the tests that need it verify it elsewhere).
pub(crate) fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

/// The `sub` of the ID token `username` gets from `(id, secret)`.
async fn sub_for(app: &TestApp, (id, secret): (&str, &str), username: &str) -> String {
    let tokens = obtain_tokens_with(app, (id, secret), username, "openid", &[]).await;
    jwt_claims(tokens["id_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn introspect(app: &TestApp, (id, secret): (&str, &str), token: &str) -> Value {
    let r = http()
        .post(app.url("/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// One identifier per client everywhere it is shown; the same for clients of one
/// sector, another in another sector, the public id for a public client; another for
/// another person; the same on a second node and after a restart.
async fn a_pairwise_client_sees_people_under_its_sector_identifier(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(Arc::new);
    let app = portcullis_tests::spawn_app_on(&url, guard.clone()).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["subject_types_supported"], json!(["public", "pairwise"]));
    let alice = app.user("alice", PASSWORD).await;
    app.user("bob", PASSWORD).await;
    let a = client(&app, "pairwise", None).await;
    let same_host = client(&app, "pairwise", None).await;
    let other_sector = client(&app, "pairwise", Some("Elsewhere.Example")).await;
    let public = client(&app, "public", None).await;
    let stored = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(&a.0).unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.pairwise_sector.as_deref(),
        Some("rp.example"),
        "its redirect URI's host"
    );
    let stored = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(&other_sector.0).unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.pairwise_sector.as_deref(),
        Some("elsewhere.example"),
        "host names are lowercase"
    );

    // A real relying party (the `openidconnect` crate): the ID token verifies, and
    // UserInfo names the same subject (OIDC Core §5.3.2).
    let http_client = rp_http_client();
    let rp = relying_party(&app, &http_client, &a.0, &a.1).await;
    let (_, tokens, nonce) = sign_in_through(&app, &rp, &http_client).await;
    let verifier = rp.id_token_verifier();
    let sub = id_claims_with_at_hash(&tokens, &verifier, &nonce)
        .subject()
        .as_str()
        .to_owned();
    assert_ne!(sub, alice.id.to_string());
    assert_eq!(sub.len(), 43, "{sub}");
    assert!(uuid::Uuid::parse_str(&sub).is_err());
    let info: CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(openidconnect::SubjectIdentifier::new(sub.clone())),
        )
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), sub);
    // The access token (a JWT the client can read) and introspection say the same.
    use openidconnect::OAuth2TokenResponse;
    let access = tokens.access_token().secret().clone();
    assert_eq!(jwt_claims(&access)["sub"], sub);
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    assert_eq!(introspect(&app, (&a.0, &a.1), &access).await["sub"], sub);
    assert_eq!(introspect(&app, (&a.0, &a.1), &refresh).await["sub"], sub);
    // As does the ID token of a refresh.
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&a.0, Some(&a.1))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    assert_eq!(jwt_claims(refreshed["id_token"].as_str().unwrap())["sub"], sub);
    assert_eq!(jwt_claims(refreshed["access_token"].as_str().unwrap())["sub"], sub);
    // UserInfo with the refreshed token (a pairwise `sub` leads back through the grant).
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], sub);

    // The same sector agrees; another sector and the public identifier do not.
    assert_eq!(sub_for(&app, (&same_host.0, &same_host.1), "alice").await, sub);
    let elsewhere = sub_for(&app, (&other_sector.0, &other_sector.1), "alice").await;
    assert_ne!(elsewhere, sub);
    assert_eq!(elsewhere.len(), 43);
    assert_eq!(
        sub_for(&app, (&public.0, &public.1), "alice").await,
        alice.id.to_string()
    );
    let bobs = sub_for(&app, (&a.0, &a.1), "bob").await;
    assert_ne!(bobs, sub, "another person, another identifier");
    // An operator sees, per grant, what each application knows the person by.
    let api = Api::new(&app, &api_key(&app, AdminRole::Auditor).await.1);
    let (_, grants) = api.get(&format!("/users/{}/grants", alice.id)).await;
    let known_as = |client: &str| {
        grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["client_id"] == client)
            .map(|g| g["sub"].as_str().unwrap().to_owned())
    };
    assert_eq!(known_as(&a.0).as_deref(), Some(sub.as_str()), "{grants}");
    assert_eq!(known_as(&other_sector.0).as_deref(), Some(elsewhere.as_str()));
    assert_eq!(known_as(&public.0), Some(alice.id.to_string()));

    // Another node on the same database computes the same identifiers (one key, made
    // once and kept sealed in the database)…
    let second = portcullis_tests::spawn_app_on(&url, guard.clone()).await;
    assert_eq!(sub_for(&second, (&a.0, &a.1), "alice").await, sub);
    second.stop().await;
    // …and so does a node started after every other stopped.
    app.stop().await;
    let again = portcullis_tests::spawn_app_on(&url, guard).await;
    assert_eq!(sub_for(&again, (&a.0, &a.1), "alice").await, sub);
    assert_eq!(
        sub_for(&again, (&other_sector.0, &other_sector.1), "alice").await,
        elsewhere
    );
    again.stop().await;
}

/// OIDC Core §3.1.2.1 and §5.5.1: an `id_token_hint` and a `claims` `sub` value are in
/// the client's terms; a hint another client got is taken only where both see people
/// alike.
async fn hints_are_read_in_the_clients_terms(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    app.user("lee", PASSWORD).await;
    let a = client(&app, "pairwise", None).await;
    let same_sector = client(&app, "pairwise", None).await;
    let public = client(&app, "public", None).await;
    let id_token = |tokens: Value| tokens["id_token"].as_str().unwrap().to_owned();
    let kim_hint = id_token(obtain_tokens_with(&app, (&a.0, &a.1), "kim", "openid", &[]).await);
    let lee_hint = id_token(obtain_tokens_with(&app, (&a.0, &a.1), "lee", "openid", &[]).await);
    let public_hint = id_token(obtain_tokens_with(&app, (&public.0, &public.1), "kim", "openid", &[]).await);
    let b = browser();
    sign_in(&app, &b, &a.0, "kim").await;
    sign_in(&app, &b, &same_sector.0, "kim").await;
    sign_in(&app, &b, &public.0, "kim").await;

    assert_eq!(
        prompt_none_error(&app, &b, &a.0, &[("id_token_hint", kim_hint.as_str())]).await,
        None,
        "the signed-in person's pairwise hint"
    );
    assert_eq!(
        prompt_none_error(&app, &b, &a.0, &[("id_token_hint", lee_hint.as_str())])
            .await
            .as_deref(),
        Some("login_required"),
        "someone else's"
    );
    assert_eq!(
        prompt_none_error(&app, &b, &same_sector.0, &[("id_token_hint", kim_hint.as_str())]).await,
        None,
        "a hint from a client of the same sector names the same person"
    );
    assert_eq!(
        prompt_none_error(&app, &b, &public.0, &[("id_token_hint", public_hint.as_str())]).await,
        None,
        "public clients are unchanged"
    );
    for (at, hint) in [(&a.0, &public_hint), (&public.0, &kim_hint)] {
        assert_eq!(
            prompt_none_error(&app, &b, at, &[("id_token_hint", hint.as_str())])
                .await
                .as_deref(),
            Some("invalid_request"),
            "a hint from a client that sees people otherwise cannot be read"
        );
    }

    // A `sub` asked for in `claims` is the client's identifier of the person too.
    let kim_sub = jwt_claims(&kim_hint)["sub"].as_str().unwrap().to_owned();
    let claims = |sub: &str| json!({"id_token": {"sub": {"value": sub}}}).to_string();
    assert_eq!(
        prompt_none_error(&app, &b, &a.0, &[("claims", claims(&kim_sub).as_str())]).await,
        None
    );
    assert_eq!(
        prompt_none_error(&app, &b, &a.0, &[("claims", claims(&kim.id.to_string()).as_str())])
            .await
            .as_deref(),
        Some("login_required"),
        "the public identifier is not this client's name for anyone"
    );

    // RP-Initiated Logout §2: the hint of the signed-in person is not taken for someone
    // else's, and another person's still is.
    for (hint, other) in [(&kim_hint, false), (&lee_hint, true)] {
        let mut lo = Url::parse(&app.url("/logout")).unwrap();
        lo.query_pairs_mut().append_pair("id_token_hint", hint);
        let r = b.get(lo).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert_eq!(html.contains("id=\"other-account\""), other, "{html}");
        assert!(!html.contains("id=\"unverified\""), "{html}");
    }
    app.stop().await;
}

/// The admin API: pairwise on creation, kept by edits that do not name it, its sector
/// kept when the redirect URIs move, changed only when named; what cannot be a sector
/// is refused with its field.
async fn the_admin_api_sets_and_keeps_the_sector(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let base = json!({
        "name": "Pairwise app",
        "kind": "confidential",
        "redirect_uris": ["https://app.example/cb", "https://app.example./other"],
        "grant_types": ["authorization_code"],
        "scopes": "openid",
        "subject_type": "pairwise",
    });
    let (s, created) = api.post("/clients", base.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["subject_type"], "pairwise");
    assert_eq!(created["sector_identifier"], "app.example", "the one host");
    let path = format!("/clients/{}", created["client_id"].as_str().unwrap());
    // Redirects moved: the identifiers it has handed out stay valid.
    let (s, v) = api
        .patch(&path, json!({"redirect_uris": ["https://moved.example/cb"]}))
        .await;
    assert_eq!(
        (s.as_u16(), &v["sector_identifier"]),
        (200, &json!("app.example")),
        "{v}"
    );
    // A PUT that does not name the sector keeps it too.
    let mut put = base.clone();
    put["redirect_uris"] = json!(["https://moved.example/cb"]);
    let (s, v) = api.put(&path, put).await;
    assert_eq!(
        (s.as_u16(), &v["sector_identifier"]),
        (200, &json!("app.example")),
        "{v}"
    );
    // Named, it changes; public drops it.
    let (_, v) = api.patch(&path, json!({"sector_identifier": "moved.example"})).await;
    assert_eq!(v["sector_identifier"], "moved.example");
    let (_, v) = api.patch(&path, json!({"subject_type": "public"})).await;
    assert_eq!(
        (&v["subject_type"], &v["sector_identifier"]),
        (&json!("public"), &Value::Null)
    );
    assert_eq!(api.get(&path).await.1, v, "as stored");
    app.core.audit.flush().await;
    let edits = app.audit_events("admin.client.updated").await;
    let sector_edits = edits
        .iter()
        .filter(|e| {
            e.detail["changed"]
                .as_array()
                .unwrap()
                .contains(&json!("pairwise_sector"))
        })
        .count();
    assert_eq!(sector_edits, 2, "{edits:?}");

    // Refusals name their field, and nothing is stored.
    let before = api.get("/clients").await.1;
    for (change, field) in [
        (json!({"subject_type": "secret"}), "subject_type"),
        (
            json!({"sector_identifier": "https://app.example/"}),
            "sector_identifier",
        ),
        (json!({"sector_identifier": "app example"}), "sector_identifier"),
        (
            json!({"redirect_uris": ["https://one.example/cb", "https://two.example/cb"]}),
            "sector_identifier",
        ),
        // A loopback redirect beside a host is another host (whoever runs it would see
        // the host's identifiers).
        (
            json!({"redirect_uris": ["https://app.example/cb", "http://127.0.0.1:8080/cb"]}),
            "sector_identifier",
        ),
    ] {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_field(&api.post("/clients", body).await, field);
    }
    assert_eq!(api.get("/clients").await.1, before);
    // Without a host of its own (loopback and private-use redirects only), a client is a
    // sector by itself.
    let mut alone = base.clone();
    alone["redirect_uris"] = json!(["http://127.0.0.1:9000/cb", "com.example.app:/cb"]);
    let (_, v) = api.post("/clients", alone).await;
    assert_eq!(v["sector_identifier"], v["client_id"]);
    app.stop().await;
}

/// RFC 7591 with OIDC Registration §2 `subject_type`: without a `sector_identifier_uri`,
/// a self-registered pairwise client's sector is its redirect URIs' host, always (it
/// cannot keep a sector whose URIs it has left).
async fn a_registered_client_may_ask_for_pairwise_identifiers(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    let register = |body: Value| {
        let app = &app;
        async move { http().post(app.url("/register")).json(&body).send().await.unwrap() }
    };
    let r = register(json!({
        "redirect_uris": [REDIRECT],
        "subject_type": "pairwise",
        "scope": "openid offline_access",
        "grant_types": ["authorization_code", "refresh_token"],
    }))
    .await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["subject_type"], "pairwise");
    app.user("alice", PASSWORD).await;
    let secret = reg["client_secret"].as_str().unwrap();
    let before_move = obtain_tokens_with(
        &app,
        (reg["client_id"].as_str().unwrap(), secret),
        "alice",
        "openid offline_access",
        &[],
    )
    .await;
    let id = reg["client_id"].as_str().unwrap();
    let stored = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(id).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.pairwise_sector.as_deref(), Some("rp.example"));
    // Moving its redirect URIs moves its sector.
    let r = http()
        .put(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .json(&json!({
            "client_id": id,
            "redirect_uris": ["https://moved.example/cb"],
            "subject_type": "pairwise",
            "scope": "openid offline_access",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["subject_type"], "pairwise");
    let stored = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(id).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.pairwise_sector.as_deref(), Some("moved.example"));
    // Its grants of the old sector ended with the move: no refresh carries alice into
    // the new sector under its identifier there, and the old access token is refused.
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", before_move["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(before_move["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    for (body, says) in [
        (
            json!({"redirect_uris": [REDIRECT, "https://other.example/cb"], "subject_type": "pairwise"}),
            "several hosts",
        ),
        // A redirect the registrant can receive beside someone else's host would hand it
        // that host's identifiers.
        (
            json!({"redirect_uris": [REDIRECT, "http://127.0.0.1:5555/cb"], "subject_type": "pairwise"}),
            "several hosts",
        ),
        (
            json!({"redirect_uris": [REDIRECT, "com.attacker.app:/cb"], "subject_type": "pairwise"}),
            "several hosts",
        ),
        // A private-use scheme's authority is not a host the client holds.
        (
            json!({"redirect_uris": [REDIRECT, "com.attacker.app://rp.example/cb"], "subject_type": "pairwise"}),
            "several hosts",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "subject_type": "ephemeral"}),
            "subject_type",
        ),
    ] {
        let r = register(body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_client_metadata", "{e}");
        assert!(e["error_description"].as_str().unwrap().contains(says), "{e}");
    }
    let public = register(json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(public.json::<Value>().await.unwrap()["subject_type"], "public");
    // Its tokens reach a device-grant client without a redirect: the hosts it lists prove
    // nothing, so it is a sector by itself; so is a client whose only redirect is a
    // private-use scheme naming someone's host.
    for body in [
        json!({
            "subject_type": "pairwise",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
            "token_endpoint_auth_method": "none",
        }),
        json!({
            "subject_type": "pairwise",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": [],
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        }),
        json!({"subject_type": "pairwise", "redirect_uris": ["com.attacker.app://rp.example/cb"], "token_endpoint_auth_method": "none"}),
    ] {
        let r = register(body.clone()).await;
        assert_eq!(r.status(), 201, "{body}");
        let id = r.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let stored = app
            .core
            .get_client(&portcullis_protocol::ClientId::parse(&id).unwrap())
            .await
            .unwrap();
        assert_eq!(stored.pairwise_sector.as_deref(), Some(id.as_str()), "{body}");
    }
    app.stop().await;
}

/// Serves the lists of redirect URIs a `sector_identifier_uri` names: `/{name}` answers
/// what `lists` holds for it (status and body), 404 otherwise. The base URL.
async fn list_host(lists: Vec<(&'static str, u16, String)>) -> String {
    let lists = Arc::new(lists);
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(async move |axum::extract::Path(name): axum::extract::Path<String>| {
            match lists.iter().find(|(n, _, _)| *n == name) {
                Some((_, status, body)) => (axum::http::StatusCode::from_u16(*status).unwrap(), body.clone()),
                None => (axum::http::StatusCode::NOT_FOUND, String::new()),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// OIDC Core §8.1 and Registration §2: a client that registers itself with a
/// `sector_identifier_uri` (read at a public address: loopback stands in for one here,
/// allowed by `outbound_allowed_networks`) whose JSON array lists each of its redirect
/// URIs is pairwise in that URL's host, so clients of other hosts on the same list see a
/// person alike, and one host's clients do not. A list that leaves a redirect URI out,
/// is no array, is not there, or sits at an address not allowed, is refused; so is a
/// list for a client that gets tokens without a redirect.
async fn a_sector_identifier_uri_gathers_the_hosts_it_lists(backend: Backend) {
    const OTHER: &str = "https://other.example/cb";
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let host = list_host(vec![
        (
            "sectors.json",
            200,
            json!([REDIRECT, OTHER, "com.rp.app:/cb", "http://127.0.0.1:5555/cb"]).to_string(),
        ),
        ("short.json", 200, json!([REDIRECT]).to_string()),
        (
            "object.json",
            200,
            json!({"redirect_uris": [REDIRECT, OTHER]}).to_string(),
        ),
        ("broken.json", 500, json!([REDIRECT, OTHER]).to_string()),
    ])
    .await;
    let register = |body: Value| {
        let app = &app;
        async move {
            let r = http().post(app.url("/register")).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let listed = |redirects: &[&str], list: &str| {
        json!({
            "redirect_uris": redirects,
            "subject_type": "pairwise",
            "sector_identifier_uri": format!("{host}/{list}"),
        })
    };
    let (status, one) = register(listed(&[REDIRECT], "sectors.json")).await;
    assert_eq!(status, 201, "{one}");
    assert_eq!(one["sector_identifier_uri"], format!("{host}/sectors.json"));
    assert_eq!(one["subject_type"], "pairwise");
    // Two hosts: one sector, as the list vouches for both.
    let (status, both) = register(listed(&[REDIRECT, OTHER], "sectors.json")).await;
    assert_eq!(status, 201, "{both}");
    let (status, alone) = register(json!({"redirect_uris": [REDIRECT], "subject_type": "pairwise"})).await;
    assert_eq!(status, 201, "{alone}");
    for reg in [&one, &both] {
        let stored = app
            .core
            .get_client(&portcullis_protocol::ClientId::parse(reg["client_id"].as_str().unwrap()).unwrap())
            .await
            .unwrap();
        assert_eq!(stored.pairwise_sector.as_deref(), Some("127.0.0.1"));
    }
    let alice = app.user("alice", PASSWORD).await;
    let creds = |reg: &Value| {
        (
            reg["client_id"].as_str().unwrap().to_owned(),
            reg["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let sub = async |reg: &Value| {
        let (id, secret) = creds(reg);
        sub_for(&app, (&id, &secret), "alice").await
    };
    let (sub_one, sub_both, sub_alone) = (sub(&one).await, sub(&both).await, sub(&alone).await);
    assert_eq!(sub_one, sub_both, "one sector");
    assert_ne!(sub_one, sub_alone, "the redirect host's own sector is another");
    assert_ne!(sub_one, alice.id.to_string());
    // Read again on a replacement (RFC 7592), which keeps the sector and so the grants.
    let (id, _) = creds(&both);
    let r = http()
        .put(both["registration_client_uri"].as_str().unwrap())
        .bearer_auth(both["registration_access_token"].as_str().unwrap())
        .json(&{
            let mut body = listed(&[REDIRECT, OTHER], "sectors.json");
            body["client_id"] = json!(id);
            body
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["sector_identifier_uri"],
        format!("{host}/sectors.json")
    );

    let refusals = [
        (
            listed(&[REDIRECT, OTHER], "short.json"),
            "does not list the redirect URI https://other.example/cb",
        ),
        (listed(&[REDIRECT], "object.json"), "not a JSON array"),
        (listed(&[REDIRECT], "broken.json"), "answered 500"),
        // Listed, but anybody's app could receive them: no sector of a host's.
        (
            listed(&[REDIRECT, "com.rp.app:/cb"], "sectors.json"),
            "no loopback or private-use redirects",
        ),
        (
            listed(&[REDIRECT, "http://127.0.0.1:5555/cb"], "sectors.json"),
            "no loopback or private-use redirects",
        ),
        // Why not is not told: nothing of what is where in the server's network.
        (
            {
                let mut body = listed(&[REDIRECT], "sectors.json");
                body["sector_identifier_uri"] = json!("http://127.0.0.1:1/sectors.json");
                body
            },
            "sector_identifier_uri could not be read (no answer from a public address, not within 5 s, or over 64 KiB; the server's log says which)",
        ),
        (listed(&[REDIRECT], "missing.json"), "answered 404"),
        (
            {
                let mut body = listed(&[REDIRECT], "sectors.json");
                body["sector_identifier_uri"] =
                    json!(format!("{}/sectors.json", host.replace("127.0.0.1", "127.0.0.2")));
                body
            },
            "127.0.0.2 is not a public address",
        ),
        (
            {
                let mut body = listed(&[REDIRECT], "sectors.json");
                body["grant_types"] = json!(["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]);
                body["token_endpoint_auth_method"] = json!("none");
                body
            },
            "no device grant",
        ),
        (
            {
                let mut body = listed(&[REDIRECT], "sectors.json");
                body["sector_identifier_uri"] = json!("ftp://rp.example/sectors.json");
                body
            },
            "sector_identifier_uri",
        ),
    ];
    for (body, says) in refusals {
        let (status, e) = register(body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(e["error"], "invalid_client_metadata", "{e}");
        let description = e["error_description"].as_str().unwrap();
        assert!(description.contains(says), "{says}: {e}");
        assert!(!description.contains("connect"), "{e}");
    }
    app.stop().await;
}

both_backends!(
    a_sector_identifier_uri_gathers_the_hosts_it_lists,
    a_pairwise_client_sees_people_under_its_sector_identifier,
    hints_are_read_in_the_clients_terms,
    the_admin_api_sets_and_keeps_the_sector,
    a_registered_client_may_ask_for_pairwise_identifiers,
);
