//! Store contract cases for keys and tokens: signing keys, grants, refresh tokens and the
//! revocation log.

use super::*;

pub(super) async fn key_insert_list_and_rotate<S: Store>(s: S) {
    let active = key("k1", KeyState::Active, T0);
    let next = key("k2", KeyState::Next, T0 + secs(1));
    s.insert_key(&active).await.unwrap();
    s.insert_key(&next).await.unwrap();
    assert_eq!(s.list_keys().await.unwrap(), vec![next.clone(), active.clone()]);

    // One active and one next key at most; kids are unique.
    assert!(matches!(
        s.insert_key(&key("k9", KeyState::Active, T0)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_key(&key("k9", KeyState::Next, T0)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_key(&key("k1", KeyState::Retired, T0)).await,
        Err(StoreError::Conflict(_))
    ));

    let now = T0 + Duration::days(30);
    let until = now + Duration::days(1);
    let newest = key("k3", KeyState::Next, now);
    // Only the next key the caller saw is promoted: a rotation done meanwhile replaced
    // it, so a rotation that saw an older one fails and changes nothing.
    let before = s.list_keys().await.unwrap();
    for stale in ["k1", "k0"] {
        let r = s.rotate_keys(stale, &newest, now, until).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{stale}: {r:?}");
        assert_eq!(s.list_keys().await.unwrap(), before, "{stale}");
    }
    s.rotate_keys("k2", &newest, now, until).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(
        keys,
        vec![
            newest,
            SigningKeyRecord {
                state: KeyState::Active,
                activated_at: Some(now),
                ..next
            },
            SigningKeyRecord {
                state: KeyState::Retired,
                retired_at: Some(now),
                publish_until: Some(until),
                ..active
            },
        ]
    );

    // A private key sealed again (another KEK) replaces the old one, on that key only.
    let before = s.list_keys().await.unwrap();
    s.reseal_key("k2", &[9; 60]).await.unwrap();
    let after = s.list_keys().await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        if a.kid == "k2" {
            assert_eq!(a.private_key_encrypted, vec![9; 60]);
            assert_eq!(
                SigningKeyRecord {
                    private_key_encrypted: b.private_key_encrypted.clone(),
                    ..a.clone()
                },
                *b
            );
        } else {
            assert_eq!(a, b);
        }
    }
    assert!(matches!(s.reseal_key("k0", &[9; 60]).await, Err(StoreError::NotFound)));

    assert_eq!(s.delete_expired_keys(until - secs(1)).await.unwrap(), 0);
    assert_eq!(s.delete_expired_keys(until + secs(1)).await.unwrap(), 1);
    let kids: Vec<_> = s.list_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["k3", "k2"]);

    // Each algorithm has its own active and next key, and rotates on its own.
    let es = |kid: &str, state, at| SigningKeyRecord {
        alg: SigningAlg::ES256,
        ..key(kid, state, at)
    };
    let later = until + secs(10);
    s.insert_key(&es("e1", KeyState::Active, later)).await.unwrap();
    s.insert_key(&es("e2", KeyState::Next, later + secs(1))).await.unwrap();
    assert!(matches!(
        s.insert_key(&es("e9", KeyState::Active, later)).await,
        Err(StoreError::Conflict(_))
    ));
    let state_of = |keys: &[SigningKeyRecord], kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state);
    let t = later + secs(5);
    s.rotate_keys("e2", &es("e3", KeyState::Next, t), t, t + Duration::days(1))
        .await
        .unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(state_of(&keys, "e1"), Some(KeyState::Retired));
    assert_eq!(state_of(&keys, "e2"), Some(KeyState::Active));
    assert_eq!(state_of(&keys, "e3"), Some(KeyState::Next));
    assert_eq!(state_of(&keys, "k2"), Some(KeyState::Active), "RS256 untouched");
    assert_eq!(state_of(&keys, "k3"), Some(KeyState::Next), "RS256 untouched");
    s.rotate_keys(
        "k3",
        &key("k4", KeyState::Next, t + secs(1)),
        t + secs(1),
        t + Duration::days(1),
    )
    .await
    .unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(state_of(&keys, "k2"), Some(KeyState::Retired));
    assert_eq!(state_of(&keys, "k3"), Some(KeyState::Active));
    assert_eq!(state_of(&keys, "e2"), Some(KeyState::Active), "ES256 untouched");
    assert_eq!(state_of(&keys, "e3"), Some(KeyState::Next), "ES256 untouched");

    // Retiring an algorithm's keys: its active and next keys, not the others'.
    let r = t + secs(9);
    s.retire_keys(SigningAlg::ES256, r, r + Duration::days(2))
        .await
        .unwrap();
    let keys = s.list_keys().await.unwrap();
    for kid in ["e2", "e3"] {
        let k = keys.iter().find(|k| k.kid == kid).unwrap();
        assert_eq!(k.state, KeyState::Retired, "{kid}");
        assert_eq!(k.retired_at, Some(r));
        assert_eq!(k.publish_until, Some(r + Duration::days(2)));
    }
    let e1 = keys.iter().find(|k| k.kid == "e1").unwrap();
    assert_eq!(e1.retired_at, Some(t), "already retired: unchanged");
    assert_eq!(state_of(&keys, "k3"), Some(KeyState::Active));
    assert_eq!(state_of(&keys, "k4"), Some(KeyState::Next));
}

/// The server's own secrets: made once (the first insert wins, a second is ignored),
/// read back, listed by name, resealed in place.
pub(super) async fn server_secrets_are_made_once<S: Store>(s: S) {
    assert_eq!(s.server_secret("pairwise").await.unwrap(), None);
    assert!(s.list_server_secrets().await.unwrap().is_empty());
    s.insert_server_secret("pairwise", b"first", T0).await.unwrap();
    // Another node's, a moment later: the stored one stays.
    s.insert_server_secret("pairwise", b"second", T0 + secs(1))
        .await
        .unwrap();
    assert_eq!(
        s.server_secret("pairwise").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    s.insert_server_secret("another", b"x", T0).await.unwrap();
    assert_eq!(
        s.list_server_secrets().await.unwrap(),
        [
            ("another".to_owned(), b"x".to_vec()),
            ("pairwise".to_owned(), b"first".to_vec())
        ]
    );
    s.reseal_server_secret("pairwise", b"resealed").await.unwrap();
    assert_eq!(
        s.server_secret("pairwise").await.unwrap().as_deref(),
        Some(&b"resealed"[..])
    );
    assert!(matches!(
        s.reseal_server_secret("missing", b"x").await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn key_rotation_without_next_is_not_found<S: Store>(s: S) {
    let active = key("k1", KeyState::Active, T0);
    s.insert_key(&active).await.unwrap();
    // Another algorithm's next key is not this one's.
    let other = SigningKeyRecord {
        alg: SigningAlg::EdDSA,
        ..key("o1", KeyState::Next, T0)
    };
    s.insert_key(&other).await.unwrap();
    let r = s
        .rotate_keys("o1", &key("k2", KeyState::Next, T0), T0 + secs(5), T0 + secs(50))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // Nothing changed: the active key was not retired.
    assert_eq!(s.list_keys().await.unwrap(), vec![other.clone(), active.clone()]);

    // Promoting a published next key where its algorithm has no active key (a start after
    // `keys rotate --alg` left one): it signs, a new next key takes its place.
    let at = T0 + secs(7);
    let other_next = SigningKeyRecord {
        alg: SigningAlg::EdDSA,
        ..key("o2", KeyState::Next, at)
    };
    s.promote_next_key(&other_next, at).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    let o1 = keys.iter().find(|k| k.kid == "o1").unwrap();
    assert_eq!((o1.state, o1.activated_at), (KeyState::Active, Some(at)));
    assert_eq!(keys.iter().find(|k| k.kid == "o2").unwrap().state, KeyState::Next);
    assert_eq!(keys.iter().find(|k| k.kid == "k1").unwrap(), &active, "RS256 untouched");
    // No next key of the algorithm: not found, nothing inserted.
    let r = s.promote_next_key(&key("k2", KeyState::Next, at), at).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(s.list_keys().await.unwrap().iter().all(|k| k.kid != "k2"));
    // An active key already there (another node was first): conflict, nothing changed.
    s.insert_key(&key("k3", KeyState::Next, at)).await.unwrap();
    let r = s.promote_next_key(&key("k4", KeyState::Next, at), at).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.iter().find(|k| k.kid == "k3").unwrap().state, KeyState::Next);
    assert!(keys.iter().all(|k| k.kid != "k4"));
}

pub(super) async fn grants_list_count_and_revoke<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let (g1, r1) = issue(&s, &c, &u, T0).await;
    let (g2, _) = issue(&s, &c, &u, T0 + secs(1)).await;
    // A grant that expires early.
    let k = code(&c, &u, T0);
    s.insert_code(&k).await.unwrap();
    let short = Grant {
        expires_at: T0 + secs(100),
        ..grant_for(&k, T0)
    };
    assert_eq!(
        s.redeem_code(&k.code_hash, &short, None, T0, T0).await.unwrap(),
        CodeRedemption::Redeemed
    );

    let at = T0 + secs(200);
    let ids = |v: Vec<Grant>| v.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_grants_for_user(u.id, at).await.unwrap()), [g2.id, g1.id]);
    assert_eq!(s.list_grants_for_user(u.id, T0).await.unwrap().len(), 3);
    assert_eq!(s.count_active_grants(at).await.unwrap(), 2);
    assert_eq!(s.count_active_grants(T0).await.unwrap(), 3);
    assert_eq!(s.active_grant_ids_for_client(&c.id).await.unwrap().len(), 3);

    let rev = grant_revocation(g1.id, at + secs(600));
    assert!(s.revoke_grant(g1.id, at, &rev).await.unwrap());
    assert_eq!(s.get_grant(g1.id).await.unwrap().unwrap().revoked_at, Some(at));
    assert_eq!(s.get_refresh_token(&r1.token_hash).await.unwrap(), None);
    assert_eq!(logged(&s, &rev.target).await.unwrap().revocation, rev);
    assert_eq!(ids(s.list_grants_for_user(u.id, at).await.unwrap()), [g2.id]);
    assert_eq!(s.count_active_grants(at).await.unwrap(), 1);
    assert!(!s.active_grant_ids_for_client(&c.id).await.unwrap().contains(&g1.id));
    assert!(!s.active_grant_ids_for_user(u.id).await.unwrap().contains(&g1.id));

    // Already revoked, or unknown: false, and nothing more is logged.
    let entries = log(&s).await.len();
    assert!(!s.revoke_grant(g1.id, at + secs(1), &rev).await.unwrap());
    assert_eq!(s.get_grant(g1.id).await.unwrap().unwrap().revoked_at, Some(at));
    let unknown = Uuid::new_v4();
    assert!(
        !s.revoke_grant(unknown, at, &grant_revocation(unknown, at))
            .await
            .unwrap()
    );
    assert_eq!(log(&s).await.len(), entries);
    assert_eq!(s.get_grant(unknown).await.unwrap(), None);
}

/// The clients a user signed in to, by session: the distinct (client, sid) pairs of the
/// user's grants still stored, revoked and expired ones too, the most recently granted
/// first.
pub(super) async fn grants_list_signed_in<S: Store>(s: S) {
    let (app, alice) = setup(&s, "app", "alice").await;
    let other = client("other", "Other");
    s.insert_client(&other).await.unwrap();
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    // A grant of `c` to `u` from session `sid`, made at `at`, expiring at `expires_at`.
    let grant = async |c: &Client, u: &User, sid: &str, at: OffsetDateTime, expires_at: OffsetDateTime| {
        let mut k = code(c, u, at);
        k.sid = sid.to_owned();
        s.insert_code(&k).await.unwrap();
        let g = Grant {
            expires_at,
            ..grant_for(&k, at)
        };
        assert_eq!(
            s.redeem_code(&k.code_hash, &g, None, at, at + secs(600)).await.unwrap(),
            CodeRedemption::Redeemed
        );
        g
    };
    let month = Duration::days(30);
    assert_eq!(s.list_signed_in(alice.id, None, 10).await.unwrap(), vec![]);

    // Two grants of one pair: listed once, as of the later.
    grant(&app, &alice, "sid-1", T0, T0 + month).await;
    grant(&app, &alice, "sid-1", T0 + secs(10), T0 + month).await;
    // Revoked since.
    let revoked = grant(&other, &alice, "sid-1", T0 + secs(5), T0 + month).await;
    let at = T0 + secs(30);
    assert!(
        s.revoke_grant(revoked.id, at, &grant_revocation(revoked.id, at + secs(600)))
            .await
            .unwrap()
    );
    // Expired (the query takes no time: a grant counts as long as it is stored).
    grant(&app, &alice, "sid-2", T0 + secs(20), T0 + secs(21)).await;
    grant(&other, &alice, "sid-3", T0 + secs(3), T0 + month).await;
    // Someone else's, from a session of the same name and later than all of alice's.
    grant(&app, &bob, "sid-1", T0 + secs(100), T0 + month).await;
    // Not an OpenID grant: that client got no ID token, so knows no session.
    let mut plain = code(&other, &alice, T0 + secs(200));
    plain.sid = "sid-4".into();
    plain.scope = ScopeSet::parse("profile api:openid").unwrap();
    s.insert_code(&plain).await.unwrap();
    let g = grant_for(&plain, T0 + secs(200));
    assert_eq!(
        s.redeem_code(&plain.code_hash, &g, None, T0 + secs(200), T0 + secs(800))
            .await
            .unwrap(),
        CodeRedemption::Redeemed
    );

    let pair = |c: &Client, sid: &str| (c.id.clone(), sid.to_owned());
    let all = vec![
        pair(&app, "sid-2"),
        pair(&app, "sid-1"),
        pair(&other, "sid-1"),
        pair(&other, "sid-3"),
    ];
    assert_eq!(s.list_signed_in(alice.id, None, 10).await.unwrap(), all);
    assert_eq!(
        s.list_signed_in(alice.id, Some("sid-1"), 10).await.unwrap(),
        vec![pair(&app, "sid-1"), pair(&other, "sid-1")]
    );
    assert_eq!(
        s.list_signed_in(alice.id, Some("sid-2"), 10).await.unwrap(),
        vec![pair(&app, "sid-2")]
    );
    assert_eq!(s.list_signed_in(alice.id, Some("sid-9"), 10).await.unwrap(), vec![]);
    assert_eq!(
        s.list_signed_in(bob.id, None, 10).await.unwrap(),
        vec![pair(&app, "sid-1")]
    );
    assert_eq!(s.list_signed_in(Uuid::new_v4(), None, 10).await.unwrap(), vec![]);

    // The limit keeps the most recent pairs.
    assert_eq!(s.list_signed_in(alice.id, None, 2).await.unwrap(), all[..2]);
    assert_eq!(
        s.list_signed_in(alice.id, Some("sid-1"), 1).await.unwrap(),
        vec![pair(&app, "sid-1")]
    );
    assert_eq!(s.list_signed_in(alice.id, None, 4).await.unwrap(), all);

    // Once retention deletes the expired grant, its pair is gone.
    assert_eq!(s.delete_expired_grants(T0 + secs(22), 100).await.unwrap(), 1);
    assert_eq!(s.list_signed_in(alice.id, None, 10).await.unwrap(), all[1..]);
}

pub(super) async fn refresh_rotate_then_reuse<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let (g, r1) = issue(&s, &c, &u, T0).await;
    let at = T0 + secs(60);
    let r2 = refresh_for(&g, at);
    let expiry = at + secs(600);
    assert_eq!(
        s.rotate_refresh_token(&r1.token_hash, &r2, at, expiry).await.unwrap(),
        RefreshRotation::Rotated
    );
    let (old, og) = s.get_refresh_token(&r1.token_hash).await.unwrap().unwrap();
    assert_eq!(old.used_at, Some(at));
    assert_eq!(og, g);
    assert_eq!(
        s.get_refresh_token(&r2.token_hash).await.unwrap(),
        Some((r2.clone(), g.clone()))
    );

    // The used token again: the grant ends, with every token it has.
    let r3 = refresh_for(&g, at);
    let again = at + secs(1);
    let outcome = s
        .rotate_refresh_token(&r1.token_hash, &r3, again, expiry)
        .await
        .unwrap();
    assert_eq!(outcome, RefreshRotation::Reused { grant_id: g.id });
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, Some(again));
    assert_eq!(s.get_refresh_token(&r1.token_hash).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r2.token_hash).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r3.token_hash).await.unwrap(), None);
    assert_eq!(
        logged(&s, &RevocationTarget::Grant(g.id))
            .await
            .unwrap()
            .revocation
            .expires_at,
        expiry
    );

    // The token issued before the reuse is dead too.
    let r4 = refresh_for(&g, again);
    assert_eq!(
        s.rotate_refresh_token(&r2.token_hash, &r4, again, expiry)
            .await
            .unwrap(),
        RefreshRotation::Invalid
    );
    assert_eq!(s.get_refresh_token(&r4.token_hash).await.unwrap(), None);
}

pub(super) async fn refresh_invalid_cases<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let (g, r) = issue(&s, &c, &u, T0).await;
    let new = refresh_for(&g, T0);
    // Unknown.
    let outcome = s.rotate_refresh_token(&random_digest(), &new, T0, T0).await.unwrap();
    assert_eq!(outcome, RefreshRotation::Invalid);
    // Expired token.
    let outcome = s
        .rotate_refresh_token(&r.token_hash, &new, r.expires_at, T0)
        .await
        .unwrap();
    assert_eq!(outcome, RefreshRotation::Invalid);
    // Grant expired while the token has not.
    let k = code(&c, &u, T0);
    s.insert_code(&k).await.unwrap();
    let short = Grant {
        expires_at: T0 + secs(100),
        ..grant_for(&k, T0)
    };
    let sr = refresh_for(&short, T0);
    s.redeem_code(&k.code_hash, &short, Some(&sr), T0, T0).await.unwrap();
    let new2 = refresh_for(&short, T0);
    let outcome = s
        .rotate_refresh_token(&sr.token_hash, &new2, T0 + secs(100), T0)
        .await
        .unwrap();
    assert_eq!(outcome, RefreshRotation::Invalid);
    // Nothing was stored or revoked by the refusals.
    for n in [&new, &new2] {
        assert_eq!(s.get_refresh_token(&n.token_hash).await.unwrap(), None);
    }
    assert_eq!(
        s.get_refresh_token(&r.token_hash).await.unwrap().unwrap().0.used_at,
        None
    );
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, None);
    assert!(log(&s).await.is_empty());
}

pub(super) async fn refresh_concurrent_rotation<S: Store + Clone>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    for _ in 0..5 {
        let (g, r) = issue(&s, &c, &u, T0).await;
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                let new = refresh_for(&g, T0);
                let old = r.token_hash;
                tokio::spawn(async move { s.rotate_refresh_token(&old, &new, T0, T0 + secs(600)).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let rotated = outcomes.iter().filter(|o| **o == RefreshRotation::Rotated).count();
        let reused = outcomes
            .iter()
            .filter(|o| **o == RefreshRotation::Reused { grant_id: g.id })
            .count();
        assert_eq!((rotated, reused), (1, 1), "{outcomes:?}");
        assert!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at.is_some());
    }
}

pub(super) async fn refresh_live_rotation<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let (g, r1) = issue(&s, &c, &u, T0).await;
    let user = s.get_user(u.id).await.unwrap().unwrap();
    let at = T0 + secs(60);
    let new_hash = random_digest();
    let rotated = s
        .rotate_live_refresh_token(&r1.token_hash, &c.id, &new_hash, at, at + Duration::days(14))
        .await
        .unwrap();
    let successor = RefreshToken {
        token_hash: new_hash,
        grant_id: g.id,
        client_id: c.id.clone(),
        scope: g.scope.clone(),
        created_at: at,
        expires_at: at + Duration::days(14),
        used_at: None,
    };
    assert_eq!(rotated, Some((successor.clone(), g.clone(), user.clone())));
    assert_eq!(
        s.get_refresh_token(&r1.token_hash).await.unwrap().unwrap().0.used_at,
        Some(at)
    );
    assert_eq!(
        s.get_refresh_token(&new_hash).await.unwrap(),
        Some((successor.clone(), g.clone()))
    );

    // The successor never outlives its grant.
    let later = at + secs(1);
    let capped_hash = random_digest();
    let (capped, _, _) = s
        .rotate_live_refresh_token(&new_hash, &c.id, &capped_hash, later, g.expires_at + secs(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(capped.expires_at, g.expires_at);

    // Each refusal writes nothing: a used token (reuse detection is the general path's),
    // another client, an unknown token, an expired token, a revoked grant.
    let other = client("other", "other app");
    s.insert_client(&other).await.unwrap();
    let (g2, r2) = issue(&s, &c, &u, T0).await;
    let refused = [
        (r1.token_hash, c.id.clone(), later),
        (r2.token_hash, other.id.clone(), later),
        (random_digest(), c.id.clone(), later),
        (r2.token_hash, c.id.clone(), r2.expires_at),
    ];
    for (old, client_id, when) in refused {
        let fresh = random_digest();
        assert_eq!(
            s.rotate_live_refresh_token(&old, &client_id, &fresh, when, when + secs(600))
                .await
                .unwrap(),
            None
        );
        assert_eq!(s.get_refresh_token(&fresh).await.unwrap(), None);
    }
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, None);
    assert_eq!(
        s.get_refresh_token(&r2.token_hash).await.unwrap().unwrap().0.used_at,
        None
    );
    assert!(log(&s).await.is_empty());
    let (g3, r3) = issue(&s, &c, &u, T0).await;
    s.revoke_grant(g3.id, later, &grant_revocation(g3.id, later + secs(600)))
        .await
        .unwrap();
    let fresh = random_digest();
    assert_eq!(
        s.rotate_live_refresh_token(&r3.token_hash, &c.id, &fresh, later, later + secs(600))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.get_refresh_token(&fresh).await.unwrap(), None);
    assert_eq!(s.get_grant(g2.id).await.unwrap().unwrap().revoked_at, None);
}

pub(super) async fn refresh_live_concurrent_rotation<S: Store + Clone>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    for _ in 0..5 {
        let (_, r) = issue(&s, &c, &u, T0).await;
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                let client_id = c.id.clone();
                let old = r.token_hash;
                tokio::spawn(async move {
                    s.rotate_live_refresh_token(&old, &client_id, &random_digest(), T0, T0 + secs(600))
                        .await
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        let mut rotated = 0;
        for t in tasks {
            rotated += usize::from(t.await.unwrap());
        }
        assert_eq!(rotated, 1);
    }
}

/// Many rotations at once, every token presented twice: whatever batches the store forms,
/// exactly one presentation of each token rotates it, into a successor of its own grant.
pub(super) async fn refresh_live_rotation_many_at_once<S: Store + Clone>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let mut issued = Vec::new();
    for _ in 0..24 {
        issued.push(issue(&s, &c, &u, T0).await);
    }
    let at = T0 + secs(5);
    let tasks: Vec<_> = issued
        .iter()
        .flat_map(|(g, r)| [(g.id, r.token_hash), (g.id, r.token_hash)])
        .map(|(grant_id, old)| {
            let s = s.clone();
            let client_id = c.id.clone();
            tokio::spawn(async move {
                let new_hash = random_digest();
                let rotated = s
                    .rotate_live_refresh_token(&old, &client_id, &new_hash, at, at + secs(600))
                    .await
                    .unwrap();
                (grant_id, new_hash, rotated)
            })
        })
        .collect();
    let mut rotated_per_grant = std::collections::HashMap::new();
    for t in tasks {
        let (grant_id, new_hash, rotated) = t.await.unwrap();
        match rotated {
            Some((successor, grant, _)) => {
                assert_eq!(grant.id, grant_id);
                assert_eq!(successor.token_hash, new_hash);
                assert_eq!(successor.grant_id, grant_id);
                assert_eq!(successor.expires_at, at + secs(600));
                *rotated_per_grant.entry(grant_id).or_insert(0) += 1;
            }
            None => assert_eq!(s.get_refresh_token(&new_hash).await.unwrap(), None),
        }
    }
    assert_eq!(rotated_per_grant.len(), issued.len());
    assert!(rotated_per_grant.values().all(|n| *n == 1), "{rotated_per_grant:?}");
    for (_, r) in &issued {
        assert_eq!(
            s.get_refresh_token(&r.token_hash).await.unwrap().unwrap().0.used_at,
            Some(at)
        );
    }
}

/// Live and refused rotations at once: whatever batches the store forms, each gets the
/// answer it would get alone, and a refused one writes nothing.
pub(super) async fn refresh_live_rotation_mixed_at_once<S: Store + Clone + 'static>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let other = client("other", "other app");
    s.insert_client(&other).await.unwrap();
    let at = T0 + secs(5);
    let (_, used) = issue(&s, &c, &u, T0).await;
    s.rotate_live_refresh_token(&used.token_hash, &c.id, &random_digest(), T0, T0 + secs(600))
        .await
        .unwrap()
        .unwrap();
    let (revoked, of_revoked) = issue(&s, &c, &u, T0).await;
    s.revoke_grant(revoked.id, T0, &grant_revocation(revoked.id, T0 + secs(600)))
        .await
        .unwrap();
    let (_, of_other) = issue(&s, &c, &u, T0).await;
    // (token, client presenting it, instant, whether it rotates)
    let mut cases = vec![
        (used.token_hash, c.id.clone(), at, false),
        (of_revoked.token_hash, c.id.clone(), at, false),
        (of_other.token_hash, other.id.clone(), at, false),
        (random_digest(), c.id.clone(), at, false),
    ];
    let (_, expired) = issue(&s, &c, &u, T0).await;
    cases.push((expired.token_hash, c.id.clone(), expired.expires_at, false));
    for _ in 0..12 {
        let (_, live) = issue(&s, &c, &u, T0).await;
        cases.push((live.token_hash, c.id.clone(), at, true));
    }
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(old, client_id, when, rotates)| {
            let s = s.clone();
            tokio::spawn(async move {
                let new_hash = random_digest();
                let rotated = s
                    .rotate_live_refresh_token(&old, &client_id, &new_hash, when, when + secs(600))
                    .await
                    .unwrap();
                (old, new_hash, when, rotates, rotated)
            })
        })
        .collect();
    for t in tasks {
        let (old, new_hash, when, rotates, rotated) = t.await.unwrap();
        assert_eq!(rotated.is_some(), rotates);
        if rotates {
            assert_eq!(s.get_refresh_token(&old).await.unwrap().unwrap().0.used_at, Some(when));
            assert!(s.get_refresh_token(&new_hash).await.unwrap().is_some());
        } else {
            assert_eq!(s.get_refresh_token(&new_hash).await.unwrap(), None);
        }
    }
    assert_eq!(
        s.get_refresh_token(&of_other.token_hash)
            .await
            .unwrap()
            .unwrap()
            .0
            .used_at,
        None
    );
    assert_eq!(
        s.get_refresh_token(&expired.token_hash)
            .await
            .unwrap()
            .unwrap()
            .0
            .used_at,
        None
    );
}

pub(super) async fn revocation_log<S: Store>(s: S) {
    assert!(log(&s).await.is_empty());
    let jti = Revocation {
        target: RevocationTarget::AccessToken("jti-1".into()),
        expires_at: T0 + secs(100),
    };
    let grant = grant_revocation(Uuid::new_v4(), T0 + secs(300));
    let client = Revocation {
        target: RevocationTarget::Client("app".into()),
        expires_at: T0 + secs(200),
    };
    for r in [&jti, &grant, &client] {
        s.insert_revocation(r).await.unwrap();
    }
    let entries = log(&s).await;
    assert_eq!(
        entries.iter().map(|e| e.revocation.clone()).collect::<Vec<_>>(),
        [jti.clone(), grant.clone(), client.clone()]
    );
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    let after_first = s.revocations_since(entries[0].seq, T0).await.unwrap();
    assert_eq!(after_first, entries[1..]);
    assert!(s.revocations_since(entries[2].seq, T0).await.unwrap().is_empty());
    // Expired entries are not returned.
    let at = T0 + secs(150);
    let live = s.revocations_since(0, at).await.unwrap();
    assert_eq!(
        live.iter().map(|e| e.revocation.clone()).collect::<Vec<_>>(),
        [grant.clone(), client.clone()]
    );

    // Revoking again is not an error; the entry moves to a new seq and keeps the later expiry.
    let last_seq = entries[2].seq;
    s.insert_revocation(&Revocation {
        expires_at: T0 + secs(50),
        ..jti.clone()
    })
    .await
    .unwrap();
    let moved = s.revocations_since(last_seq, T0).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].revocation, jti);
    s.insert_revocation(&Revocation {
        expires_at: T0 + secs(400),
        ..jti.clone()
    })
    .await
    .unwrap();
    let moved = s.revocations_since(moved[0].seq, T0).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].revocation.expires_at, T0 + secs(400));
    assert_eq!(log(&s).await.len(), 3);

    assert_eq!(s.delete_expired_revocations(T0 + secs(200), 100).await.unwrap(), 0);
    assert_eq!(s.delete_expired_revocations(T0 + secs(201), 100).await.unwrap(), 1);
    // The other two, one at a time.
    for n in [1, 1, 0] {
        assert_eq!(s.delete_expired_revocations(T0 + secs(1000), 1).await.unwrap(), n);
    }
    assert!(log(&s).await.is_empty());
    // Sequence numbers are never handed out again.
    s.insert_revocation(&client).await.unwrap();
    assert!(log(&s).await[0].seq > moved[0].seq);
}

/// RFC 9449 §5: a grant that began without a DPoP key is bound to the first one a public
/// client refreshes with, and only once.
pub(super) async fn grants_are_bound_to_a_dpop_key_once<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let mut unbound = code(&c, &u, T0);
    unbound.dpop_jkt = None;
    let (g, r) = redeem(&s, &unbound, T0).await;
    assert_eq!(bound_to(&s, &r).await, None);
    let (first, second) = (
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    );
    assert!(s.bind_grant_to_dpop_key(g.id, first).await.unwrap());
    assert_eq!(bound_to(&s, &r).await.as_deref(), Some(first));
    assert!(!s.bind_grant_to_dpop_key(g.id, second).await.unwrap(), "bound once");
    assert_eq!(bound_to(&s, &r).await.as_deref(), Some(first));
    assert!(!s.bind_grant_to_dpop_key(Uuid::new_v4(), first).await.unwrap());
}

async fn bound_to<S: Store>(s: &S, r: &RefreshToken) -> Option<String> {
    s.get_refresh_token(&r.token_hash).await.unwrap().unwrap().1.dpop_jkt
}

/// RFC 8707: a grant asked for an API is not rotated by the one-statement path, which
/// cannot check the API is still the client's; nothing is written, and the general path
/// keeps the API.
pub(super) async fn live_rotation_leaves_grants_for_an_api<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let mut for_notes = code(&c, &u, T0);
    for_notes.resource = Some("https://api.example/notes".to_owned());
    let (g, r) = redeem(&s, &for_notes, T0).await;
    let at = T0 + secs(60);
    let taken = s
        .rotate_live_refresh_token(&r.token_hash, &c.id, &random_digest(), at, at + secs(600))
        .await
        .unwrap();
    assert_eq!(taken, None);
    let (stored, grant) = s.get_refresh_token(&r.token_hash).await.unwrap().unwrap();
    assert_eq!(
        (stored.used_at, grant.resource.as_deref()),
        (None, Some("https://api.example/notes"))
    );
    let outcome = s
        .rotate_refresh_token(&r.token_hash, &refresh_for(&g, at), at, at + secs(600))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshRotation::Rotated);
}
