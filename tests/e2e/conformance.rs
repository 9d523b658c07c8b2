//! Conformance fixes from review: POSTed authorize/logout re-sent as GET, redirect_uri
//! required for OpenID requests, introspection past a
//! wrong hint, max_age after a login in the same request, error_description characters,
//! repeated empty parameters, disabled clients at logout, bare Bearer challenges,
//! lenient prompt values and id_token_hint at /authorize and /logout.

use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app};
use serde_json::Value;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser, obtain_tokens, obtain_tokens_with};
use crate::conformance_sessions::futures_join;
use crate::forms::{Step, follow, location, param, submit};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An authorization request for `client_id` (scope `openid`, PKCE) plus `extra`.
pub(crate) fn auth_params<'a>(client_id: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    p.extend_from_slice(extra);
    p
}

pub(crate) fn auth_url(app: &TestApp, params: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs(params);
    u
}

/// RFC 6749 §4.1.2.1 / §5.2: %x20-21 / %x23-5B / %x5D-7E.
fn allowed_description(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Signs `username` in with `b` and consents for `client_id`.
pub(crate) async fn sign_in(app: &TestApp, b: &reqwest::Client, client_id: &str, username: &str) {
    let u = auth_url(app, &auth_params(client_id, &[]));
    let step = authorize_in_browser(b, app, &u, username, "allow").await;
    assert!(
        matches!(step, Step::LeftIssuer(ref back) if param(back, "code").is_some()),
        "{step:?}"
    );
}

/// The error of a `prompt=none` request in browser `b` (None when a code came back).
pub(crate) async fn prompt_none_error(
    app: &TestApp,
    b: &reqwest::Client,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Option<String> {
    let mut extra = extra.to_vec();
    extra.push(("prompt", "none"));
    let u = auth_url(app, &auth_params(client_id, &extra));
    let back = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    match param(&back, "error") {
        Some(e) => Some(e),
        None => {
            assert!(param(&back, "code").is_some(), "{back}");
            None
        }
    }
}

/// RP-Initiated Logout §2 / OIDC Core §3.1.2.1: a POST from the client's site carries no
/// SameSite=Lax cookie, so it is re-sent as a GET with the same parameters.
async fn posted_logout_and_authorize_are_resent_as_get(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("gina", PASSWORD).await;
    let id = client.id.as_str();
    let tokens = obtain_tokens(&app, id, secret.expose(), "gina").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let b = browser();
    sign_in(&app, &b, id, "gina").await;

    // POST /authorize without the cookie (as from another site): 303 to the GET form.
    let params = auth_params(id, &[("prompt", "none"), ("state", "p s")]);
    let r = http().post(app.url("/authorize")).form(&params).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let get = location(&Url::parse(&app.issuer).unwrap(), &r);
    assert_eq!(get.path(), "/authorize");
    let sent: Vec<(String, String)> = get
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    assert_eq!(sent, expected, "the same parameters, in the query");
    assert!(r.headers().get("set-cookie").is_none(), "nothing kept before the GET");
    // The browser follows with its cookie: the session is used, single sign-on.
    let back = location(&get, &b.get(get.clone()).send().await.unwrap());
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("p s"));

    // POST /logout: 303 to GET /logout with the same parameters; the session is found
    // there, so the person is asked to confirm and the session really ends.
    let post_logout = format!("{REDIRECT}/logged-out");
    let form = [
        ("id_token_hint", id_token),
        ("post_logout_redirect_uri", post_logout.as_str()),
        ("state", "bye"),
    ];
    let r = http().post(app.url("/logout")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let get = location(&Url::parse(&app.issuer).unwrap(), &r);
    assert_eq!(get.path(), "/logout");
    let sent: Vec<(String, String)> = get
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected: Vec<(String, String)> = form.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    assert_eq!(sent, expected);
    let r = b.get(get.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200, "signed in: the confirmation page");
    let html = r.text().await.unwrap();
    let back = location(&get, &submit(&b, &get, &html, &[]).await);
    assert!(back.as_str().starts_with(&post_logout), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("bye"));
    assert_eq!(
        prompt_none_error(&app, &b, id, &[]).await.as_deref(),
        Some("login_required")
    );

    // A body too long to go into a URL is refused, not turned into a redirect nobody
    // could follow (URLs over 64 KiB are refused, here as elsewhere).
    let huge = "x".repeat(300_000);
    for (path, name) in [("/authorize", "request"), ("/logout", "id_token_hint")] {
        let r = http()
            .post(app.url(path))
            .form(&[(name, huge.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(r.headers().get("location").is_none(), "{path}");
        // `/logout` bounds its parameters before: an ID token hint is a few kilobytes.
        let text = r.text().await.unwrap();
        assert!(
            text.contains("too long to be followed") || text.contains("longer than 8192 bytes"),
            "{path}: {text}"
        );
    }
    app.stop().await;
}

/// OIDC Core §3.1.2.1: redirect_uri is required with scope openid (an error page, never
/// a redirect); RFC 6749 §3.1.2.3 still lets plain OAuth 2.0 requests leave it out.
async fn openid_request_without_redirect_uri_is_an_error_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    let without = |scope: &'static str| {
        auth_params(id, &[])
            .into_iter()
            .filter(|(k, _)| *k != "redirect_uri" && *k != "scope")
            .chain([("scope", scope), ("state", "s")])
            .collect::<Vec<_>>()
    };
    let r = browser()
        .get(auth_url(&app, &without("openid profile")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never redirected");
    assert!(r.text().await.unwrap().contains("redirect_uri"));
    // Plain OAuth 2.0 with one registered URI: on to the login page.
    let u = auth_url(&app, &without("api:read"));
    let r = browser().get(u.clone()).send().await.unwrap();
    assert_eq!(location(&u, &r).path(), "/login");
    assert_eq!(app.core.store.count_active_grants(app.core.now()).await.unwrap(), 0);
    app.stop().await;
}

/// RFC 7662 §2.1: a token not found as the hinted type is looked up as every type.
async fn introspection_searches_past_a_wrong_hint(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("hank", PASSWORD).await;
    let (id, sec) = (client.id.as_str(), secret.expose());
    let tokens = obtain_tokens(&app, id, sec, "hank").await;
    let introspect = |token: String, hint: &'static str| {
        let app = &app;
        async move {
            http()
                .post(app.url("/introspect"))
                .basic_auth(id, Some(sec))
                .form(&[("token", token.as_str()), ("token_type_hint", hint)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let r = introspect(access.clone(), "refresh_token").await;
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["token_type"], "Bearer");
    let r = introspect(refresh.clone(), "access_token").await;
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["token_type"], "refresh_token");
    assert_eq!(
        introspect("x".repeat(43), "refresh_token").await,
        serde_json::json!({"active": false})
    );
    app.stop().await;
}

/// OIDC Core §3.1.2.1 max_age: a login during this request satisfies it, however long
/// the consent page takes.
async fn max_age_is_satisfied_by_a_login_in_this_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("ivy", PASSWORD).await;
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    let u = auth_url(&app, &auth_params(client.id.as_str(), &[("max_age", "0")]));
    let step = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await;
    let Step::Page { url, html, .. } = step else {
        panic!("expected the login page")
    };
    assert_eq!(url.path(), "/login");
    let r = submit(&b, &url, &html, &[("username", "ivy"), ("password", PASSWORD)]).await;
    let Step::Page { url, html, .. } = follow(&b, &issuer, r, url).await else {
        panic!("expected the consent page")
    };
    assert_eq!(url.path(), "/consent");
    // max_age counts whole seconds since login.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = submit(&b, &url, &html, &[("decision", "allow")]).await;
    let Step::LeftIssuer(back) = follow(&b, &issuer, r, url).await else {
        panic!("consent after a fresh login must answer the client, not ask for another login")
    };
    assert!(param(&back, "code").is_some(), "{back}");
    app.stop().await;
}

/// RFC 6749 §4.1.2.1 / §5.2: error_description carries only the allowed characters.
async fn error_descriptions_use_allowed_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    // A malformed code_challenge and a scope with a quote: redirected errors.
    for extra in [
        vec![("code_challenge", "short\"\\")],
        vec![("scope", "openid a\"b")],
        // Not an OpenID request: with `openid` the unknown value would be ignored.
        vec![("scope", "profile api:unknown")],
    ] {
        let mut params: Vec<(&str, &str)> = auth_params(id, &[]);
        params.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        params.extend(extra);
        let u = auth_url(&app, &params);
        let back = location(&u, &http().get(u.clone()).send().await.unwrap());
        let d = param(&back, "error_description").unwrap();
        assert!(param(&back, "error").is_some() && param(&back, "code").is_none());
        assert!(allowed_description(&d), "{d:?}");
        assert!(!d.contains("a\"b") && !d.contains("api:unknown"), "no echo: {d:?}");
    }
    // JSON errors: a short code_verifier, a repeated parameter, an unknown grant type.
    for body in [
        "grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Frp.example%2Fcallback&code_verifier=short"
            .to_owned(),
        "grant_type=client_credentials&x%22%C2%A7=1&x%22%C2%A7=2".to_owned(),
        "grant_type=%22%C2%A7%5C".to_owned(),
    ] {
        let r = http()
            .post(app.url("/token"))
            .basic_auth(id, Some(secret.expose()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        let d = v["error_description"].as_str().unwrap();
        assert!(allowed_description(d), "{body}: {d:?}");
        assert!(v.get("access_token").is_none());
    }
    assert_eq!(app.core.store.count_active_grants(app.core.now()).await.unwrap(), 0);
    app.stop().await;
}

/// OIDC Core §3.1.2.6: an unsigned request object, a `request_uri` the client did not
/// register and the `registration` parameter are refused with their own error codes,
/// redirected to the client with its state.
async fn unsupported_request_parameters_have_their_own_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    for (name, value, error) in [
        // Request objects are taken signed only (discovery lists no `none`).
        ("request", "eyJhbGciOiJub25lIn0.e30.", "invalid_request_object"),
        ("request_uri", "https://rp.example/request.jwt", "invalid_request_uri"),
        ("registration", "{\"client_name\":\"x\"}", "registration_not_supported"),
    ] {
        let u = auth_url(&app, &auth_params(id, &[(name, value), ("state", "s1")]));
        let back = location(&u, &browser().get(u.clone()).send().await.unwrap());
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{name}");
        assert_eq!(param(&back, "state").as_deref(), Some("s1"));
        assert!(param(&back, "code").is_none());
    }
    app.stop().await;
}

/// RFC 6749 §3.1: a parameter without a value is treated as omitted, so `state=&state=x`
/// is `state=x`; `state=a&state=x` repeats `state`, at /authorize and at /logout.
async fn repeated_parameters_and_empty_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    let u = auth_url(
        &app,
        &auth_params(id, &[("state", ""), ("state", "x"), ("prompt", "none")]),
    );
    let back = location(&u, &browser().get(u.clone()).send().await.unwrap());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("x"));
    let u = auth_url(&app, &auth_params(id, &[("state", "a"), ("state", "x")]));
    let back = location(&u, &browser().get(u.clone()).send().await.unwrap());
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert!(param(&back, "code").is_none());
    let logout = |first: &str| {
        let mut lo = Url::parse(&app.url("/logout")).unwrap();
        lo.query_pairs_mut()
            .append_pair("client_id", id)
            .append_pair("post_logout_redirect_uri", &format!("{REDIRECT}/logged-out"))
            .append_pair("state", first)
            .append_pair("state", "x");
        lo
    };
    let r = browser().get(logout("a")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // Nobody is signed in: straight back to the registered URI, with the state.
    let r = browser().get(logout("")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}/logged-out?state=x")
    );
    app.stop().await;
}

/// A disabled client's post_logout_redirect_uri is neither accepted nor redirected to,
/// nor is it when the client was disabled while the confirmation page was open.
async fn logout_ignores_a_disabled_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("client_id", client.id.as_str())
        .append_pair("post_logout_redirect_uri", &format!("{REDIRECT}/logged-out"));
    let r = browser().get(lo.clone()).send().await.unwrap();
    assert_eq!(r.status(), 303, "enabled: redirected");
    // Signed in, the person is asked to confirm; the client is disabled while that page
    // is open: confirming signs out, and sends nowhere.
    let lee = app.user("lee", PASSWORD).await;
    let b = browser();
    sign_in(&app, &b, client.id.as_str(), "lee").await;
    let r = b.get(lo.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200, "the confirmation page");
    let html = r.text().await.unwrap();
    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    let r = submit(&b, &lo, &html, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none(), "not redirected");
    assert!(r.text().await.unwrap().contains("You are signed out"));
    assert!(app.core.list_user_sessions(lee.id).await.unwrap().is_empty());
    let r = browser().get(lo).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never redirected");
    app.stop().await;
}

/// RFC 6750 §3.1: no credentials (or not Bearer ones): a bare challenge.
async fn userinfo_without_credentials_gets_a_bare_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    for auth in [None, Some("Basic dXNlcjpwYXNz"), Some("Negotiate abc")] {
        let mut req = http().get(app.url("/userinfo"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"portcullis\"",
            "{auth:?}"
        );
    }
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    app.stop().await;
}

/// OIDC Core §3.1.2.1 prompt: select_account acts like login, unknown values are
/// ignored, none with anything else is invalid_request.
async fn prompt_values_are_lenient_but_none_stays_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("jay", PASSWORD).await;
    let id = client.id.as_str();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    sign_in(&app, &b, id, "jay").await;
    // Signed in and consented: an unknown value changes nothing.
    let u = auth_url(&app, &auth_params(id, &[("prompt", "unheard-of")]));
    let back = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert!(param(&back, "code").is_some(), "{back}");
    // select_account: the login page, even with a session.
    let u = auth_url(&app, &auth_params(id, &[("prompt", "select_account")]));
    let Step::Page { url, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("select_account must show the login page")
    };
    assert_eq!(url.path(), "/login");
    for prompt in ["none unheard-of", "none select_account"] {
        let u = auth_url(&app, &auth_params(id, &[("prompt", prompt)]));
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{prompt}");
        assert!(param(&back, "code").is_none());
    }
    app.stop().await;
}

/// OIDC Core §3.1.2.1 id_token_hint at /authorize, and at /logout (RP-Initiated Logout
/// §2) a hint naming someone else than the signed-in person.
async fn id_token_hint_for_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("kim", PASSWORD).await;
    app.user("lee", PASSWORD).await;
    let id = client.id.as_str();
    let kim_hint = obtain_tokens(&app, id, secret.expose(), "kim").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let lee_hint = obtain_tokens(&app, id, secret.expose(), "lee").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    sign_in(&app, &b, id, "lee").await;

    // Lee's own hint: fine. Kim's: login_required with prompt=none, else a login.
    assert_eq!(
        prompt_none_error(&app, &b, id, &[("id_token_hint", lee_hint.as_str())]).await,
        None
    );
    assert_eq!(
        prompt_none_error(&app, &b, id, &[("id_token_hint", kim_hint.as_str())])
            .await
            .as_deref(),
        Some("login_required")
    );
    let u = auth_url(
        &app,
        &auth_params(id, &[("id_token_hint", kim_hint.as_str()), ("prompt", "none")]),
    );
    let back = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert_eq!(
        param(&back, "error_description").as_deref(),
        Some("the user id_token_hint names is not signed in")
    );
    let u = auth_url(&app, &auth_params(id, &[("id_token_hint", kim_hint.as_str())]));
    let Step::Page { url, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("a hint for someone else must show the login page")
    };
    assert_eq!(url.path(), "/login");
    // On that page Lee signs in again, not Kim: login_required, to the client, with the
    // state (OIDC Core §3.1.2.1: "otherwise, it SHOULD return an error").
    let u = auth_url(
        &app,
        &auth_params(id, &[("id_token_hint", kim_hint.as_str()), ("state", "k")]),
    );
    let Step::LeftIssuer(back) = authorize_in_browser(&b, &app, &u, "lee", "allow").await else {
        panic!("signing in as someone else than the hinted person must go back to the client")
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("k"));
    assert!(param(&back, "code").is_none());
    // Kim signs in: a code, for Kim.
    let Step::LeftIssuer(back) = authorize_in_browser(&b, &app, &u, "kim", "allow").await else {
        panic!("the hinted person signing in must get a code")
    };
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(
        prompt_none_error(&app, &b, id, &[("id_token_hint", kim_hint.as_str())]).await,
        None,
        "Kim is signed in now"
    );
    // A hint we did not issue: invalid_request, to the client.
    let mut forged = kim_hint.clone();
    forged.truncate(forged.len() - 4);
    for hint in ["not-a-jwt", forged.as_str()] {
        let u = auth_url(&app, &auth_params(id, &[("id_token_hint", hint), ("state", "h")]));
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{hint}");
        assert_eq!(param(&back, "state").as_deref(), Some("h"));
        assert!(param(&back, "code").is_none());
    }

    // Logout with Lee's hint while Kim is signed in: asked, told, not signed out.
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut().append_pair("id_token_hint", lee_hint.as_str());
    let r = b.get(lo.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"other-account\""), "{html}");
    assert_eq!(prompt_none_error(&app, &b, id, &[]).await, None, "still signed in");
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut().append_pair("id_token_hint", kim_hint.as_str());
    let html = b.get(lo).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("id=\"other-account\""), "{html}");
    assert!(!html.contains("id=\"unverified\""), "{html}");
    // A hint this server cannot verify (here forged; in life, one signed by a key since
    // withdrawn): the person may sign out, is told why they stay, and is not redirected
    // (RP-Initiated Logout §4), even to a registered URI.
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("id_token_hint", forged.as_str())
        .append_pair("client_id", id)
        .append_pair("post_logout_redirect_uri", &format!("{REDIRECT}/logged-out"));
    let r = b.get(lo.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"unverified\""), "{html}");
    let r = submit(&b, &lo, &html, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none(), "not redirected");
    assert_eq!(
        prompt_none_error(&app, &b, id, &[]).await.as_deref(),
        Some("login_required"),
        "signed out"
    );
    // Signed out already: nothing to confirm, and still no redirect.
    let r = b.get(lo).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    app.stop().await;
}

/// OIDC Core §5.5: a `claims` request for userinfo's `name`, essential, with scope
/// `openid` only (the OIDF suite's oidcc-claims-essential): the token covers `profile`
/// and userinfo returns the name. A `sub` value names the person as id_token_hint does;
/// a malformed `claims` is invalid_request; a client that may not use `profile` gets
/// `openid` only; a plain OAuth 2.0 request's `claims` is ignored.
async fn claims_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    let kim = app.user("kim", PASSWORD).await;
    app.user("lee", PASSWORD).await;
    let essential_name = r#"{"userinfo":{"name":{"essential":true}},"id_token":{"auth_time":{"essential":true}}}"#;
    let tokens = obtain_tokens_with(
        &app,
        (id, secret.expose()),
        "kim",
        "openid",
        &[("claims", essential_name)],
    )
    .await;
    assert_eq!(tokens["scope"], "openid profile", "{tokens}");
    let info: Value = http()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "kim Example", "{info}");
    assert!(info.get("email").is_none(), "only what was asked: {info}");
    // Without `claims`: no profile.
    let plain = obtain_tokens_with(&app, (id, secret.expose()), "kim", "openid", &[]).await;
    assert_eq!(plain["scope"], "openid");

    // §5.5.1 sub value: Kim's own passes; Lee's, with Kim signed in: login_required.
    let b = browser();
    sign_in(&app, &b, id, "kim").await;
    let for_sub = |sub: &str| format!(r#"{{"id_token":{{"sub":{{"value":"{sub}"}}}}}}"#);
    let kims = for_sub(&kim.id.to_string());
    assert_eq!(
        prompt_none_error(&app, &b, id, &[("claims", kims.as_str())]).await,
        None
    );
    let someone_else = for_sub("not-kim");
    assert_eq!(
        prompt_none_error(&app, &b, id, &[("claims", someone_else.as_str())])
            .await
            .as_deref(),
        Some("login_required")
    );
    // Malformed: invalid_request, to the client, with the state.
    for bad in ["not json", r#"{"userinfo":{"name":true}}"#, r#"{"userinfo":[]}"#] {
        let u = auth_url(&app, &auth_params(id, &[("claims", bad), ("state", "m")]));
        let back = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{bad}");
        assert_eq!(param(&back, "state").as_deref(), Some("m"));
    }
    // A client that may use `openid` only: the claim is not released.
    let narrow = app
        .core
        .create_client(
            &portcullis_core::clients::ClientInput {
                name: "Narrow".into(),
                kind: Some(portcullis_core::model::ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let narrow_secret = narrow.1.unwrap();
    let tokens = obtain_tokens_with(
        &app,
        (narrow.0.id.as_str(), narrow_secret.expose()),
        "kim",
        "openid",
        &[("claims", essential_name)],
    )
    .await;
    assert_eq!(tokens["scope"], "openid");
    // Not an OpenID request: `claims` means nothing, even malformed.
    let tokens = obtain_tokens_with(
        &app,
        (id, secret.expose()),
        "kim",
        "api:read",
        &[("claims", "not json")],
    )
    .await;
    assert_eq!(tokens["scope"], "api:read");
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["claims_parameter_supported"], true);
    app.stop().await;
}

/// Found by a browser probe. The consent page answers only when consent is the next step:
/// with prompt=login it sends the person to sign in first, and Allow records nothing
/// before that (OIDC Core §3.1.2.1). Allow sent several times at once gives one code. A
/// login page for a request that no longer needs a login (signed in in another tab) goes
/// on to the request's next step.
async fn consent_and_login_follow_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let id = client.id.as_str();
    app.user("kim", PASSWORD).await;
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    // Kim signs in (prompt=login) and reaches the consent page of this client.
    let u = auth_url(&app, &auth_params(id, &[("prompt", "login")]));
    let Step::Page { url, html, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("a login page")
    };
    assert_eq!(url.path(), "/login");
    // Every page loads the script that drops a second submission of a form.
    assert!(
        html.contains(r#"<script src="/static/forms.js" defer></script>"#),
        "{html}"
    );
    let js = http().get(app.url("/static/forms.js")).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.unwrap().contains("form.dataset.sent"));
    let req = param(&url, "req").unwrap();
    let resp = submit(&b, &url, &html, &[("username", "kim"), ("password", PASSWORD)]).await;
    let Step::Page {
        url: consent_url,
        html: consent_html,
        ..
    } = follow(&b, &issuer, resp, url).await
    else {
        panic!("a consent page")
    };
    assert_eq!(consent_url.path(), "/consent");
    // A new request with prompt=login: its consent page and Allow go to the login first.
    let u = auth_url(&app, &auth_params(id, &[("prompt", "login"), ("state", "again")]));
    let again = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert_eq!(again.path(), "/login");
    let again_req = param(&again, "req").unwrap();
    let mut page = issuer.join("/consent").unwrap();
    page.query_pairs_mut().append_pair("req", &again_req);
    let r = b.get(page.clone()).send().await.unwrap();
    assert_eq!(location(&page, &r).path(), "/login", "GET /consent before the login");
    let csrf = crate::forms::forms(&consent_url, &consent_html)
        .into_iter()
        .next()
        .unwrap()
        .fields
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1;
    let r = b
        .post(app.url("/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", again_req.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&page, &r).path(), "/login", "POST /consent before the login");
    assert_eq!(
        prompt_none_error(&app, &b, id, &[]).await.as_deref(),
        Some("consent_required"),
        "nothing was recorded"
    );

    // The first request's consent page, Allow sent four times at once: one code.
    assert_eq!(req, param(&consent_url, "req").unwrap());
    let posts = (0..4).map(|_| {
        let b = b.clone();
        let (url, csrf, req) = (app.url("/consent"), csrf.clone(), req.clone());
        async move {
            b.post(url)
                .form(&[("csrf", csrf.as_str()), ("req", req.as_str()), ("decision", "allow")])
                .send()
                .await
                .unwrap()
        }
    });
    let mut codes = Vec::new();
    for r in futures_join(posts).await {
        // Every copy that answers carries the first answer: the browser shows the last
        // one it sent, which must not be an error.
        let to = location(&consent_url, &r);
        assert!(to.as_str().starts_with(REDIRECT), "{to}");
        codes.push(param(&to, "code").expect("a code"));
    }
    // Sent once more after all that: the same answer again.
    let r = b
        .post(app.url("/consent"))
        .form(&[("csrf", csrf.as_str()), ("req", req.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    codes.push(param(&location(&consent_url, &r), "code").expect("the same answer"));
    codes.dedup();
    assert_eq!(codes.len(), 1, "one authorization request, one code: {codes:?}");

    // Two tabs: B's request waits at the login page while A signs in; B's login page then
    // goes on (here to the client: Kim has consented now).
    let fresh = browser();
    let tab_b = auth_url(&app, &auth_params(id, &[("state", "b")]));
    let b_login = location(&tab_b, &fresh.get(tab_b.clone()).send().await.unwrap());
    assert_eq!(b_login.path(), "/login");
    let tab_a = auth_url(&app, &auth_params(id, &[("state", "a")]));
    let Step::LeftIssuer(back) = authorize_in_browser(&fresh, &app, &tab_a, "kim", "allow").await else {
        panic!("tab A signs in")
    };
    assert_eq!(param(&back, "state").as_deref(), Some("a"));
    let login_b = issuer
        .join(&format!("{}?{}", b_login.path(), b_login.query().unwrap()))
        .unwrap();
    let r = fresh.get(login_b.clone()).send().await.unwrap();
    let to = location(&login_b, &r);
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("b"));
    assert!(param(&to, "code").is_some());
    app.stop().await;
}

/// OIDC Discovery §2 (WebFinger, RFC 7033): any account or URL asked about signs in with
/// this issuer; `rel` picks the links; a request without one resource is a 400; any
/// origin may ask.
async fn webfinger_names_the_issuer(backend: Backend) {
    let app = spawn_app(backend).await;
    const REL: &str = "http://openid.net/specs/connect/1.0/issuer";
    let get = |query: &str| {
        let url = app.url(&format!("/.well-known/webfinger{query}"));
        async move { http().get(url).send().await.unwrap() }
    };
    for resource in ["acct:alice@example.com", "https://example.com/alice"] {
        let mut u = Url::parse(&app.url("/.well-known/webfinger")).unwrap();
        u.query_pairs_mut()
            .append_pair("resource", resource)
            .append_pair("rel", REL);
        let r = http().get(u).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/jrd+json");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["subject"], resource);
        assert_eq!(body["links"][0]["rel"], REL);
        assert_eq!(body["links"][0]["href"], app.issuer.as_str());
        assert_eq!(body["links"].as_array().unwrap().len(), 1);
    }
    // Another relation only: no links. No relation: all of them.
    let body: Value = get("?resource=acct:a@b&rel=http://webfinger.net/rel/avatar")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["links"], serde_json::json!([]));
    let body: Value = get("?resource=acct:a@b").await.json().await.unwrap();
    assert_eq!(body["links"][0]["href"], app.issuer.as_str());
    for query in [
        "",
        "?rel=x",
        "?resource=",
        "?resource=acct:a@b&resource=acct:c@d",
        "?resource=acct:a%00",
        "?resource=joe",
        "?resource=%FF",
    ] {
        let r = get(query).await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }
    app.stop().await;
}

both_backends!(
    webfinger_names_the_issuer,
    consent_and_login_follow_the_request,
    claims_parameter,
    unsupported_request_parameters_have_their_own_errors,
    posted_logout_and_authorize_are_resent_as_get,
    openid_request_without_redirect_uri_is_an_error_page,
    introspection_searches_past_a_wrong_hint,
    max_age_is_satisfied_by_a_login_in_this_request,
    error_descriptions_use_allowed_characters,
    repeated_parameters_and_empty_ones,
    logout_ignores_a_disabled_client,
    userinfo_without_credentials_gets_a_bare_challenge,
    prompt_values_are_lenient_but_none_stays_alone,
    id_token_hint_for_another_user,
);
