//! The token, revocation, introspection and userinfo endpoints: client credentials
//! with the `oauth2` crate, revocation, and every error the RFCs name (refresh tokens in
//! `refresh.rs`).

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_app};
use serde_json::Value;

use crate::code_flow::{PASSWORD, REDIRECT, alice_signed_in, obtain_tokens};

pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = http().post(app.url(path)).form(form);
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `POST /token` with `grant_type=refresh_token`, the client's Basic credentials and, if
/// given, a `scope`: the status and the JSON body.
pub(crate) async fn refresh_grant(
    app: &TestApp,
    (id, secret): (&str, &str),
    token: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend(scope.map(|s| ("scope", s)));
    let (status, _, body) = post_form(app, "/token", Some((id, secret)), &form).await;
    (status, body)
}

/// A `client_credentials` access token for the API `api` (RFC 8707 `resource`), from a
/// confidential client registered for it, named `name`.
pub(crate) async fn token_for_api(app: &TestApp, name: &str, api: &str) -> String {
    let (client, secret) = app
        .core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: name.into(),
                kind: Some(portcullis_core::model::ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "api:read".into(),
                resources: vec![api.into()],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let (status, _, body) = post_form(
        app,
        "/token",
        Some((client.id.as_str(), secret.unwrap().expose())),
        &[("grant_type", "client_credentials"), ("resource", api)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    post_form(app, "/introspect", Some((id, secret)), &[("token", token)])
        .await
        .2
}

async fn client_credentials_with_oauth2_crate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let http_client = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let oauth = BasicClient::new(ClientId::new(client.id.to_string()))
            .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
            .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
            .set_auth_type(auth_type.clone());
        let token = oauth
            .exchange_client_credentials()
            .add_scope(Scope::new("api:read".into()))
            .request_async(&http_client)
            .await
            .unwrap();
        assert_eq!(token.scopes().unwrap()[0].as_str(), "api:read");
        assert!(
            token.refresh_token().is_none(),
            "no refresh token for client_credentials"
        );
        assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(600)));
        let intro = introspect(&app, client.id.as_str(), secret.expose(), token.access_token().secret()).await;
        assert_eq!(intro["active"], true);
        assert_eq!(intro["client_id"], client.id.as_str());
        assert_eq!(intro["iss"], app.issuer);

        let wrong = BasicClient::new(ClientId::new(client.id.to_string()))
            .set_client_secret(ClientSecret::new("wrong".into()))
            .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
            .set_auth_type(auth_type);
        assert!(
            wrong
                .exchange_client_credentials()
                .request_async(&http_client)
                .await
                .is_err()
        );
    }
    // Without a scope: the client's non-OIDC scopes.
    let (s, h, body) = post_form(
        &app,
        "/token",
        Some((client.id.as_str(), secret.expose())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["scope"], "api:read api:write");
    assert_eq!(h["cache-control"], "no-store");
    app.stop().await;
}

async fn token_endpoint_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let public = app.public_client(REDIRECT).await;
    let (id, sec) = (client.id.as_str(), secret.expose());

    let (s, h, b) = post_form(
        &app,
        "/token",
        Some((id, "wrong-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(h["www-authenticate"], "Basic realm=\"portcullis\"");
    // An Authorization header of another scheme, or one that cannot be read, is said to
    // be so (not "no authentication").
    for (value, said) in [
        (
            reqwest::header::HeaderValue::from_static("Bearer abc"),
            "the Basic scheme",
        ),
        (reqwest::header::HeaderValue::from_static("Basic !!"), "malformed Basic"),
        (
            reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
            "not readable",
        ),
    ] {
        let r = http()
            .post(app.url("/token"))
            .header("authorization", value)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"], "invalid_client", "{b}");
        assert!(b["error_description"].as_str().unwrap().contains(said), "{b}");
    }
    // The audit trail says where the guess came from.
    app.core.audit.flush().await;
    let failed = app.audit_events("client.auth_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].ip.as_deref(), Some("127.0.0.1"));
    let (s, _, b) = post_form(
        &app,
        "/token",
        Some(("no-such-client", sec)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    let (s, h, b) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert!(h.get("www-authenticate").is_none(), "{h:?}");
    // RFC 6749 §5.2: the 401 and its `Basic` challenge are for a client that used the
    // Authorization header; credentials in the body that fail are a 400 without one.
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client")),
        "client_secret_post with a wrong secret"
    );
    let (s, _, b) = post_form(&app, "/token", None, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_client")),
        "no authentication"
    );
    let (s, _, b) = post_form(
        &app,
        "/token",
        Some((id, sec)),
        &[("grant_type", "password"), ("username", "x")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (s, _, b) = post_form(&app, "/token", Some((id, sec)), &[("scope", "x")]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_request")),
        "missing grant_type"
    );
    let (s, _, b) = post_form(
        &app,
        "/token",
        Some((id, sec)),
        &[("grant_type", "client_credentials"), ("scope", "api:admin")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));
    let (s, _, b) = post_form(
        &app,
        "/token",
        Some((id, sec)),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));
    // Malformed scopes are invalid_scope too (RFC 6749 §5.2: "invalid, unknown,
    // malformed"): a character outside RFC 6749 §3.3's set, and more values than we take.
    let many = (0..65).map(|i| format!("s{i}")).collect::<Vec<_>>().join(" ");
    for scope in ["api:read a\"b", many.as_str()] {
        let (s, _, b) = post_form(
            &app,
            "/token",
            Some((id, sec)),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")), "{scope}");
    }
    let (s, _, b) = post_form(&app, "/token", Some((id, sec)), &[("grant_type", "authorization_code")]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")), "missing code");
    assert_eq!(b["error_description"], "the code parameter is missing");
    for path in ["/revoke", "/introspect"] {
        let (s, _, b) = post_form(&app, path, Some((id, sec)), &[("token_type_hint", "access_token")]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")), "{path}");
        assert_eq!(b["error_description"], "the token parameter is missing", "{path}");
    }
    let (s, b) = redeem(&app, (id, sec), "made-up", &"a".repeat(43)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "unknown code");
    let (s, b) = refresh_grant(&app, (id, sec), "made-up", None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "unknown refresh token"
    );
    let (s, _, b) = post_form(
        &app,
        "/token",
        None,
        &[("grant_type", "client_credentials"), ("client_id", public.id.as_str())],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unauthorized_client")),
        "public client may not use client_credentials"
    );

    // Repeated parameters (RFC 6749 §3.2) and two authentication methods (§2.3).
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(sec))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _, b) = post_form(
        &app,
        "/token",
        Some((id, sec)),
        &[("grant_type", "client_credentials"), ("client_secret", sec)],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    // Credentials in the query string are refused.
    let r = http()
        .post(app.url(&format!("/token?client_secret={sec}")))
        .basic_auth(id, Some(sec))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // JSON bodies are not form bodies.
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(sec))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

/// The operator edits `client` (registered by `confidential_client`) to allow only
/// `scopes`, for the code and refresh grants.
pub(crate) async fn allow_only(app: &TestApp, client: &portcullis_core::model::Client, scopes: &str) {
    app.core
        .update_client(
            &client.id,
            &portcullis_core::clients::ClientInput {
                name: client.name.clone(),
                kind: Some(client.kind),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![format!("{REDIRECT}/logged-out")],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: scopes.into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
}

/// `POST /token` redeeming `code` (sent to `REDIRECT`) with its PKCE `verifier`.
async fn redeem(app: &TestApp, (id, secret): (&str, &str), code: &str, verifier: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    let (status, _, body) = post_form(app, "/token", Some((id, secret)), &form).await;
    (status, body)
}

/// The authorization request of `client` to `REDIRECT` with PKCE `challenge`, plus `extra`.
fn authorization_url(
    app: &TestApp,
    client: &portcullis_core::model::Client,
    challenge: &str,
    extra: &[(&str, &str)],
) -> url::Url {
    let mut auth = url::Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id.as_str())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    auth
}

/// Starts an authorization request of `client` (PKCE `challenge`, plus `extra`) in a fresh
/// browser and returns it at the login page, with the page's URL and HTML.
async fn login_page(
    app: &TestApp,
    client: &portcullis_core::model::Client,
    challenge: &str,
    extra: &[(&str, &str)],
) -> (reqwest::Client, url::Url, String) {
    let auth = authorization_url(app, client, challenge, extra);
    let issuer = url::Url::parse(&app.issuer).unwrap();
    let b = portcullis_tests::browser();
    let resp = b.get(auth.clone()).send().await.unwrap();
    match crate::forms::follow(&b, &issuer, resp, auth).await {
        crate::forms::Step::Page { url, html, .. } if url.path() == "/login" => (b, url, html),
        other => panic!("expected the login page, got {other:?}"),
    }
}

/// A server with a confidential client and alice, and a PKCE verifier with its challenge.
async fn app_with_alice(
    backend: Backend,
) -> (
    TestApp,
    portcullis_core::model::Client,
    portcullis_protocol::Secret,
    String,
    String,
) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let verifier = "v".repeat(43);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    (app, client, secret, verifier, challenge)
}

/// OIDC Core §3.1.2.1: scope values an OpenID request uses that this client may not
/// (`offline_access`, an unknown API scope) are ignored, not refused: the person is asked
/// only for the rest and the token response's `scope` says what was granted. A plain
/// OAuth 2.0 request with such a value still gets `invalid_scope`.
async fn an_openid_request_ignores_scopes_the_client_may_not_use(backend: Backend) {
    use crate::forms::{Step, follow, param, submit};
    let (app, client, secret, verifier, challenge) = app_with_alice(backend).await;
    let issuer = url::Url::parse(&app.issuer).unwrap();
    allow_only(&app, &client, "openid profile api:read").await;
    let (b, url, html) = login_page(
        &app,
        &client,
        &challenge,
        &[
            ("scope", "profile offline_access openid reports:export"),
            ("state", "s-1"),
        ],
    )
    .await;
    let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
    let mut step = follow(&b, &issuer, resp, url).await;
    if let Step::Page { url, html, .. } = &step {
        assert_eq!(url.path(), "/consent");
        assert!(html.contains("See your name and username"), "{html}");
        for dropped in ["offline_access", "reports:export", "Keep access"] {
            assert!(!html.contains(dropped), "the consent page does not ask for {dropped}");
        }
        let resp = submit(&b, url, html, &[("decision", "allow")]).await;
        step = follow(&b, &issuer, resp, url.clone()).await;
    }
    let Step::LeftIssuer(back) = step else {
        panic!("expected the redirect back, got {step:?}")
    };
    assert_eq!(param(&back, "state").as_deref(), Some("s-1"));
    let code = param(&back, "code").expect("a code, not an error");
    let (s, v) = redeem(&app, (client.id.as_str(), secret.expose()), &code, &verifier).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scope"], "openid profile");
    assert!(v["id_token"].is_string(), "{v}");

    // Without `openid` the same unknown value is refused, at the registered redirect URI.
    let auth = authorization_url(
        &app,
        &client,
        &challenge,
        &[("scope", "api:read reports:export"), ("state", "s-2")],
    );
    let r = http().get(auth).send().await.unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("s-2"));
    app.stop().await;
}

/// The consent page shows the client's logo, privacy policy and terms of service (https
/// only), and lets the browser load that one logo origin; without a logo the page loads
/// nothing else.
async fn the_consent_page_shows_the_clients_logo_and_policy(backend: Backend) {
    use crate::forms::{Step, follow, submit};
    let (app, client, _, _, challenge) = app_with_alice(backend).await;
    let input = |logo: Option<&str>, policy: Option<&str>| portcullis_core::clients::ClientInput {
        name: "Shop <&>".into(),
        kind: Some(client.kind),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: "openid profile".into(),
        logo_uri: logo.map(str::to_owned),
        policy_uri: policy.map(str::to_owned),
        tos_uri: policy.map(|_| "https://shop.example/terms".to_owned()),
        ..Default::default()
    };
    // Only https (or http on a loopback host) is accepted at registration.
    for bad in ["http://cdn.example/logo.png", "javascript:alert(1)"] {
        let e = app
            .core
            .update_client(&client.id, &input(Some(bad), None), "test")
            .await
            .unwrap_err();
        assert!(
            matches!(e, portcullis_core::Error::Invalid { field: "logo_uri", .. }),
            "{bad}: {e:?}"
        );
    }
    app.core
        .update_client(
            &client.id,
            &input(
                Some("https://cdn.example:8443/shop logo.png"),
                Some("https://shop.example/privacy"),
            ),
            "test",
        )
        .await
        .unwrap();
    let issuer = url::Url::parse(&app.issuer).unwrap();
    let consent_page = async |b: reqwest::Client, url: url::Url, html: String| {
        let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
        let Step::Page { url, .. } = follow(&b, &issuer, resp, url).await else {
            panic!("expected the consent page")
        };
        assert_eq!(url.path(), "/consent");
        let r = b.get(url).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        (csp, r.text().await.unwrap())
    };
    let (b, url, html) = login_page(&app, &client, &challenge, &[("scope", "openid profile")]).await;
    let (csp, html) = consent_page(b, url, html).await;
    assert!(
        html.contains(r#"<img src="https://cdn.example:8443/shop%20logo.png""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="https://shop.example/privacy" rel="noopener noreferrer">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="https://shop.example/terms" rel="noopener noreferrer">"#),
        "{html}"
    );
    assert!(
        html.contains("Shop &#60;&#38;&#62;") || html.contains("Shop &lt;&amp;&gt;"),
        "{html}"
    );
    assert!(csp.contains("img-src 'self' https://cdn.example:8443;"), "{csp}");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    app.core
        .update_client(&client.id, &input(None, None), "test")
        .await
        .unwrap();
    let (b, url, html) = login_page(&app, &client, &challenge, &[("scope", "openid profile")]).await;
    let (csp, html) = consent_page(b, url, html).await;
    assert!(
        !html.contains("<img") && !html.contains("privacy policy") && !html.contains("terms of service"),
        "{html}"
    );
    assert!(csp.contains("img-src 'self';"), "{csp}");
    app.stop().await;
}

/// A scope taken from a client while the person is signing in is not granted: the code
/// and its tokens carry what the client is still allowed.
async fn a_pending_request_loses_scopes_the_client_lost(backend: Backend) {
    use crate::forms::{Step, follow, param, submit};
    let (app, client, secret, verifier, challenge) = app_with_alice(backend).await;
    let issuer = url::Url::parse(&app.issuer).unwrap();
    let (b, url, html) = login_page(&app, &client, &challenge, &[("scope", "openid profile email")]).await;
    // Meanwhile the operator takes `email` away from the client.
    allow_only(&app, &client, "openid profile").await;
    let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
    let mut step = follow(&b, &issuer, resp, url).await;
    if let Step::Page { url, html, .. } = &step {
        assert_eq!(url.path(), "/consent");
        assert!(
            !html.contains("email"),
            "the consent page asks only for what is allowed"
        );
        let resp = submit(&b, url, html, &[("decision", "allow")]).await;
        step = follow(&b, &issuer, resp, url.clone()).await;
    }
    let Step::LeftIssuer(back) = step else {
        panic!("expected the redirect back, got {step:?}")
    };
    let code = param(&back, "code").unwrap();
    let (s, v) = redeem(&app, (client.id.as_str(), secret.expose()), &code, &verifier).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scope"], "openid profile");

    // Losing `openid` itself (the client sent a nonce and expects an ID token): an error
    // to the client, no code.
    let (b, url, html) = login_page(
        &app,
        &client,
        &challenge,
        &[("scope", "openid profile"), ("nonce", "n-1"), ("state", "s-2")],
    )
    .await;
    allow_only(&app, &client, "profile").await;
    let resp = submit(&b, &url, &html, &[("username", "alice"), ("password", PASSWORD)]).await;
    let Step::LeftIssuer(back) = follow(&b, &issuer, resp, url).await else {
        panic!("expected an error redirect")
    };
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("s-2"));
    assert!(param(&back, "code").is_none());
    app.stop().await;
}

/// Clients that hang up in the middle of a request (timeouts, closed tabs, a load tool
/// stopping) must not wedge the store: the use case finishes on its own task. Before,
/// a refresh or code exchange dropped halfway through its SQLite transaction could leave
/// the writer connection unusable, and every later write failed until a restart.
async fn disconnects_mid_request_leave_the_store_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, sec, tokens) = alice_signed_in(&app).await;
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    for round in 0..12u64 {
        let mut requests = Vec::new();
        for i in 0..24u64 {
            let impatient = reqwest::Client::builder()
                .timeout(std::time::Duration::from_micros(200 + (round * 24 + i) * 97 % 3000))
                .build()
                .unwrap();
            let request = impatient
                .post(app.url("/token"))
                .basic_auth(&id, Some(&sec))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())]);
            requests.push(tokio::spawn(request.send()));
        }
        for r in requests {
            // Most time out on our side; the ones that finish are a rotation or a reuse.
            if let Ok(r) = r.await.unwrap() {
                assert!(matches!(r.status().as_u16(), 200 | 400), "{}", r.status());
            }
        }
        // The reuse above revoked that grant; start a fresh one for the next round.
        refresh = obtain_tokens(&app, &id, &sec, "alice").await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let (s, b) = refresh_grant(&app, (&id, &sec), &refresh, None).await;
    assert_eq!(s, 200, "the store still takes writes: {b}");
    app.stop().await;
}

async fn revocation_and_introspection(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let public = app.public_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let tokens = obtain_tokens(&app, &id, &sec, "alice").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let intro = introspect(&app, &id, &sec, &access).await;
    assert_eq!(intro["active"], true);
    for field in ["scope", "client_id", "sub", "exp", "iat", "aud", "iss", "token_type"] {
        assert!(!intro[field].is_null(), "introspection has {field}");
    }
    let intro = introspect(&app, &id, &sec, &refresh).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["token_type"], "refresh_token");

    // Malformed, foreign (tampered signature) and unknown tokens are inactive.
    let mut parts: Vec<&str> = access.split('.').collect();
    let forged_sig = "A".repeat(parts[2].len());
    parts[2] = &forged_sig;
    for t in ["garbage", &parts.join("."), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        assert_eq!(
            introspect(&app, &id, &sec, t).await,
            serde_json::json!({"active": false})
        );
    }
    // Introspection needs an authenticated confidential client.
    let (s, _, b) = post_form(&app, "/introspect", None, &[("token", &access)]).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    // RFC 7662 §2.1: a public client presents no credentials, so it is not an
    // authenticated caller: 401 invalid_client with the Basic challenge.
    let (s, h, b) = post_form(
        &app,
        "/introspect",
        None,
        &[("token", &access), ("client_id", public.id.as_str())],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(h["www-authenticate"], "Basic realm=\"portcullis\"");
    assert!(b.get("active").is_none(), "nothing about the token: {b}");

    // Revocation: unknown tokens are fine; without client authentication, refused.
    let (s, _, _) = post_form(&app, "/revoke", Some((&id, &sec)), &[("token", "never-issued")]).await;
    assert_eq!(s, 200);
    let (s, _, b) = post_form(&app, "/revoke", None, &[("token", &access)]).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    // An empty Basic password is no password (RFC 6749 §3.2), as an empty client_secret
    // in the body is: a public client is identified, a confidential one is not.
    let (s, _, b) = post_form(
        &app,
        "/revoke",
        Some((public.id.as_str(), "")),
        &[("token", "never-issued")],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = post_form(&app, "/revoke", Some((&id, "")), &[("token", &access)]).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(
        introspect(&app, &id, &sec, &access).await["active"],
        true,
        "a refused revocation changes nothing"
    );
    // Another client (here the public one) presenting this client's tokens: refused
    // (RFC 7009 §2.1), whatever the hint, and the tokens stay active.
    for token in [&access, &refresh] {
        for hint in ["access_token", "refresh_token"] {
            let form = [
                ("token", token.as_str()),
                ("token_type_hint", hint),
                ("client_id", public.id.as_str()),
            ];
            let (s, _, b) = post_form(&app, "/revoke", None, &form).await;
            assert_eq!((s, b["error"].as_str()), (400, Some("unauthorized_client")), "{hint}");
        }
        assert_eq!(
            introspect(&app, &id, &sec, token).await["active"],
            true,
            "another client cannot revoke it"
        );
    }
    let (s, _, _) = post_form(
        &app,
        "/revoke",
        Some((&id, &sec)),
        &[("token", &access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(introspect(&app, &id, &sec, &access).await["active"], false);
    assert_eq!(
        introspect(&app, &id, &sec, &refresh).await["active"],
        true,
        "revoking an access token leaves the grant"
    );
    // Revoking the refresh token revokes the grant.
    let tokens2 = obtain_tokens(&app, &id, &sec, "alice").await;
    let access2 = tokens2["access_token"].as_str().unwrap();
    let (s, _, _) = post_form(&app, "/revoke", Some((&id, &sec)), &[("token", &refresh)]).await;
    assert_eq!(s, 200);
    assert_eq!(introspect(&app, &id, &sec, &refresh).await["active"], false);
    let (s, _) = refresh_grant(&app, (&id, &sec), &refresh, None).await;
    assert_eq!(s, 400);
    assert_eq!(
        introspect(&app, &id, &sec, access2).await["active"],
        true,
        "other grants are untouched"
    );
    app.stop().await;
}

async fn password_change_and_client_deletion_end_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (rs, rs_secret) = app.confidential_client(REDIRECT).await;
    let user = app.user("alice", PASSWORD).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let tokens = obtain_tokens(&app, &id, &sec, "alice").await;
    app.core
        .set_user_password(
            user.id,
            &portcullis_protocol::Secret::new("a brand new password"),
            "test",
        )
        .await
        .unwrap();
    let (s, _) = refresh_grant(&app, (&id, &sec), tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(s, 400, "the password change revoked the refresh token");
    assert_eq!(
        introspect(
            &app,
            rs.id.as_str(),
            rs_secret.expose(),
            tokens["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );

    let (_, _, cc) = post_form(
        &app,
        "/token",
        Some((&id, &sec)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    app.core.delete_client(&client.id, "test").await.unwrap();
    assert_eq!(
        introspect(
            &app,
            rs.id.as_str(),
            rs_secret.expose(),
            cc["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );
    let (s, _, _) = post_form(
        &app,
        "/token",
        Some((&id, &sec)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    app.stop().await;
}

/// Found by a concurrency review: a user disabled while their codes are being redeemed
/// keeps no grant. Each redemption either loses its code to the disable (invalid_grant) or
/// makes a grant the disable then revokes: its access token is inactive and its refresh
/// token gone, also once the user is enabled again.
async fn disabling_a_user_during_code_exchanges_ends_every_grant(backend: Backend) {
    use portcullis_core::throttle::Bucket;
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.defense.rate_limits.set(Bucket::TokenIp, None);
        s.core.defense.rate_limits.set(Bucket::TokenClient, None);
    })
    .await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let dana = app.user("dana", PASSWORD).await;
    let now = app.core.now();
    let mut codes = Vec::new();
    for i in 0..120 {
        let code = format!("race-{i}-{}", uuid::Uuid::new_v4());
        app.core
            .store
            .insert_code(&portcullis_core::model::AuthorizationCode {
                code_hash: portcullis_core::crypto::sha256(code.as_bytes()),
                client_id: client.id.clone(),
                user_id: dana.id,
                redirect_uri: portcullis_protocol::RedirectUri::parse(REDIRECT).unwrap(),
                redirect_uri_explicit: true,
                scope: portcullis_protocol::ScopeSet::parse("openid").unwrap(),
                code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
                nonce: None,
                auth_time: now,
                sid: "sid".into(),
                expires_at: now + time::Duration::seconds(60),
                created_at: now,
                dpop_jkt: None,
                resource: None,
            })
            .await
            .unwrap();
        codes.push(code);
    }
    let mut redemptions = tokio::task::JoinSet::new();
    for code in codes {
        let (token_url, id, secret) = (app.url("/token"), client.id.to_string(), secret.expose().to_owned());
        redemptions.spawn(async move {
            let r = http()
                .post(token_url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    // Disabled once the first redemptions are through, while the others are in flight.
    let started = std::time::Instant::now();
    while app.core.list_user_grants(dana.id).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no code redeemed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.core.set_user_disabled(dana.id, true, "test").await.unwrap();
    let answers = redemptions.join_all().await;
    let issued: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
    assert!(!issued.is_empty(), "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, v)| *s == 200 || (*s == 400 && v["error"] == "invalid_grant")),
        "{answers:?}"
    );
    assert!(app.core.list_user_grants(dana.id).await.unwrap().is_empty());
    for tokens in &issued {
        assert!(
            app.core
                .active_access_token(tokens["access_token"].as_str().unwrap())
                .is_none()
        );
    }
    app.core.set_user_disabled(dana.id, false, "test").await.unwrap();
    for tokens in &issued {
        let (status, _, v) = post_form(
            &app,
            "/token",
            Some((client.id.as_str(), secret.expose())),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    }
    app.stop().await;
}

both_backends!(
    disabling_a_user_during_code_exchanges_ends_every_grant,
    the_consent_page_shows_the_clients_logo_and_policy,
    an_openid_request_ignores_scopes_the_client_may_not_use,
    a_pending_request_loses_scopes_the_client_lost,
    client_credentials_with_oauth2_crate,
    token_endpoint_errors,
    disconnects_mid_request_leave_the_store_working,
    revocation_and_introspection,
    password_change_and_client_deletion_end_tokens,
);
