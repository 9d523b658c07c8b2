//! Authorization code + PKCE through the real login and consent pages, with the
//! `openidconnect` crate as the relying party; and every authorization-endpoint error.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app, spawn_with};
use serde_json::Value;
use url::Url;

use crate::forms::{Step, follow, forms, param, submit};

pub const REDIRECT: &str = "https://rp.example/callback";
pub const PASSWORD: &str = "correct horse battery";

/// Drives a browser session from an authorization URL through login (if shown) and
/// consent (if shown) to the redirect back to the client.
pub async fn authorize_in_browser(
    b: &reqwest::Client,
    app: &TestApp,
    auth_url: &Url,
    username: &str,
    consent: &str,
) -> Step {
    let issuer = Url::parse(&app.issuer).unwrap();
    let resp = b.get(auth_url.clone()).send().await.unwrap();
    let mut step = follow(b, &issuer, resp, auth_url.clone()).await;
    for _ in 0..3 {
        let Step::Page { url, status, html } = &step else {
            return step;
        };
        if url.path() == "/login" && *status == 200 && html.contains("id=\"password\"") {
            let resp = submit(b, url, html, &[("username", username), ("password", PASSWORD)]).await;
            step = follow(b, &issuer, resp, url.clone()).await;
        } else if url.path() == "/consent" && *status == 200 && html.contains("id=\"allow\"") {
            let resp = submit(b, url, html, &[("decision", consent)]).await;
            step = follow(b, &issuer, resp, url.clone()).await;
        } else {
            return step;
        }
    }
    step
}

fn expect_redirect(step: Step) -> Url {
    match step {
        Step::LeftIssuer(u) => u,
        Step::Page { url, status, html } => {
            panic!("expected a redirect to the client, got page {url} ({status}):\n{html}")
        }
    }
}

/// Code flow with raw HTTP: returns the token response JSON.
pub async fn obtain_tokens(app: &TestApp, client_id: &str, secret: &str, username: &str) -> Value {
    obtain_tokens_with(app, (client_id, secret), username, "openid profile email", &[]).await
}

/// A confidential client, the user alice, and the token response of one code flow she
/// went through with it: the client's id and secret, and the tokens.
pub async fn alice_signed_in(app: &TestApp) -> (String, String, Value) {
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let tokens = obtain_tokens(app, &id, &sec, "alice").await;
    (id, sec, tokens)
}

/// `obtain_tokens` for `scope`, with `extra` authorization request parameters.
pub async fn obtain_tokens_with(
    app: &TestApp,
    (client_id, secret): (&str, &str),
    username: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> Value {
    let b = browser();
    let verifier = "a".repeat(10) + &"verifier-".repeat(5);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "s1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    let back = expect_redirect(authorize_in_browser(&b, app, &auth, username, "allow").await);
    let code = param(&back, "code").unwrap();
    let resp = http()
        .post(app.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The `openidconnect` client as set up from discovery (authorization endpoint known;
/// token and userinfo endpoints as discovered).
type RelyingParty = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// A relying party as a real one sets itself up: discovery, then the confidential client
/// `id` with `secret` and `REDIRECT`.
pub(crate) async fn relying_party(
    app: &TestApp,
    http_client: &openidconnect::reqwest::Client,
    id: &str,
    secret: &str,
) -> RelyingParty {
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), http_client)
        .await
        .unwrap();
    CoreClient::from_provider_metadata(
        meta,
        ClientId::new(id.to_owned()),
        Some(ClientSecret::new(secret.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

/// A `prompt=none` authorization request (scope `openid`, PKCE) with `id_token_hint`.
pub(crate) fn hinted_request(app: &TestApp, client_id: &str, hint: &str) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("prompt", "none")
        .append_pair("id_token_hint", hint)
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256");
    u
}

/// The ID token's claims as `verifier` checks them with `nonce`, once its `at_hash`
/// (OIDC Core §3.1.3.6, for the ID token's own algorithm) matched the access token.
pub(crate) fn id_claims_with_at_hash<'a>(
    tokens: &'a openidconnect::core::CoreTokenResponse,
    verifier: &openidconnect::core::CoreIdTokenVerifier<'_>,
    nonce: &Nonce,
) -> &'a openidconnect::core::CoreIdTokenClaims {
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(verifier, nonce).unwrap();
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    claims
}

/// An HTTP client for the relying party: redirects are the test's to follow.
pub(crate) fn rp_http_client() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs alice in through `rp` in a browser, allows it, and exchanges the code with PKCE:
/// the browser (signed in), the token response and the nonce the request carried.
pub(crate) async fn sign_in_through(
    app: &TestApp,
    rp: &RelyingParty,
    http_client: &openidconnect::reqwest::Client,
) -> (reqwest::Client, openidconnect::core::CoreTokenResponse, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let b = browser();
    let back = expect_redirect(authorize_in_browser(&b, app, &auth_url, "alice", "allow").await);
    let tokens = rp
        .exchange_code(AuthorizationCode::new(param(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(http_client)
        .await
        .unwrap();
    (b, tokens, nonce)
}

async fn oidc_code_flow_with_openidconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let user = app.user("alice", PASSWORD).await;

    let http_client = rp_http_client();
    let rp = relying_party(&app, &http_client, client.id.as_str(), secret.expose()).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let b = browser();
    let back = expect_redirect(authorize_in_browser(&b, &app, &auth_url, "alice", "allow").await);
    assert!(back.as_str().starts_with(REDIRECT));
    assert_eq!(param(&back, "state").as_deref(), Some(csrf.secret().as_str()));
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some(app.issuer.as_str()),
        "RFC 9207 iss"
    );
    let code = param(&back, "code").unwrap();

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token for openid");
    let verifier = rp.id_token_verifier();
    let claims = id_claims_with_at_hash(&tokens, &verifier, &nonce);
    assert_eq!(claims.subject().as_str(), user.id.to_string());
    assert!(claims.auth_time().is_some());
    // OIDC Core §5.4: with an access token issued, scope claims come from UserInfo only.
    assert_eq!(claims.email(), None);
    assert_eq!(claims.preferred_username(), None);
    let raw_claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            id_token.to_string().split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(raw_claims["sid"].as_str().is_some_and(|s| !s.is_empty()), "sid claim");

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), user.id.to_string());
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
    fn unlocalized<T: std::ops::Deref<Target = String>>(c: Option<&openidconnect::LocalizedClaim<T>>) -> Option<&str> {
        c.and_then(|c| c.get(None)).map(|v| v.as_str())
    }
    assert_eq!(
        (
            unlocalized(info.name()),
            unlocalized(info.given_name()),
            unlocalized(info.family_name())
        ),
        (Some("alice Example"), Some("alice"), Some("Example"))
    );
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(info.email_verified(), Some(true));

    // Refresh through the same client: a new refresh token, the old one spent.
    let refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh.secret());
    assert!(
        rp.exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
            .unwrap()
            .request_async(&http_client)
            .await
            .is_err()
    );

    // A second authorization in the same browser: session and consent are remembered.
    let (challenge2, _) = PkceCodeChallenge::new_random_sha256();
    let (auth_url2, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_extra_param("prompt", "none")
        .set_pkce_challenge(challenge2)
        .url();
    let resp = b.get(auth_url2.clone()).send().await.unwrap();
    let back = crate::forms::location(&auth_url2, &resp);
    assert!(
        param(&back, "code").is_some(),
        "prompt=none with a session and consent issues a code: {back}"
    );
    app.stop().await;
}

fn authorize_url(app: &TestApp, params: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs(params);
    u
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn authorization_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let public = app.public_client(REDIRECT).await;
    let id = client.id.as_str();
    let (no_pkce, _) = app
        .core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: "Legacy RP".into(),
                kind: Some(portcullis_core::model::ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                require_pkce: Some(false),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let b = browser();
    let get = |u: Url| {
        let b = b.clone();
        async move { b.get(u).send().await.unwrap() }
    };

    // Unknown client and unregistered redirect URI: an error page, never a redirect.
    for params in [
        vec![
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", "https://rp.example/callback/"),
            ("scope", "openid"),
        ],
        vec![
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
        ],
    ] {
        let r = get(authorize_url(&app, &params)).await;
        assert_eq!(r.status(), 400, "{params:?}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("<html"));
    }

    // After the client and redirect URI are known good, errors go back to the client.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("client_id", public.id.as_str()),
                ("response_type", "code"),
                ("scope", "openid"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![("client_id", id), ("response_type", "code"), ("scope", "openid")],
            "invalid_request",
        ),
        // RFC 7636 §4.3: a method without a challenge is an error even where PKCE is
        // optional, not a code without PKCE.
        (
            vec![
                ("client_id", no_pkce.id.as_str()),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", id),
                ("response_type", "token"),
                ("scope", "openid"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
        ),
        (
            vec![
                ("client_id", id),
                ("response_type", "code"),
                // Not an OpenID request: an unknown value is refused (with `openid` it
                // would be ignored, OIDC Core §3.1.2.1).
                ("scope", "profile admin"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("prompt", "none"),
            ],
            "login_required",
        ),
    ];
    for (mut params, error) in cases {
        params.push(("redirect_uri", REDIRECT));
        params.push(("state", "xyz"));
        let r = get(authorize_url(&app, &params)).await;
        assert!(r.status().is_redirection(), "{params:?} -> {}", r.status());
        let loc = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(loc.as_str().starts_with(REDIRECT));
        assert_eq!(param(&loc, "error").as_deref(), Some(error), "{params:?}");
        assert_eq!(param(&loc, "state").as_deref(), Some("xyz"));
        assert_eq!(param(&loc, "iss").as_deref(), Some(app.issuer.as_str()));
        assert!(param(&loc, "code").is_none());
    }

    // Deny on the consent page: access_denied.
    app.user("bob", PASSWORD).await;
    let u = authorize_url(
        &app,
        &[
            ("client_id", id),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("state", "d"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = expect_redirect(authorize_in_browser(&b, &app, &u, "bob", "deny").await);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("d"));
    // Logged in now, but no consent: prompt=none says consent_required.
    let u = authorize_url(
        &app,
        &[
            ("client_id", id),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("prompt", "none"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = get(u.clone()).await;
    let loc = crate::forms::location(&u, &r);
    assert_eq!(param(&loc, "error").as_deref(), Some("consent_required"));
    // Nothing was issued along the way.
    assert_eq!(app.core.store.count_active_grants(app.core.now()).await.unwrap(), 0);
    app.stop().await;
}

async fn wrong_password_does_not_log_in_or_reveal_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("carol", PASSWORD).await;
    let b = browser();
    let u = authorize_url(
        &app,
        &[
            ("client_id", client.id.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let issuer = Url::parse(&app.issuer).unwrap();
    let first = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u.clone()).await;
    let Step::Page { url, html, .. } = first else {
        panic!("expected the login page")
    };
    let mut bodies = Vec::new();
    for user in ["carol", "nobody-by-this-name"] {
        let r = submit(&b, &url, &html, &[("username", user), ("password", "wrong password!")]).await;
        assert!(!r.status().is_redirection(), "a failed login stays on the login page");
        let text = r.text().await.unwrap();
        // The error is tied to the fields it is about (WCAG 3.3.1).
        assert_eq!(
            text.matches(r#"aria-invalid="true" aria-describedby="error""#).count(),
            2,
            "{text}"
        );
        bodies.push(text.replace(user, "USER"));
        // The form is shown again with a fresh CSRF token where needed.
        assert!(!forms(&url, bodies.last().unwrap()).is_empty());
    }
    let strip = |s: &str| s.lines().filter(|l| !l.contains("csrf")).collect::<Vec<_>>().join("\n");
    assert_eq!(
        strip(&bodies[0]),
        strip(&bodies[1]),
        "same answer whether or not the user exists"
    );
    app.stop().await;
}

async fn form_post_response_mode(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("dave", PASSWORD).await;
    let b = browser();
    let u = authorize_url(
        &app,
        &[
            ("client_id", client.id.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("state", "fp"),
            ("response_mode", "form_post"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let step = authorize_in_browser(&b, &app, &u, "dave", "allow").await;
    let Step::Page { url, status, html } = step else {
        panic!("form_post answers with a page")
    };
    assert_eq!(status, 200);
    let form = forms(&url, &html).into_iter().next().unwrap();
    assert_eq!(form.action.as_str(), REDIRECT);
    let get = |n: &str| form.fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert!(get("code").is_some());
    assert_eq!(get("state").as_deref(), Some("fp"));
    assert_eq!(get("iss").as_deref(), Some(app.issuer.as_str()));
    app.stop().await;
}

async fn code_exchange_errors_and_replay(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.code_ttl = time::Duration::seconds(2)
    })
    .await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (other, other_secret) = app.confidential_client(REDIRECT).await;
    app.user("erin", PASSWORD).await;
    let b = browser();
    let verifier = "v".repeat(43);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let new_code = || {
        let b = b.clone();
        let app = &app;
        let client = &client;
        let challenge = challenge.clone();
        async move {
            let u = authorize_url(
                app,
                &[
                    ("client_id", client.id.as_str()),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("redirect_uri", REDIRECT),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            );
            param(
                &expect_redirect(authorize_in_browser(&b, app, &u, "erin", "allow").await),
                "code",
            )
            .unwrap()
        }
    };
    let exchange = |code: String, verifier: String, redirect: &'static str, id: String, secret: String| {
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("code_verifier", verifier),
            ];
            if !redirect.is_empty() {
                form.push(("redirect_uri", redirect.to_owned()));
            }
            let r = http()
                .post(app.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cid = client.id.to_string();
    let sec = secret.expose().to_owned();

    let code = new_code().await;
    let (s, body) = exchange(code.clone(), "w".repeat(43), REDIRECT, cid.clone(), sec.clone()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "bad PKCE verifier"
    );
    let (s, body) = exchange(
        code.clone(),
        verifier.clone(),
        "https://rp.example/other",
        cid.clone(),
        sec.clone(),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "different redirect_uri"
    );
    let (s, body) = exchange(code.clone(), verifier.clone(), "", cid.clone(), sec.clone()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_request")),
        "missing redirect_uri"
    );
    let (s, body) = exchange(
        code.clone(),
        verifier.clone(),
        REDIRECT,
        other.id.to_string(),
        other_secret.expose().to_owned(),
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "another client's code"
    );
    let (s, body) = exchange(code.clone(), verifier.clone(), REDIRECT, cid.clone(), "wrong".into()).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(
        app.core.store.count_active_grants(app.core.now()).await.unwrap(),
        0,
        "failed exchanges issue nothing"
    );

    // The real exchange works once; a replay fails and revokes what the first issued.
    let (s, tokens) = exchange(code.clone(), verifier.clone(), REDIRECT, cid.clone(), sec.clone()).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, body) = exchange(code.clone(), verifier.clone(), REDIRECT, cid.clone(), sec.clone()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "replay");
    let intro: Value = http()
        .post(app.url("/introspect"))
        .basic_auth(&cid, Some(&sec))
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], false, "replay revoked the access token");
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&cid, Some(&sec))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "replay revoked the refresh token");

    // An expired code.
    let code = new_code().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, body) = exchange(code, verifier.clone(), REDIRECT, cid.clone(), sec.clone()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "expired code"
    );
    app.stop().await;
}

async fn rp_initiated_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("frank", PASSWORD).await;
    let tokens = obtain_tokens(&app, client.id.as_str(), secret.expose(), "frank").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let b = browser();
    // Log in in this browser.
    let u = authorize_url(
        &app,
        &[
            ("client_id", client.id.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    expect_redirect(authorize_in_browser(&b, &app, &u, "frank", "allow").await);

    // An unregistered post-logout URI is refused with a page.
    let mut bad = Url::parse(&app.url("/logout")).unwrap();
    bad.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://evil.example/");
    let r = b.get(bad).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // Without a post-logout URI the page names the client but promises no way back.
    let mut hint_only = Url::parse(&app.url("/logout")).unwrap();
    hint_only.query_pairs_mut().append_pair("id_token_hint", id_token);
    let html = b.get(hint_only).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("asked to sign you out.</p>"), "{html}");
    assert!(!html.contains("taken back"), "{html}");

    let post_logout = format!("{REDIRECT}/logged-out");
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &post_logout)
        .append_pair("state", "bye");
    let r = b.get(lo.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("You will be taken back to it afterwards."), "{html}");
    let r = submit(&b, &lo, &html, &[]).await;
    let back = crate::forms::location(&lo, &r);
    assert!(back.as_str().starts_with(&post_logout), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("bye"));
    // The session is over: prompt=none now says login_required.
    let u = authorize_url(
        &app,
        &[
            ("client_id", client.id.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", REDIRECT),
            ("prompt", "none"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = b.get(u.clone()).send().await.unwrap();
    assert_eq!(
        param(&crate::forms::location(&u, &r), "error").as_deref(),
        Some("login_required")
    );
    app.stop().await;
}

/// RFC 8252 §8.6: a public client on a loopback (or private-use-scheme) redirect URI can be
/// impersonated by any program on the device, so the person approves every request, even
/// after consenting once and even for a first-party client; prompt=none gets
/// consent_required. A public client on an https redirect URI is recognised by it.
async fn native_public_clients_ask_every_time(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (native, _) = app
        .core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: "Native App".into(),
                kind: Some(portcullis_core::model::ClientKind::Public),
                redirect_uris: vec!["http://127.0.0.1/cb".into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: "openid profile".into(),
                first_party: true,
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let web = app.public_client(REDIRECT).await;
    let auth_url = |client_id: &str, redirect: &str, prompt: Option<&str>| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid")
            .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = prompt {
            u.query_pairs_mut().append_pair("prompt", p);
        }
        u
    };
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    // Consent once to each.
    let loopback = "http://127.0.0.1:5555/cb";
    for (id, redirect) in [(native.id.as_str(), loopback), (web.id.as_str(), REDIRECT)] {
        let back =
            expect_redirect(authorize_in_browser(&b, &app, &auth_url(id, redirect, None), "alice", "allow").await);
        assert!(param(&back, "code").is_some(), "{back}");
    }
    // The https client is recognised: straight back with a code.
    let u = auth_url(web.id.as_str(), REDIRECT, None);
    let step = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await;
    assert!(
        matches!(&step, Step::LeftIssuer(back) if param(back, "code").is_some()),
        "{step:?}"
    );
    // The loopback client is asked again, first-party and consented as it is.
    let u = auth_url(native.id.as_str(), loopback, None);
    match follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await {
        Step::Page { url, status, .. } => {
            assert_eq!((url.path(), status), ("/consent", 200));
        }
        other => panic!("expected the consent page, got {other:?}"),
    }
    let u = auth_url(native.id.as_str(), loopback, Some("none"));
    let step = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await;
    let Step::LeftIssuer(back) = step else {
        panic!("expected a redirect, got {step:?}")
    };
    assert!(back.as_str().starts_with(loopback), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("consent_required"));
    assert!(param(&back, "code").is_none());
    app.stop().await;
}

/// RFC 6749 §3.3: a request without a scope (absent or empty) is granted the client's
/// default, its scopes but the OpenID ones (no sign-in is implied), shown on the consent
/// page; a client with only OpenID scopes still gets invalid_scope. The same at
/// `/device_authorization`.
async fn a_request_without_scope_gets_the_clients_default(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    app.user("bob", PASSWORD).await;
    let create = |scopes: &str, grants: &[&str]| {
        let input = portcullis_core::clients::ClientInput {
            name: "API app".into(),
            kind: Some(portcullis_core::model::ClientKind::Confidential),
            redirect_uris: vec![REDIRECT.into()],
            grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
            scopes: scopes.into(),
            ..Default::default()
        };
        let app = &app;
        async move {
            let (c, s) = app.core.create_client(&input, "test").await.unwrap();
            (c.id.as_str().to_owned(), s.unwrap().expose().to_owned())
        }
    };
    let grants = [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ];
    let api = create("openid profile offline_access notes:read notes:write", &grants).await;
    let oidc_only = create("openid profile email", &grants).await;
    let verifier = "scope-default-verifier-".repeat(2);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let request = |id: &str, scope: Option<&str>| {
        let mut u = Url::parse(&app.url("/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "st")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(s) = scope {
            u.query_pairs_mut().append_pair("scope", s);
        }
        u
    };
    // Each person once: a consent given covers the next request.
    for (scope, person) in [(None, "alice"), (Some(""), "bob")] {
        let b = browser();
        // The consent page asks for the default.
        let u = request(&api.0, scope);
        let issuer = Url::parse(&app.issuer).unwrap();
        let Step::Page { url, html, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u.clone()).await
        else {
            panic!("the login page")
        };
        let r = submit(&b, &url, &html, &[("username", person), ("password", PASSWORD)]).await;
        let step = follow(&b, &issuer, r, url).await;
        let Step::Page { url, html, .. } = step else {
            panic!("the consent page: {step:?}")
        };
        assert_eq!(url.path(), "/consent");
        assert!(html.contains("notes:read") && html.contains("notes:write"), "{html}");
        assert!(!html.to_lowercase().contains("offline"), "{html}");
        let back = expect_redirect(
            follow(
                &b,
                &issuer,
                submit(&b, &url, &html, &[("decision", "allow")]).await,
                url,
            )
            .await,
        );
        let code = param(&back, "code").expect("a code");
        let r = http()
            .post(app.url("/token"))
            .basic_auth(&api.0, Some(&api.1))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let tokens: Value = r.json().await.unwrap();
        assert_eq!(tokens["scope"], "notes:read notes:write", "{scope:?}");
        assert!(tokens.get("id_token").is_none(), "no sign-in was asked for");

        // Nothing to default to: invalid_scope, to the client, with its state.
        let u = request(&oidc_only.0, scope);
        let back = crate::forms::location(&u, &browser().get(u.clone()).send().await.unwrap());
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"));
        assert!(
            param(&back, "error_description")
                .unwrap()
                .contains("no scope to be granted by default")
        );
        assert_eq!(param(&back, "state").as_deref(), Some("st"));
    }

    // The device flow too.
    let device = |(id, secret): (&str, &str)| {
        http()
            .post(app.url("/device_authorization"))
            .basic_auth(id, Some(secret))
            .form(&[("client_id", id)])
            .send()
    };
    let r = device((&api.0, &api.1)).await.unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    let pending = app
        .core
        .pending_device(d["user_code"].as_str().unwrap())
        .await
        .unwrap()
        .expect("pending");
    assert_eq!(
        pending.scope.as_string(),
        "notes:read notes:write",
        "what the person is asked to allow"
    );
    let r = device((&oidc_only.0, &oidc_only.1)).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    app.stop().await;
}

both_backends!(
    native_public_clients_ask_every_time,
    a_request_without_scope_gets_the_clients_default,
    oidc_code_flow_with_openidconnect,
    authorization_errors,
    wrong_password_does_not_log_in_or_reveal_users,
    form_post_response_mode,
    code_exchange_errors_and_replay,
    rp_initiated_logout,
);

/// The claims of `jwt`, once its signature (by the key of `/jwks` its `kid` names), its
/// `typ`, `iss` (the issuer) and `aud` (`audience`) are checked, and the claims in
/// `required` are present (`exp` is checked only when required); and its algorithm.
pub(crate) async fn verified_by_jwks(
    app: &TestApp,
    jwt: &str,
    typ: &str,
    audience: &str,
    required: &[&str],
) -> (Value, jsonwebtoken::Algorithm) {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some(typ));
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.get_json("/jwks").await).unwrap();
    let key = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("signed by a published key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[audience]);
    v.set_issuer(&[&app.issuer]);
    v.validate_exp = required.contains(&"exp");
    v.set_required_spec_claims(required);
    let claims = jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_jwk(key).unwrap(), &v)
        .unwrap()
        .claims;
    (claims, header.alg)
}
