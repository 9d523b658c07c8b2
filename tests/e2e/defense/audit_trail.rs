//! The audit trail: each security-relevant action produces exactly its event, and a full
//! audit queue never holds up a token request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_protocol::Secret;
use portcullis_tests::{Backend, TestApp, both_backends, browser, fresh_database, http, spawn_with};
use serde_json::Value;
use sqlx::Connection;
use url::Url;

use super::{AuditCursor, sign_in};
use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::{Step, forms, param, submit_form};

const VERIFIER: &str = "audit-trail-verifier-0123456789-0123456789-0123456789";

/// Runs an authorization in a signed-in browser and returns the code.
async fn code(b: &reqwest::Client, app: &TestApp, client_id: &str) -> String {
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(VERIFIER.as_bytes()));
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    match authorize_in_browser(b, app, &auth, "alice", "allow").await {
        Step::LeftIssuer(back) => param(&back, "code").unwrap(),
        other => panic!("{other:?}"),
    }
}

async fn token(app: &TestApp, client: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(app.url("/token"))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn exchange(app: &TestApp, client: &str, secret: &str, code: &str) -> (u16, Value) {
    token(
        app,
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// Submits the account page's form posting to `action` whose hidden `field` is `value`.
async fn account_form(b: &reqwest::Client, app: &TestApp, action: &str, field: &str, value: Option<&str>) -> u16 {
    let page = Url::parse(&app.url("/account")).unwrap();
    let html = b.get(page.clone()).send().await.unwrap().text().await.unwrap();
    let form = forms(&page, &html)
        .into_iter()
        .find(|f| {
            f.action.path() == action
                && f.fields
                    .iter()
                    .any(|(k, v)| k == field && value.is_none_or(|want| v == want))
        })
        .unwrap_or_else(|| panic!("no {action} form in\n{html}"));
    submit_form(b, &form, &[]).await.status().as_u16()
}

macro_rules! expect {
    ($cursor:ident, $app:ident, [$($t:literal),* $(,)?]) => {{
        let mut want: Vec<String> = vec![$($t.to_string()),*];
        want.sort();
        assert_eq!($cursor.new_types(&$app).await, want, "at {}:{}", file!(), line!());
    }};
}

async fn each_action_produces_exactly_its_event(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(Arc::new), |s| {
        s.core.defense.lockout.threshold = 2;
        s.core.defense.lockout.base_delay = time::Duration::seconds(60);
    })
    .await;
    let mut c = AuditCursor::new(&app).await;

    // Client and user changes.
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, secret) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    expect!(c, app, ["admin.client.created"]);
    app.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    expect!(c, app, ["admin.client.disabled"]);
    app.core.set_client_disabled(&client.id, false, "test").await.unwrap();
    expect!(c, app, ["admin.client.enabled"]);
    let alice = app.user("alice", PASSWORD).await;
    expect!(c, app, ["admin.user.created"]);

    // Logins: success, failure, lockout.
    let b = browser();
    assert_eq!(sign_in(&b, &app, "alice", PASSWORD, None).await.status, 200);
    expect!(c, app, ["login.success"]);
    assert_eq!(sign_in(&browser(), &app, "mallory", "x", None).await.status, 200);
    expect!(c, app, ["login.failure"]);
    assert_eq!(sign_in(&browser(), &app, "mallory", "y", None).await.status, 200);
    expect!(c, app, ["login.failure"]);
    assert_eq!(sign_in(&browser(), &app, "mallory", "z", None).await.status, 429);
    expect!(c, app, ["login.locked_out"]);

    // Consent, tokens issued and refreshed, refresh reuse, code replay.
    let first = code(&b, &app, &id).await;
    expect!(c, app, ["consent.granted"]);
    let (status, tokens) = exchange(&app, &id, &secret, &first).await;
    assert_eq!(status, 200);
    expect!(c, app, ["token.issued"]);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200);
    expect!(c, app, ["token.refreshed"]);
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 400);
    expect!(c, app, ["refresh.reuse_detected"]);
    let (status, _) = exchange(&app, &id, &secret, &first).await;
    assert_eq!(status, 400);
    expect!(c, app, ["code.replay_detected"]);

    // Revocation, client credentials.
    let second = code(&b, &app, &id).await;
    let (_, tokens) = exchange(&app, &id, &secret, &second).await;
    expect!(c, app, ["token.issued"]);
    let resp = http()
        .post(app.url("/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    expect!(c, app, ["token.revoked"]);
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(status, 200);
    expect!(c, app, ["token.issued"]);

    // The person withdraws consent and ends another session on the account page.
    assert_eq!(
        account_form(&b, &app, "/account/applications/revoke", "client_id", Some(&id)).await,
        303
    );
    expect!(c, app, ["consent.revoked"]);
    let other = browser();
    assert_eq!(sign_in(&other, &app, "alice", PASSWORD, None).await.status, 200);
    expect!(c, app, ["login.success"]);
    assert_eq!(app.core.list_user_sessions(alice.id).await.unwrap().len(), 2);
    assert_eq!(
        account_form(&other, &app, "/account/sessions/revoke", "session", None).await,
        303
    );
    expect!(c, app, ["session.revoked"]);

    // Password change, key rotation, client deletion, a webhook.
    app.core
        .set_user_password(alice.id, &Secret::new("another long password"), "test")
        .await
        .unwrap();
    expect!(c, app, ["user.password_changed"]);
    app.core.rotate_signing_keys(None, true, "test").await.unwrap();
    expect!(c, app, ["key.rotated"]);
    app.core.delete_client(&client.id, "test").await.unwrap();
    expect!(c, app, ["admin.client.deleted"]);
    app.stop().await;
}

/// Holds the audit table's write lock from another connection until dropped.
#[allow(dead_code, reason = "the connections are held only for their locks")]
enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn block_audit_writes(database_url: &str) -> Blocker {
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
        Blocker::Sqlite(conn)
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        Blocker::Postgres(conn)
    }
}

async fn a_full_audit_queue_never_blocks_a_token_request(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(Arc::new), |s| s.core.defense.audit_queue_size = 2).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.core.audit.flush().await;
    let blocker = block_audit_writes(&url).await;
    let before = app.core.audit.dropped();
    let started = Instant::now();
    for _ in 0..30 {
        let t = Instant::now();
        let (status, _) = token(
            &app,
            client.id.as_str(),
            secret.expose(),
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a token request waited {:?}",
            t.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(
        app.core.audit.dropped() > before,
        "events beyond the queue are counted as dropped"
    );
    // Shutdown's flush gives up after 2 s and says how many events it could not store.
    assert!(app.core.audit.flush().await > 0);
    drop(blocker);
    // The writer recovers once the database does.
    let (status, _) = token(
        &app,
        client.id.as_str(),
        secret.expose(),
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(status, 200);
    let mut stored = 0;
    for _ in 0..100 {
        stored = super::all_events(&app)
            .await
            .iter()
            .filter(|e| e.event_type == "token.issued")
            .count();
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored > 0);
    app.stop().await;
}

/// A username typed at a sign-in goes into the trail cut to the longest an account can
/// have: a form field is not to put 20 KB into every failure's row, log line and webhook.
async fn typed_usernames_are_cut_in_the_trail(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let long = "m".repeat(20_000);
    assert_eq!(sign_in(&browser(), &app, &long, "x", None).await.status, 200);
    let err = app.core.admin_login(&long, &Secret::new("x"), None).await.unwrap_err();
    assert!(matches!(err, portcullis_core::Error::BadCredentials), "{err:?}");
    for event_type in ["login.failure", "admin.login.failure"] {
        let events = super::events_of(&app, event_type, 1).await;
        let typed = events[0].detail["username"].as_str().unwrap();
        assert_eq!(typed, format!("{}…", "m".repeat(100)), "{event_type}");
    }
    app.stop().await;
}

both_backends!(
    typed_usernames_are_cut_in_the_trail,
    each_action_produces_exactly_its_event,
    a_full_audit_queue_never_blocks_a_token_request,
);

/// Found by a concurrency review: when PostgreSQL drops the writer's connections (killed
/// here while idle, as a restart or failover does), the audit writer tries its batch
/// again rather than losing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_survive_connections_dropped_under_the_writer() {
    use portcullis_core::throttle::Bucket;
    let (url, _) = fresh_database(Backend::Postgres).await;
    let app = spawn_with(&url, None, |s| {
        s.core.defense.rate_limits.set(Bucket::TokenIp, None);
        s.core.defense.rate_limits.set(Bucket::TokenClient, None);
    })
    .await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut issued = 0;
    for _ in 0..8 {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        for _ in 0..5 {
            // A client read on a killed connection fails (500, README: PostgreSQL); only
            // the tokens issued are recorded.
            let (status, v) = app.client_credentials(client.id.as_str(), secret.expose()).await;
            assert!(status == 200 || status == 500, "{v}");
            issued += usize::from(status == 200);
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let started = Instant::now();
    let stored = loop {
        // The pool may still hold a killed connection: that read fails, the next one works.
        let events = app
            .core
            .store
            .list_audit_events(&portcullis_core::model::AuditFilter {
                event_type: Some("token.issued".into()),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .map_or(0, |e| e.len());
        if events >= issued || started.elapsed() > Duration::from_secs(20) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(issued >= 20, "{issued} of 40 issued");
    assert_eq!(stored, issued);
    app.stop().await;
}
