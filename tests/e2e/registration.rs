//! Dynamic client registration (RFC 7591) and its management (RFC 7592): a client
//! registered with the `openidconnect` crate signs a person in; its registration is read,
//! replaced and deleted with its registration access token; every refusal is in the
//! RFCs' format and stores nothing.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientRegistrationRequest, CoreGrantType, CoreProviderMetadata,
};
use openidconnect::registration::EmptyAdditionalClientMetadata;
use openidconnect::{
    AuthorizationCode, ClientName, CsrfToken, IssuerUrl, LocalizedClaim, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse,
};
use portcullis_core::registration::RegistrationMode;
use portcullis_core::throttle::{Bucket, RateLimit};
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app};
use serde_json::{Value, json};
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, rp_http_client};
use crate::forms::{Step, follow, param, submit};

pub(crate) async fn open_registration(backend: Backend) -> TestApp {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = RegistrationMode::Open;
        // Every test registers and manages from 127.0.0.1.
        s.core
            .defense
            .rate_limits
            .set(Bucket::RegisterIp, RateLimit::parse("600/h").unwrap());
    })
    .await
}

pub(crate) async fn register(app: &TestApp, metadata: &Value) -> (u16, Value) {
    let r = http().post(app.url("/register")).json(metadata).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 201 || status == 400 {
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `GET`, `PUT` or `DELETE` on the client's registration, with `token` as bearer.
pub(crate) async fn manage(
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut r = http().request(method, uri);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

pub(crate) fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Registered with the `openidconnect` crate from discovery, the client signs alice in
/// through the real pages: the consent page says it registered itself and where the
/// answer goes; the tokens verify.
async fn a_client_registers_and_signs_in(backend: Backend) {
    let app = open_registration(backend).await;
    app.user("alice", PASSWORD).await;
    let http_client = rp_http_client();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http_client)
        .await
        .unwrap();
    let endpoint = meta
        .registration_endpoint()
        .expect("registration_endpoint in discovery")
        .clone();
    assert_eq!(endpoint.as_str(), app.url("/register"));
    let mut name = LocalizedClaim::new();
    name.insert(None, ClientName::new("Notes for You".into()));
    let registered = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT.into()).unwrap()],
        EmptyAdditionalClientMetadata {},
    )
    .set_client_name(Some(name))
    .set_grant_types(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
    ]))
    .register_async(&endpoint, &http_client)
    .await
    .unwrap();
    let id = registered.client_id().clone();
    let secret = registered
        .client_secret()
        .expect("a secret for client_secret_basic")
        .clone();
    assert!(registered.registration_access_token().is_some());
    assert_eq!(
        registered.registration_client_uri().unwrap().as_str(),
        app.url(&format!("/register/{}", id.as_str()))
    );
    let stored = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(id.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.name, "Notes for You");
    assert!(!stored.first_party && stored.require_pkce && stored.resources.is_empty());
    app.core.audit.flush().await;
    let events = app.audit_events("client.registered").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].client_id.as_deref(), Some(id.as_str()));

    let rp = CoreClient::from_provider_metadata(meta, id.clone(), Some(secret.clone()))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .add_extra_param("prompt", "consent")
        .set_pkce_challenge(pkce)
        .url();
    let b = browser();
    let issuer = Url::parse(&app.issuer).unwrap();
    let resp = b.get(auth_url.clone()).send().await.unwrap();
    let Step::Page { url, html, .. } = follow(&b, &issuer, resp, auth_url.clone()).await else {
        panic!("expected the login page")
    };
    assert_eq!(url.path(), "/login");
    let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
    let Step::Page { url, html, .. } = follow(&b, &issuer, resp, url.clone()).await else {
        panic!("expected the consent page")
    };
    assert_eq!(url.path(), "/consent", "{html}");
    assert!(html.contains(r#"id="self-registered""#), "{html}");
    assert!(html.contains("<strong>rp.example</strong>"), "{html}");
    let resp = submit(&b, &url, &html, &[("decision", "allow")]).await;
    let Step::LeftIssuer(back) = follow(&b, &issuer, resp, url.clone()).await else {
        panic!("expected the redirect back")
    };
    assert_eq!(param(&back, "state").as_deref(), Some(csrf.secret().as_str()));
    let tokens = rp
        .exchange_code(AuthorizationCode::new(param(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.audiences()[0].as_str(), id.as_str());
    assert!(
        tokens.refresh_token().is_some(),
        "offline_access was registered and granted"
    );

    // An operator's client never shows the notice.
    let (client, operator_secret) = app.confidential_client(REDIRECT).await;
    let theirs = crate::code_flow::obtain_tokens(&app, client.id.as_str(), operator_secret.expose(), "alice").await;
    let theirs = theirs["access_token"].as_str().unwrap();

    // RFC 7662 §4: it introspects its own access tokens only; an operator's client
    // (a resource server) introspects both.
    let introspect = |who: (String, String), token: String| {
        let url = app.url("/introspect");
        async move {
            let r = http()
                .post(url)
                .basic_auth(who.0, Some(who.1))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["active"].as_bool().unwrap()
        }
    };
    let registered = (id.as_str().to_owned(), secret.secret().clone());
    let operator = (client.id.as_str().to_owned(), operator_secret.expose().to_owned());
    let own = tokens.access_token().secret().clone();
    assert!(introspect(registered.clone(), own.clone()).await);
    assert!(!introspect(registered, theirs.to_owned()).await);
    assert!(introspect(operator.clone(), own).await);
    assert!(introspect(operator, theirs.to_owned()).await);
    app.stop().await;
}

/// RFC 7592: read, replace and delete with the registration access token; every wrong
/// token (or none, or another client's) is a 401 that tells nothing.
async fn a_client_manages_its_registration(backend: Backend) {
    let app = open_registration(backend).await;
    let (status, first) = register(
        &app,
        &json!({
            "client_name": "First",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email",
            "contacts": ["ops@rp.example"],
            "software_id": "ignored",
            "token_endpoint_auth_signing_alg": "ES256",
            "tos_uri": "https://rp.example/terms",
        }),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    // OIDC Registration §2: kept, echoed, and linked on the consent page (the consent
    // page test shows the link).
    assert_eq!(first["tos_uri"], "https://rp.example/terms");
    assert_eq!(first["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(first["scope"], "email openid");
    assert_eq!(first["response_types"], json!(["code"]));
    assert_eq!(first["client_secret_expires_at"], 0);
    assert!(
        first.get("contacts").is_none(),
        "what is not kept is not echoed: {first}"
    );
    assert!(first.get("token_endpoint_auth_signing_alg").is_none(), "{first}");
    let id = first["client_id"].as_str().unwrap();
    let uri = first["registration_client_uri"].as_str().unwrap();
    let secret = first["client_secret"].as_str().unwrap();
    let (_, second) = register(&app, &json!({"redirect_uris": [REDIRECT]})).await;
    let other_token = second["registration_access_token"].as_str().unwrap().to_owned();
    assert_eq!(second["client_name"], "Unnamed application");

    // A read answers with a new token (RFC 7592 §3); the one used is spent.
    let spent = first["registration_access_token"].as_str().unwrap().to_owned();
    // A HEAD would spend it and drop its successor with the body: refused, and the token
    // still works. Other methods the endpoints do not take are JSON errors too.
    let r = manage(reqwest::Method::HEAD, uri, Some(&spent), None).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, PUT, DELETE");
    for (method, url, allow) in [
        (reqwest::Method::POST, uri.to_owned(), "GET, PUT, DELETE"),
        (reqwest::Method::PATCH, uri.to_owned(), "GET, PUT, DELETE"),
        (reqwest::Method::PATCH, app.url("/register"), "POST"),
        (reqwest::Method::GET, app.url("/token"), "POST"),
        (reqwest::Method::PUT, app.url("/introspect"), "POST"),
    ] {
        let r = manage(method.clone(), &url, Some(&spent), None).await;
        assert_eq!(r.status(), 405, "{method} {url}");
        assert_eq!(r.headers()["allow"], allow, "{method} {url}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{method} {url}: {body}");
    }
    let r = manage(reqwest::Method::GET, uri, Some(&spent), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["client_id"], id);
    assert_eq!(read["client_name"], "First");
    assert_eq!(read["tos_uri"], "https://rp.example/terms");
    assert!(read.get("client_secret").is_none());
    let mut token = read["registration_access_token"].as_str().unwrap().to_owned();
    assert_ne!(token, spent);
    assert_eq!(
        manage(reqwest::Method::GET, uri, Some(&spent), None).await.status(),
        401
    );

    for (label, t) in [
        ("another client's", Some(other_token.as_str())),
        ("wrong", Some("nope")),
        ("none", None),
    ] {
        let r = manage(reqwest::Method::GET, uri, t, None).await;
        assert_eq!(r.status(), 401, "{label}");
        let c = challenge(&r);
        assert!(c.starts_with("Bearer"), "{label}: {c}");
        assert_eq!(c.contains("invalid_token"), t.is_some(), "{label}: {c}");
        assert!(!c.contains("DPoP"), "{label}: {c}");
    }
    // RFC 6750 §3.1: another scheme is no credentials; a Bearer without a token is
    // malformed.
    let r = http()
        .get(uri)
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), r#"Bearer realm="portcullis""#);
    let r = http().get(uri).header("authorization", "Bearer ").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        challenge(&r).contains(r#"error="invalid_request""#),
        "{}",
        challenge(&r)
    );
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // An operator's client has no registration to manage, whatever the token.
    let (operator_client, _) = app.confidential_client(REDIRECT).await;
    let r = manage(
        reqwest::Method::GET,
        &app.url(&format!("/register/{}", operator_client.id.as_str())),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = manage(
        reqwest::Method::GET,
        &app.url("/register/no-such-client"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status(), 401);

    let replaced = json!({
        "client_id": id,
        "client_secret": secret,
        "client_name": "Renamed",
        "redirect_uris": [REDIRECT, "https://rp.example/second"],
        "grant_types": ["authorization_code"],
        "scope": "openid",
    });
    let r = manage(reqwest::Method::PUT, uri, Some(&token), Some(&replaced)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["client_name"], "Renamed");
    assert_eq!(body["redirect_uris"], json!([REDIRECT, "https://rp.example/second"]));
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert!(body.get("client_secret").is_none(), "the secret stays as it was");
    let renewed = body["registration_access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        manage(reqwest::Method::GET, uri, Some(&token), None).await.status(),
        401
    );
    token = renewed;
    let client_id = portcullis_protocol::ClientId::parse(id).unwrap();
    assert_eq!(
        app.core.get_client(&client_id).await.unwrap().scopes.as_string(),
        "openid"
    );
    let (s, _) = app.client_credentials(id, secret).await;
    assert_eq!(
        s, 400,
        "the secret still authenticates (client_credentials is simply not its grant)"
    );

    // Refused replacements change nothing, and leave the token as it was.
    let mut without_id = replaced.clone();
    without_id.as_object_mut().unwrap().remove("client_id");
    let mut wrong_secret = replaced.clone();
    wrong_secret["client_secret"] = json!("guessed");
    let mut to_public = replaced.clone();
    to_public["token_endpoint_auth_method"] = json!("none");
    let mut bad_uri = replaced.clone();
    bad_uri["redirect_uris"] = json!(["http://rp.example/cb"]);
    for (label, body, code) in [
        ("no client_id", &without_id, "invalid_request"),
        ("a wrong secret", &wrong_secret, "invalid_request"),
        ("a change of kind", &to_public, "invalid_client_metadata"),
        ("an http redirect URI", &bad_uri, "invalid_redirect_uri"),
    ] {
        let r = manage(reqwest::Method::PUT, uri, Some(&token), Some(body)).await;
        assert_eq!(r.status(), 400, "{label}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{label}: {e}");
    }
    let r = manage(reqwest::Method::PUT, uri, Some(&other_token), Some(&replaced)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.core.get_client(&client_id).await.unwrap().name, "Renamed");
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("client.registration_updated").await.len(), 1);

    // Disabled by an operator: 403, nothing changes; enabled again, it is back.
    app.core.set_client_disabled(&client_id, true, "ops").await.unwrap();
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let body = (method == reqwest::Method::PUT).then_some(&replaced);
        let r = manage(method.clone(), uri, Some(&token), body).await;
        assert_eq!(r.status(), 403, "{method}");
    }
    app.core.set_client_disabled(&client_id, false, "ops").await.unwrap();
    let r = manage(reqwest::Method::GET, uri, Some(&token), None).await;
    assert_eq!(r.status(), 200);
    token = r.json::<Value>().await.unwrap()["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // An operator's edit, even a narrower one, takes the registration over: the token
    // ends, so a PUT cannot undo it; the client stays marked as self-registered.
    let narrower = portcullis_core::clients::ClientInput {
        name: "Renamed".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".into()],
        scopes: "openid".into(),
        ..Default::default()
    };
    app.core.update_client(&client_id, &narrower, "ops").await.unwrap();
    let taken = app.core.get_client(&client_id).await.unwrap();
    assert!(taken.registration_token_hash.is_none() && taken.self_registered);
    assert_eq!(
        manage(reqwest::Method::GET, uri, Some(&token), None).await.status(),
        401
    );

    // The second deletes itself.
    let second_uri = second["registration_client_uri"].as_str().unwrap();
    let second_id = second["client_id"].as_str().unwrap();
    let second_secret = second["client_secret"].as_str().unwrap();
    let r = manage(reqwest::Method::DELETE, second_uri, Some(&token), None).await;
    assert_eq!(r.status(), 401);
    let r = manage(reqwest::Method::DELETE, second_uri, Some(&other_token), None).await;
    assert_eq!(r.status(), 204);
    let r = manage(reqwest::Method::GET, second_uri, Some(&other_token), None).await;
    assert_eq!(r.status(), 401, "gone, and its token with it");
    let r = http()
        .post(app.url("/token"))
        .basic_auth(second_id, Some(second_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "its secret no longer authenticates");
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("client.registration_deleted").await.len(), 1);
    app.stop().await;
}

/// Refusals: the RFC 7591 §3.2.2 codes, and nothing stored.
async fn bad_registrations_are_refused(backend: Backend) {
    let app = open_registration(backend).await;
    let cases = [
        (
            json!({"grant_types": ["client_credentials"], "response_types": []}),
            "invalid_client_metadata",
            "client_credentials",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "scope": "openid admin"}),
            "invalid_client_metadata",
            "admin",
        ),
        (
            json!({"redirect_uris": ["http://rp.example/cb"]}),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb#frag"]}),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        // Not written as RFC 3986 has it: the browser would go to another string.
        (
            json!({"redirect_uris": ["https://rp.example/<cb>"]}),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/%zz"]}),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            json!({"client_name": "no redirect"}),
            "invalid_redirect_uri",
            "redirect URI",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "jwks",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "response_types": ["code id_token"]}),
            "invalid_client_metadata",
            "response type",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "HS256"}),
            "invalid_client_metadata",
            "id_token_signed_response_alg",
        ),
        // No address inside the server's network for the server to call (`outbound`).
        (
            json!({"redirect_uris": [REDIRECT], "jwks_uri": "https://127.0.0.1/jwks", "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "jwks_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "backchannel_logout_uri": "https://10.0.0.1/logout"}),
            "invalid_client_metadata",
            "backchannel_logout_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": "a\u{202e}b"}),
            "invalid_client_metadata",
            "client_name",
        ),
        (json!("just a string"), "invalid_client_metadata", "object"),
    ];
    for (metadata, code, words) in cases {
        let (status, body) = register(&app, &metadata).await;
        assert_eq!(status, 400, "{metadata}: {body}");
        assert_eq!(body["error"], code, "{metadata}: {body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(words),
            "{metadata}: {body}"
        );
    }
    let r = http()
        .post(app.url("/register"))
        .header("content-type", "text/plain")
        .body(r#"{"redirect_uris": ["https://rp.example/callback"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = http()
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
    // A member named twice: which one counts would be a guess (abuse review).
    let r = http()
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body(r#"{"redirect_uris": ["https://a.example/cb"], "redirect_uris": ["https://b.example/cb"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.json::<Value>().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"].as_str().unwrap().contains("redirect_uris"),
        "{body}"
    );
    let r = http()
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a body over 64 KiB");
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    // A public client (PKCE, no secret) and a device-only client register.
    let (status, public) = register(
        &app,
        &json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{public}");
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["token_endpoint_auth_method"], "none");
    let (status, device) = register(
        &app,
        &json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{device}");
    assert_eq!(device["response_types"], json!([]));
    app.stop().await;
}

/// `rate_limit_register` counts registrations per address.
async fn registrations_are_rate_limited(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core
            .defense
            .rate_limits
            .set(Bucket::RegisterIp, RateLimit::parse("2/h").unwrap());
    })
    .await;
    let metadata = json!({"redirect_uris": [REDIRECT]});
    for _ in 0..2 {
        assert_eq!(register(&app, &metadata).await.0, 201);
    }
    let r = http().post(app.url("/register")).json(&metadata).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.core.list_clients(None).await.unwrap().len(), 2);
    app.stop().await;
}

/// Off by default: no endpoint, nothing in discovery.
async fn registration_is_off_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
    let r = http()
        .post(app.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(app.core.list_clients(None).await.unwrap().is_empty());
    app.stop().await;
}

/// `registration_unused_client_days`: the periodic cleanup deletes self-registered
/// clients that hold no grant once they are that old; one someone signed in with, and
/// an operator's, stay.
async fn unused_registrations_are_forgotten(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = RegistrationMode::Open;
        s.core.registration_unused_client_days = 10;
    })
    .await;
    app.user("alice", PASSWORD).await;
    let mut ids = Vec::new();
    for name in ["unused", "used"] {
        let (status, body) = register(&app, &json!({"client_name": name, "redirect_uris": [REDIRECT]})).await;
        assert_eq!(status, 201, "{body}");
        ids.push((
            body["client_id"].as_str().unwrap().to_owned(),
            body["client_secret"].as_str().unwrap().to_owned(),
        ));
    }
    let tokens = crate::code_flow::obtain_tokens(&app, &ids[1].0, &ids[1].1, "alice").await;
    assert!(tokens["refresh_token"].is_string() || tokens["access_token"].is_string());
    let (operator, _) = app.confidential_client(REDIRECT).await;
    let get = |id: &str| {
        let core = std::sync::Arc::clone(&app.core);
        let id = portcullis_protocol::ClientId::parse(id).unwrap();
        async move { core.get_client(&id).await.is_ok() }
    };
    // Not old enough yet.
    app.core.cleanup(app.core.now() + time::Duration::days(9)).await;
    assert!(get(&ids[0].0).await);
    app.core.cleanup(app.core.now() + time::Duration::days(11)).await;
    assert!(!get(&ids[0].0).await, "unused for ten days: deleted");
    assert!(get(&ids[1].0).await, "it holds a grant");
    assert!(get(operator.id.as_str()).await);
    app.core.audit.flush().await;
    let events = app.audit_events("client.registration_expired").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].client_id.as_deref(), Some(ids[0].0.as_str()));
    app.stop().await;
}

/// Two requests with one registration access token at once: one wins, the other gets a
/// `401` (or a `503` to retry, nothing written); an update answered with an error was not
/// made, and a token spent by a read deletes nothing.
async fn one_token_serves_one_request_at_a_time(backend: Backend) {
    let app = open_registration(backend).await;
    let (_, body) = register(
        &app,
        &json!({"client_name": "n0", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = body["client_id"].as_str().unwrap().to_owned();
    let uri = body["registration_client_uri"].as_str().unwrap().to_owned();
    let mut token = body["registration_access_token"].as_str().unwrap().to_owned();
    let client_id = portcullis_protocol::ClientId::parse(&id).unwrap();
    for round in 1..=8 {
        let name = format!("n{round}");
        let put = json!({"client_id": id, "client_name": name, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
        let (a, b) = tokio::join!(
            manage(reqwest::Method::PUT, &uri, Some(&token), Some(&put)),
            manage(reqwest::Method::GET, &uri, Some(&token), None),
        );
        let (a_status, b_status) = (a.status().as_u16(), b.status().as_u16());
        let (a, b): (Value, Value) = (a.json().await.unwrap_or_default(), b.json().await.unwrap_or_default());
        assert!(
            !(a_status == 200 && b_status == 200),
            "round {round}: both won: {a} {b}"
        );
        for (status, body) in [(a_status, &a), (b_status, &b)] {
            assert!([200, 401, 503].contains(&status), "round {round}: {status} {body}");
        }
        let stored = app.core.get_client(&client_id).await.unwrap().name;
        assert_eq!(
            stored == name,
            a_status == 200,
            "round {round}: PUT {a_status}, stored {stored}"
        );
        let winner = if a_status == 200 { &a } else { &b };
        if let Some(t) = winner["registration_access_token"].as_str() {
            token = t.to_owned();
        } else {
            // Neither won (both refused as busy): the token is still good.
            assert_eq!((a_status, b_status), (503, 503), "round {round}");
        }
    }
    // A read and a delete at once: never a new token for a deleted client.
    let (get, delete) = tokio::join!(
        manage(reqwest::Method::GET, &uri, Some(&token), None),
        manage(reqwest::Method::DELETE, &uri, Some(&token), None),
    );
    assert!(
        !(get.status() == 200 && delete.status() == 204),
        "both won: {} {}",
        get.status(),
        delete.status()
    );
    app.stop().await;
}

/// With open registration, anyone could register an origin, so CORS answers any origin
/// (`*`, no credentials): a browser-based client registers, signs in and calls from its
/// own page. (With registration off, only registered origins: `defense::pages`.)
async fn browser_clients_may_register_from_any_origin(backend: Backend) {
    let app = open_registration(backend).await;
    let preflight = |path: &str, method: &str| {
        http()
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "http://localhost:6274")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    for (path, method) in [
        ("/register", "POST"),
        ("/register/some-client", "PUT"),
        ("/register/some-client", "DELETE"),
        ("/token", "POST"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/jwks", "GET"),
    ] {
        let r = preflight(path, method).await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
        assert!(
            r.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains(method),
            "{path}"
        );
        assert!(!r.headers().contains_key("access-control-allow-credentials"), "{path}");
    }
    let r = http()
        .post(app.url("/register"))
        .header("origin", "http://localhost:6274")
        .json(&json!({"redirect_uris": ["http://localhost:6274/oauth/callback"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    app.stop().await;
}

both_backends!(
    browser_clients_may_register_from_any_origin,
    one_token_serves_one_request_at_a_time,
    unused_registrations_are_forgotten,
    a_client_registers_and_signs_in,
    a_client_manages_its_registration,
    bad_registrations_are_refused,
    registrations_are_rate_limited,
    registration_is_off_by_default,
);
