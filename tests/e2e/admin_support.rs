//! Helpers for the admin surface's tests: operator accounts, API keys, a JSON client
//! for the admin API, and a cookie session on the admin pages.

use portcullis_core::api_keys::NewApiKey;
use portcullis_core::model::AdminRole;
use portcullis_protocol::Secret;
use portcullis_tests::{TestApp, browser, http};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "operator passphrase 1";

/// Creates an operator account.
pub async fn operator(app: &TestApp, username: &str, role: AdminRole) {
    app.core
        .create_admin(username, &Secret::new(ADMIN_PASSWORD), role, "test")
        .await
        .unwrap();
}

/// Creates an API key of `role` as the first operator (`admin`, made at first start);
/// returns its id and value.
pub async fn api_key(app: &TestApp, role: AdminRole) -> (uuid::Uuid, String) {
    api_key_by(app, role, "admin").await
}

/// Changes operator `username` in the store alone (a new role, or `None` to delete the
/// account), without what core does beside it (revoking the account's API keys), as a
/// change whose revocation failed leaves things.
pub async fn change_operator_in_store_only(app: &TestApp, username: &str, role: Option<AdminRole>) {
    let admins = app.core.list_admins().await.unwrap();
    let id = admins.iter().find(|a| a.username == username).unwrap().id;
    match role {
        Some(role) => assert!(app.core.store.set_admin_role(id, role).await.unwrap()),
        None => assert!(app.core.store.delete_admin(id).await.unwrap()),
    }
}

/// Creates an API key of `role` as operator `creator` would on the API keys page.
pub async fn api_key_by(app: &TestApp, role: AdminRole, creator: &str) -> (uuid::Uuid, String) {
    let (key, value) = app
        .core
        .create_api_key(
            &NewApiKey {
                name: format!("{} key", role.as_str()),
                role,
                expires_at: None,
            },
            creator,
        )
        .await
        .unwrap();
    (key.id, value.expose().to_owned())
}

/// A JSON client of the admin API with one key.
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(app: &TestApp, key: &str) -> Self {
        Self {
            base: format!("{}/admin/api/v1", app.admin_url),
            key: key.to_owned(),
            http: http(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path, None).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }
}

/// Asserts a JSON error of the admin API.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, error: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}

/// Asserts a 400 naming `field`.
#[track_caller]
pub fn assert_field(got: &(StatusCode, Value), field: &str) {
    assert_error(got, 400, "invalid_field");
    assert_eq!(got.1["field"], field, "{}", got.1);
}

/// The CSRF token of a page (every admin page has one, in the sign-out form at least).
pub fn csrf(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).unwrap_or_else(|| panic!("no csrf in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `name=value` of the cookie a response sets, if it sets one.
pub fn set_cookie(r: &reqwest::Response) -> Option<String> {
    let value = r.headers().get("set-cookie")?.to_str().ok()?;
    value.split(';').next().map(str::to_owned)
}

/// Signs `username` in on the admin pages without a cookie jar, each cookie sent by hand:
/// the session cookie the sign-in page set (`name=value`), its CSRF token, and the
/// sign-in's response (which sets the next cookie).
pub async fn sign_in_by_hand(app: &TestApp, username: &str) -> (String, String, reqwest::Response) {
    let url = format!("{}/admin/login", app.admin_url);
    let page = http().get(&url).send().await.unwrap();
    let before = set_cookie(&page).expect("the sign-in page starts a session for its CSRF token");
    let token = csrf(&page.text().await.unwrap());
    let response = http()
        .post(&url)
        .header("cookie", &before)
        .form(&[
            ("csrf", token.as_str()),
            ("username", username),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    (before, token, response)
}

/// A cookie session on the admin pages.
pub struct Pages {
    pub base: String,
    pub b: reqwest::Client,
}

impl Pages {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.admin_url.clone(),
            b: browser(),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.b.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// POSTs a form; returns status, `Location` and body.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Option<String>, String) {
        let r = self
            .b
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (r.status(), loc, r.text().await.unwrap())
    }

    /// A fresh CSRF token of this session, read from `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let (status, html) = self.get(path).await;
        assert_eq!(status, 200, "{html}");
        csrf(&html)
    }

    /// Signs in through the sign-in form; panics unless it leads to the dashboard.
    pub async fn sign_in(app: &TestApp, username: &str, password: &str) -> Self {
        let p = Self::new(app);
        let token = p.csrf("/admin/login").await;
        let (status, loc, body) = p
            .post(
                "/admin/login",
                &[("csrf", &token), ("username", username), ("password", password)],
            )
            .await;
        assert_eq!(status, 303, "sign-in failed: {body}");
        assert_eq!(loc.as_deref(), Some("/admin"));
        p
    }
}

/// The audit events of one type, through the API.
pub async fn events_of(api: &Api, event_type: &str) -> Vec<Value> {
    let (s, v) = api.get(&format!("/audit-events?event_type={event_type}")).await;
    assert_eq!(s, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}
