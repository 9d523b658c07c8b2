//! End-to-end test harness: starts the real `portcullis` app in-process on port 0
//! against a fresh database (SQLite or PostgreSQL) and hands tests real HTTP clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test harness")]

pub mod db;

use std::sync::Arc;

use portcullis_cli::Settings;
use portcullis_cli::app::{Running, serve_on};
use portcullis_core::Portcullis;
use portcullis_core::clients::ClientInput;
use portcullis_core::model::{AuditEvent, AuditFilter, Client, ClientKind, User};
use portcullis_core::users::UserInput;
use portcullis_protocol::Secret;
use tokio::net::TcpListener;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for `backend`; the guard keeps a SQLite file alive.
pub async fn fresh_database(backend: Backend) -> (String, Option<db::TempDirGuard>) {
    match backend {
        Backend::Sqlite => {
            let (url, guard) = db::fresh_sqlite_url().await;
            (url, Some(guard))
        }
        Backend::Postgres => (db::fresh_postgres_url().await, None),
    }
}

/// One key-encryption key for every node of a test, like a real deployment.
pub const TEST_KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// A running Portcullis.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`: the issuer and base URL of the public surface.
    pub issuer: String,
    /// Base URL of the admin surface.
    pub admin_url: String,
    pub core: Arc<Portcullis>,
    pub database_url: String,
    running: Option<Running>,
    _guard: Option<Arc<db::TempDirGuard>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// `GET path` on the public listener, as JSON (discovery documents, JWKS).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        http().get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    /// The stored audit events of `event_type`, newest first, as they are now (events
    /// still queued are not among them: `core.audit.flush()` first where that matters).
    pub async fn audit_events(&self, event_type: &str) -> Vec<AuditEvent> {
        self.core
            .store
            .list_audit_events(&AuditFilter {
                event_type: Some(event_type.to_owned()),
                limit: 10_000,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }

    /// Stops the server, waiting for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// A confidential client allowed every grant, with the given redirect URI.
    pub async fn confidential_client(&self, redirect_uri: &str) -> (Client, Secret) {
        let (c, s) = self
            .core
            .create_client(
                &ClientInput {
                    name: "Test App".into(),
                    kind: Some(ClientKind::Confidential),
                    redirect_uris: vec![redirect_uri.into()],
                    post_logout_redirect_uris: vec![format!("{redirect_uri}/logged-out")],
                    grant_types: vec![
                        "authorization_code".into(),
                        "refresh_token".into(),
                        "client_credentials".into(),
                    ],
                    scopes: "openid profile email api:read api:write".into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        (c, s.unwrap())
    }

    /// `POST /token` with `grant_type=client_credentials`, authenticated as `id` / `secret`
    /// with HTTP Basic: the status and the JSON body.
    pub async fn client_credentials(&self, id: &str, secret: &str) -> (u16, serde_json::Value) {
        let r = http()
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn public_client(&self, redirect_uri: &str) -> Client {
        self.core
            .create_client(
                &ClientInput {
                    name: "Public App".into(),
                    kind: Some(ClientKind::Public),
                    redirect_uris: vec![redirect_uri.into()],
                    grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                    scopes: "openid profile email".into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap()
            .0
    }

    pub async fn user(&self, username: &str, password: &str) -> User {
        self.core
            .create_user(
                &UserInput {
                    username: username.into(),
                    email: Some(format!("{username}@example.com")),
                    email_verified: true,
                    name: Some(format!("{username} Example")),
                    given_name: Some(username.into()),
                    family_name: Some("Example".into()),
                },
                &Secret::new(password),
                "test",
            )
            .await
            .unwrap()
    }
}

/// Starts the app against a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let (url, guard) = fresh_database(backend).await;
    spawn_app_on(&url, guard.map(Arc::new)).await
}

/// Starts (another) node on an existing database.
pub async fn spawn_app_on(database_url: &str, guard: Option<Arc<db::TempDirGuard>>) -> TestApp {
    spawn_with(database_url, guard, |_| {}).await
}

/// Starts a node, letting the test adjust settings first (token lifetimes, …).
pub async fn spawn_with(
    database_url: &str,
    guard: Option<Arc<db::TempDirGuard>>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", public.local_addr().unwrap().port());
    let admin_url = format!("http://127.0.0.1:{}", admin.local_addr().unwrap().port());
    let mut settings = Settings::for_test(&issuer, database_url, TEST_KEK);
    // Fast resync so multi-node tests do not depend on the notification alone.
    settings.core.resync_interval = std::time::Duration::from_millis(500);
    adjust(&mut settings);
    let running = serve_on(&settings, public, admin).await.unwrap();
    TestApp {
        issuer,
        admin_url,
        core: Arc::clone(&running.core),
        database_url: database_url.to_owned(),
        running: Some(running),
        _guard: guard,
    }
}

/// An HTTP client that keeps cookies (a browser's session) and does not follow
/// redirects, so tests can inspect each hop.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An HTTP client for machine calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs a test body once per backend: `both_backends!(name_of_async_fn_taking_backend, …)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
