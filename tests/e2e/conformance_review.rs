//! Conformance fixes from the second review: parameters without a value treated as
//! omitted at the token-family endpoints, and a disabled client's outstanding tokens.

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_app};
use serde_json::Value;

use crate::admin_support::{Api, api_key};
use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens};

/// RFC 7636 Appendix B: a code verifier.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

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

async fn active_grants(app: &TestApp) -> u64 {
    app.core.store.count_active_grants(app.core.now()).await.unwrap()
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
/// userinfo), on every store; once re-enabled, the tokens it gets work.
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

    let user_token = obtain_tokens(&app, creds.0, creds.1, "quinn").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
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
    empty_parameters_are_omitted_at_the_token_endpoints,
    disabling_a_client_revokes_its_outstanding_tokens,
);
