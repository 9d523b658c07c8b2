//! Conformance fixes from the second review: any port on a loopback IP redirect URI,
//! max_age=0 as prompt=login (and no login more than max_age old passing), an essential
//! acr refused, an answered request given again only to its login, a logout confirmation
//! that keeps its redirect, parameters without a value treated as omitted at the
//! token-family endpoints, and a disabled client's outstanding tokens.

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app};
use serde_json::Value;
use url::Url;

use crate::admin_support::{Api, api_key};
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser, obtain_tokens};
use crate::forms::{Step, follow, forms, location, param, submit};

/// RFC 7636 Appendix B: the verifier of [`CHALLENGE`].
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An authorization URL for `client_id` at `redirect_uri` (scope `openid`, PKCE), plus
/// `extra`.
pub(crate) fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid"),
        ("state", "st"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    u.query_pairs_mut().extend_pairs(extra);
    u
}

/// A form-encoded body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `POST path` with a raw form body and the client's Basic credentials: status, JSON.
async fn post_raw(app: &TestApp, path: &str, (id, secret): (&str, &str), body: &str) -> (u16, Value) {
    let r = http()
        .post(app.url(path))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An /authorize request refused with the error page: never redirected anywhere.
async fn assert_error_page(u: &Url) {
    let r = browser().get(u.clone()).send().await.unwrap();
    assert_eq!(r.status(), 400, "{u}");
    assert!(r.headers().get("location").is_none(), "never redirected: {u}");
    assert!(r.text().await.unwrap().contains("redirect_uri"), "{u}");
}

async fn active_grants(app: &TestApp) -> u64 {
    app.core.store.count_active_grants(app.core.now()).await.unwrap()
}

/// Exchanges `code` for the public client `client_id` (PKCE with [`VERIFIER`]) at
/// `redirect_uri`: status and JSON.
async fn redeem_public(app: &TestApp, client_id: &str, code: &str, redirect_uri: &str) -> (u16, Value) {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", VERIFIER),
    ]);
    let r = http()
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// RFC 8252 §7.3 / RFC 9700 §2.1: for a public client (a native app), a registered
/// `http` URI on a loopback IP literal matches a request on any port; path, query,
/// scheme and host still match exactly, and every other URI (`localhost` included) is
/// still compared exactly. So is a confidential client's loopback URI (OIDC Core
/// §3.1.2.1): the port exception is the native apps'.
async fn loopback_ip_redirect_uri_accepts_any_port(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.public_client("http://127.0.0.1/cb").await;
    let (other, _) = app.confidential_client(REDIRECT).await;
    let (named, _) = app.confidential_client("http://localhost/cb").await;
    let (web, _) = app.confidential_client("http://127.0.0.1/cb").await;
    app.user("nora", PASSWORD).await;
    let id = client.id.as_str();
    // The app's own port is on 127.0.0.1 too: pick another so the redirect leaves it.
    let issuer = Url::parse(&app.issuer).unwrap();
    let port = if issuer.port() == Some(53121) { 53122 } else { 53121 };
    let requested = format!("http://127.0.0.1:{port}/cb");

    // Refused with the error page: another path on the loopback IP, another port on a
    // host name (https or localhost), another port for a confidential client.
    assert_error_page(&authorize_url(&app, web.id.as_str(), &requested, &[])).await;
    assert_error_page(&authorize_url(&app, id, &format!("http://127.0.0.1:{port}/other"), &[])).await;
    assert_error_page(&authorize_url(&app, id, &format!("https://127.0.0.1:{port}/cb"), &[])).await;
    assert_error_page(&authorize_url(
        &app,
        other.id.as_str(),
        "https://rp.example:8443/callback",
        &[],
    ))
    .await;
    assert_error_page(&authorize_url(
        &app,
        named.id.as_str(),
        &format!("http://localhost:{port}/cb"),
        &[],
    ))
    .await;
    assert_eq!(active_grants(&app).await, 0);

    // The flow on the port the app listens on: the response goes there, and the code
    // is redeemed with that same URI.
    let b = browser();
    let u = authorize_url(&app, id, &requested, &[]);
    let Step::LeftIssuer(back) = authorize_in_browser(&b, &app, &u, "nora", "allow").await else {
        panic!("expected a redirect to the client")
    };
    assert!(back.as_str().starts_with(&format!("{requested}?")), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    let code = param(&back, "code").unwrap();
    let (s, tokens) = redeem_public(&app, id, &code, &requested).await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["access_token"].is_string() && tokens["id_token"].is_string());
    assert_eq!(active_grants(&app).await, 1);

    // RFC 6749 §4.1.3: the token request must name the URI of the authorization
    // request, port included; the registered form without the port is not it. (A
    // native app's every request asks for consent, RFC 8252 §8.6.)
    let Step::LeftIssuer(back) = authorize_in_browser(&browser(), &app, &u, "nora", "allow").await else {
        panic!("expected a redirect to the client")
    };
    let code = param(&back, "code").unwrap();
    let (s, body) = redeem_public(&app, id, &code, "http://127.0.0.1/cb").await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(body.get("access_token").is_none());
    assert_eq!(active_grants(&app).await, 1, "nothing issued");
    app.stop().await;
}

/// OIDC Core §3.1.2.1 (errata): max_age=0 is prompt=login, even right after a login in
/// the same second; with prompt=none it is login_required.
async fn max_age_zero_forces_a_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("olga", PASSWORD).await;
    let id = client.id.as_str();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    let u = authorize_url(&app, id, REDIRECT, &[]);
    let step = authorize_in_browser(&b, &app, &u, "olga", "allow").await;
    assert!(
        matches!(step, Step::LeftIssuer(ref back) if param(back, "code").is_some()),
        "{step:?}"
    );
    let grants = active_grants(&app).await;

    // prompt=none with max_age=0: login_required, to the client, no code.
    let u = authorize_url(&app, id, REDIRECT, &[("max_age", "0"), ("prompt", "none")]);
    let back = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    // Someone is signed in: the description says why that is not enough.
    assert_eq!(
        param(&back, "error_description").as_deref(),
        Some("the user's sign-in is not recent enough for max_age (or the client's default_max_age)")
    );
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    assert!(param(&back, "code").is_none());

    // max_age=0 alone: the login page despite the session; a login there answers.
    let u = authorize_url(&app, id, REDIRECT, &[("max_age", "0")]);
    let Step::Page { url, html, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("max_age=0 must show the login page")
    };
    assert_eq!(url.path(), "/login");
    assert!(html.contains("id=\"password\""));
    assert_eq!(active_grants(&app).await, grants, "nothing issued before the login");
    let r = submit(&b, &url, &html, &[("username", "olga"), ("password", PASSWORD)]).await;
    let Step::LeftIssuer(back) = follow(&b, &issuer, r, url).await else {
        panic!("a login in this request satisfies max_age=0")
    };
    assert!(param(&back, "code").is_some(), "{back}");
    app.stop().await;
}

/// OIDC Core §3.1.2.1: a login more than `max_age` seconds ago is repeated. `auth_time`
/// counts whole seconds, so a login early in second S is 1.9 s old late in S+1, where
/// the difference of whole seconds is 1: with max_age=1 that already asks for a login.
async fn max_age_is_never_overshot(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("rosa", PASSWORD).await;
    let id = client.id.as_str();
    let b = browser();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let sleep_until = |at: f64| tokio::time::sleep(std::time::Duration::from_secs_f64((at - unix_now()).max(0.0)));
    for attempt in 0..5 {
        // Sign in at the start of a second (after the first time, again with prompt=login).
        sleep_until(unix_now().floor() + 1.02).await;
        let t0 = unix_now();
        let prompt: &[(&str, &str)] = if attempt == 0 { &[] } else { &[("prompt", "login")] };
        let u = authorize_url(&app, id, REDIRECT, prompt);
        let step = authorize_in_browser(&b, &app, &u, "rosa", "allow").await;
        assert!(
            matches!(step, Step::LeftIssuer(ref back) if param(back, "code").is_some()),
            "{step:?}"
        );
        let t1 = unix_now();
        if t1.floor() != t0.floor() || t1.fract() > 0.8 {
            continue; // The login took too long to know its second and its age below.
        }
        // Late in the next second: over 1.1 s since the login, 1 in whole seconds.
        sleep_until(t0.floor() + 1.9).await;
        let u = authorize_url(&app, id, REDIRECT, &[("max_age", "1"), ("prompt", "none")]);
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{back}");
        assert!(param(&back, "code").is_none());
        // The same session is young enough for max_age=3.
        let u = authorize_url(&app, id, REDIRECT, &[("max_age", "3"), ("prompt", "none")]);
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert!(param(&back, "code").is_some(), "{back}");
        app.stop().await;
        return;
    }
    panic!("no login finished within the second it started in");
}

/// OIDC Core §5.5.1.1: an `acr` asked for as essential for the ID token with values is
/// met with one of them or the request fails as an authentication would. This server
/// asserts no acr, so the client gets unmet_authentication_requirements, before any
/// login. A voluntary `acr`, `acr_values`, and an essential `acr` without values or in
/// `userinfo` are claims not returned, which §5.5.1 forbids failing for: ignored.
async fn an_essential_acr_is_an_unmet_requirement(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    for claims in [
        r#"{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:3"]}}}"#,
        r#"{"id_token":{"acr":{"essential":true,"value":"urn:example:loa:3"}}}"#,
    ] {
        let u = authorize_url(&app, id, REDIRECT, &[("claims", claims)]);
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("unmet_authentication_requirements"),
            "{claims}"
        );
        assert_eq!(param(&back, "state").as_deref(), Some("st"));
        assert_eq!(param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
        assert!(param(&back, "code").is_none());
    }
    for extra in [
        ("claims", r#"{"id_token":{"acr":{"values":["urn:example:loa:3"]}}}"#),
        ("acr_values", "urn:example:loa:3"),
        ("claims", r#"{"id_token":{"acr":{"essential":true}}}"#),
        (
            "claims",
            r#"{"userinfo":{"acr":{"essential":true,"values":["urn:example:loa:3"]}}}"#,
        ),
    ] {
        let u = authorize_url(&app, id, REDIRECT, &[extra]);
        let Step::Page { url, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
            panic!("{extra:?}: expected the login page")
        };
        assert_eq!(url.path(), "/login", "{extra:?}");
    }
    app.stop().await;
}

/// RFC 9700 §4.5: an answered request's code is given again only to the login that
/// answered it (a double submit). A browser that learned the request id (it is in the
/// login and consent URLs: history, a proxy's log) and posts it to /consent gets no code,
/// signed in as someone else or not at all.
async fn an_answered_request_is_given_again_only_to_its_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    app.user("mallory", PASSWORD).await;
    let id = client.id.as_str();
    let issuer = Url::parse(&app.issuer).unwrap();
    // `user`'s consent page for a request of their own in browser `b`.
    let consent_page = |b: reqwest::Client, user: &'static str| {
        let u = authorize_url(&app, id, REDIRECT, &[]);
        let issuer = issuer.clone();
        async move {
            let Step::Page { url, html, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await
            else {
                panic!("expected the login page")
            };
            let r = submit(&b, &url, &html, &[("username", user), ("password", PASSWORD)]).await;
            let Step::Page { url, html, .. } = follow(&b, &issuer, r, url).await else {
                panic!("expected the consent page")
            };
            assert_eq!(url.path(), "/consent");
            (url, html)
        }
    };
    let alice = browser();
    let (url, html) = consent_page(alice.clone(), "alice").await;
    let req = form_field(&url, &html, "req");
    let r = submit(&alice, &url, &html, &[("decision", "allow")]).await;
    let code = param(&location(&url, &r), "code").unwrap();
    // The same form again (a double submit): the same answer.
    let r = submit(&alice, &url, &html, &[("decision", "allow")]).await;
    assert_eq!(param(&location(&url, &r), "code").as_deref(), Some(code.as_str()));

    // Mallory, signed in, posts her own consent form with alice's request id.
    let mallory = browser();
    let (m_url, m_html) = consent_page(mallory.clone(), "mallory").await;
    let r = submit(
        &mallory,
        &m_url,
        &m_html,
        &[("req", req.as_str()), ("decision", "allow")],
    )
    .await;
    assert_no_code(r, &code, "another login").await;
    // Nobody signed in: a fresh browser's CSRF token from the login page.
    let anon = browser();
    let u = authorize_url(&app, id, REDIRECT, &[]);
    let Step::Page {
        url: l_url,
        html: l_html,
        ..
    } = follow(&anon, &issuer, anon.get(u.clone()).send().await.unwrap(), u).await
    else {
        panic!("expected the login page")
    };
    let csrf = form_field(&l_url, &l_html, "csrf");
    let r = anon
        .post(app.url("/consent"))
        .form(&[("csrf", csrf.as_str()), ("req", req.as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_no_code(r, &code, "a browser without a login").await;
    app.stop().await;
}

/// `who` got neither a redirect carrying `code` nor a page (form_post) with it.
async fn assert_no_code(r: reqwest::Response, code: &str, who: &str) {
    let redirected = r
        .headers()
        .get("location")
        .is_some_and(|l| l.to_str().unwrap().contains(code));
    assert!(!redirected, "{who} got the code");
    assert!(!r.text().await.unwrap().contains(code), "{who} got the code");
}

/// The value of the field `name` in the first form of `html`.
fn form_field(url: &Url, html: &str, name: &str) -> String {
    let form = forms(url, html).into_iter().next().expect("a form");
    form.fields.into_iter().find(|(k, _)| k == name).expect(name).1
}

/// RP-Initiated Logout: a confirmation page signs out to the address it was opened for,
/// even when another logout request (another client's, from another page) came to the
/// same session before the person confirmed.
async fn a_logout_confirmation_keeps_its_own_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, _) = app.confidential_client(REDIRECT).await;
    let other_redirect = "https://app2.example/cb";
    let (second, _) = app.confidential_client(other_redirect).await;
    app.user("alice", PASSWORD).await;
    let b = browser();
    let u = authorize_url(&app, first.id.as_str(), REDIRECT, &[]);
    let step = authorize_in_browser(&b, &app, &u, "alice", "allow").await;
    assert!(matches!(step, Step::LeftIssuer(_)), "{step:?}");
    let logout_page = |client_id: &str, redirect: &str, state: &str| {
        let mut u = Url::parse(&app.url("/logout")).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("post_logout_redirect_uri", &format!("{redirect}/logged-out"))
            .append_pair("state", state);
        let b = b.clone();
        async move {
            let r = b.get(u.clone()).send().await.unwrap();
            assert_eq!(r.status(), 200);
            (u, r.text().await.unwrap())
        }
    };
    let (url, html) = logout_page(first.id.as_str(), REDIRECT, "first").await;
    let (other_url, other_html) = logout_page(second.id.as_str(), other_redirect, "second").await;
    let r = submit(&b, &url, &html, &[]).await;
    let back = location(&url, &r);
    assert!(back.as_str().starts_with(&format!("{REDIRECT}/logged-out")), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("first"));
    // The session has ended: the other page no longer signs anyone out or redirects.
    let r = submit(&b, &other_url, &other_html, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    app.stop().await;
}

/// RFC 6749 §3.2: a parameter sent without a value is omitted. So `code=` and
/// `refresh_token=` are missing (invalid_request), and so is `token=` at /revoke
/// (RFC 7009 §2.1) and /introspect (RFC 7662 §2.1), where it is REQUIRED.
async fn empty_parameters_are_omitted_at_the_token_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("pia", PASSWORD).await;
    let creds = (client.id.as_str(), secret.expose());
    let tokens = obtain_tokens(&app, creds.0, creds.1, "pia").await;
    let access = tokens["access_token"].as_str().unwrap();
    let grants = active_grants(&app).await;

    let redirect = form(&[("redirect_uri", REDIRECT)]);
    for body in [
        format!("grant_type=authorization_code&code=&{redirect}&code_verifier={VERIFIER}"),
        "grant_type=refresh_token&refresh_token=".to_owned(),
    ] {
        let (s, v) = post_raw(&app, "/token", creds, &body).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{body}: {v}");
        assert!(v.get("access_token").is_none());
    }
    assert_eq!(active_grants(&app).await, grants, "nothing issued");

    for path in ["/revoke", "/introspect"] {
        for body in ["token=", "token=&token_type_hint=access_token"] {
            let (s, v) = post_raw(&app, path, creds, body).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (400, Some("invalid_request")),
                "{path} {body}: {v}"
            );
            assert!(v.get("active").is_none(), "{path}: {v}");
        }
    }
    // Nothing was revoked: the token and its grant are still active.
    let token = form(&[("token", access)]);
    let (s, v) = post_raw(&app, "/introspect", creds, &token).await;
    assert_eq!((s, &v["active"]), (200, &Value::Bool(true)), "{v}");
    assert_eq!(active_grants(&app).await, grants);
    app.stop().await;
}

/// A disabled client's outstanding access tokens stop working at once (introspection,
/// userinfo), and its grants end (refresh tokens with them), on every store; once
/// re-enabled, the tokens it gets work.
async fn disabling_a_client_revokes_its_outstanding_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (rs, rs_secret) = app.confidential_client("https://rs.example/cb").await;
    app.user("quinn", PASSWORD).await;
    let id = client.id.to_string();
    let creds = (id.as_str(), secret.expose());
    let rs_creds = (rs.id.as_str(), rs_secret.expose());
    let (_, key) = api_key(&app, AdminRole::Admin).await;
    let api = Api::new(&app, &key);

    let introspect = |token: String| {
        let app = &app;
        async move {
            let body = form(&[("token", token.as_str())]);
            let (s, v) = post_raw(app, "/introspect", rs_creds, &body).await;
            assert_eq!(s, 200, "{v}");
            v
        }
    };
    let userinfo = |token: String| {
        let app = &app;
        async move {
            http()
                .get(app.url("/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let client_credentials = || async { post_raw(&app, "/token", creds, "grant_type=client_credentials").await };

    let user_tokens = obtain_tokens(&app, creds.0, creds.1, "quinn").await;
    let user_token = user_tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = user_tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, cc) = client_credentials().await;
    assert_eq!(s, 200, "{cc}");
    let cc_token = cc["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(user_token.clone()).await["active"], true);
    assert_eq!(introspect(cc_token.clone()).await["active"], true);
    assert_eq!(userinfo(user_token.clone()).await, 200);
    let other_token = client_credentials_of(&app, rs_creds).await;

    let (s, v) = api.post_empty(&format!("/clients/{id}/disable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &Value::Bool(true)));
    for t in [&user_token, &cc_token] {
        assert_eq!(introspect(t.clone()).await, serde_json::json!({"active": false}));
    }
    assert_eq!(userinfo(user_token.clone()).await, 401);
    let (s, v) = client_credentials().await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    assert!(v.get("access_token").is_none(), "nothing issued while disabled");
    assert_eq!(
        introspect(other_token).await["active"],
        true,
        "other clients' tokens are untouched"
    );

    // Re-enabled at once (within the second of the disable): tokens issued from now
    // on work, the old ones stay revoked.
    let (s, v) = api.post_empty(&format!("/clients/{id}/enable")).await;
    assert_eq!((s.as_u16(), &v["disabled"]), (200, &Value::Bool(false)));
    assert_eq!(
        introspect(user_token.clone()).await["active"],
        false,
        "re-enabling does not bring old tokens back"
    );
    assert_eq!(userinfo(user_token).await, 401);
    // Nor a refresh token issued before: the client's grants ended with the disable.
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ]);
    let (s, v) = post_raw(&app, "/token", creds, &body).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    assert_eq!(active_grants(&app).await, 0);
    let fresh = obtain_tokens(&app, creds.0, creds.1, "quinn").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(fresh.clone()).await["active"], true);
    assert_eq!(userinfo(fresh).await, 200);
    let (s, cc) = client_credentials().await;
    assert_eq!(s, 200, "{cc}");
    assert_eq!(
        introspect(cc["access_token"].as_str().unwrap().to_owned()).await["active"],
        true
    );
    app.stop().await;
}

async fn client_credentials_of(app: &TestApp, creds: (&str, &str)) -> String {
    let (s, v) = post_raw(app, "/token", creds, "grant_type=client_credentials").await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

both_backends!(
    loopback_ip_redirect_uri_accepts_any_port,
    max_age_zero_forces_a_login,
    max_age_is_never_overshot,
    an_essential_acr_is_an_unmet_requirement,
    an_answered_request_is_given_again_only_to_its_login,
    a_logout_confirmation_keeps_its_own_redirect,
    empty_parameters_are_omitted_at_the_token_endpoints,
    disabling_a_client_revokes_its_outstanding_tokens,
);
