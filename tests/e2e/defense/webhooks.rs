//! Signed event webhooks: a receiver verifies signature and timestamp as the README
//! tells it to; tampering and replays fail; a receiver that is down gets retries; the
//! delivery log records every attempt; the CLI manages webhooks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use portcullis_core::model::{DeliveryStatus, WebhookDelivery};
use portcullis_protocol::Secret;
use portcullis_tests::{Backend, TEST_KEK, TestApp, both_backends, fresh_database, spawn_with};
use serde_json::Value;

/// What a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer 503 to this many requests first.
    fail_first: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().unwrap().push(Received { headers, body });
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn start_receiver(fail_first: usize) -> (String, Receiver) {
    let r = Receiver::default();
    r.fail_first.store(fail_first, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hooks", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/hooks", post(receive)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

/// Five minutes: deliveries signed longer ago are refused as replays.
const TOLERANCE: i64 = 300;

/// What a receiver does (README "Webhooks"): recompute the HMAC over
/// `"{timestamp}.{body}"`, compare in constant time, refuse stale timestamps.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), &'static str> {
    let ts: i64 = headers
        .get("portcullis-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("no timestamp")?;
    if (now - ts).abs() > TOLERANCE {
        return Err("stale timestamp");
    }
    let hex = headers
        .get("portcullis-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("v1="))
        .ok_or("no v1 signature")?;
    let given: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "signature is not hex")?;
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, &signed, &given).map_err(|_| "bad signature")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Fast polling and retries, and whether http receivers on loopback are allowed.
fn fast_webhooks(s: &mut portcullis_cli::Settings, max_attempts: u32, allow_http: bool) {
    let w = &mut s.core.defense.webhooks;
    w.insecure_allow_http = allow_http;
    w.poll_interval = Duration::from_millis(100);
    w.retry_base = Duration::from_millis(300);
    w.max_attempts = max_attempts;
}

async fn app_with_webhooks(backend: Backend, max_attempts: u32) -> TestApp {
    let (url, guard) = fresh_database(backend).await;
    spawn_with(&url, guard.map(Arc::new), |s| fast_webhooks(s, max_attempts, true)).await
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn deliveries(app: &TestApp) -> Vec<WebhookDelivery> {
    let mut d = app.core.list_webhook_deliveries(None, 100).await.unwrap();
    d.sort_by_key(|d| (d.event_type.clone(), d.attempt));
    d
}

async fn deliveries_are_signed_and_verifiable(backend: Backend) {
    let app = app_with_webhooks(backend, 3).await;
    let (url, receiver) = start_receiver(0).await;
    let (hook, secret) = app
        .core
        .create_webhook(&url, &["login.*".into()], "test")
        .await
        .unwrap();
    // One subscribed event and one that is not.
    let _ = app
        .core
        .login("mallory", &Secret::new("nope"), Some("192.0.2.9".into()))
        .await;
    app.core
        .create_user(
            &portcullis_core::users::UserInput {
                username: "carol".into(),
                ..Default::default()
            },
            &Secret::new("long enough password"),
            "test",
        )
        .await
        .unwrap();
    let got = wait_for("a delivery", async || receiver.got.lock().unwrap().first().cloned()).await;
    verify(secret.expose(), &got.headers, &got.body, now()).expect("a genuine delivery verifies");
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "login.failure");
    assert_eq!(body["ip"], "192.0.2.9");
    assert_eq!(body["detail"]["username"], "mallory");
    assert_eq!(got.headers["portcullis-event"], "login.failure");
    assert_eq!(got.headers["content-type"], "application/json");

    // Tampered body, wrong secret, a replay an hour later, a forged old timestamp.
    let mut tampered = got.body.to_vec();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        verify(secret.expose(), &got.headers, &tampered, now()),
        Err("bad signature")
    );
    assert_eq!(
        verify("whsec_other", &got.headers, &got.body, now()),
        Err("bad signature")
    );
    assert_eq!(
        verify(secret.expose(), &got.headers, &got.body, now() + 3600),
        Err("stale timestamp")
    );
    let old = now() - 3600;
    let mut forged = got.headers.clone();
    forged.insert("portcullis-timestamp", old.to_string().parse().unwrap());
    forged.insert(
        "portcullis-signature",
        portcullis_core::webhooks::signature(secret.expose(), old, std::str::from_utf8(&got.body).unwrap())
            .parse()
            .unwrap(),
    );
    assert_eq!(
        verify(secret.expose(), &forged, &got.body, now()),
        Err("stale timestamp")
    );
    let mut shifted = got.headers.clone();
    let signed_at: i64 = got.headers["portcullis-timestamp"].to_str().unwrap().parse().unwrap();
    shifted.insert("portcullis-timestamp", (signed_at + 1).to_string().parse().unwrap());
    assert!(verify(secret.expose(), &shifted, &got.body, now()).is_err());

    // The log: one attempt, delivered with the receiver's status; nothing for the
    // event nobody subscribed to.
    let log = wait_for("the delivery to be recorded", async || {
        let d = deliveries(&app).await;
        d.iter().all(|d| d.status == DeliveryStatus::Delivered).then_some(d)
    })
    .await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].webhook_id, hook.id);
    assert_eq!(log[0].response_code, Some(204));
    assert_eq!(log[0].attempt, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got.lock().unwrap().len(), 1);

    // Only https (or loopback http with the insecure switch, as here); no credentials in
    // the URL (it is listed and audited); no longer than a client's URIs.
    let long = format!("https://hooks.example/{}", "x".repeat(2000));
    for bad in [
        "http://hooks.example/x",
        "https://user:pass@hooks.example/x",
        "https://user@hooks.example/x",
        long.as_str(),
    ] {
        let err = app.core.create_webhook(bad, &["*".into()], "test").await.unwrap_err();
        assert!(
            matches!(err, portcullis_core::Error::Invalid { field: "url", .. }),
            "{err}"
        );
    }
    let err = app
        .core
        .create_webhook(&url, &["Login!".into()], "test")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        portcullis_core::Error::Invalid {
            field: "event_types",
            ..
        }
    ));
    app.stop().await;
}

async fn a_receiver_that_is_down_gets_retries(backend: Backend) {
    let app = app_with_webhooks(backend, 4).await;
    // Fails twice, then accepts: three attempts, backing off.
    let (url, receiver) = start_receiver(2).await;
    let (_, secret) = app
        .core
        .create_webhook(&url, &["key.retired".into()], "test")
        .await
        .unwrap();
    app.core.audit(portcullis_core::audit::Event::new("key.retired"));
    let log = wait_for("a successful retry", async || {
        let d = deliveries(&app).await;
        d.iter().any(|d| d.status == DeliveryStatus::Delivered).then_some(d)
    })
    .await;
    let statuses: Vec<_> = log.iter().map(|d| (d.attempt, d.status, d.response_code)).collect();
    assert_eq!(
        statuses,
        vec![
            (1, DeliveryStatus::Failed, Some(503)),
            (2, DeliveryStatus::Failed, Some(503)),
            (3, DeliveryStatus::Delivered, Some(204)),
        ]
    );
    assert!(log[1].created_at >= log[0].created_at);
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    // Every attempt is signed afresh, over the same body (the event id deduplicates).
    for r in &got {
        verify(secret.expose(), &r.headers, &r.body, now()).unwrap();
        assert_eq!(r.body, got[0].body);
    }

    // Nobody listening at all: attempts up to the limit, each logged with its error.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/gone", l.local_addr().unwrap().port())
    };
    let (dead_hook, _) = app
        .core
        .create_webhook(&dead, &["consent.revoked".into()], "test")
        .await
        .unwrap();
    app.core.audit(portcullis_core::audit::Event::new("consent.revoked"));
    let log = wait_for("four failed attempts", async || {
        let d = app.core.list_webhook_deliveries(Some(dead_hook.id), 100).await.unwrap();
        (d.len() == 4 && d.iter().all(|d| d.status == DeliveryStatus::Failed)).then_some(d)
    })
    .await;
    assert!(
        log.iter().all(|d| d.response_code.is_none() && d.error.is_some()),
        "{log:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = app.core.list_webhook_deliveries(Some(dead_hook.id), 100).await.unwrap();
    assert_eq!(after.len(), 4, "no attempt past webhook_max_attempts");
    app.stop().await;
}

async fn cli_manages_webhooks(backend: Backend) {
    use clap::Parser;
    let (url, _guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-webhook-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    let run = async |args: &[&str]| {
        let mut argv = vec!["portcullis", "--config", config.to_str().unwrap()];
        argv.extend_from_slice(args);
        let cli = portcullis_cli::commands::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        portcullis_cli::commands::run(cli).await.map_err(|e| format!("{e:#}"))
    };
    run(&["migrate"]).await.unwrap();
    run(&[
        "webhook",
        "create",
        "--url",
        "https://hooks.example/in",
        "--event",
        "token.*",
        "--json",
    ])
    .await
    .unwrap();
    run(&["webhook", "list", "--json"]).await.unwrap();
    run(&["webhook", "deliveries"]).await.unwrap();
    for limit in ["0", "1001"] {
        let err = run(&["webhook", "deliveries", "--limit", limit]).await.unwrap_err();
        assert!(err.starts_with("limit: "), "{limit}: {err}");
    }
    let err = run(&["webhook", "create", "--url", "http://hooks.example/in", "--event", "*"])
        .await
        .unwrap_err();
    assert!(err.starts_with("url: "), "{err}");
    let err = run(&["webhook", "delete", "00000000-0000-0000-0000-000000000000"])
        .await
        .unwrap_err();
    assert_eq!(err, "webhook not found");
}

/// An http receiver registered while `insecure_allow_http_webhooks` was on gets nothing
/// once it is off: one failed attempt that says why, and no retries.
async fn http_receivers_stop_when_the_setting_is_turned_off(backend: Backend) {
    let (db, guard) = fresh_database(backend).await;
    let app = spawn_with(&db, None, |s| fast_webhooks(s, 4, true)).await;
    let (url, receiver) = start_receiver(0).await;
    app.core
        .create_webhook(&url, &["key.retired".into()], "test")
        .await
        .unwrap();
    app.stop().await;

    let app = spawn_with(&db, None, |s| fast_webhooks(s, 4, false)).await;
    app.core.audit(portcullis_core::audit::Event::new("key.retired"));
    let failed = wait_for("the refused delivery", async || {
        let d = deliveries(&app).await;
        d.iter().any(|d| d.status == DeliveryStatus::Failed).then_some(d)
    })
    .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("insecure_allow_http_webhooks"),
        "{failed:?}"
    );
    // Retries would come 300 ms apart.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(deliveries(&app).await.len(), 1, "no retries");
    assert!(receiver.got.lock().unwrap().is_empty());
    app.stop().await;
    drop(guard);
}

both_backends!(
    http_receivers_stop_when_the_setting_is_turned_off,
    deliveries_are_signed_and_verifiable,
    a_receiver_that_is_down_gets_retries,
    cli_manages_webhooks,
);
