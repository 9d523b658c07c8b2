//! Two `portcullis serve` nodes on one PostgreSQL, as behind a load balancer (one
//! issuer, two listeners): a token issued by one is active at the other, and a
//! revocation at one (of a token, or of a disabled client's tokens) is seen by the other
//! within a second.

use std::time::{Duration, Instant};

use portcullis_tests::{Backend, TestApp, fresh_database, http, spawn_app_on, spawn_with};
use serde_json::Value;

use crate::token_endpoint::introspect;

/// Two nodes on one fresh PostgreSQL database, one issuer: B resyncs every `resync`.
async fn two_nodes(resync: Duration) -> (TestApp, TestApp) {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let a = spawn_app_on(&url, None).await;
    let issuer = a.issuer.clone();
    let b = spawn_with(&url, None, |s| {
        s.core.issuer = issuer.clone();
        s.core.access_token_audience = issuer.clone();
        s.core.resync_interval = resync;
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_tokens_and_revocations() {
    // Only LISTEN/NOTIFY can make it within the second.
    let (a, b) = two_nodes(Duration::from_secs(30)).await;
    let ja: Value = http().get(a.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let jb: Value = http().get(b.url("/jwks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ja, jb, "both nodes publish the keys from the shared database");

    let (client, secret) = a.confidential_client("https://app.example/cb").await;
    let (id, sec) = (client.id.as_str(), secret.expose());
    let (_, token) = a.client_credentials(id, sec).await;
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(introspect(&a, id, sec, access).await["active"], true);
    assert_eq!(
        introspect(&b, id, sec, access).await["active"],
        true,
        "issued by A, active at B"
    );

    let r = http()
        .post(a.url("/revoke"))
        .basic_auth(id, Some(sec))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&a, id, sec, access).await["active"], false);
    let started = Instant::now();
    while introspect(&b, id, sec, access).await["active"] != false {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still reports the revoked token active after a second"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// A client disabled at one node: its outstanding tokens are inactive at the other
/// within a second (the revocation travels like any other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disabled_at_one_node_loses_its_tokens_at_the_other() {
    let (a, b) = two_nodes(Duration::from_secs(30)).await;
    let (client, secret) = a.confidential_client("https://app.example/cb").await;
    let (rs, rs_secret) = a.confidential_client("https://rs.example/cb").await;
    let (rs_id, rs_sec) = (rs.id.as_str(), rs_secret.expose());
    let (_, token) = a.client_credentials(client.id.as_str(), secret.expose()).await;
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(introspect(&b, rs_id, rs_sec, access).await["active"], true);

    a.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    assert_eq!(introspect(&a, rs_id, rs_sec, access).await["active"], false);
    let started = Instant::now();
    while introspect(&b, rs_id, rs_sec, access).await["active"] != false {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still reports the disabled client's token active after a second"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// A secret rotated at one node works at the other at once, though that node authenticated
/// the client a moment before from its cached copy (which the old secret may still pass
/// for up to two seconds there): a client that deploys its new secret straight away,
/// behind a load balancer, is not refused (multi-node review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_at_one_node_works_at_the_other_at_once() {
    let (a, b) = two_nodes(Duration::from_secs(30)).await;
    let (client, old) = a.confidential_client("https://app.example/cb").await;
    let id = client.id.as_str();
    assert_eq!(
        b.client_credentials(id, old.expose()).await.0,
        200,
        "B caches the client"
    );
    let new = a.core.rotate_client_secret(&client.id, "test").await.unwrap();
    let (status, body) = b.client_credentials(id, new.expose()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        b.client_credentials(id, "not-the-secret").await.0,
        401,
        "a wrong secret is still refused"
    );
    a.stop().await;
    b.stop().await;
}

/// Found by a concurrency review: revocations arriving steadily (every 100 ms here) must
/// not keep a node from its resync, which is how it learns of keys rotated elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotated_elsewhere_are_picked_up_while_revocations_keep_coming() {
    let (a, b) = two_nodes(Duration::from_millis(400)).await;
    let (client, secret) = a.confidential_client("https://app.example/cb").await;
    let (id, sec) = (client.id.as_str().to_owned(), secret.expose().to_owned());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let revoker = {
        let (a_url, stop) = (a.url(""), stop.clone());
        let (id, sec) = (id.clone(), sec.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let token: Value = http()
                    .post(format!("{a_url}/token"))
                    .basic_auth(&id, Some(&sec))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let r = http()
                    .post(format!("{a_url}/revoke"))
                    .basic_auth(&id, Some(&sec))
                    .form(&[("token", token["access_token"].as_str().unwrap())])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kid = a.core.rotate_signing_keys(None, true, "test").await.unwrap();
    let started = Instant::now();
    loop {
        let jwks: Value = http().get(b.url("/jwks")).send().await.unwrap().json().await.unwrap();
        if jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "node B has not picked up the rotated key after 3 s of revocations"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    revoker.await.unwrap();
    a.stop().await;
    b.stop().await;
}

/// The README's steps for a leaked key, at one node (a forced rotation, then the old key
/// withdrawn): the other node stops signing with it and stops publishing it within the
/// second, not at its next resync (found by a multi-node review: up to 5 s, during
/// which a resource server fetching that node's JWKS would cache the leaked key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_withdrawn_at_one_node_goes_at_the_other_within_a_second() {
    let (a, b) = two_nodes(Duration::from_secs(30)).await;
    let (client, secret) = a.confidential_client("https://app.example/cb").await;
    let (id, sec) = (client.id.as_str(), secret.expose());
    let kid_of = |token: &Value| {
        jsonwebtoken::decode_header(token["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap()
    };
    let (_, before) = b.client_credentials(id, sec).await;
    let leaked = kid_of(&before);
    a.core.rotate_signing_keys(None, true, "test").await.unwrap();
    a.core.withdraw_signing_key(&leaked, "test").await.unwrap();
    let started = Instant::now();
    loop {
        let jwks: Value = http().get(b.url("/jwks")).send().await.unwrap().json().await.unwrap();
        let published = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == leaked.as_str());
        let (_, token) = b.client_credentials(id, sec).await;
        if !published && kid_of(&token) != leaked {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still signs with or publishes the withdrawn key after a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// Found by a concurrency review: node B authenticates a client from its cached copy for
/// up to two seconds after node A disabled it; the tokens B issues meanwhile are revoked
/// with the others, even when they fall in the second after the disable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_a_stale_copy_issues_after_a_disable_are_revoked() {
    let (a, b) = two_nodes(Duration::from_secs(5)).await;
    let (client, secret) = a.confidential_client("https://app.example/cb").await;
    let (rs, rs_secret) = a.confidential_client("https://rs.example/cb").await;
    let (id, sec) = (client.id.as_str(), secret.expose());
    // Each node checks the other's tokens: resource server credentials cached at both.
    let (status, _) = b.client_credentials(id, sec).await;
    assert_eq!(status, 200, "B has the client cached");
    a.core.set_client_disabled(&client.id, true, "test").await.unwrap();
    // Into the next second (iat has no finer grain), still within B's cache.
    let second = a.core.now().unix_timestamp();
    while a.core.now().unix_timestamp() == second {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, token) = b.client_credentials(id, sec).await;
    assert_eq!(status, 200, "B still trusts its copy, at most 1.1 s old");
    let access = token["access_token"].as_str().unwrap();
    let started = Instant::now();
    for node in [&a, &b] {
        while introspect(node, rs.id.as_str(), rs_secret.expose(), access).await["active"] != false {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "a token issued from a stale copy after the disable is still active"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    a.stop().await;
    b.stop().await;
}

/// A node left on the old key-encryption key after `kek rewrap` cannot open the signing
/// keys: it signs nothing (never with the keys it had in memory), reports itself not
/// ready, and still publishes and verifies what the store holds, so a key withdrawn
/// elsewhere leaves it too.
async fn a_node_that_cannot_open_the_signing_keys_signs_nothing(backend: Backend) {
    use portcullis_core::crypto::Kek;
    use portcullis_core::model::KeyState;
    let (url, guard) = fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let stale = spawn_with(&url, guard.clone(), |_| {}).await;
    let (client, secret) = stale.confidential_client(crate::code_flow::REDIRECT).await;
    let (s, before) = stale.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(s, 200, "{before}");
    stale.user("alice", crate::code_flow::PASSWORD).await;
    let signed_in = crate::code_flow::obtain_tokens_with(
        &stale,
        (client.id.as_str(), secret.expose()),
        "alice",
        "openid api:read",
        &[],
    )
    .await;
    let refresh_token = signed_in["refresh_token"].as_str().unwrap();
    let ready = || async {
        http()
            .get(format!("{}/readyz", stale.admin_url))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);
    let active = |keys: &[portcullis_core::model::SigningKeyRecord]| {
        keys.iter().find(|k| k.state == KeyState::Active).unwrap().kid.clone()
    };
    let leaked = active(&stale.core.list_signing_keys().await.unwrap());

    // Another node with the new kek seals everything again, then the leaked key is
    // rotated out at once and withdrawn.
    let new = Kek::generate().unwrap().to_text();
    let replacing = crate::cli::start(&url, &new, &[portcullis_tests::TEST_KEK]).await;
    replacing.rewrap_sealed("test").await.unwrap();
    replacing.rotate_signing_keys(None, true, "test").await.unwrap();
    replacing.withdraw_signing_key(&leaked, "test").await.unwrap();
    let signing = active(&replacing.list_signing_keys().await.unwrap());

    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 503 {
        assert!(Instant::now() < deadline, "/readyz stayed 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Told to try again (503), before anything is used up: the refresh token still
    // works at a node that can sign.
    let (s, body) = stale.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    // Before the client is authenticated: a client assertion's or DPoP proof's `jti` is
    // not used up either, so the same request works elsewhere.
    let (s, body) = stale.client_credentials(client.id.as_str(), "not the secret").await;
    assert_eq!(
        (s, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    let refresh = |node: &portcullis_tests::TestApp| {
        let (url, id, secret) = (
            node.url("/token"),
            client.id.as_str().to_owned(),
            secret.expose().to_owned(),
        );
        async move {
            let r = http()
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = refresh(&stale).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    let healthy = spawn_with(&url, guard, |s| {
        s.kek = portcullis_cli::config::KekSource::Inline(new.clone());
        s.previous_keks = vec![portcullis_tests::TEST_KEK.to_owned()];
    })
    .await;
    let (s, body) = refresh(&healthy).await;
    assert_eq!(s, 200, "the refresh token was not used up: {body}");
    healthy.stop().await;
    // Within a resync (another node's start may hold SQLite's lock for a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jwks = stale.get_json("/jwks").await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        if !kids.contains(&leaked.as_str()) && kids.contains(&signing.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "{kids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = before["access_token"].as_str().unwrap();
    let answer = introspect(&stale, client.id.as_str(), secret.expose(), token).await;
    assert_eq!(answer, serde_json::json!({"active": false}));

    stale.stop().await;
}

portcullis_tests::both_backends!(a_node_that_cannot_open_the_signing_keys_signs_nothing);
