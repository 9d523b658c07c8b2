//! Security headers and cookie flags on every page, and CORS only where browsers call
//! and only for registered origins.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http, spawn_app};
use reqwest::header::HeaderMap;
use url::Url;

use super::sign_in;
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::Step;

/// What DESIGN §5 requires of every HTML response on an http issuer.
pub fn assert_page_headers(what: &str, headers: &HeaderMap, https: bool) {
    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(h("referrer-policy").as_deref(), Some("no-referrer"), "{what}");
    assert_eq!(h("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(
        h("strict-transport-security").is_some(),
        https,
        "{what}: HSTS only with https"
    );
    for cookie in headers.get_all("set-cookie") {
        let c = cookie.to_str().unwrap();
        assert!(c.contains("HttpOnly"), "{what}: {c}");
        assert!(c.contains("SameSite=Lax"), "{what}: {c}");
        assert!(c.contains("Path=/"), "{what}: {c}");
        if https {
            assert!(
                c.starts_with("__Host-portcullis=") && c.contains("Secure"),
                "{what}: {c}"
            );
            assert!(!c.contains("Domain="), "{what}: {c}");
        } else {
            assert!(
                c.starts_with("portcullis_session=") && !c.contains("Secure"),
                "{what}: {c}"
            );
        }
    }
}

/// No inline script anywhere: every `<script` has a `src`.
fn assert_no_inline_script(what: &str, html: &str) {
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..html[i..].find('>').map(|e| i + e).unwrap_or(html.len())];
        assert!(tag.contains("src="), "{what}: inline script {tag}");
    }
    assert!(
        !html.contains(" onclick=") && !html.contains(" onload="),
        "{what}: inline handler"
    );
}

async fn check(b: &reqwest::Client, what: &str, resp: reqwest::Response) -> String {
    assert_page_headers(what, resp.headers(), false);
    if resp.status().is_redirection() {
        return String::new();
    }
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}: not a page"
    );
    let html = resp.text().await.unwrap();
    assert_no_inline_script(what, &html);
    let _ = b;
    html
}

async fn pages_carry_security_headers_and_cookie_flags(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let b = browser();
    let get = |p: &str| b.get(app.url(p)).send();
    check(&b, "login", get("/login").await.unwrap()).await;
    check(&b, "error page", get("/authorize?client_id=nope").await.unwrap()).await;
    check(&b, "expired request", get("/consent?req=unknown").await.unwrap()).await;
    check(&b, "logout", get("/logout").await.unwrap()).await;
    check(&b, "account, signed out", get("/account").await.unwrap()).await;
    // An unknown address: a page saying so, not an empty 404.
    let r = get("/no-such-page").await.unwrap();
    assert_eq!(r.status(), 404);
    let html = check(&b, "unknown address", r).await;
    assert!(html.contains("Not found"), "{html}");
    // The pages of a sign-in, consent included, each checked as it is reached.
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id.as_str())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256");
    let resp = b.get(auth.clone()).send().await.unwrap();
    let login_url = crate::forms::location(&auth, &resp);
    let login = check(&b, "login for a client", b.get(login_url.clone()).send().await.unwrap()).await;
    let resp = crate::forms::submit(&b, &login_url, &login, &[("username", "alice"), ("password", "wrong")]).await;
    check(&b, "failed login", resp).await;
    let step = authorize_in_browser(&b, &app, &auth, "alice", "allow").await;
    assert!(matches!(step, Step::LeftIssuer(_)), "{step:?}");
    let resp = b
        .get(auth.clone())
        .query(&[("prompt", "consent")])
        .send()
        .await
        .unwrap();
    let consent_url = crate::forms::location(&auth, &resp);
    check(&b, "consent", b.get(consent_url).send().await.unwrap()).await;
    check(&b, "account", get("/account").await.unwrap()).await;
    // Signed-in page, the lockout page, and 429 answers are pages too.
    let other = browser();
    let a = sign_in(&other, &app, "alice", PASSWORD, None).await;
    assert_eq!(a.status, 200);
    let resp = other.get(app.url("/login")).send().await.unwrap();
    check(&other, "login again", resp).await;
    app.stop().await;
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    http()
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap()
}

async fn cors_only_for_registered_origins_on_browser_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    app.core
        .create_client(
            &ClientInput {
                name: "SPA".into(),
                kind: Some(ClientKind::Public),
                redirect_uris: vec!["https://spa.example/cb".into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: "openid".into(),
                cors_origins: vec!["https://spa.example".into()],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let allowed = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for path in [
        "/token",
        "/revoke",
        "/par",
        "/userinfo",
        "/jwks",
        "/.well-known/openid-configuration",
    ] {
        let ok = preflight(&app, path, "https://spa.example").await;
        assert!(ok.status().is_success(), "{path}: {}", ok.status());
        assert_eq!(allowed(&ok).as_deref(), Some("https://spa.example"), "{path}");
        let methods = ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(methods.contains("POST"), "{path}: {methods}");
        let refused = preflight(&app, path, "https://evil.example").await;
        assert_eq!(allowed(&refused), None, "{path}");
    }
    // The actual request carries the header too; an unregistered origin's does not.
    let jwks = http()
        .get(app.url("/jwks"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&jwks).as_deref(), Some("https://spa.example"));
    // A refused userinfo call: browser code may read why (and, on a 429, how long to wait).
    let userinfo = http()
        .get(app.url("/userinfo"))
        .header("origin", "https://spa.example")
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
    assert_eq!(allowed(&userinfo).as_deref(), Some("https://spa.example"));
    let exposed = userinfo.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("www-authenticate") && exposed.contains("retry-after"),
        "{exposed}"
    );
    assert!(
        userinfo.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let token = http()
        .post(app.url("/token"))
        .header("origin", "https://evil.example")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&token), None);
    // Not on endpoints browsers do not call cross-origin.
    for path in ["/introspect", "/login"] {
        let r = preflight(&app, path, "https://spa.example").await;
        assert_eq!(allowed(&r), None, "{path}");
    }
    app.stop().await;
}

/// A form posted from another site arrives without the session cookie (`SameSite=Lax`):
/// it is sent to its page and starts no session, whose cookie would replace the one the
/// browser holds and sign the person out (found by a browser review).
async fn a_form_from_another_site_starts_no_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    for (path, form, to) in [
        ("/login", vec![("username", "alice"), ("password", PASSWORD)], "/login"),
        (
            "/device/decision",
            vec![("user_code", "BCDF-GHJK"), ("decision", "allow")],
            "/device?user_code=BCDF-GHJK",
        ),
    ] {
        let r = http().post(app.url(path)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], to, "{path}");
        assert!(r.headers().get("set-cookie").is_none(), "{path}: {:?}", r.headers());
    }
    // The code form takes nothing without its token (403), and starts no session either.
    let r = http()
        .post(app.url("/device"))
        .form(&[("user_code", "BCDF-GHJK")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    // From the site itself, with its cookie, the sign-in form works as ever.
    let b = browser();
    assert_eq!(sign_in(&b, &app, "alice", PASSWORD, None).await.status, 200);
    app.stop().await;
}

both_backends!(
    a_form_from_another_site_starts_no_session,
    pages_carry_security_headers_and_cookie_flags,
    cors_only_for_registered_origins_on_browser_endpoints,
);
