//! Router tests: the public router driven with `oneshot` against core on an in-memory
//! SQLite store, with a tiny cookie jar standing in for the browser.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use portcullis_core::clients::ClientInput;
use portcullis_core::crypto::{Kek, sha256};
use portcullis_core::model::ClientKind;
use portcullis_core::users::UserInput;
use portcullis_core::{CoreSettings, Portcullis, SystemClock};
use portcullis_protocol::{Secret, SigningAlg};
use portcullis_store_sqlite::SqliteStore;
use tower::ServiceExt;

use crate::{WebConfig, public_router};

const ISSUER: &str = "http://localhost:9090";
const REDIRECT: &str = "https://app.example/cb";
const LOGOUT_REDIRECT: &str = "https://app.example/bye";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PASSWORD: &str = "correct horse battery";

struct Harness {
    core: Arc<Portcullis>,
    app: Router,
    client_id: String,
    /// The session cookie as `name=value`, as a browser would send it back.
    cookie: Option<String>,
}

async fn harness_with(cfg: WebConfig) -> Harness {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let mut settings = CoreSettings::for_issuer(ISSUER);
    // ES256 keys are generated in microseconds; RSA would dominate the test time.
    settings.signing_alg = SigningAlg::ES256;
    let core = Portcullis::start(
        Arc::new(store),
        Arc::new(SystemClock),
        settings,
        Kek::generate().unwrap(),
    )
    .await
    .unwrap();
    let input = ClientInput {
        name: "Demo <App>".into(),
        kind: Some(ClientKind::Public),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![LOGOUT_REDIRECT.into()],
        grant_types: vec!["authorization_code".into()],
        scopes: "openid profile email".into(),
        ..ClientInput::default()
    };
    let (client, _) = core.create_client(&input, "test").await.unwrap();
    core.create_user(
        &UserInput {
            username: "alice".into(),
            ..UserInput::default()
        },
        &Secret::new(PASSWORD),
        "test",
    )
    .await
    .unwrap();
    let app = public_router(Arc::clone(&core), cfg);
    Harness {
        core,
        app,
        client_id: client.id.as_str().to_owned(),
        cookie: None,
    }
}

async fn harness() -> Harness {
    harness_with(WebConfig { secure_cookies: false }).await
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
    fn csrf(&self) -> String {
        hidden(&self.body, "csrf")
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Harness {
    fn authorize_uri(&self, extra: &str) -> String {
        format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&state=st-1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
            self.client_id,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        )
    }

    async fn send(&mut self, req: Request<Body>) -> Page {
        let res: Response = self.app.clone().oneshot(req).await.unwrap();
        for c in res.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap().trim();
            let removed = c.contains("Max-Age=0") || pair.ends_with('=');
            self.cookie = if removed { None } else { Some(pair.to_owned()) };
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, uri: &str) -> Page {
        let mut req = Request::get(uri);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Starts an authorization and returns the pending request id from the redirect to
    /// the login page.
    async fn start_login(&mut self, extra: &str) -> String {
        let page = self.get(&self.authorize_uri(extra)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let loc = page.location().to_owned();
        assert!(loc.starts_with("/login?req="), "{loc}");
        loc.trim_start_matches("/login?req=").to_owned()
    }

    async fn login(&mut self, req: &str, username: &str, password: &str) -> Page {
        let page = self.get(&format!("/login?req={req}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("req", req),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    async fn consent(&mut self, req: &str, decision: &str) -> Page {
        let page = self.get(&format!("/consent?req={req}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        self.post("/consent", &[("csrf", &csrf), ("req", req), ("decision", decision)])
            .await
    }
}

fn assert_error_page(page: &Page, status: StatusCode) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.headers.get(header::LOCATION).is_none(), "must not redirect");
    assert!(page.body.contains("<h1>"), "an HTML page: {}", page.body);
}

#[tokio::test]
async fn unknown_client_is_a_page_not_a_redirect() {
    let mut h = harness().await;
    let page = h
        .get(&format!(
            "/authorize?response_type=code&client_id=nope&redirect_uri={REDIRECT}&scope=openid&state=s"
        ))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("not registered"), "{}", page.body);
}

#[tokio::test]
async fn unregistered_redirect_uri_is_a_page_not_a_redirect() {
    let mut h = harness().await;
    let uri = h.authorize_uri("").replace("app.example%2Fcb", "evil.example%2Fcb");
    let page = h.get(&uri).await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("redirect_uri"), "{}", page.body);
}

#[tokio::test]
async fn repeated_parameter_is_detected() {
    let mut h = harness().await;
    let page = h.get(&h.authorize_uri("&scope=email")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(page.location(), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn missing_pkce_redirects_invalid_request_with_state_and_iss() {
    let mut h = harness().await;
    let uri = h
        .authorize_uri("")
        .replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "");
    let page = h.get(&uri).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let loc = page.location();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(loc, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(loc, "iss").as_deref(), Some(ISSUER));
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let mut h = harness().await;
    let page = h.get(&h.authorize_uri("&prompt=none")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(query_param(page.location(), "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(page.location(), "state").as_deref(), Some("st-1"));
    // Nothing pending was kept, so no session was created.
    assert!(h.cookie.is_none());
}

#[tokio::test]
async fn authorize_by_post_form() {
    let mut h = harness().await;
    let client_id = h.client_id.clone();
    let form = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let page = h.post("/authorize", &form).await;
    // Re-sent as a GET, where a SameSite=Lax cookie would come along.
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let expected = format!("/authorize?{}", serde_urlencoded::to_string(form).unwrap());
    assert_eq!(page.location(), expected);
    assert!(h.cookie.is_none(), "nothing is kept before the GET");
    let page = h.get(&expected).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location().starts_with("/login?req="));
}

#[tokio::test]
async fn authorize_post_moves_only_authorization_parameters() {
    let mut h = harness().await;
    let client_id = h.client_id.clone();
    let form = [
        ("client_id", client_id.as_str()),
        ("client_secret", "must-not-reach-a-url"),
        ("state", ""),
        ("state", "x y"),
    ];
    let page = h.post("/authorize", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location(),
        format!("/authorize?client_id={client_id}&state=&state=x+y")
    );
}

#[tokio::test]
async fn repeated_parameters_are_refused_but_empty_ones_are_omitted() {
    let mut h = harness().await;
    // RFC 6749 §3.1: a parameter without a value is treated as omitted, so beside one
    // with a value it is no repeat.
    let uri = h
        .authorize_uri("&prompt=none")
        .replace("&state=st-1", "&state=&state=x");
    let page = h.get(&uri).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let loc = page.location();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(loc, "error").as_deref(), Some("login_required"), "{loc}");
    assert_eq!(query_param(loc, "state").as_deref(), Some("x"));
    // Two values: refused, and nothing pending kept.
    let uri = h.authorize_uri("").replace("&state=st-1", "&state=a&state=x");
    let page = h.get(&uri).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let loc = page.location();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(loc, "error").as_deref(), Some("invalid_request"));
    assert!(query_param(loc, "code").is_none());
    assert!(h.cookie.is_none(), "nothing pending was kept");

    let logout = |state: &str| {
        format!(
            "/logout?client_id={}&{state}&post_logout_redirect_uri={LOGOUT_REDIRECT}",
            h.client_id
        )
    };
    let (empty_beside, twice) = (logout("state=&state=x"), logout("state=a&state=x"));
    let page = h.get(&empty_beside).await;
    assert!(!page.body.contains("repeats the parameter"), "{}", page.body);
    assert!(
        page.status.is_success() || page.status.is_redirection(),
        "{}",
        page.status
    );
    let page = h.get(&twice).await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("repeats the parameter state"), "{}", page.body);
}

#[tokio::test]
async fn login_and_consent_forms_with_a_stale_token_are_shown_again() {
    let mut h = harness().await;
    // Without the session cookie (posted from another site, or the browser lost it):
    // back to the form's page, and no session is started, whose cookie would replace the
    // one the browser holds.
    let page = h.post("/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/login");
    assert!(h.cookie.is_none(), "no session was started");
    // With the request it was for: its page, which says the request is no longer open.
    let page = h
        .post(
            "/login",
            &[("req", "r-1"), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/login?req=r-1");
    assert!(h.cookie.is_none(), "no session was started");
    let page = h.get("/login?req=r-1").await;
    assert!(page.body.contains("not open"), "{}", page.body);

    // The login and consent forms are shown again (a page left open is no dead end),
    // and nothing in them is acted on: the password is not even checked.

    let req = h.start_login("").await;
    let page = h.get(&format!("/login?req={req}")).await;
    assert!(!page.csrf().is_empty());
    let page = h
        .post(
            "/login",
            &[
                ("csrf", "forged"),
                ("req", &req),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("This page had expired, so nothing was sent."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"alice\""),
        "the username as typed: {}",
        page.body
    );
    assert!(!page.body.contains("You are signed in"), "{}", page.body);
    assert!(
        page.body.contains(&req),
        "the request goes on from this form: {}",
        page.body
    );
    let page = h.get(&format!("/consent?req={req}")).await;
    assert_eq!(page.location(), format!("/login?req={req}"), "not signed in");
    let page = h.post("/consent", &[("req", &req), ("decision", "allow")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        format!("/consent?req={req}"),
        "asked again, nothing decided"
    );
    // An unknown request is the expired-request page, token or not.
    let page = h.post("/consent", &[("req", "no-such"), ("decision", "allow")]).await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    // Not signed in: nothing to end, and no token to check; the page says so (a wrong
    // token while signed in is refused: the e2e test sign_out_after_the_session_ended).
    let page = h.post("/logout/confirm", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
}

#[tokio::test]
async fn security_headers_on_pages_errors_and_assets() {
    let mut h = harness().await;
    for uri in ["/login", "/authorize", "/static/style.css", "/static/nope.css"] {
        let page = h.get(uri).await;
        let hd = &page.headers;
        assert_eq!(hd[header::CONTENT_SECURITY_POLICY], crate::headers::CSP, "{uri}");
        assert!(!crate::headers::CSP.contains("form-action"));
        assert_eq!(hd[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(hd[header::REFERRER_POLICY], "no-referrer", "{uri}");
        assert_eq!(hd[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        assert!(hd.get(header::STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS over http");
        assert!(hd.get(header::CACHE_CONTROL).is_some(), "{uri}");
    }
    let page = h.get("/login").await;
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(page.body.contains(r#"<html lang="en">"#));
    // The icon every page names, so browsers do not ask for a /favicon.ico that is not there.
    assert!(page.body.contains(r#"<link rel="icon" href="/static/favicon.svg""#));
    let icon = h.get("/static/favicon.svg").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    assert!(
        !page.body.contains("<script>") && !page.body.contains("style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn https_issuer_gets_hsts_and_host_prefixed_secure_cookie() {
    let mut h = harness_with(WebConfig { secure_cookies: true }).await;
    let page = h.get("/login").await;
    assert_eq!(page.headers[header::STRICT_TRANSPORT_SECURITY], crate::headers::HSTS);
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-portcullis="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

/// The admin pages' cookie under https: `__Secure-` (`__Host-` requires `Path=/`), sent
/// to `/admin` only, no `Max-Age` (it ends with the browser). A browser still holding an
/// admin cookie of the old kind (`Path=/`, sent to every port of the host) is told to
/// drop it.
#[tokio::test]
async fn admin_cookie_is_scoped_to_the_admin_pages_and_old_ones_are_dropped() {
    let h = harness_with(WebConfig { secure_cookies: true }).await;
    let admin = crate::admin_router(Arc::clone(&h.core), WebConfig { secure_cookies: true });
    let request = Request::get("/admin/login")
        .header(header::HOST, "127.0.0.1:9091")
        .header(header::COOKIE, "__Host-portcullis_admin=old; other=1")
        .header(header::COOKIE, "portcullis_admin_session=older")
        .body(Body::empty())
        .unwrap();
    let res = admin.oneshot(request).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Secure-portcullis_operator="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/admin"] {
        assert!(session.contains(attr), "{attr} missing from {session}");
    }
    assert!(
        !session.contains("Max-Age") && !session.contains("Expires") && !session.contains("Domain"),
        "{session}"
    );
    for old in [
        "__Host-portcullis_admin=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure",
        "portcullis_admin_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
    ] {
        assert!(cookies.contains(&old), "{old} not in {cookies:?}");
    }
    assert_eq!(cookies.len(), 3, "{cookies:?}");
}

#[tokio::test]
async fn static_assets_are_embedded_with_types_and_cache() {
    let mut h = harness().await;
    let css = h.get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert_eq!(css.headers[header::CACHE_CONTROL], "public, max-age=3600");
    let js = h.get("/static/form_post.js").await;
    assert_eq!(js.headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(js.body.contains("form_post"));
    assert_error_page(&h.get("/static/Cargo.toml").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let mut h = harness().await;
    let req = h.start_login("").await;
    let wrong = h.login(&req, "alice", "not the password").await;
    let unknown = h.login(&req, "mallory", PASSWORD).await;
    for (page, user) in [(&wrong, "alice"), (&unknown, "mallory")] {
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(crate::login::BAD_CREDENTIALS), "{}", page.body);
        assert!(page.body.contains(&format!(r#"value="{user}""#)), "typed username kept");
        assert!(!page.body.contains(PASSWORD), "the password is never echoed");
    }
    let strip = |p: &Page| p.body.replace(&p.csrf(), "").replace("mallory", "alice");
    assert_eq!(strip(&wrong), strip(&unknown));
    // The pending request survives a failed attempt.
    assert_eq!(h.get(&format!("/login?req={req}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_hint_prefills_the_username() {
    let mut h = harness().await;
    let req = h.start_login("&login_hint=alice").await;
    let page = h.get(&format!("/login?req={req}")).await;
    assert!(
        page.body
            .contains(r#"id="username" name="username" type="text" value="alice""#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Demo &#60;App&#62;") || page.body.contains("Demo &lt;App&gt;"),
        "client name escaped"
    );
}

#[tokio::test]
async fn full_flow_login_consent_code_then_single_sign_on() {
    let mut h = harness().await;
    let req = h.start_login("").await;
    let before = h.cookie.clone().unwrap();
    let page = h.login(&req, "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("/consent?req={req}"));
    let after = h.cookie.clone().unwrap();
    assert_ne!(before, after, "session id rotated at login");

    // The row is keyed by the digest of the cookie value and knows the user.
    let raw = after.split_once('=').unwrap().1;
    let row = h
        .core
        .store
        .load_session(&sha256(raw.as_bytes()), h.core.now())
        .await
        .unwrap()
        .unwrap();
    assert!(row.user_id.is_some());
    assert!(!row.data.contains(raw));
    let old = before.split_once('=').unwrap().1;
    assert!(
        h.core
            .store
            .load_session(&sha256(old.as_bytes()), h.core.now())
            .await
            .unwrap()
            .is_none()
    );

    let consent = h.get(&format!("/consent?req={req}")).await;
    assert!(consent.body.contains(r#"id="allow""#) && consent.body.contains(r#"id="deny""#));
    let (signin, profile) = (
        consent.body.find("Sign you in"),
        consent.body.find("See your name and username"),
    );
    assert!(
        signin.is_some() && signin < profile,
        "openid first, in plain words: {}",
        consent.body
    );
    assert!(consent.body.contains("alice"));
    let page = h.consent(&req, "allow").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let loc = page.location();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert!(query_param(loc, "code").is_some_and(|c| c.len() == 43));
    assert_eq!(query_param(loc, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(loc, "iss").as_deref(), Some(ISSUER));
    // The answered request is gone.
    assert_error_page(&h.get(&format!("/consent?req={req}")).await, StatusCode::BAD_REQUEST);

    // Signed in and consented: the next request answers at once, even with prompt=none.
    let page = h.get(&h.authorize_uri("&prompt=none")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(query_param(page.location(), "code").is_some(), "{}", page.location());
}

#[tokio::test]
async fn deny_sends_access_denied() {
    let mut h = harness().await;
    let req = h.start_login("").await;
    h.login(&req, "alice", PASSWORD).await;
    let page = h.consent(&req, "deny").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(query_param(page.location(), "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(page.location(), "state").as_deref(), Some("st-1"));
}

#[tokio::test]
async fn form_post_response_mode_renders_a_self_submitting_form() {
    let mut h = harness().await;
    let req = h.start_login("&response_mode=form_post").await;
    h.login(&req, "alice", PASSWORD).await;
    let page = h.consent(&req, "allow").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.body
            .contains(&format!(r#"<form method="post" action="{REDIRECT}" id="form_post">"#)),
        "{}",
        page.body
    );
    assert_eq!(hidden(&page.body, "code").len(), 43);
    assert_eq!(hidden(&page.body, "state"), "st-1");
    assert!(
        page.body
            .contains(r#"<script src="/static/form_post.js" defer></script>"#)
    );
    assert!(page.body.contains(">Continue</button>"));
}

#[tokio::test]
async fn consent_without_login_goes_to_login_and_unknown_request_expires() {
    let mut h = harness().await;
    let req = h.start_login("").await;
    let page = h.get(&format!("/consent?req={req}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), format!("/login?req={req}"));
    let page = h.get("/login?req=not-a-request").await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("This sign-in request is no longer open"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn pending_requests_are_bounded_oldest_first() {
    let mut h = harness().await;
    let first = h.start_login("").await;
    let mut last = String::new();
    for _ in 0..crate::pending::MAX_PENDING {
        last = h.start_login("").await;
    }
    assert_eq!(
        h.get(&format!("/login?req={first}")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.get(&format!("/login?req={last}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn direct_login_shows_who_is_signed_in() {
    let mut h = harness().await;
    let page = h.get("/login").await;
    let csrf = page.csrf();
    let page = h
        .post(
            "/login",
            &[("csrf", &csrf), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You are signed in as"), "{}", page.body);
    assert!(page.body.contains(">alice</strong>"));
}

#[tokio::test]
async fn logout_rejects_unregistered_redirect() {
    let mut h = harness().await;
    let page = h
        .get(&format!(
            "/logout?client_id={}&post_logout_redirect_uri=https://evil.example/&state=x",
            h.client_id
        ))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("post_logout_redirect_uri"), "{}", page.body);
    let page = h.get("/logout?post_logout_redirect_uri=https://app.example/bye").await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn logout_confirms_then_ends_the_session_and_redirects_with_state() {
    let mut h = harness().await;
    let req = h.start_login("").await;
    h.login(&req, "alice", PASSWORD).await;
    h.consent(&req, "allow").await;
    let cookie = h.cookie.clone().unwrap();

    let page = h
        .get(&format!(
            "/logout?client_id={}&post_logout_redirect_uri={LOGOUT_REDIRECT}&state=bye-1",
            h.client_id
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Sign out of Portcullis?"));
    assert!(page.body.contains(r#"id="signout""#));
    assert!(
        !page.body.contains(LOGOUT_REDIRECT),
        "the redirect stays in the session"
    );
    let csrf = page.csrf();
    let logout = hidden(&page.body, "logout");
    let page = h.post("/logout/confirm", &[("csrf", &csrf), ("logout", &logout)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("{LOGOUT_REDIRECT}?state=bye-1"));
    assert!(h.cookie.is_none(), "cookie removed");

    // The old cookie no longer signs anyone in.
    h.cookie = Some(cookie.clone());
    let page = h.get(&h.authorize_uri("&prompt=none")).await;
    assert_eq!(query_param(page.location(), "error").as_deref(), Some("login_required"));
    let raw = cookie.split_once('=').unwrap().1;
    assert!(
        h.core
            .store
            .load_session(&sha256(raw.as_bytes()), h.core.now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn logout_without_session_needs_no_confirmation() {
    let mut h = harness().await;
    let page = h.get("/logout").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You are signed out"));
    let client_id = h.client_id.clone();
    let form = [
        ("client_id", client_id.as_str()),
        ("post_logout_redirect_uri", LOGOUT_REDIRECT),
    ];
    let page = h.post("/logout", &form).await;
    // Re-sent as a GET, where a SameSite=Lax cookie would come along.
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let get = format!("/logout?{}", serde_urlencoded::to_string(form).unwrap());
    assert_eq!(page.location(), get);
    let page = h.get(&get).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), LOGOUT_REDIRECT);
}

/// A sign-in that a delete of its account overtook: the session cannot be stored (the
/// account's row is gone), and that is no error for the browser, whose next request
/// simply finds no session.
#[tokio::test]
async fn a_session_for_a_deleted_account_is_not_stored_and_no_error() {
    use tower_sessions::SessionStore;
    use tower_sessions::session::{Id, Record};
    let h = harness().await;
    let alice = h.core.find_user("alice").await.unwrap();
    let store = crate::CoreSessionStore::new(Arc::clone(&h.core));
    let record = |user: uuid::Uuid| {
        let auth = portcullis_core::authorize::AuthSession {
            user_id: user,
            auth_time: h.core.now().unix_timestamp(),
            sid: "sid".into(),
            stamp: String::new(),
        };
        let mut data = std::collections::HashMap::new();
        data.insert(
            crate::session_store::AUTH_KEY.to_owned(),
            serde_json::to_value(auth).unwrap(),
        );
        Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    };
    let mut live = record(alice.id);
    store.create(&mut live).await.unwrap();
    assert!(
        store.load(&live.id).await.unwrap().is_some(),
        "a live account's session is stored"
    );
    h.core.delete_user(alice.id, "test").await.unwrap();
    let mut late = record(alice.id);
    store.create(&mut late).await.unwrap();
    assert!(store.load(&late.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_form_address_opened_as_a_page_gets_a_page() {
    let mut h = harness().await;
    for path in ["/account/password", "/logout/confirm", "/device/decision"] {
        let page = h.get(path).await;
        assert_error_page(&page, StatusCode::METHOD_NOT_ALLOWED);
        assert!(page.body.contains("Nothing to show here"), "{path}: {}", page.body);
    }
}
