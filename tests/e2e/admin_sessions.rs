//! Admin sessions on both backends: how long they last (`session_ttl` from sign-in,
//! `admin_idle_timeout` idle), sessions of earlier versions, and the host names the admin
//! listener answers to.

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, both_backends, fresh_database, http, spawn_app};
use serde_json::Value;

use crate::admin_support::{ADMIN_PASSWORD, Pages, operator, set_cookie, sign_in_by_hand};

/// An admin session lasts `session_ttl` from its sign-in however active it is.
async fn admin_sessions_end_a_session_ttl_after_sign_in(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.session_ttl = time::Duration::seconds(2);
    })
    .await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let started = std::time::Instant::now();
    let mut ended = None;
    while started.elapsed() < std::time::Duration::from_secs(8) {
        // A request every 300 ms: never idle long enough for the inactivity expiry.
        let r =
            p.b.get(format!("{}/admin/clients", app.admin_url))
                .send()
                .await
                .unwrap();
        if r.status() == 303 {
            assert_eq!(r.headers()["location"], "/admin/login");
            ended = Some(started.elapsed());
            break;
        }
        assert_eq!(r.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let ended = ended.expect("the session outlived its lifetime");
    assert!(ended >= std::time::Duration::from_millis(1900), "{ended:?}");
    app.stop().await;
}

/// An admin session left without a request for `admin_idle_timeout` ends; requests keep
/// it going (up to `session_ttl` from its sign-in).
async fn idle_admin_sessions_end(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.admin_idle_timeout = time::Duration::seconds(2);
    })
    .await;
    operator(&app, "root", AdminRole::Admin).await;
    let (_, _, signed_in) = sign_in_by_hand(&app, "root").await;
    let cookie = set_cookie(&signed_in).unwrap();
    let clients = || async {
        http()
            .get(format!("{}/admin/clients", app.admin_url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
    };
    // Busy for twice the idle timeout: still signed in.
    for _ in 0..8 {
        assert_eq!(clients().await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Then idle for longer than it: the stored session has expired too.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let hash = portcullis_core::crypto::sha256(cookie.split_once('=').unwrap().1.as_bytes());
    let stored = app.core.store.load_session(&hash, app.core.now()).await.unwrap();
    assert!(stored.is_none(), "{stored:?}");
    let r = clients().await;
    assert_eq!(r.status(), 303, "the idle session ended");
    assert_eq!(r.headers()["location"], "/admin/login");
    app.stop().await;
}

/// The admin listener answers to IP addresses, `localhost` and the names in
/// `admin_hosts` only: a page whose own name an attacker's DNS points at the listener
/// (DNS rebinding) gets nothing from it. The health endpoints answer anyone.
async fn the_admin_surface_answers_to_known_host_names_only(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.defense.admin_hosts = vec!["admin.example.com".into()];
    })
    .await;
    let port = app.admin_url.rsplit(':').next().unwrap().to_owned();
    let get = |host: String, path: &'static str| {
        let url = format!("{}{path}", app.admin_url);
        async move {
            let r = portcullis_tests::http()
                .get(url)
                .header("host", host)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "Admin.Example.com".to_owned(),
    ] {
        assert_eq!(get(host.clone(), "/admin/login").await.0, 200, "{host}");
    }
    let evil = format!("rebind.attacker.example:{port}");
    let (s, body) = get(evil.clone(), "/admin/login").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("admin_hosts"), "{body}");
    let (s, body) = get(evil.clone(), "/admin/api/v1/clients").await;
    assert_eq!(s, 400);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "bad_request");
    assert_eq!(get(evil, "/healthz").await.0, 200);
    app.stop().await;
}

/// An admin session signed in before the admin cookie was limited to `/admin` (its data
/// has no `last_seen`) ends: that cookie went to every port of the host.
async fn admin_sessions_from_before_the_path_limit_end(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let url = |path: &str| format!("{}{path}", app.admin_url);
    let (_, _, signed_in) = sign_in_by_hand(&app, "root").await;
    assert_eq!(signed_in.status(), 303);
    let cookie = set_cookie(&signed_in).unwrap();
    let dashboard = || async {
        http()
            .get(url("/admin"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(dashboard().await, 200);
    // The same session as an older version stored it.
    let id = cookie.split_once('=').unwrap().1;
    let hash = portcullis_core::crypto::sha256(id.as_bytes());
    let now = app.core.now();
    let mut row = app.core.store.load_session(&hash, now).await.unwrap().unwrap();
    let mut data: Value = serde_json::from_str(&row.data).unwrap();
    assert!(data["admin"]["last_seen"].as_i64().unwrap() > 0, "{data}");
    data["admin"].as_object_mut().unwrap().remove("last_seen");
    row.data = data.to_string();
    assert!(app.core.store.save_session(&row).await.unwrap());
    assert_eq!(dashboard().await, 303, "signed out");
    app.stop().await;
}

both_backends!(
    admin_sessions_end_a_session_ttl_after_sign_in,
    idle_admin_sessions_end,
    the_admin_surface_answers_to_known_host_names_only,
    admin_sessions_from_before_the_path_limit_end,
);
