//! Conformance fixes from review, around the browser's session: anonymous sessions' lifetime,
//! signing out after the session ended, a denial after the client was disabled, `state`
//! returned exactly, several requests of one browser at once, and a login form left open.

use crate::code_flow::{PASSWORD, REDIRECT};
use crate::conformance::{auth_params, auth_url, sign_in};
use crate::forms::{Step, follow, location, param, submit};
use portcullis_tests::{Backend, both_backends, browser, spawn_app};
use url::Url;

/// Found by a browser probe: a page anyone can load without a cookie (the login page, an
/// authorization request) stores a session; nobody signed in to it, it lasts an hour (as
/// its pending requests do), not `session_ttl`. Signing in gives the full lifetime.
async fn anonymous_sessions_last_an_hour(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("kim", PASSWORD).await;
    let session_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("portcullis_session="))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .expect("a session cookie")
    };
    let expires_in = |cookie: String| {
        let app = &app;
        async move {
            let hash = portcullis_core::crypto::sha256(cookie.as_bytes());
            let now = app.core.now();
            let row = app.core.store.load_session(&hash, now).await.unwrap().expect("stored");
            (row.expires_at - now).whole_seconds()
        }
    };
    let b = browser();
    let r = b.get(app.url("/login")).send().await.unwrap();
    let cookie = session_of(&r);
    let anonymous = expires_in(cookie.clone()).await;
    assert!((3590..=3600).contains(&anonymous), "{anonymous}");
    let html = r.text().await.unwrap();
    // A request kept for the person's sign-in later on lasts an hour, and so does the
    // session holding it: its hour starts again (review of the move of pending requests
    // out of the session's data, after which nothing saved the session).
    let hash = portcullis_core::crypto::sha256(cookie.as_bytes());
    let load = || async {
        app.core
            .store
            .load_session(&hash, app.core.now())
            .await
            .unwrap()
            .unwrap()
    };
    let before = load().await.expires_at;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let u = auth_url(&app, &auth_params(client.id.as_str(), &[]));
    assert_eq!(location(&u, &b.get(u.clone()).send().await.unwrap()).path(), "/login");
    assert!(
        load().await.expires_at > before,
        "the session's hour did not start again"
    );
    let login = Url::parse(&app.url("/login")).unwrap();
    let r = submit(&b, &login, &html, &[("username", "kim"), ("password", PASSWORD)]).await;
    let signed_in = expires_in(session_of(&r)).await;
    let ttl = app.core.settings.session_ttl.whole_seconds();
    assert!(signed_in > ttl - 10 && signed_in <= ttl, "{signed_in} of {ttl}");
    app.stop().await;
}

/// Found by a browser probe: a sign-out confirmation sent after the session ended (it
/// expired, or was ended elsewhere) says the person is signed out, not that the form
/// expired. While signed in, a wrong token is still refused.
async fn sign_out_after_the_session_ended(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    let kim = app.user("kim", PASSWORD).await;
    let b = browser();
    sign_in(&app, &b, client.id.as_str(), "kim").await;
    let page = Url::parse(&app.url("/logout")).unwrap();
    let html = b.get(page.clone()).send().await.unwrap().text().await.unwrap();
    let r = b
        .post(app.url("/logout/confirm"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "signed in: a wrong token is refused");
    for s in app.core.list_user_sessions(kim.id).await.unwrap() {
        app.core.revoke_own_session(kim.id, &s.id, None).await.unwrap();
    }
    let r = submit(&b, &page, &html, &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("You are signed out"), "{html}");
    app.stop().await;
}

/// Runs the futures at once (no `futures` dependency here).
pub(crate) async fn futures_join<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futs {
        set.spawn(f);
    }
    set.join_all().await
}

/// RFC 9700 §4.1 / RFC 6749 §4.1.2.1: Deny on a consent page left open while the client
/// was disabled is an error page, not a redirect to a URI the client no longer has.
async fn deny_after_the_client_was_disabled_is_an_error_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("dee", PASSWORD).await;
    let id = client.id.as_str();
    let issuer = Url::parse(&app.issuer).unwrap();
    let b = browser();
    let u = auth_url(&app, &auth_params(id, &[("state", "s")]));
    let Step::Page { url, html, .. } = follow(&b, &issuer, b.get(u.clone()).send().await.unwrap(), u).await else {
        panic!("the login page")
    };
    assert_eq!(url.path(), "/login");
    let r = submit(&b, &url, &html, &[("username", "dee"), ("password", PASSWORD)]).await;
    let Step::Page { url, html, .. } = follow(&b, &issuer, r, url).await else {
        panic!("the consent page")
    };
    assert_eq!(url.path(), "/consent", "{html}");

    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    let r = submit(&b, &url, &html, &[("decision", "deny")]).await;
    assert!(
        !r.status().is_redirection(),
        "no redirect: {:?}",
        r.headers().get("location")
    );
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(!html.contains(REDIRECT), "{html}");
    app.stop().await;
}

/// RFC 6749 §4.1.2: `state` comes back exactly as sent; a value that is not UTF-8 once
/// percent-decoded (Appendix B) is refused rather than handed back changed.
async fn state_comes_back_exactly_or_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("hana", PASSWORD).await;
    let id = client.id.as_str();
    let b = browser();
    sign_in(&app, &b, id, "hana").await;
    let state = "été ✓ a+b&c=%";
    let u = auth_url(&app, &auth_params(id, &[("prompt", "none"), ("state", state)]));
    let back = location(&u, &b.get(u.clone()).send().await.unwrap());
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(state));

    let mut raw = auth_url(&app, &auth_params(id, &[("prompt", "none")])).to_string();
    raw.push_str("&state=%FF%FEabc");
    let r = b.get(&raw).send().await.unwrap();
    assert_eq!(r.status(), 400, "no redirect with a changed state");
    assert!(r.headers().get("location").is_none());
    let r = b
        .post(app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id={id}&state=%C3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

/// Requests of one browser at once (tabs restored together, an application opening a
/// popup and a tab) each keep their place: none is lost to another's write of the
/// session, and each ends with its own code and `state`.
async fn requests_of_one_browser_at_once_each_keep_theirs(backend: Backend) {
    const TABS: usize = 8;
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("hana", PASSWORD).await;
    let id = client.id.as_str().to_owned();
    let b = browser();
    sign_in(&app, &b, &id, "hana").await;
    let tabs: Vec<_> = (0..TABS)
        .map(|i| {
            let state = format!("tab-{i}");
            let u = auth_url(&app, &auth_params(&id, &[("prompt", "consent"), ("state", &state)]));
            let b = b.clone();
            tokio::spawn(async move {
                let consent = location(&u, &b.get(u.clone()).send().await.unwrap());
                (state, consent)
            })
        })
        .collect();
    let mut codes = std::collections::HashSet::new();
    for tab in tabs {
        let (state, consent) = tab.await.unwrap();
        assert_eq!(consent.path(), "/consent", "{state}: {consent}");
        let page = b.get(consent.clone()).send().await.unwrap();
        assert_eq!(page.status(), 200, "{state}: the request was lost");
        let html = page.text().await.unwrap();
        let back = location(&consent, &submit(&b, &consent, &html, &[("decision", "allow")]).await);
        assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()), "{back}");
        assert!(codes.insert(param(&back, "code").expect("a code")));
    }
    assert_eq!(codes.len(), TABS);

    // A browser whose session began on a page with a form (its CSRF token), not signed
    // in: its requests at once each keep theirs too (the key that owns them was given
    // with the session, not made by whichever request came first).
    let fresh = browser();
    assert_eq!(fresh.get(app.url("/login")).send().await.unwrap().status(), 200);
    let tabs: Vec<_> = (0..TABS)
        .map(|i| {
            let state = format!("fresh-{i}");
            let u = auth_url(&app, &auth_params(&id, &[("state", &state)]));
            let b = fresh.clone();
            tokio::spawn(async move { location(&u, &b.get(u.clone()).send().await.unwrap()) })
        })
        .collect();
    for tab in tabs {
        let login = tab.await.unwrap();
        assert_eq!(login.path(), "/login", "{login}");
        let page = fresh.get(login.clone()).send().await.unwrap();
        assert_eq!(page.status(), 200, "{login}: the request was lost");
    }
    app.stop().await;
}

/// Two tabs on the login page; the person signs in in one. The other tab's form now
/// carries a token the session no longer has (signing in changes it): sent anyway, it
/// is not acted on, but the request goes on to its next step, since the person is signed
/// in, rather than to a "form expired" page (UI review).
async fn a_login_form_left_open_goes_on_once_signed_in_elsewhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.confidential_client(REDIRECT).await;
    app.user("ines", PASSWORD).await;
    let id = client.id.as_str();
    let b = browser();
    let mut login_pages = Vec::new();
    for state in ["tab-a", "tab-b"] {
        let u = auth_url(&app, &auth_params(id, &[("state", state)]));
        let login = location(&u, &b.get(u.clone()).send().await.unwrap());
        assert_eq!(login.path(), "/login");
        let html = b.get(login.clone()).send().await.unwrap().text().await.unwrap();
        login_pages.push((login, html));
    }
    let (a, a_html) = &login_pages[0];
    let r = submit(&b, a, a_html, &[("username", "ines"), ("password", PASSWORD)]).await;
    assert_eq!(location(a, &r).path(), "/consent");
    // Tab B, typed as someone else: the form again, nobody goes on as ines (a shared
    // computer's next person; found by a browser re-check). Nothing of it is used.
    app.user("otto", PASSWORD).await;
    let (b_page, b_html) = &login_pages[1];
    let r = submit(&b, b_page, b_html, &[("username", "otto"), ("password", "wrong")]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("This page had expired"), "{html}");
    assert!(html.contains("value=\"otto\""), "{html}");
    // Typed as the person signed in (any password: none is checked), the request goes on.
    let r = submit(&b, b_page, b_html, &[("username", "Ines"), ("password", "whatever")]).await;
    let next = location(b_page, &r);
    assert_eq!(next.path(), "/consent", "{next}");
    app.stop().await;
}

both_backends!(
    anonymous_sessions_last_an_hour,
    sign_out_after_the_session_ended,
    deny_after_the_client_was_disabled_is_an_error_page,
    state_comes_back_exactly_or_is_refused,
    requests_of_one_browser_at_once_each_keep_theirs,
    a_login_form_left_open_goes_on_once_signed_in_elsewhere,
);
