//! Throttling and lockout: password guessing, secret guessing, and the client address
//! behind (trusted and untrusted) proxies.

use portcullis_core::throttle::{Bucket, RateLimit};
use portcullis_tests::{Backend, TestApp, both_backends, browser, fresh_database, http, spawn_with};
use serde_json::Value;

use super::{events_of, sign_in};
use crate::code_flow::PASSWORD;

const ATTACKER: &str = "198.51.100.66";
const REAL_USER: &str = "203.0.113.10";

/// The address of requests as the test's own proxy (loopback) forwards them.
fn behind_proxy(s: &mut portcullis_cli::Settings) {
    s.core.defense.trusted_proxies.networks =
        vec![portcullis_core::net::TrustedProxies::parse_network("127.0.0.1").unwrap()];
}

/// A node behind the test's proxy whose first lockout wait is a minute (so a lock holds
/// for the whole test), with `adjust` applied and alice registered.
async fn slow_lockout_app(backend: Backend, adjust: impl FnOnce(&mut portcullis_cli::Settings)) -> TestApp {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        behind_proxy(s);
        s.core.defense.lockout.base_delay = time::Duration::seconds(60);
        adjust(s);
    })
    .await;
    app.user("alice", PASSWORD).await;
    app
}

async fn brute_force_login_is_locked_out_but_not_the_real_user(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    // SQLite keeps whole seconds, so the first lock is at least a second only from 2 s.
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        behind_proxy(s);
        s.core.defense.lockout.base_delay = time::Duration::seconds(2);
    })
    .await;
    app.user("alice", PASSWORD).await;
    let attacker = browser();
    let mut wait = 0;
    let mut refused_at = None;
    for attempt in 1..=20 {
        let a = sign_in(&attacker, &app, "alice", &format!("guess-{attempt}"), Some(ATTACKER)).await;
        if a.status == 429 {
            wait = a.retry_after.as_deref().expect("Retry-After").parse().unwrap();
            assert!((1..=900).contains(&wait), "{wait}");
            assert!(a.html.contains("Too many attempts"), "{}", a.html);
            assert!(a.html.contains("Try again in "), "{}", a.html);
            refused_at = Some(attempt);
            break;
        }
        assert_eq!(a.status, 200);
        assert!(a.html.contains("The username or password is not correct."));
    }
    let refused_at = refused_at.expect("no 429 within 20 attempts");
    // The sixth attempt, unless the machine took longer than the first lock between two.
    assert!(refused_at <= 8, "locked only at attempt {refused_at}");

    // Locked: even the right password is refused from the attacker's address, before
    // any hashing.
    let a = sign_in(&attacker, &app, "alice", PASSWORD, Some(ATTACKER)).await;
    assert_eq!(a.status, 429);
    let locked = events_of(&app, "login.locked_out", 2).await;
    assert!(locked.iter().all(|e| e.ip.as_deref() == Some(ATTACKER)));
    assert!(locked.iter().all(|e| e.detail["scope"] == "address"), "{locked:?}");

    // The real user, elsewhere, is not affected.
    let a = sign_in(&browser(), &app, "alice", PASSWORD, Some(REAL_USER)).await;
    assert_eq!(a.status, 200);
    assert!(a.html.contains("id=\"signed-in-user\""), "{}", a.html);

    // After the window, the right password works from the attacker's address too (the
    // lockout backs off, it does not lock forever) and clears the count.
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    let a = sign_in(&browser(), &app, "alice", PASSWORD, Some(ATTACKER)).await;
    assert_eq!(a.status, 200, "{}", a.html);
    let a = sign_in(&browser(), &app, "alice", "wrong again", Some(ATTACKER)).await;
    assert_eq!(a.status, 200, "the count was reset by the successful sign-in");
    app.stop().await;
}

async fn lockout_does_not_reveal_whether_the_account_exists(backend: Backend) {
    let app = slow_lockout_app(backend, |_| {}).await;
    let mut transcripts = Vec::new();
    for username in ["alice", "nobody-by-this-name"] {
        let b = browser();
        let mut seen = Vec::new();
        for i in 0..7 {
            let a = sign_in(&b, &app, username, &format!("wrong-{i}"), Some(ATTACKER)).await;
            // Same page either way, apart from the echoed username and the CSRF token.
            let html = a.html.replace(username, "USER");
            let html = html
                .split('\n')
                .filter(|l| !l.contains("name=\"csrf\""))
                .collect::<Vec<_>>()
                .join("\n");
            // The wait counts down between the two runs (60 s, then 59): its figure aside.
            let html = match html.find("Try again in ") {
                Some(i) => {
                    let start = i + "Try again in ".len();
                    let digits = html[start..].chars().take_while(char::is_ascii_digit).count();
                    format!("{}N{}", &html[..start], &html[start + digits..])
                }
                None => html,
            };
            seen.push((a.status, a.retry_after.is_some(), html));
        }
        transcripts.push(seen);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert_eq!(
        transcripts[0].iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
        vec![200, 200, 200, 200, 200, 429, 429]
    );
    let locked = events_of(&app, "login.locked_out", 4).await;
    let users: Vec<_> = locked.iter().map(|e| e.detail["username"].as_str().unwrap()).collect();
    assert!(users.contains(&"alice") && users.contains(&"nobody-by-this-name"));
    app.stop().await;
}

/// Guessing spread over many addresses: each address stays under the per-address
/// threshold, the account-wide count locks the account for every address.
async fn guessing_from_many_addresses_locks_the_account(backend: Backend) {
    let app = slow_lockout_app(backend, |s| s.core.defense.lockout.account_threshold = 4).await;
    app.user("bob", PASSWORD).await;
    let from = |i: u32| format!("198.51.100.{i}");

    // Two guesses from two addresses, a typo of the real user, then their sign-in: it
    // takes its own address's failure off the account's count, not the attacker's.
    for i in 1..=2 {
        let a = sign_in(&browser(), &app, "alice", &format!("guess-{i}"), Some(&from(i))).await;
        assert_eq!(a.status, 200, "{}", a.html);
        assert!(a.html.contains("The username or password is not correct."));
    }
    let real = browser();
    let a = sign_in(&real, &app, "alice", "typo", Some(REAL_USER)).await;
    assert_eq!(a.status, 200, "{}", a.html);
    let a = sign_in(&real, &app, "alice", PASSWORD, Some(REAL_USER)).await;
    assert!(a.html.contains("id=\"signed-in-user\""), "{}", a.html);

    // Two more guesses, from two more addresses, reach the threshold (4): none of the
    // addresses is anywhere near the per-address one.
    for i in 11..=12 {
        let a = sign_in(&browser(), &app, "alice", &format!("guess-{i}"), Some(&from(i))).await;
        assert_eq!(a.status, 200, "attempt from {}: {}", from(i), a.html);
        assert!(a.html.contains("The username or password is not correct."));
    }
    // Now every address waits, the real user's too, even with the right password.
    for ip in [from(15), REAL_USER.to_owned()] {
        let a = sign_in(&browser(), &app, "alice", PASSWORD, Some(&ip)).await;
        assert_eq!(a.status, 429, "{ip}: {}", a.html);
        let wait: u64 = a.retry_after.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(a.html.contains("Too many attempts"));
        // The account's lockout, not this address's attempts: the page blames nobody's
        // address and says how long.
        assert!(!a.html.contains("from your address"), "{}", a.html);
        let said = if wait <= 1 {
            "a second".to_owned()
        } else {
            format!("{wait} seconds")
        };
        assert!(a.html.contains(&format!("Try again in {said}.")), "{wait}: {}", a.html);
    }
    let locked = events_of(&app, "login.locked_out", 2).await;
    assert!(locked.iter().all(|e| e.detail["scope"] == "account"), "{locked:?}");
    assert!(locked.iter().all(|e| e.detail["failures"] == 4), "{locked:?}");

    // Another account is not affected, from the same addresses.
    let a = sign_in(&browser(), &app, "bob", PASSWORD, Some(&from(15))).await;
    assert!(a.html.contains("id=\"signed-in-user\""), "{}", a.html);

    app.stop().await;
}

/// Simultaneous guesses from one address are counted one after the other: exactly the
/// threshold's worth are answered, the rest are refused before hashing.
async fn simultaneous_guesses_get_the_threshold_not_the_burst(backend: Backend) {
    let app = slow_lockout_app(backend, |_| {}).await;
    let app = std::sync::Arc::new(app);
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..12 {
        let app = std::sync::Arc::clone(&app);
        attempts.spawn(async move {
            sign_in(&browser(), &app, "alice", &format!("guess-{i}"), Some(ATTACKER))
                .await
                .status
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200; 5], vec![429; 7]].concat());
    assert!(app.core.login_attempts.is_empty(), "finished attempts are forgotten");
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

/// The per-client limit counts a confidential client's authenticated requests only:
/// guesses under its id count against the guessing address, so nobody can use up a
/// client's allowance by sending its id, and a public client counts per address only.
async fn token_limit_per_client_counts_authenticated_requests(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        behind_proxy(s);
        let limits = &mut s.core.defense.rate_limits;
        limits.set(Bucket::TokenClient, RateLimit::parse("5/min").unwrap());
        limits.set(Bucket::TokenIp, RateLimit::parse("20/min").unwrap());
    })
    .await;
    let (client, secret) = app.confidential_client("https://rp.example/callback").await;
    let (other, other_secret) = app.confidential_client("https://rp.example/callback").await;
    let token = |id: &str, secret: &str, from: &str| {
        http()
            .post(app.url("/token"))
            .header("x-forwarded-for", from)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // Twelve wrong guesses under the client's id: 401 each, the client's count untouched.
    for i in 0..12 {
        let r = token(client.id.as_str(), &format!("guess-{i}"), ATTACKER)
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "guess {i}");
    }
    // The client itself, from elsewhere: its five, then 429 slow_down with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = token(client.id.as_str(), secret.expose(), REAL_USER).await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait >= 1);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "slow_down");
        }
    }
    assert_eq!(statuses, [vec![200; 5], vec![429; 2]].concat());
    // Another client, from the same address, has its own count.
    let r = token(other.id.as_str(), other_secret.expose(), REAL_USER)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The guessing address reaches its own limit (20/min: 12 guesses so far).
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = token(client.id.as_str(), &format!("more-{i}"), ATTACKER).await.unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [vec![401; 8], vec![429; 2]].concat());
    // A public client's id proves nothing: no per-client count, only the address's.
    let public = app.public_client("https://rp.example/callback").await;
    for i in 0..8 {
        let r = http()
            .post(app.url("/token"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", public.id.as_str()),
                ("code", "no-such-code"),
                ("redirect_uri", "https://rp.example/callback"),
                ("code_verifier", &"v".repeat(43)),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "request {i}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }
    app.stop().await;
}

async fn machine_endpoints_are_throttled_per_address(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        let limits = &mut s.core.defense.rate_limits;
        limits.set(Bucket::TokenIp, RateLimit::parse("3/min").unwrap());
        limits.set(Bucket::RevokeIp, RateLimit::parse("2/min").unwrap());
        limits.set(Bucket::IntrospectIp, RateLimit::parse("2/min").unwrap());
    })
    .await;
    let (client, secret) = app.confidential_client("https://rp.example/callback").await;
    // A spray of client ids from one address is stopped by the per-address limit.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = http()
            .post(app.url("/token"))
            .basic_auth(format!("client-{i}"), Some("x"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    for path in ["/revoke", "/introspect"] {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let resp = http()
                .post(app.url(path))
                .basic_auth(client.id.as_str(), Some(secret.expose()))
                .form(&[("token", "not-a-token")])
                .send()
                .await
                .unwrap();
            statuses.push(resp.status().as_u16());
            if resp.status() == 429 {
                assert!(resp.headers().contains_key("retry-after"));
            }
        }
        assert_eq!(statuses, vec![200, 200, 429], "{path}");
    }
    app.stop().await;
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let shared = guard.map(std::sync::Arc::new);
    // No trusted proxy: the header is the client's own claim and is ignored.
    let app = spawn_with(&url, shared.clone(), |_| {}).await;
    sign_in(&browser(), &app, "mallory", "x", Some("6.6.6.6")).await;
    let e = events_of(&app, "login.failure", 1).await;
    assert_eq!(e[0].ip.as_deref(), Some("127.0.0.1"));
    app.stop().await;
    // Loopback is a trusted proxy: the rightmost address it did not add is the client.
    let app = spawn_with(&url, shared, behind_proxy).await;
    sign_in(&browser(), &app, "mallory", "x", Some("6.6.6.6, 192.0.2.44")).await;
    let e = events_of(&app, "login.failure", 2).await;
    assert!(e.iter().any(|e| e.ip.as_deref() == Some("192.0.2.44")), "{e:?}");
    assert!(!e.iter().any(|e| e.ip.as_deref() == Some("6.6.6.6")));
    app.stop().await;
}

/// Rows the public pages keep are counted against the address (`rate_limit_sessions`):
/// a page loaded without a live session starts one, and an authorization request kept
/// for the person's sign-in is another, each lasting up to an hour. Pages of a live
/// session and static files are not counted (abuse review: 1,000 cookieless requests
/// made 1,000 rows, about 5.7 KB each with long `state` and `nonce`).
async fn rows_kept_for_browsers_are_throttled_per_address(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        let limits = &mut s.core.defense.rate_limits;
        limits.set(Bucket::SessionIp, RateLimit::parse("4/min").unwrap());
    })
    .await;
    let client = app.public_client("https://rp.example/callback").await;
    let authorize = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=https://rp.example/callback\
         &scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuJGSstw-cM&code_challenge_method=S256",
        client.id.as_str()
    );
    // One browser: its first page starts its session (1); its sign-in request is kept (2).
    let b = browser();
    assert_eq!(b.get(app.url("/login")).send().await.unwrap().status(), 200);
    let r = b.get(app.url(&authorize)).send().await.unwrap();
    assert_eq!(r.status(), 303, "kept for the sign-in");
    // Its other pages, and static files anywhere, are not counted.
    for _ in 0..5 {
        assert_eq!(b.get(app.url("/login")).send().await.unwrap().status(), 200);
        assert_eq!(
            http().get(app.url("/static/style.css")).send().await.unwrap().status(),
            200
        );
    }
    // What keeps nothing is not counted: a 404, a cross-site POST sent on as a GET.
    for _ in 0..5 {
        assert_eq!(http().get(app.url("/nothing-here")).send().await.unwrap().status(), 404);
        let r = http()
            .post(app.url("/authorize"))
            .form(&[("client_id", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    // Cookieless pages that start a session (3, 4), then refused; a made-up cookie is
    // no live session.
    assert_eq!(http().get(app.url("/login")).send().await.unwrap().status(), 200);
    assert_eq!(http().get(app.url("/login")).send().await.unwrap().status(), 200);
    for cookie in [None, Some("portcullis=made-up")] {
        let mut req = http().get(app.url("/login"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 429, "{cookie:?}");
        assert!(r.headers().get("set-cookie").is_none(), "nothing kept: {cookie:?}");
        assert!(r.headers().contains_key("retry-after"));
        assert!(r.text().await.unwrap().contains("Too many attempts"));
    }
    // The live session's next sign-in request is refused too: each is a row.
    let r = b.get(app.url(&authorize)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(b.get(app.url("/login")).send().await.unwrap().status(), 200);
    app.stop().await;
}

both_backends!(
    rows_kept_for_browsers_are_throttled_per_address,
    brute_force_login_is_locked_out_but_not_the_real_user,
    lockout_does_not_reveal_whether_the_account_exists,
    guessing_from_many_addresses_locks_the_account,
    simultaneous_guesses_get_the_threshold_not_the_burst,
    token_limit_per_client_counts_authenticated_requests,
    machine_endpoints_are_throttled_per_address,
    forwarded_for_is_believed_only_from_trusted_proxies,
);
