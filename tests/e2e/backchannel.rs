//! OpenID Connect Back-Channel Logout 1.0 on both backends: when a person's session
//! ends here, each client they signed in to from it that registered a
//! `backchannel_logout_uri` is POSTed a logout token it can verify with the JWKS, naming
//! the person and the session; others are told nothing; a client that fails is tried
//! again, and one that never answers is an audit event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::Value;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::{Step, param, submit};

/// What a client's logout endpoint received, and the statuses it answers with (200
/// once they run out).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, String)>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    /// The logout tokens received, after waiting for `n` of them (at most 5 s).
    async fn tokens(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.got.lock().unwrap().iter().map(|(_, body)| body.clone()).collect()
    }
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
    fn answer(&self, statuses: &[u16]) {
        *self.answers.lock().unwrap() = statuses.to_vec();
    }
}

/// Serves `POST /bcl`: the URL.
async fn receiver(r: Receiver) -> String {
    async fn logout(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let token = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        r.got.lock().unwrap().push((content_type, token));
        let mut answers = r.answers.lock().unwrap();
        let status = if answers.is_empty() { 200 } else { answers.remove(0) };
        StatusCode::from_u16(status).unwrap()
    }
    let app = axum::Router::new()
        .route("/bcl", axum::routing::post(logout))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/bcl", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A node that tries a delivery again after 100 ms, twice.
async fn app(backend: Backend) -> TestApp {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    portcullis_tests::spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.backchannel_logout_retry_delays = vec![Duration::from_millis(100); 2];
    })
    .await
}

/// A confidential code-flow client, told of sign-outs at `logout_uri` if given: its id
/// and secret.
async fn client(app: &TestApp, logout_uri: Option<&str>) -> (String, String) {
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: "Relying party".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![format!("{REDIRECT}/logged-out")],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid profile".into(),
                backchannel_logout_uri: logout_uri.map(str::to_owned),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    (c.id.as_str().to_owned(), s.unwrap().expose().to_owned())
}

/// Signs `username` in to `(id, secret)` in the browser `b` and redeems the code: the ID
/// token's claims.
async fn sign_in(app: &TestApp, b: &reqwest::Client, client: (&str, &str), username: &str) -> Value {
    sign_in_with(app, b, client, username, &[]).await
}

/// `sign_in` with `extra` parameters in the authorization request.
async fn sign_in_with(
    app: &TestApp,
    b: &reqwest::Client,
    client: (&str, &str),
    username: &str,
    extra: &[(&str, &str)],
) -> Value {
    let tokens = sign_in_tokens(app, b, client, username, "openid", extra).await;
    let part = tokens["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

/// The token response of a sign-in asking for `scope`.
async fn sign_in_tokens(
    app: &TestApp,
    b: &reqwest::Client,
    client: (&str, &str),
    username: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> Value {
    let code = code_for(app, b, client.0, username, scope, extra).await;
    let r = redeem(app, client, &code).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

const VERIFIER: &str = "bcl-verifier-bcl-verifier-bcl-verifier-bcl-verifier-";

/// A code for `username` signed in to `id` in the browser `b`, not redeemed.
async fn code_for(
    app: &TestApp,
    b: &reqwest::Client,
    id: &str,
    username: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> String {
    let verifier = VERIFIER;
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    match authorize_in_browser(b, app, &auth, username, "allow").await {
        Step::LeftIssuer(u) => param(&u, "code").unwrap(),
        other => panic!("not signed in: {other:?}"),
    }
}

/// `code` redeemed at `/token` by `(id, secret)`.
async fn redeem(app: &TestApp, (id, secret): (&str, &str), code: &str) -> reqwest::Response {
    http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

/// The logout token's claims, once its signature (by a key in `/jwks`), `typ`, `iss` and
/// `aud` are checked.
async fn verified(app: &TestApp, token: &str, client_id: &str) -> Value {
    let required = ["exp", "iat", "iss", "aud", "sub"];
    crate::code_flow::verified_by_jwks(app, token, "logout+jwt", client_id, &required)
        .await
        .0
}

/// OIDC Back-Channel Logout §2.4: what every logout token carries.
fn assert_logout_claims(claims: &Value, sub: &str, sid: &str) {
    assert_eq!(claims["sub"], sub, "{claims}");
    assert_eq!(claims["sid"], sid, "{claims}");
    assert_eq!(
        claims["events"],
        serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(claims.get("nonce").is_none(), "§2.4: never a nonce");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
}

/// RP-initiated logout: the clients signed in from this browser that registered are
/// told, once each; those that did not, or were signed in from another browser, are not.
async fn signing_out_tells_the_clients_of_the_session(backend: Backend) {
    let app = app(backend).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["backchannel_logout_session_supported"], true);
    let kim = app.user("kim", PASSWORD).await;
    let (told, told_at) = (Receiver::default(), Receiver::default());
    let url = receiver(told.clone()).await;
    let other_url = receiver(told_at.clone()).await;
    let a = client(&app, Some(&url)).await;
    let quiet = client(&app, None).await;
    let b_client = client(&app, Some(&other_url)).await;
    let b = browser();
    let id_token = sign_in(&app, &b, (&a.0, &a.1), "kim").await;
    sign_in(&app, &b, (&quiet.0, &quiet.1), "kim").await;
    // Twice from this browser to the same client: told once for the session.
    sign_in(&app, &b, (&a.0, &a.1), "kim").await;
    // The other client is signed in from another browser only.
    sign_in(&app, &browser(), (&b_client.0, &b_client.1), "kim").await;
    let sid = id_token["sid"].as_str().unwrap().to_owned();

    let page = Url::parse(&app.url("/logout")).unwrap();
    let html = b.get(page.clone()).send().await.unwrap().text().await.unwrap();
    let r = submit(&b, &page, &html, &[]).await;
    assert_eq!(r.status(), 200);
    let tokens = told.tokens(1).await;
    assert_eq!(tokens.len(), 1, "one token for the session");
    let (content_type, _) = told.got.lock().unwrap()[0].clone();
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let claims = verified(&app, &tokens[0], &a.0).await;
    assert_logout_claims(&claims, &kim.id.to_string(), &sid);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(told.count(), 1);
    assert_eq!(
        told_at.count(),
        0,
        "signed in from another browser, which is still signed in"
    );
    app.stop().await;
}

/// OIDC Back-Channel Logout §2.7: the refresh tokens of the session signed out end with
/// it, unless they were granted with `offline_access`; those of another session stay.
async fn signing_out_ends_the_session_refresh_tokens(backend: Backend) {
    let app = app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: "Keeps access".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: "openid offline_access api:read".into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let me = (c.id.as_str(), s.as_ref().unwrap().expose());
    let b = browser();
    let online = sign_in_tokens(&app, &b, me, "kim", "openid", &[]).await;
    let offline = sign_in_tokens(&app, &b, me, "kim", "openid offline_access", &[]).await;
    let elsewhere = sign_in_tokens(&app, &browser(), me, "kim", "openid", &[]).await;
    // A plain OAuth 2.0 grant is no sign-in: it stays.
    let plain = sign_in_tokens(&app, &b, me, "kim", "api:read", &[]).await;
    // A code of the session not yet redeemed when it ends.
    let pending = code_for(&app, &b, me.0, "kim", "openid", &[]).await;
    let refresh = async |tokens: &Value| {
        http()
            .post(app.url("/token"))
            .basic_auth(me.0, Some(me.1))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let page = Url::parse(&app.url("/logout")).unwrap();
    let html = b.get(page.clone()).send().await.unwrap().text().await.unwrap();
    assert_eq!(submit(&b, &page, &html, &[]).await.status(), 200);
    assert_eq!(refresh(&online).await, 400, "ended with the session");
    assert_eq!(refresh(&offline).await, 200, "offline access outlives the session");
    assert_eq!(refresh(&elsewhere).await, 200, "another browser's session");
    assert_eq!(refresh(&plain).await, 200, "not an OpenID grant");
    let r = redeem(&app, me, &pending).await;
    assert_eq!(r.status(), 400, "the session's codes end with it");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    app.core.audit.flush().await;
    let ended = app.audit_events("session.grants_ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].user_id, Some(kim.id));
    assert_eq!(ended[0].detail["grants"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// Signing in again in the same browser keeps its session: the same person keeps its
/// `sid` (its clients are still told when it ends); another person's sign-in ends the
/// previous person's session, and its clients are told then. A disabled client is told
/// nothing.
async fn signing_in_again_keeps_or_ends_the_session(backend: Backend) {
    let app = app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    app.user("bob", PASSWORD).await;
    let (told, told_disabled) = (Receiver::default(), Receiver::default());
    let a = client(&app, Some(&receiver(told.clone()).await)).await;
    let d = client(&app, Some(&receiver(told_disabled.clone()).await)).await;
    let b = browser();
    let sid = sign_in(&app, &b, (&a.0, &a.1), "kim").await["sid"].clone();
    let again = sign_in_with(&app, &b, (&d.0, &d.1), "kim", &[("prompt", "login")]).await;
    assert_eq!(again["sid"], sid, "signed in again: the same session");
    let again = sign_in_with(&app, &b, (&a.0, &a.1), "kim", &[("max_age", "0")]).await;
    assert_eq!(again["sid"], sid);
    app.core
        .set_client_disabled(&portcullis_protocol::ClientId::parse(&d.0).unwrap(), true, "test")
        .await
        .unwrap();
    // Bob signs in over kim's session: kim's session is over.
    let bob = sign_in_with(&app, &b, (&a.0, &a.1), "bob", &[("prompt", "login")]).await;
    assert_ne!(bob["sid"], sid);
    let got = told.tokens(1).await;
    assert_eq!(got.len(), 1);
    let claims = verified(&app, &got[0], &a.0).await;
    assert_logout_claims(&claims, &kim.id.to_string(), sid.as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(told_disabled.count(), 0, "a disabled client is told nothing");
    app.core.audit.flush().await;
    let logouts = app.audit_events("logout").await;
    assert!(
        logouts.iter().any(|e| e.user_id == Some(kim.id)),
        "kim's sign-out is recorded"
    );
    app.stop().await;
}

/// Endings of all a person's sessions (a password set by an operator, disabling,
/// deleting) tell every client of every session; an operator or the person ending one
/// browser session tells that session's clients.
async fn other_endings_tell_the_clients(backend: Backend) {
    let app = app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    let told = Receiver::default();
    let url = receiver(told.clone()).await;
    let a = client(&app, Some(&url)).await;
    let (b1, b2) = (browser(), browser());
    let sid1 = sign_in(&app, &b1, (&a.0, &a.1), "kim").await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid2 = sign_in(&app, &b2, (&a.0, &a.1), "kim").await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(sid1, sid2);
    let sid_of = |t: &String| {
        let part = t.split('.').nth(1).unwrap();
        let c: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap(),
        )
        .unwrap();
        c["sid"].as_str().map(str::to_owned)
    };
    // Whether the browser `b` is still signed in (its account page shows).
    let signed_in = async |b: &reqwest::Client| b.get(app.url("/account")).send().await.unwrap().status() == 200;

    // The person signs out one browser on their account page: that browser's session
    // is named.
    let first = app.core.list_user_sessions(kim.id).await.unwrap();
    assert_eq!(first.len(), 2);
    app.core.revoke_own_session(kim.id, &first[1].id, None).await.unwrap();
    let got = told.tokens(1).await;
    assert_eq!(got.len(), 1);
    let (ended, kept) = match (signed_in(&b1).await, signed_in(&b2).await) {
        (false, true) => (&sid1, &sid2),
        (true, false) => (&sid2, &sid1),
        other => panic!("one browser signed out: {other:?}"),
    };
    assert_eq!(sid_of(&got[0]).as_ref(), Some(ended));
    // An operator ends the other one.
    let other = app.core.list_user_sessions(kim.id).await.unwrap()[0].id.clone();
    app.core.revoke_user_session(kim.id, &other, "test").await.unwrap();
    let got = told.tokens(2).await;
    assert_eq!(sid_of(&got[1]).as_ref(), Some(kept));

    // An ending of all the person's sessions: one token per client, naming the person
    // only (§2.4: no sid; the client ends all its sessions of theirs).
    for end in ["password", "disable", "delete"] {
        told.got.lock().unwrap().clear();
        match end {
            "password" => app
                .core
                .set_user_password(
                    kim.id,
                    &portcullis_protocol::Secret::new("another long passphrase"),
                    "test",
                )
                .await
                .unwrap(),
            "disable" => app.core.set_user_disabled(kim.id, true, "test").await.unwrap(),
            _ => app.core.delete_user(kim.id, "test").await.unwrap(),
        }
        let got = told.tokens(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(told.count(), 1, "{end}: once for the client");
        let claims = verified(&app, &got[0], &a.0).await;
        assert_eq!(claims["sub"], kim.id.to_string(), "{end}");
        assert!(claims.get("sid").is_none(), "{end}: {claims}");
    }
    app.stop().await;
}

/// A management command that ends someone's sessions (`portcullis user disable`) runs
/// no server: it delivers the logout tokens itself before it exits.
async fn commands_tell_the_clients_before_they_exit(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_app_on(&url, guard.map(Arc::new)).await;
    let kim = app.user("kim", PASSWORD).await;
    let told = Receiver::default();
    let a = client(&app, Some(&receiver(told.clone()).await)).await;
    sign_in(&app, &browser(), (&a.0, &a.1), "kim").await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-bcl").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "issuer = \"{}\"\ndatabase_url = \"{url}\"\nkek = \"{}\"\n",
            app.issuer,
            portcullis_tests::TEST_KEK
        ),
    )
    .unwrap();
    let argv = [
        "portcullis",
        "--config",
        config.to_str().unwrap(),
        "user",
        "disable",
        "kim",
    ];
    portcullis_cli::commands::run(clap::Parser::try_parse_from(argv).unwrap())
        .await
        .unwrap();
    // Delivered before the command returned.
    assert_eq!(told.count(), 1);
    let token = told.tokens(1).await.remove(0);
    let claims = verified(&app, &token, &a.0).await;
    assert_eq!(claims["sub"], kim.id.to_string());
    assert!(claims.get("sid").is_none(), "all of kim's sessions: {claims}");
    app.stop().await;
}

/// §2.5 and §2.8: a failure is tried again; a 400 (the client refused the token) is
/// not; a client that never takes it is a `logout.backchannel_failed` audit event.
async fn failed_deliveries_are_retried_then_audited(backend: Backend) {
    let app = app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    let told = Receiver::default();
    let url = receiver(told.clone()).await;
    let a = client(&app, Some(&url)).await;
    sign_in(&app, &browser(), (&a.0, &a.1), "kim").await;
    let failed = async |app: &TestApp| {
        app.core.audit.flush().await;
        app.audit_events("logout.backchannel_failed").await
    };

    // Down once, then up: delivered on the second try, nothing audited.
    told.answer(&[503]);
    app.core.announce_sign_out(kim.id, None).await;
    assert_eq!(told.tokens(2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(told.count(), 2);
    assert!(failed(&app).await.is_empty());

    // A 400 is not tried again.
    told.got.lock().unwrap().clear();
    told.answer(&[400, 200]);
    app.core.announce_sign_out(kim.id, None).await;
    told.tokens(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(told.count(), 1);
    let events = failed(&app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].client_id.as_deref(), Some(a.0.as_str()));
    assert!(
        events[0].detail["reason"].as_str().unwrap().contains("400"),
        "{:?}",
        events[0].detail
    );

    // Never up: three tries (the first and two more), then audited.
    told.got.lock().unwrap().clear();
    told.answer(&[500, 500, 500, 200]);
    app.core.announce_sign_out(kim.id, None).await;
    told.tokens(3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(told.count(), 3);
    let events = failed(&app).await;
    assert_eq!(events.len(), 2);
    assert!(
        events[0].detail["reason"].as_str().unwrap().contains("500"),
        "{:?}",
        events[0].detail
    );
    app.stop().await;
}

/// OIDC Core §8.1: a pairwise client is told of a sign-out under the identifier and the
/// session id its ID tokens gave it, neither of them another client's.
async fn a_pairwise_client_is_told_under_its_own_identifier(backend: Backend) {
    let app = app(backend).await;
    let kim = app.user("kim", PASSWORD).await;
    let told = Receiver::default();
    let url = receiver(told.clone()).await;
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: "Pairwise relying party".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                backchannel_logout_uri: Some(url),
                subject_type: Some("pairwise".into()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let me = (c.id.as_str(), s.as_ref().unwrap().expose());
    let b = browser();
    let id_token = sign_in(&app, &b, me, "kim").await;
    let sub = id_token["sub"].as_str().unwrap();
    assert_ne!(sub, kim.id.to_string());
    // Nor is the session named alike to another client signed in from the same browser:
    // the two could match their people up by it.
    let public = client(&app, None).await;
    let public_id_token = sign_in(&app, &b, (&public.0, &public.1), "kim").await;
    assert_eq!(public_id_token["sub"], kim.id.to_string());
    assert_ne!(id_token["sid"], public_id_token["sid"], "a sid of its own");
    let again = sign_in(&app, &b, me, "kim").await;
    assert_eq!(again["sid"], id_token["sid"], "stable for the session");
    let page = Url::parse(&app.url("/logout")).unwrap();
    let html = b.get(page.clone()).send().await.unwrap().text().await.unwrap();
    assert_eq!(submit(&b, &page, &html, &[]).await.status(), 200);
    let tokens = told.tokens(1).await;
    assert_eq!(tokens.len(), 1);
    let claims = verified(&app, &tokens[0], me.0).await;
    assert_logout_claims(&claims, sub, id_token["sid"].as_str().unwrap());
    app.stop().await;
}

/// A client that registered itself (RFC 7591) is told of sign-outs at the
/// `backchannel_logout_uri` it registered when that is a public address (`outbound`;
/// here loopback stands in for one, allowed by `outbound_allowed_networks`). A node that
/// does not allow the address sends nothing and audits why.
async fn a_self_registered_client_is_told_at_public_addresses_only(backend: Backend) {
    let (db, guard) = portcullis_tests::fresh_database(backend).await;
    let allowing = portcullis_tests::spawn_with(&db, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
        s.core.backchannel_logout_retry_delays = vec![Duration::from_millis(100); 2];
    })
    .await;
    let kim = allowing.user("kim", PASSWORD).await;
    let told = Receiver::default();
    let url = receiver(told.clone()).await;
    let r = http()
        .post(allowing.url("/register"))
        .json(&serde_json::json!({"redirect_uris": [REDIRECT], "backchannel_logout_uri": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    assert_eq!(registered["backchannel_logout_uri"], url.as_str(), "{registered}");
    assert_eq!(registered["backchannel_logout_session_required"], false, "the default");
    let client = (
        registered["client_id"].as_str().unwrap(),
        registered["client_secret"].as_str().unwrap(),
    );
    let b = browser();
    let claims = sign_in(&allowing, &b, client, "kim").await;
    allowing.core.announce_sign_out(kim.id, None).await;
    let tokens = told.tokens(1).await;
    assert_eq!(tokens.len(), 1);
    let logout = verified(&allowing, &tokens[0], client.0).await;
    assert_eq!(logout["sub"], claims["sub"]);

    // A node that allows public addresses only, on the same database.
    let issuer = allowing.issuer.clone();
    // Tries that would wait long: a refused address is not tried again (the audit
    // below comes at once).
    let strict = portcullis_tests::spawn_with(&db, None, |s| {
        s.core.issuer = issuer.clone();
        s.core.access_token_audience = issuer.clone();
        s.core.backchannel_logout_retry_delays = vec![Duration::from_secs(60); 2];
    })
    .await;
    sign_in(&allowing, &b, client, "kim").await;
    strict.core.announce_sign_out(kim.id, None).await;
    let mut events = Vec::new();
    for _ in 0..50 {
        strict.core.audit.flush().await;
        events = strict.audit_events("logout.backchannel_failed").await;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].client_id.as_deref(), Some(client.0));
    let reason = events[0].detail["reason"].as_str().unwrap();
    assert!(reason.contains("127.0.0.1 is not a public address"), "{reason}");
    assert_eq!(told.count(), 1, "nothing was sent");
    strict.stop().await;
    allowing.stop().await;
}

/// Clients that registered themselves and never answer hold up only one another: an
/// operator's client is told at once while more of them than all the tries that may run
/// together hang.
async fn clients_that_never_answer_hold_up_no_operator_client(backend: Backend) {
    async fn hang() -> StatusCode {
        tokio::time::sleep(Duration::from_secs(60)).await;
        StatusCode::OK
    }
    let (db, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&db, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
        s.core.backchannel_logout_retry_delays = vec![Duration::from_millis(100); 2];
        s.core.defense.rate_limits.set(
            portcullis_core::throttle::Bucket::RegisterIp,
            portcullis_core::throttle::RateLimit::parse("600/h").unwrap(),
        );
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = format!("http://127.0.0.1:{}/bcl", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().route("/bcl", axum::routing::post(hang)))
            .await
            .unwrap()
    });
    let kim = app.user("kim", PASSWORD).await;
    let b = browser();
    // More than the tries all clients may run at once (32).
    for _ in 0..34 {
        let r = http()
            .post(app.url("/register"))
            .json(&serde_json::json!({"redirect_uris": [REDIRECT], "backchannel_logout_uri": hanging}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let reg: Value = r.json().await.unwrap();
        let client = (
            reg["client_id"].as_str().unwrap(),
            reg["client_secret"].as_str().unwrap(),
        );
        sign_in(&app, &b, client, "kim").await;
    }
    app.core.announce_sign_out(kim.id, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While those hang, another person signs out of an operator's client.
    let lee = app.user("lee", PASSWORD).await;
    let told = Receiver::default();
    let url = receiver(told.clone()).await;
    let operators = client(&app, Some(&url)).await;
    sign_in(&app, &browser(), (&operators.0, &operators.1), "lee").await;
    app.core.announce_sign_out(lee.id, None).await;
    let started = std::time::Instant::now();
    assert_eq!(told.tokens(1).await.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "told after {:?}",
        started.elapsed()
    );
    app.stop().await;
}

/// Back-Channel Logout §2.2: a client that registers `backchannel_logout_session_required`
/// is told of the end of all a person's sessions one session at a time, each token naming
/// its session; another is told once, in a token naming the person only. The value is
/// echoed (false by default); one that is not a boolean is refused.
async fn clients_that_require_sessions_are_told_of_each(backend: Backend) {
    let (db, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&db, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let kim = app.user("kim", PASSWORD).await;
    let (each, once) = (Receiver::default(), Receiver::default());
    let register = async |body: serde_json::Value| {
        let r = http().post(app.url("/register")).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, a) = register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "backchannel_logout_uri": receiver(each.clone()).await,
        "backchannel_logout_session_required": true,
    }))
    .await;
    assert_eq!(
        (status, &a["backchannel_logout_session_required"]),
        (201, &Value::Bool(true))
    );
    let (status, b) = register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "backchannel_logout_uri": receiver(once.clone()).await,
    }))
    .await;
    assert_eq!(
        (status, &b["backchannel_logout_session_required"]),
        (201, &Value::Bool(false))
    );
    let (status, e) = register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "backchannel_logout_uri": "http://127.0.0.1:9/bcl",
        "backchannel_logout_session_required": "yes",
    }))
    .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{e}"
    );
    let creds = |reg: &Value| {
        (
            reg["client_id"].as_str().unwrap().to_owned(),
            reg["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let (a, b) = (creds(&a), creds(&b));
    let mut sids = Vec::new();
    for browser in [browser(), browser()] {
        let claims = sign_in(&app, &browser, (&a.0, &a.1), "kim").await;
        sids.push(claims["sid"].as_str().unwrap().to_owned());
        sign_in(&app, &browser, (&b.0, &b.1), "kim").await;
    }
    assert_ne!(sids[0], sids[1], "two sessions");
    app.core.announce_sign_out(kim.id, None).await;
    let mut told: Vec<String> = Vec::new();
    for token in each.tokens(2).await {
        let claims = verified(&app, &token, &a.0).await;
        assert_eq!(claims["sub"], kim.id.to_string());
        told.push(claims["sid"].as_str().expect("a session named").to_owned());
    }
    told.sort();
    sids.sort();
    assert_eq!(told, sids, "one token per session");
    let tokens = once.tokens(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(once.count(), 1, "one token for all sessions");
    let claims = verified(&app, &tokens[0], &b.0).await;
    assert_eq!(claims["sub"], kim.id.to_string());
    assert!(claims.get("sid").is_none(), "{claims}");
    app.stop().await;
}

/// A client told of each session is told of its 50 most recent at most, however many a
/// person has signed in from: one person cannot fill the delivery queue with old ones.
async fn a_client_is_told_of_fifty_sessions_at_most(backend: Backend) {
    let (db, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&db, guard.map(Arc::new), |s| {
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
        s.core.outbound.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
        for bucket in [
            portcullis_core::throttle::Bucket::LoginIp,
            portcullis_core::throttle::Bucket::SessionIp,
        ] {
            s.core
                .defense
                .rate_limits
                .set(bucket, portcullis_core::throttle::RateLimit::parse("600/min").unwrap());
        }
    })
    .await;
    let kim = app.user("kim", PASSWORD).await;
    let each = Receiver::default();
    let r = http()
        .post(app.url("/register"))
        .json(&serde_json::json!({
            "redirect_uris": [REDIRECT],
            "backchannel_logout_uri": receiver(each.clone()).await,
            "backchannel_logout_session_required": true,
        }))
        .send()
        .await
        .unwrap();
    let reg: Value = r.json().await.unwrap();
    let client = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    for _ in 0..52 {
        sign_in(&app, &browser(), client, "kim").await;
    }
    app.core.announce_sign_out(kim.id, None).await;
    assert_eq!(each.tokens(50).await.len(), 50);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(each.count(), 50);
    app.stop().await;
}

both_backends!(
    a_client_is_told_of_fifty_sessions_at_most,
    clients_that_require_sessions_are_told_of_each,
    clients_that_never_answer_hold_up_no_operator_client,
    a_self_registered_client_is_told_at_public_addresses_only,
    signing_out_tells_the_clients_of_the_session,
    a_pairwise_client_is_told_under_its_own_identifier,
    other_endings_tell_the_clients,
    failed_deliveries_are_retried_then_audited,
    commands_tell_the_clients_before_they_exit,
    signing_in_again_keeps_or_ends_the_session,
    signing_out_ends_the_session_refresh_tokens,
);
