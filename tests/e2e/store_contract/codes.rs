//! Store contract cases for authorization codes and pushed requests: kept, expired,
//! redeemed once (a replay revokes what the first produced), deleted with their session
//! or their client's withdrawn access, and pushed requests taken once.

use super::*;

pub(super) async fn code_get_conflict_and_expiry<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let mut k = code(&c, &u, T0);
    k.code_challenge = None;
    k.nonce = None;
    k.redirect_uri_explicit = false;
    s.insert_code(&k).await.unwrap();
    assert_eq!(s.get_code(&k.code_hash, T0).await.unwrap(), Some(k.clone()));
    assert_eq!(
        s.get_code(&k.code_hash, k.expires_at - secs(1)).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(s.get_code(&k.code_hash, k.expires_at).await.unwrap(), None);
    assert_eq!(s.get_code(&random_digest(), T0).await.unwrap(), None);
    assert!(matches!(s.insert_code(&k).await, Err(StoreError::Conflict(_))));
}

/// A session's end deletes its codes not yet redeemed: not those redeemed (a replay must
/// still find its grant), nor another session's or another person's.
pub(super) async fn codes_of_an_ended_session<S: Store>(s: S) {
    let (c, alice) = setup(&s, "app", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let with = |u: &User, sid: &str| {
        let mut k = code(&c, u, T0);
        k.sid = sid.to_owned();
        k
    };
    let (pending, redeemed, other_session, other_person) = (
        with(&alice, "s1"),
        with(&alice, "s1"),
        with(&alice, "s2"),
        with(&bob, "s1"),
    );
    for k in [&pending, &redeemed, &other_session, &other_person] {
        s.insert_code(k).await.unwrap();
    }
    let g = grant_for(&redeemed, T0);
    assert_eq!(
        s.redeem_code(&redeemed.code_hash, &g, None, T0, T0 + secs(600))
            .await
            .unwrap(),
        CodeRedemption::Redeemed
    );
    assert_eq!(s.delete_session_codes(alice.id, "s1").await.unwrap(), 1);
    assert_eq!(s.get_code(&pending.code_hash, T0).await.unwrap(), None);
    for k in [&other_session, &other_person] {
        assert!(s.get_code(&k.code_hash, T0).await.unwrap().is_some());
    }
    // The redeemed one still answers a replay by revoking its grant.
    let again = grant_for(&redeemed, T0 + secs(1));
    assert_eq!(
        s.redeem_code(&redeemed.code_hash, &again, None, T0 + secs(1), T0 + secs(600))
            .await
            .unwrap(),
        CodeRedemption::Replayed { grant_id: g.id }
    );
    assert_eq!(s.delete_session_codes(alice.id, "s1").await.unwrap(), 0);
}

/// Access withdrawn from a client deletes the codes it was given for that person and has
/// not redeemed: not those redeemed, another client's or another person's.
pub(super) async fn codes_of_a_withdrawn_client<S: Store>(s: S) {
    let (c, alice) = setup(&s, "app", "alice").await;
    let other_client = client("other", "Other");
    s.insert_client(&other_client).await.unwrap();
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let (pending, redeemed, other_app, other_person) = (
        code(&c, &alice, T0),
        code(&c, &alice, T0),
        code(&other_client, &alice, T0),
        code(&c, &bob, T0),
    );
    for k in [&pending, &redeemed, &other_app, &other_person] {
        s.insert_code(k).await.unwrap();
    }
    let g = grant_for(&redeemed, T0);
    assert_eq!(
        s.redeem_code(&redeemed.code_hash, &g, None, T0, T0 + secs(600))
            .await
            .unwrap(),
        CodeRedemption::Redeemed
    );
    assert_eq!(s.delete_client_codes(alice.id, &c.id).await.unwrap(), 1);
    assert_eq!(s.get_code(&pending.code_hash, T0).await.unwrap(), None);
    for k in [&other_app, &other_person] {
        assert!(s.get_code(&k.code_hash, T0).await.unwrap().is_some());
    }
    let again = grant_for(&redeemed, T0 + secs(1));
    assert_eq!(
        s.redeem_code(&redeemed.code_hash, &again, None, T0 + secs(1), T0 + secs(600))
            .await
            .unwrap(),
        CodeRedemption::Replayed { grant_id: g.id }
    );
    assert_eq!(s.delete_client_codes(alice.id, &c.id).await.unwrap(), 0);
}

pub(super) async fn code_redeem_then_replay<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let k = code(&c, &u, T0);
    s.insert_code(&k).await.unwrap();
    let g = grant_for(&k, T0);
    let r = refresh_for(&g, T0);
    let at = T0 + secs(2);
    let replay_expiry = at + secs(600);
    assert_eq!(
        s.redeem_code(&k.code_hash, &g, Some(&r), at, replay_expiry)
            .await
            .unwrap(),
        CodeRedemption::Redeemed
    );
    assert_eq!(s.get_grant(g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(
        s.get_refresh_token(&r.token_hash).await.unwrap(),
        Some((r.clone(), g.clone()))
    );
    // The read of a refresh rotation: the same token and grant, with the grant's user.
    assert_eq!(
        s.get_refresh_token_with_user(&r.token_hash).await.unwrap(),
        Some((r.clone(), g.clone(), s.get_user(u.id).await.unwrap().unwrap()))
    );
    assert_eq!(s.get_refresh_token_with_user(&random_digest()).await.unwrap(), None);
    assert_eq!(s.get_code(&k.code_hash, at).await.unwrap(), None);
    assert!(log(&s).await.is_empty());

    // Second redemption: the grant from the first one is revoked.
    let g2 = grant_for(&k, at);
    let r2 = refresh_for(&g2, at);
    let again = at + secs(3);
    let outcome = s
        .redeem_code(&k.code_hash, &g2, Some(&r2), again, replay_expiry)
        .await
        .unwrap();
    assert_eq!(outcome, CodeRedemption::Replayed { grant_id: g.id });
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, Some(again));
    assert_eq!(s.get_grant(g2.id).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r2.token_hash).await.unwrap(), None);
    assert_eq!(
        logged(&s, &RevocationTarget::Grant(g.id))
            .await
            .unwrap()
            .revocation
            .expires_at,
        replay_expiry
    );

    // Still a replay after the code expired, until the code is deleted.
    let late = k.expires_at + secs(10);
    let outcome = s
        .redeem_code(&k.code_hash, &g2, None, late, late + secs(600))
        .await
        .unwrap();
    assert_eq!(outcome, CodeRedemption::Replayed { grant_id: g.id });
    assert_eq!(s.delete_expired_codes(late, 100).await.unwrap(), 1);
    assert_eq!(
        s.redeem_code(&k.code_hash, &g2, None, late, late).await.unwrap(),
        CodeRedemption::Invalid
    );
}

pub(super) async fn code_redeem_expired_or_unknown_is_invalid<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let k = code(&c, &u, T0);
    s.insert_code(&k).await.unwrap();
    let g = grant_for(&k, T0);
    let r = refresh_for(&g, T0);
    let outcome = s
        .redeem_code(&k.code_hash, &g, Some(&r), k.expires_at, k.expires_at)
        .await
        .unwrap();
    assert_eq!(outcome, CodeRedemption::Invalid);
    assert_eq!(s.get_grant(g.id).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    let outcome = s.redeem_code(&random_digest(), &g, Some(&r), T0, T0).await.unwrap();
    assert_eq!(outcome, CodeRedemption::Invalid);
    assert_eq!(s.get_grant(g.id).await.unwrap(), None);
    assert!(log(&s).await.is_empty());
}

pub(super) async fn code_concurrent_redemption<S: Store + Clone>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    for _ in 0..5 {
        let k = code(&c, &u, T0);
        s.insert_code(&k).await.unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                let g = grant_for(&k, T0);
                let r = refresh_for(&g, T0);
                let hash = k.code_hash;
                tokio::spawn(async move { s.redeem_code(&hash, &g, Some(&r), T0, T0 + secs(600)).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let redeemed = outcomes.iter().filter(|o| **o == CodeRedemption::Redeemed).count();
        let replayed = outcomes
            .iter()
            .filter(|o| matches!(o, CodeRedemption::Replayed { .. }))
            .count();
        assert_eq!((redeemed, replayed), (1, 1), "{outcomes:?}");
    }
}

pub(super) async fn delete_expired_codes<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let soon: Vec<_> = (0..3).map(|_| code(&c, &u, T0)).collect();
    let mut later = code(&c, &u, T0);
    later.expires_at = T0 + secs(600);
    for k in soon.iter().chain([&later]) {
        s.insert_code(k).await.unwrap();
    }
    let expiry = soon[0].expires_at;
    assert_eq!(s.delete_expired_codes(expiry, 100).await.unwrap(), 0);
    // Three expired, two at a time.
    for n in [2, 1, 0] {
        assert_eq!(s.delete_expired_codes(expiry + secs(1), 2).await.unwrap(), n);
    }
    for k in &soon {
        assert_eq!(s.get_code(&k.code_hash, T0).await.unwrap(), None);
    }
    assert!(s.get_code(&later.code_hash, T0).await.unwrap().is_some());
}

/// A pushed authorization request (RFC 9126) is taken once, before it expires, and goes
/// with its client; expired ones are cleaned up in batches.
pub(super) async fn pushed_requests_are_taken_once<S: Store>(s: S) {
    let (c, _) = setup(&s, "app", "alice").await;
    let (first, late, doomed) = (random_digest(), random_digest(), random_digest());
    let until = T0 + secs(90);
    s.insert_pushed_request(&first, &c.id, r#"{"a":1}"#, until)
        .await
        .unwrap();
    s.insert_pushed_request(&late, &c.id, r#"{"b":2}"#, until)
        .await
        .unwrap();
    assert!(matches!(
        s.insert_pushed_request(&first, &c.id, "{}", until).await,
        Err(StoreError::Conflict(_))
    ));
    let other = client("other-app", "Other");
    s.insert_client(&other).await.unwrap();
    let take = |hash, id, at| s.take_pushed_request(hash, id, at);
    assert_eq!(take(&first, &other.id, T0).await.unwrap(), None, "not theirs");
    assert_eq!(
        take(&first, &c.id, T0 + secs(89)).await.unwrap(),
        Some(r#"{"a":1}"#.to_owned()),
        "left for its own client"
    );
    assert_eq!(take(&first, &c.id, T0 + secs(89)).await.unwrap(), None, "once");
    assert_eq!(take(&late, &c.id, until).await.unwrap(), None, "expired");
    assert_eq!(take(&random_digest(), &c.id, T0).await.unwrap(), None);
    // Expired ones go in batches; the one taken too late was not deleted by the take.
    assert_eq!(s.delete_expired_pushed_requests(until, 10).await.unwrap(), 0);
    assert_eq!(s.delete_expired_pushed_requests(until + secs(1), 10).await.unwrap(), 1);
    // Deleting the client deletes its pushed requests.
    s.insert_pushed_request(&doomed, &c.id, "{}", until).await.unwrap();
    s.delete_client(&c.id, &[]).await.unwrap();
    assert_eq!(s.take_pushed_request(&doomed, &c.id, T0).await.unwrap(), None);
}
