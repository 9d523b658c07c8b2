//! Clients that find this server from an API: an MCP client registers itself and gets a
//! token for its server (RFC 9728 protected resource metadata, RFC 8707 resource
//! indicators), and a client goes from an API's challenge to a call.

use crate::code_flow::{PASSWORD, REDIRECT};
use crate::forms::{Step, param};
use crate::registration::{challenge, register};
use portcullis_core::registration::RegistrationMode;
use portcullis_tests::{Backend, both_backends, browser, http};
use serde_json::{Value, json};
use url::Url;

/// An MCP client as the Model Context Protocol has it: it registers as a public client
/// with a loopback redirect URI, and asks for a token to the MCP server with `resource`
/// (RFC 8707), one of `registration_resources`; the access token is for that server.
/// Once the server leaves `registration_resources`, such clients lose it.
async fn an_mcp_client_gets_a_token_for_its_server(backend: Backend) {
    const MCP: &str = "https://mcp.example/mcp";
    const LOOPBACK: &str = "http://127.0.0.1:33418/callback";
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = portcullis_tests::spawn_with(&url, guard.clone(), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_resources = vec![MCP.to_owned()];
    })
    .await;
    app.user("alice", PASSWORD).await;
    let (status, registered) = register(
        &app,
        &json!({
            "client_name": "Some MCP client",
            "redirect_uris": [LOOPBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let id = registered["client_id"].as_str().unwrap();
    let verifier = "mcp-verifier-".repeat(4);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let authorize = |resource: &str| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", id)
            // Another port than registered: RFC 8252 §7.3.
            .append_pair("redirect_uri", "http://127.0.0.1:50123/callback")
            .append_pair("scope", "openid offline_access")
            .append_pair("state", "st")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource);
        u
    };
    // Another API is refused (shown first: the client registered itself).
    let r = browser()
        .get(authorize("https://other.example/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<code>invalid_target</code>"));

    let b = browser();
    let step = crate::code_flow::authorize_in_browser(&b, &app, &authorize(MCP), "alice", "allow").await;
    let Step::LeftIssuer(back) = step else {
        panic!("expected the redirect back")
    };
    let code = param(&back, "code").unwrap();
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:50123/callback"),
            ("code_verifier", &verifier),
            ("resource", MCP),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], MCP, "{claims}");
    assert_eq!(claims["client_id"], id, "{claims}");
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("resource", MCP),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();

    // Another client registers the same way; an operator takes it over (any edit).
    let (_, taken) = register(
        &app,
        &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let taken_id = taken["client_id"].as_str().unwrap().to_owned();
    let api = crate::admin_support::Api::new(
        &app,
        &crate::admin_support::api_key(&app, portcullis_core::model::AdminRole::Admin)
            .await
            .1,
    );
    let (s, v) = api
        .patch(&format!("/clients/{taken_id}"), json!({"name": "Taken over"}))
        .await;
    assert_eq!(s, 200, "{v}");
    app.stop().await;

    // The server is no longer in registration_resources: clients that registered
    // themselves lose it (a refresh for it, a new sign-in for it); one an operator took
    // over keeps what it has.
    let app = portcullis_tests::spawn_with(&url, guard, |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_resources = Vec::new();
    })
    .await;
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("refresh_token", refreshed["refresh_token"].as_str().unwrap()),
            ("resource", MCP),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_target");
    let authorize = |client: &str| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", LOOPBACK)
            .append_pair("scope", "openid")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", MCP);
        u
    };
    let r = browser().get(authorize(id)).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("<code>invalid_target</code>"));
    let r = browser().get(authorize(&taken_id)).send().await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "the taken-over client keeps the API: on to the login page"
    );
    assert!(r.headers()["location"].to_str().unwrap().contains("/login"));
    app.stop().await;
}

/// The whole chain an MCP client follows, against an API protected with
/// `portcullis-resource`: the API's `401` names its protected resource metadata (RFC
/// 9728), which names Portcullis; discovery names `/register`; the client registers,
/// signs alice in with `resource` set to the API, and calls it with the token.
async fn from_an_api_challenge_to_a_call(backend: Backend) {
    use portcullis_resource::{JwksValidator, ProtectedResourceMetadata, VerifiedClaims};
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let resource = format!("{api}/mcp");
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_resources = vec![resource.clone()];
    })
    .await;
    let alice = app.user("alice", PASSWORD).await;
    let metadata = ProtectedResourceMetadata::new(resource.clone(), app.issuer.clone()).scopes(["openid"]);
    let validator = JwksValidator::builder(app.issuer.clone())
        .audience(resource.clone())
        .resource_metadata(metadata.url().unwrap())
        .build()
        .await
        .unwrap();
    let router = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::get(|claims: VerifiedClaims| async move { claims.subject }),
        )
        .with_state(validator)
        .merge(metadata.router().unwrap());
    let server = tokio::spawn(async move { axum::serve(api_listener, router).await });

    // 1. The API's challenge names its metadata, which names the authorization server.
    let r = http().get(&resource).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let first = challenge(&r);
    let prm_url = format!("{api}/.well-known/oauth-protected-resource/mcp");
    assert!(first.contains(&format!(r#"resource_metadata="{prm_url}""#)), "{first}");
    let prm: Value = http().get(&prm_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], resource.as_str());
    let issuer = prm["authorization_servers"][0].as_str().unwrap();
    assert_eq!(issuer, app.issuer);
    // 2. RFC 8414 discovery names the registration endpoint.
    let meta: Value = http()
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = meta["registration_endpoint"].as_str().unwrap();
    // 3. Registration, then the code flow for the API.
    let r = http()
        .post(endpoint)
        .json(&json!({
            "client_name": "An MCP client",
            "redirect_uris": ["http://127.0.0.1:40000/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let client: Value = r.json().await.unwrap();
    let id = client["client_id"].as_str().unwrap();
    let verifier = "chain-verifier-".repeat(4);
    let pkce = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let mut authorize = Url::parse(meta["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", "http://127.0.0.1:40000/callback")
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("code_challenge", &pkce)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &resource);
    let b = browser();
    let Step::LeftIssuer(back) = crate::code_flow::authorize_in_browser(&b, &app, &authorize, "alice", "allow").await
    else {
        panic!("expected the redirect back")
    };
    let tokens: Value = http()
        .post(meta["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("code", &param(&back, "code").unwrap()),
            ("redirect_uri", "http://127.0.0.1:40000/callback"),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    // 4. The API takes it.
    let r = http().get(&resource).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), alice.id.to_string());
    // A token for another audience (the issuer's, without `resource`) is refused, the
    // challenge again naming the metadata.
    let (operator, secret) = app.confidential_client(REDIRECT).await;
    let other = crate::code_flow::obtain_tokens(&app, operator.id.as_str(), secret.expose(), "alice").await;
    let r = http()
        .get(&resource)
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let refused = challenge(&r);
    assert!(
        refused.contains("invalid_token") && refused.contains(&format!(r#"resource_metadata="{prm_url}""#)),
        "{refused}"
    );
    server.abort();
    app.stop().await;
}

both_backends!(
    an_mcp_client_gets_a_token_for_its_server,
    from_an_api_challenge_to_a_call,
);
