//! Store contract cases for device authorization requests (RFC 8628): looked up by user
//! code while undecided, decided once, polled with slow_down, redeemed once, and gone
//! with their client, their approver, or their expiry.

use super::*;

/// An undecided request of `c` made at `at`: ten minutes to live, polled every 5 s.
fn device(c: &Client, at: OffsetDateTime) -> DeviceAuthorization {
    DeviceAuthorization {
        device_code_hash: random_digest(),
        user_code_hash: random_digest(),
        client_id: c.id.clone(),
        scope: ScopeSet::parse("openid profile").unwrap(),
        // Every request of the contract asks for an API, so both stores are seen to keep it.
        resource: Some("https://api.example/notes".to_owned()),
        requested_from: Some("192.0.2.7".to_owned()),
        created_at: at,
        expires_at: at + secs(600),
        interval: 5,
        last_polled_at: None,
        decision: DeviceDecision::Pending,
    }
}

/// `u`'s approval, signed in 5 s before `at`, of less than the request asked for (the
/// client lost `profile` before the person was shown the request).
fn approval(u: &User, at: OffsetDateTime) -> DeviceDecision {
    DeviceDecision::Approved {
        user_id: u.id,
        auth_time: at - secs(5),
        sid: "sid-device".to_owned(),
        scope: ScopeSet::parse("openid").unwrap(),
    }
}

/// The grant redeeming the approved `d` at `at` makes.
fn device_grant(d: &DeviceAuthorization, decision: &DeviceDecision, at: OffsetDateTime) -> Grant {
    let DeviceDecision::Approved {
        user_id,
        auth_time,
        sid,
        scope,
    } = decision
    else {
        panic!("not an approval: {decision:?}");
    };
    Grant {
        id: Uuid::new_v4(),
        client_id: d.client_id.clone(),
        user_id: *user_id,
        scope: scope.clone(),
        auth_time: *auth_time,
        sid: sid.clone(),
        nonce: None,
        created_at: at,
        expires_at: at + Duration::days(30),
        revoked_at: None,
        dpop_jkt: None,
        resource: d.resource.clone(),
    }
}

/// Stores `d` approved by `u` at `at`; returns the approval.
async fn approved<S: Store>(s: &S, d: &DeviceAuthorization, u: &User, at: OffsetDateTime) -> DeviceDecision {
    s.insert_device_authorization(d).await.unwrap();
    let decision = approval(u, at);
    assert!(
        s.decide_device_authorization(&d.user_code_hash, &decision, at)
            .await
            .unwrap()
    );
    decision
}

/// `d` as stored, while it is pending.
async fn stored_pending<S: Store>(s: &S, d: &DeviceAuthorization) -> DeviceAuthorization {
    s.get_pending_device_authorization(&d.user_code_hash, T0)
        .await
        .unwrap()
        .expect("still pending")
}

pub(super) async fn device_insert_conflict_and_pending_lookup<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let d = device(&c, T0);
    s.insert_device_authorization(&d).await.unwrap();
    // Without an API, and polled already: kept as given too.
    let plain = DeviceAuthorization {
        resource: None,
        last_polled_at: Some(T0 + secs(3)),
        interval: 10,
        ..device(&c, T0)
    };
    s.insert_device_authorization(&plain).await.unwrap();

    let pending = |hash, at| s.get_pending_device_authorization(hash, at);
    assert_eq!(pending(&d.user_code_hash, T0).await.unwrap(), Some(d.clone()));
    assert_eq!(
        pending(&d.user_code_hash, d.expires_at - secs(1)).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(pending(&d.user_code_hash, d.expires_at).await.unwrap(), None, "expired");
    let unknown = random_digest();
    assert_eq!(pending(&unknown, T0).await.unwrap(), None, "unknown");
    assert_eq!(
        pending(&d.device_code_hash, T0).await.unwrap(),
        None,
        "a device code is no user code"
    );
    assert_eq!(pending(&plain.user_code_hash, T0).await.unwrap(), Some(plain.clone()));

    // The device code and the user code are each taken once: the caller draws again.
    let same_device_code = DeviceAuthorization {
        user_code_hash: random_digest(),
        ..d.clone()
    };
    let same_user_code = DeviceAuthorization {
        device_code_hash: random_digest(),
        ..d.clone()
    };
    for taken in [&same_device_code, &same_user_code] {
        let r = s.insert_device_authorization(taken).await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(pending(&same_device_code.user_code_hash, T0).await.unwrap(), None);
    assert_eq!(
        s.poll_device_authorization(&same_user_code.device_code_hash, &c.id, T0)
            .await
            .unwrap(),
        DevicePoll::Invalid
    );

    // Decided: no longer pending, either way.
    assert!(
        s.decide_device_authorization(&d.user_code_hash, &DeviceDecision::Denied, T0)
            .await
            .unwrap()
    );
    assert_eq!(pending(&d.user_code_hash, T0).await.unwrap(), None);
    assert!(
        s.decide_device_authorization(&plain.user_code_hash, &approval(&u, T0), T0)
            .await
            .unwrap()
    );
    assert_eq!(pending(&plain.user_code_hash, T0).await.unwrap(), None);
}

pub(super) async fn device_decisions_are_recorded_once<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let at = T0 + secs(30);

    // "Pending" is not a decision: refused, nothing written.
    let d = device(&c, T0);
    s.insert_device_authorization(&d).await.unwrap();
    let r = s
        .decide_device_authorization(&d.user_code_hash, &DeviceDecision::Pending, at)
        .await;
    assert!(
        matches!(r, Err(StoreError::Unexpected(_) | StoreError::Corrupt(_))),
        "{r:?}"
    );
    assert_eq!(
        s.get_pending_device_authorization(&d.user_code_hash, at).await.unwrap(),
        Some(d.clone())
    );

    // Approved once; a second decision (another tab) finds it decided and changes nothing.
    let yes = approval(&u, at);
    assert!(
        s.decide_device_authorization(&d.user_code_hash, &yes, at)
            .await
            .unwrap()
    );
    for again in [approval(&bob, at + secs(1)), DeviceDecision::Denied] {
        assert!(
            !s.decide_device_authorization(&d.user_code_hash, &again, at + secs(1))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.poll_device_authorization(&d.device_code_hash, &c.id, at + secs(2))
            .await
            .unwrap(),
        DevicePoll::Approved(Box::new(DeviceAuthorization {
            decision: yes,
            ..d.clone()
        }))
    );

    // Denied once likewise.
    let n = device(&c, T0);
    s.insert_device_authorization(&n).await.unwrap();
    assert!(
        s.decide_device_authorization(&n.user_code_hash, &DeviceDecision::Denied, at)
            .await
            .unwrap()
    );
    for again in [DeviceDecision::Denied, approval(&u, at)] {
        assert!(
            !s.decide_device_authorization(&n.user_code_hash, &again, at)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.poll_device_authorization(&n.device_code_hash, &c.id, at)
            .await
            .unwrap(),
        DevicePoll::Denied
    );

    // Expired, or unknown: false, nothing written.
    let late = device(&c, T0);
    s.insert_device_authorization(&late).await.unwrap();
    for decision in [approval(&u, late.expires_at), DeviceDecision::Denied] {
        assert!(
            !s.decide_device_authorization(&late.user_code_hash, &decision, late.expires_at)
                .await
                .unwrap()
        );
        assert!(
            !s.decide_device_authorization(&random_digest(), &decision, T0)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.get_pending_device_authorization(&late.user_code_hash, late.expires_at - secs(1))
            .await
            .unwrap(),
        Some(late.clone())
    );
}

/// RFC 8628 §3.5: polls sooner than the interval are told to slow down and lengthen it by
/// 5 s; the poll reports the decision once there is one.
pub(super) async fn device_polls_slow_down_and_report_decisions<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let other = client("other", "Other");
    s.insert_client(&other).await.unwrap();
    let d = device(&c, T0);
    s.insert_device_authorization(&d).await.unwrap();
    let poll = |client_id, at| s.poll_device_authorization(&d.device_code_hash, client_id, at);
    let stored = || stored_pending(&s, &d);

    // The first poll is never too soon.
    assert_eq!(poll(&c.id, T0 + secs(1)).await.unwrap(), DevicePoll::Pending);
    let seen = stored().await;
    assert_eq!((seen.last_polled_at, seen.interval), (Some(T0 + secs(1)), 5));

    // 2 s after the last: slow down, and the interval is now 10 s.
    assert_eq!(poll(&c.id, T0 + secs(3)).await.unwrap(), DevicePoll::SlowDown);
    let seen = stored().await;
    assert_eq!((seen.last_polled_at, seen.interval), (Some(T0 + secs(3)), 10));
    // 5 s later would have done before, not now: slow down again, to 15 s.
    assert_eq!(poll(&c.id, T0 + secs(8)).await.unwrap(), DevicePoll::SlowDown);
    let seen = stored().await;
    assert_eq!((seen.last_polled_at, seen.interval), (Some(T0 + secs(8)), 15));
    // Exactly the interval after the last poll is soon enough.
    assert_eq!(poll(&c.id, T0 + secs(23)).await.unwrap(), DevicePoll::Pending);
    let seen = stored().await;
    assert_eq!((seen.last_polled_at, seen.interval), (Some(T0 + secs(23)), 15));

    // Another client's poll, or an unknown device code: invalid, and nothing changes.
    assert_eq!(poll(&other.id, T0 + secs(24)).await.unwrap(), DevicePoll::Invalid);
    assert_eq!(
        s.poll_device_authorization(&random_digest(), &c.id, T0 + secs(24))
            .await
            .unwrap(),
        DevicePoll::Invalid
    );
    let unchanged = stored().await;
    assert_eq!(unchanged, seen);

    // Approved: the request as stored, with its approver; polling it writes nothing.
    let yes = approval(&u, T0 + secs(30));
    assert!(
        s.decide_device_authorization(&d.user_code_hash, &yes, T0 + secs(30))
            .await
            .unwrap()
    );
    let expected = DevicePoll::Approved(Box::new(DeviceAuthorization {
        decision: yes,
        ..seen.clone()
    }));
    assert_eq!(poll(&c.id, T0 + secs(31)).await.unwrap(), expected);
    assert_eq!(poll(&c.id, T0 + secs(32)).await.unwrap(), expected, "not a slow_down");
    assert_eq!(poll(&other.id, T0 + secs(33)).await.unwrap(), DevicePoll::Invalid);
    // Until it expires unredeemed.
    assert_eq!(poll(&c.id, d.expires_at - secs(1)).await.unwrap(), expected);
    assert_eq!(poll(&c.id, d.expires_at).await.unwrap(), DevicePoll::Expired);

    // Expired before anyone decided: expired, however soon the poll.
    let e = device(&c, T0);
    s.insert_device_authorization(&e).await.unwrap();
    for at in [e.expires_at, e.expires_at + secs(1)] {
        assert_eq!(
            s.poll_device_authorization(&e.device_code_hash, &c.id, at)
                .await
                .unwrap(),
            DevicePoll::Expired
        );
    }

    // Denied: denied on every poll, never a slow_down.
    let n = device(&c, T0);
    s.insert_device_authorization(&n).await.unwrap();
    assert!(
        s.decide_device_authorization(&n.user_code_hash, &DeviceDecision::Denied, T0)
            .await
            .unwrap()
    );
    for at in [T0 + secs(1), T0 + secs(2)] {
        assert_eq!(
            s.poll_device_authorization(&n.device_code_hash, &c.id, at)
                .await
                .unwrap(),
            DevicePoll::Denied
        );
    }
    assert_eq!(
        s.poll_device_authorization(&n.device_code_hash, &c.id, n.expires_at)
            .await
            .unwrap(),
        DevicePoll::Expired
    );
}

pub(super) async fn device_redemption_is_once<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let at = T0 + secs(40);

    let d = device(&c, T0);
    let yes = approved(&s, &d, &u, T0 + secs(30)).await;
    let g = device_grant(&d, &yes, at);
    let r = refresh_for(&g, at);
    assert!(
        s.redeem_device_authorization(&d.device_code_hash, &g, Some(&r), at)
            .await
            .unwrap()
    );
    assert_eq!(s.get_grant(g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(
        s.get_refresh_token(&r.token_hash).await.unwrap(),
        Some((r.clone(), g.clone()))
    );
    // Once: a second redemption stores nothing, and the device code is spent.
    let g2 = device_grant(&d, &yes, at + secs(1));
    let r2 = refresh_for(&g2, at + secs(1));
    assert!(
        !s.redeem_device_authorization(&d.device_code_hash, &g2, Some(&r2), at + secs(1))
            .await
            .unwrap()
    );
    assert_eq!(s.get_grant(g2.id).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r2.token_hash).await.unwrap(), None);
    // Polled again, it names the grant it made (so the caller can revoke it), even after
    // it expired; for another client it is no code at all.
    for when in [at + secs(10), d.expires_at + secs(3600)] {
        assert_eq!(
            s.poll_device_authorization(&d.device_code_hash, &c.id, when)
                .await
                .unwrap(),
            DevicePoll::Redeemed { grant_id: g.id }
        );
    }
    let other = client("other", "Other");
    s.insert_client(&other).await.unwrap();
    assert_eq!(
        s.poll_device_authorization(&d.device_code_hash, &other.id, at + secs(10))
            .await
            .unwrap(),
        DevicePoll::Invalid
    );

    // Without a refresh token.
    let bare = device(&c, T0);
    let yes = approved(&s, &bare, &u, at).await;
    let gb = device_grant(&bare, &yes, at);
    assert!(
        s.redeem_device_authorization(&bare.device_code_hash, &gb, None, at)
            .await
            .unwrap()
    );
    assert_eq!(s.get_grant(gb.id).await.unwrap(), Some(gb));

    // Pending, denied, expired or unknown: false, nothing stored.
    let pending = device(&c, T0);
    s.insert_device_authorization(&pending).await.unwrap();
    let denied = device(&c, T0);
    s.insert_device_authorization(&denied).await.unwrap();
    assert!(
        s.decide_device_authorization(&denied.user_code_hash, &DeviceDecision::Denied, at)
            .await
            .unwrap()
    );
    let late = device(&c, T0);
    let yes = approved(&s, &late, &u, at).await;
    let refused = [
        (pending.device_code_hash, at),
        (denied.device_code_hash, at),
        (late.device_code_hash, late.expires_at),
        (random_digest(), at),
    ];
    for (hash, when) in refused {
        let g = device_grant(&late, &yes, when);
        let r = refresh_for(&g, when);
        assert!(!s.redeem_device_authorization(&hash, &g, Some(&r), when).await.unwrap());
        assert_eq!(s.get_grant(g.id).await.unwrap(), None);
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    }
    // The refusals left them as they were.
    assert!(
        s.get_pending_device_authorization(&pending.user_code_hash, at)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.poll_device_authorization(&denied.device_code_hash, &c.id, at)
            .await
            .unwrap(),
        DevicePoll::Denied
    );
    assert!(matches!(
        s.poll_device_authorization(&late.device_code_hash, &c.id, at)
            .await
            .unwrap(),
        DevicePoll::Approved(_)
    ));
}

pub(super) async fn device_concurrent_redemption<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let at = T0 + secs(40);
    for _ in 0..5 {
        let d = device(&c, T0);
        let yes = approved(&s, &d, &u, T0 + secs(30)).await;
        let (g1, g2) = (device_grant(&d, &yes, at), device_grant(&d, &yes, at));
        let (r1, r2) = (refresh_for(&g1, at), refresh_for(&g2, at));
        let (a, b) = tokio::join!(
            s.redeem_device_authorization(&d.device_code_hash, &g1, Some(&r1), at),
            s.redeem_device_authorization(&d.device_code_hash, &g2, Some(&r2), at),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "exactly one redemption wins: {a} {b}");
        let (winner, loser) = if a { ((g1, r1), (g2, r2)) } else { ((g2, r2), (g1, r1)) };
        assert_eq!(s.get_grant(winner.0.id).await.unwrap(), Some(winner.0.clone()));
        assert!(s.get_refresh_token(&winner.1.token_hash).await.unwrap().is_some());
        assert_eq!(s.get_grant(loser.0.id).await.unwrap(), None);
        assert_eq!(s.get_refresh_token(&loser.1.token_hash).await.unwrap(), None);
    }
}

/// Deleting the client deletes its requests; deleting the user deletes those they
/// approved, not the others.
pub(super) async fn device_authorizations_go_with_client_and_user<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let other = client("other", "Other");
    s.insert_client(&other).await.unwrap();
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let at = T0 + secs(30);
    let after_all = T0 + Duration::days(1);

    let doomed = [device(&c, T0), device(&c, T0)];
    s.insert_device_authorization(&doomed[0]).await.unwrap();
    approved(&s, &doomed[1], &bob, at).await;
    let alices = device(&other, T0);
    approved(&s, &alices, &u, at).await;
    let bobs = device(&other, T0);
    approved(&s, &bobs, &bob, at).await;
    let undecided = device(&other, T0);
    s.insert_device_authorization(&undecided).await.unwrap();

    s.delete_client(&c.id, &[]).await.unwrap();
    assert_eq!(
        s.get_pending_device_authorization(&doomed[0].user_code_hash, at)
            .await
            .unwrap(),
        None
    );
    s.delete_user(u.id, at, &[]).await.unwrap();
    let poll = |hash| s.poll_device_authorization(hash, &other.id, at);
    assert_eq!(poll(&alices.device_code_hash).await.unwrap(), DevicePoll::Invalid);
    assert!(matches!(
        poll(&bobs.device_code_hash).await.unwrap(),
        DevicePoll::Approved(_)
    ));
    assert_eq!(poll(&undecided.device_code_hash).await.unwrap(), DevicePoll::Pending);
    // Only those two are left.
    assert_eq!(s.delete_expired_device_authorizations(after_all, 100).await.unwrap(), 2);
}

/// Expired requests go in batches, redeemed or not; the others stay.
pub(super) async fn delete_expired_device_authorizations<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let soon: Vec<_> = (0..3).map(|_| device(&c, T0)).collect();
    s.insert_device_authorization(&soon[0]).await.unwrap();
    s.insert_device_authorization(&soon[1]).await.unwrap();
    let yes = approved(&s, &soon[2], &u, T0 + secs(30)).await;
    let g = device_grant(&soon[2], &yes, T0 + secs(40));
    assert!(
        s.redeem_device_authorization(&soon[2].device_code_hash, &g, None, T0 + secs(40))
            .await
            .unwrap()
    );
    let later = DeviceAuthorization {
        expires_at: T0 + secs(1200),
        ..device(&c, T0)
    };
    s.insert_device_authorization(&later).await.unwrap();

    let expiry = soon[0].expires_at;
    assert_eq!(s.delete_expired_device_authorizations(expiry, 100).await.unwrap(), 0);
    // Three expired, two at a time.
    for n in [2, 1, 0] {
        assert_eq!(
            s.delete_expired_device_authorizations(expiry + secs(1), 2)
                .await
                .unwrap(),
            n
        );
    }
    assert!(
        s.get_pending_device_authorization(&later.user_code_hash, T0)
            .await
            .unwrap()
            .is_some()
    );
    // The redeemed request's grant is not the request's to delete.
    assert_eq!(s.get_grant(g.id).await.unwrap(), Some(g));
    assert_eq!(
        s.delete_expired_device_authorizations(later.expires_at + secs(1), 100)
            .await
            .unwrap(),
        1
    );
}

/// A password change or a disable of the person, or a disable of the client, takes the
/// approvals not yet redeemed with it, as it takes unused codes: the device gets nothing
/// from an approval the change came after. Undecided requests of the client go too; a
/// redeemed one stays (its grant is revoked the usual way).
pub(super) async fn device_approvals_end_with_the_account_or_client<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let at = T0 + secs(30);
    let poll = |d: &DeviceAuthorization| {
        let hash = d.device_code_hash;
        let (s, id) = (&s, c.id.clone());
        async move { s.poll_device_authorization(&hash, &id, at).await }
    };

    let by_alice = device(&c, T0);
    approved(&s, &by_alice, &u, at).await;
    let by_bob = device(&c, T0);
    approved(&s, &by_bob, &bob, at).await;
    s.set_user_password(u.id, "new-hash", None, at, &[]).await.unwrap();
    assert_eq!(
        poll(&by_alice).await.unwrap(),
        DevicePoll::Invalid,
        "the password changed"
    );
    assert!(
        matches!(poll(&by_bob).await.unwrap(), DevicePoll::Approved(_)),
        "not bob's"
    );

    s.set_user_disabled(bob.id, true, at, &[]).await.unwrap();
    assert_eq!(poll(&by_bob).await.unwrap(), DevicePoll::Invalid, "bob was disabled");

    let undecided = device(&c, T0);
    s.insert_device_authorization(&undecided).await.unwrap();
    let redeemed = device(&c, T0);
    let decision = approved(&s, &redeemed, &u, at).await;
    let grant = device_grant(&redeemed, &decision, at);
    assert!(
        s.redeem_device_authorization(&redeemed.device_code_hash, &grant, None, at)
            .await
            .unwrap()
    );
    let disabled = Client {
        disabled: true,
        ..s.get_client(&c.id).await.unwrap().unwrap()
    };
    s.disable_client(&disabled, at, &[]).await.unwrap();
    assert_eq!(
        poll(&undecided).await.unwrap(),
        DevicePoll::Invalid,
        "the client was disabled"
    );
    assert_eq!(
        s.get_pending_device_authorization(&undecided.user_code_hash, at)
            .await
            .unwrap(),
        None
    );
    assert!(s.get_grant(grant.id).await.unwrap().unwrap().revoked_at.is_some());
    // The redeemed one is still there until it expires.
    assert_eq!(
        s.delete_expired_device_authorizations(T0 + Duration::days(1), 100)
            .await
            .unwrap(),
        1
    );
}

/// The person withdraws an application's access: their approvals for it not yet redeemed
/// go; other people's, other clients' and redeemed ones stay.
pub(super) async fn device_approvals_withdrawn_by_their_person<S: Store>(s: S) {
    let (c, u) = setup(&s, "tv", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let other = client("other", "Other");
    s.insert_client(&other).await.unwrap();
    let at = T0 + secs(30);
    let mine = device(&c, T0);
    approved(&s, &mine, &u, at).await;
    let bobs = device(&c, T0);
    approved(&s, &bobs, &bob, at).await;
    let elsewhere = device(&other, T0);
    approved(&s, &elsewhere, &u, at).await;
    let redeemed = device(&c, T0);
    let decision = approved(&s, &redeemed, &u, at).await;
    let grant = device_grant(&redeemed, &decision, at);
    assert!(
        s.redeem_device_authorization(&redeemed.device_code_hash, &grant, None, at)
            .await
            .unwrap()
    );
    assert_eq!(s.delete_device_approvals(u.id, &c.id).await.unwrap(), 1);
    assert_eq!(s.delete_device_approvals(u.id, &c.id).await.unwrap(), 0);
    let poll = |d: &DeviceAuthorization, client: &Client| {
        let (hash, id) = (d.device_code_hash, client.id.clone());
        let s = &s;
        async move { s.poll_device_authorization(&hash, &id, at).await.unwrap() }
    };
    assert_eq!(poll(&mine, &c).await, DevicePoll::Invalid);
    assert!(matches!(poll(&bobs, &c).await, DevicePoll::Approved(_)));
    assert!(matches!(poll(&elsewhere, &other).await, DevicePoll::Approved(_)));
    assert_eq!(poll(&redeemed, &c).await, DevicePoll::Redeemed { grant_id: grant.id });
}
