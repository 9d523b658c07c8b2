//! OpenID Connect Front-Channel Logout 1.0 on both backends: signing out here loads, in
//! hidden iframes of the signed-out page, the `frontchannel_logout_uri` (with `iss` and
//! `sid`) of each client signed in from that browser session, then goes on to the
//! validated post-logout redirect; in a real browser (headless Chromium) the client's
//! page is loaded and the redirect follows. Registration rules for the URI.

use std::time::Duration;

use portcullis_core::clients::ClientInput;
use portcullis_core::model::{AdminRole, ClientKind};
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app};
use serde_json::{Value, json};
use url::Url;

use crate::admin_support::{Api, api_key, assert_field};
use crate::browser_flow::{Browser, callback_server};
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::submit;

/// A confidential client redirecting to `redirect` (and to `REDIRECT`, where the tests
/// sign in), with `frontchannel` if given.
async fn client(app: &TestApp, redirect: &str, frontchannel: Option<&str>) -> (String, String) {
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: "Framed app".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![redirect.into(), REDIRECT.into()],
                post_logout_redirect_uris: vec![format!("{redirect}/bye")],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                frontchannel_logout_uri: frontchannel.map(str::to_owned),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    (c.id.as_str().to_owned(), s.unwrap().expose().to_owned())
}

/// Signs `username` in to `(id, secret)` in browser `b` and redeems the code.
async fn tokens_in(app: &TestApp, b: &reqwest::Client, (id, secret): (&str, &str), username: &str) -> Value {
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256");
    let crate::forms::Step::LeftIssuer(back) = authorize_in_browser(b, app, &auth, username, "allow").await else {
        panic!("no code")
    };
    let code = crate::forms::param(&back, "code").unwrap();
    let r = http()
        .post(app.url("/token"))
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
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn query(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The address of every front-channel iframe of a page (given by its script); each is
/// also in the page's `<noscript>`, with `src`.
fn frames(html: &str) -> Vec<String> {
    let scripted = html.matches("<iframe class=\"frontchannel\" data-src=\"").count();
    let plain = html.matches("<iframe class=\"frontchannel\" src=\"").count();
    assert_eq!(
        scripted, plain,
        "each frame also for browsers without JavaScript: {html}"
    );
    html.split("<iframe class=\"frontchannel\" data-src=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap()
                .replace("&#38;", "&")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The signed-out page frames the pages of the session's clients that have one (not
/// another session's, not a disabled client's), with `iss` and `sid`, allows just their
/// origins in its CSP, and leads on to the validated redirect; without frames, the
/// redirect is a 303 as before.
async fn signing_out_frames_the_sessions_clients(backend: Backend) {
    let app = spawn_app(backend).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["frontchannel_logout_supported"], true);
    assert_eq!(meta["frontchannel_logout_session_supported"], true);
    app.user("kim", PASSWORD).await;
    let framed = client(&app, REDIRECT, Some("https://rp.example/fc?app=1")).await;
    let other = client(&app, "https://other.example/cb", Some("https://other.example/logout")).await;
    let disabled = client(&app, "https://gone.example/cb", Some("https://gone.example/fc")).await;
    let plain = client(&app, "https://plain.example/cb", None).await;
    let elsewhere = client(
        &app,
        "https://elsewhere.example/cb",
        Some("https://elsewhere.example/fc"),
    )
    .await;
    let b = browser();
    // Signed in (codes redeemed: a client's grant is what says it signed the person in).
    for c in [&framed, &other, &disabled, &plain] {
        tokens_in(&app, &b, (&c.0, &c.1), "kim").await;
    }
    // Another browser's session.
    tokens_in(&app, &browser(), (&elsewhere.0, &elsewhere.1), "kim").await;
    app.core
        .set_client_disabled(
            &portcullis_protocol::ClientId::parse(&disabled.0).unwrap(),
            true,
            "test",
        )
        .await
        .unwrap();

    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("client_id", &framed.0)
        .append_pair("post_logout_redirect_uri", &format!("{REDIRECT}/bye"))
        .append_pair("state", "s1");
    let html = b.get(lo.clone()).send().await.unwrap().text().await.unwrap();
    let r = submit(&b, &lo, &html, &[]).await;
    assert_eq!(r.status(), 200, "a page, not a 303: the frames load first");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = r.text().await.unwrap();
    let mut got = frames(&html);
    got.sort();
    assert_eq!(got.len(), 2, "{html}");
    assert!(got[0].starts_with("https://other.example/logout?iss="), "{got:?}");
    assert!(
        got[1].starts_with("https://rp.example/fc?app=1&iss="),
        "its own query kept: {got:?}"
    );
    for f in &got {
        assert_eq!(query(f, "iss").as_deref(), Some(app.issuer.as_str()));
        assert!(query(f, "sid").is_some_and(|s| !s.is_empty()), "{f}");
    }
    assert_eq!(query(&got[0], "sid"), query(&got[1], "sid"), "one session");
    assert!(
        csp.ends_with("frame-src https://other.example https://rp.example") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(html.contains(r#"sandbox="allow-scripts allow-same-origin""#), "{html}");
    assert!(html.contains(r#"<script src="/static/frontchannel.js" defer></script>"#));
    assert!(
        html.contains(&format!(
            r#"<a href="{REDIRECT}/bye?state=s1" id="continue" data-after-frames"#
        )),
        "{html}"
    );
    let js = http().get(app.url("/static/frontchannel.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);

    // The session's sid is the one its ID tokens carried.
    let b2 = browser();
    let tokens = tokens_in(&app, &b2, (&framed.0, &framed.1), "kim").await;
    let sid = crate::pairwise::jwt_claims(tokens["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = Url::parse(&app.url("/logout")).unwrap();
    let html = b2.get(page.clone()).send().await.unwrap().text().await.unwrap();
    let html = submit(&b2, &page, &html, &[]).await.text().await.unwrap();
    let got = frames(&html);
    assert_eq!(got.len(), 1, "{html}");
    assert_eq!(query(&got[0], "sid").as_deref(), Some(sid.as_str()));
    assert!(!html.contains("id=\"continue\""), "nowhere to go on to: {html}");

    // Nothing to frame: the redirect is a 303, as before.
    let b3 = browser();
    tokens_in(&app, &b3, (&plain.0, &plain.1), "kim").await;
    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("client_id", &plain.0)
        .append_pair("post_logout_redirect_uri", "https://plain.example/cb/bye");
    let html = b3.get(lo.clone()).send().await.unwrap().text().await.unwrap();
    let r = submit(&b3, &lo, &html, &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://plain.example/cb/bye");
    app.stop().await;
}

/// Where a front-channel logout URI may be: https (http on loopback), on the origin of
/// one of the client's redirect URIs (§2); refused with its field otherwise in the admin
/// API, and refused at `/register` altogether.
async fn the_uri_is_on_a_redirect_origin(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let body = |fc: &str| {
        json!({
            "name": "Framed",
            "kind": "confidential",
            "redirect_uris": ["https://app.example:8443/cb", "http://127.0.0.1:9000/cb"],
            "grant_types": ["authorization_code"],
            "scopes": "openid",
            "frontchannel_logout_uri": fc,
        })
    };
    for ok in ["https://app.example:8443/logout?x=1", "http://127.0.0.1:9000/fc"] {
        let (s, v) = api.post("/clients", body(ok)).await;
        assert_eq!((s.as_u16(), &v["frontchannel_logout_uri"]), (201, &json!(ok)), "{v}");
    }
    for bad in [
        "https://app.example:8443/logout?sid=forged",
        "https://app.example:8443/logout?a=1&iss=https://evil.example",
        "https://app.example/logout",
        "https://evil.example/logout",
        "http://app.example:8443/logout",
        "http://127.0.0.1:9001/fc",
        "https://app.example:8443/logout#x",
    ] {
        assert_field(&api.post("/clients", body(bad)).await, "frontchannel_logout_uri");
    }

    // Not at `/register`: redirect URIs prove no hold on an origin, so the sign-out page
    // would frame an address of anyone's choosing.
    let r = http()
        .post(app.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "frontchannel_logout_uri": "https://rp.example/fc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client_metadata");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("frontchannel_logout_uri is not open"),
        "{e}"
    );
    app.stop().await;
}

/// In a real browser: the signed-out page loads the client's page (with `iss` and the
/// session's `sid`), then goes on to the post-logout redirect by itself.
async fn a_browser_loads_the_page_then_goes_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (base, mut hits) = callback_server().await;
    let origin = base.trim_end_matches("/callback").to_owned();
    let (id, secret) = client(&app, &base, Some(&format!("{origin}/fc"))).await;
    app.user("grace", PASSWORD).await;
    let browser = Browser::start().await;
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", &base)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256");
    browser.goto(auth.as_str()).await;
    browser.wait_for_path("/login").await;
    browser.type_into("#username", "grace").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_path("/consent").await;
    browser.click("#allow").await;
    let back = next(&mut hits).await.expect("the code");
    let code = query(&format!("http://x{back}"), "code").unwrap();
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", base.as_str()),
            ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = crate::pairwise::jwt_claims(id_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut lo = Url::parse(&app.url("/logout")).unwrap();
    lo.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &format!("{base}/bye"))
        .append_pair("state", "after");
    browser.goto(lo.as_str()).await;
    browser.wait_for("#signout").await;
    browser.click("#signout").await;
    let framed = next(&mut hits).await.expect("the front-channel page was loaded");
    let framed = format!("http://x{framed}");
    assert!(framed.starts_with("http://x/fc?"), "{framed}");
    assert_eq!(query(&framed, "iss").as_deref(), Some(app.issuer.as_str()));
    assert_eq!(query(&framed, "sid").as_deref(), Some(sid.as_str()));
    let after = next(&mut hits).await.expect("then back to the client");
    assert_eq!(after, "/callback/bye?state=after");
    browser.quit().await;
    app.stop().await;
}

/// The next request the client's server got, favicon requests aside (10 s at most).
async fn next(hits: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Result<String, tokio::time::error::Elapsed> {
    let fut = async {
        loop {
            let target = hits.recv().await.unwrap();
            if !target.starts_with("/favicon.ico") {
                break target;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await
}

both_backends!(
    signing_out_frames_the_sessions_clients,
    the_uri_is_on_a_redirect_origin,
    a_browser_loads_the_page_then_goes_back,
);
