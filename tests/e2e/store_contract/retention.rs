//! Store contract cases for retention: the bounded deletes of expired refresh tokens,
//! expired grants and old audit events, and `Portcullis::cleanup` driving them over each
//! real store at a pinned instant. Run on both backends like the rest.

use std::sync::Arc;

use portcullis_core::crypto::Kek;
use portcullis_core::{CoreSettings, FixedClock, Portcullis};

use super::*;

contract!(
    retention_refresh_tokens,
    retention_grants_take_their_refresh_tokens,
    retention_audit_events,
    retention_cleanup_removes_rows_past_the_cut_offs,
);

/// The cut-off the store cases delete before: rows expiring before it go, rows expiring
/// at it or later stay.
const CUT: OffsetDateTime = datetime!(2030-01-21 12:00 UTC);

/// Far past the cut-off: the expiry of tokens that only their grant's deletion may take.
const FAR: OffsetDateTime = datetime!(2031-01-01 00:00 UTC);

/// A grant (made by redeeming a code at `at`) expiring at `expires_at`, with a first
/// refresh token expiring at `refresh_expires_at`.
async fn grant_with_token<S: Store>(
    s: &S,
    c: &Client,
    u: &User,
    at: OffsetDateTime,
    expires_at: OffsetDateTime,
    refresh_expires_at: OffsetDateTime,
) -> (Grant, RefreshToken) {
    let k = code(c, u, at);
    s.insert_code(&k).await.unwrap();
    let g = Grant {
        expires_at,
        ..grant_for(&k, at)
    };
    let r = RefreshToken {
        expires_at: refresh_expires_at,
        ..refresh_for(&g, at)
    };
    assert_eq!(
        s.redeem_code(&k.code_hash, &g, Some(&r), at, at + secs(600))
            .await
            .unwrap(),
        CodeRedemption::Redeemed
    );
    (g, r)
}

/// Rotates `old` at `at`: `old` becomes used, and its successor, expiring at
/// `expires_at`, is returned. `old` as stored now (used at `at`) comes back too.
async fn rotate<S: Store>(
    s: &S,
    g: &Grant,
    old: &RefreshToken,
    at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> (RefreshToken, RefreshToken) {
    let new = RefreshToken {
        expires_at,
        ..refresh_for(g, at)
    };
    assert_eq!(
        s.rotate_refresh_token(&old.token_hash, &new, at, at + secs(600))
            .await
            .unwrap(),
        RefreshRotation::Rotated
    );
    let used = RefreshToken {
        used_at: Some(at),
        ..old.clone()
    };
    (used, new)
}

/// Deletes every refresh token left, whatever its grant, and says how many there were:
/// catches a token row whose grant is gone, which no read of the contract would show.
async fn count_all_refresh_tokens_by_deleting_them<S: Store>(s: &S) -> u64 {
    s.delete_expired_refresh_tokens(FAR + Duration::days(1), 100_000)
        .await
        .unwrap()
}

async fn retention_refresh_tokens<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    // One grant whose rotations leave four used tokens and one unused, all expired
    // before the cut-off, while the grant itself lives on.
    let (g, r1) = grant_with_token(&s, &c, &u, T0, T0 + Duration::days(30), CUT - secs(5)).await;
    let (r1, r2) = rotate(&s, &g, &r1, T0 + secs(1), CUT - secs(4)).await;
    let (r2, r3) = rotate(&s, &g, &r2, T0 + secs(2), CUT - secs(3)).await;
    let (r3, r4) = rotate(&s, &g, &r3, T0 + secs(3), CUT - secs(2)).await;
    let (r4, r5) = rotate(&s, &g, &r4, T0 + secs(4), CUT - secs(1)).await;
    let expired = [&r1, &r2, &r3, &r4, &r5];
    // Another grant: a used token expiring exactly at the cut-off and its unused
    // successor a second after it. Both stay.
    let (g2, q1) = grant_with_token(&s, &c, &u, T0, T0 + Duration::days(30), CUT).await;
    let (q1, q2) = rotate(&s, &g2, &q1, T0 + secs(5), CUT + secs(1)).await;
    for r in expired.iter().chain([&&q1, &&q2]) {
        assert!(s.get_refresh_token(&r.token_hash).await.unwrap().is_some());
    }
    let revocations = log(&s).await;

    // Nothing expired before the earliest expiry.
    assert_eq!(s.delete_expired_refresh_tokens(CUT - secs(5), 100).await.unwrap(), 0);
    // Five expired, two at a time.
    for n in [2, 2, 1, 0] {
        assert_eq!(s.delete_expired_refresh_tokens(CUT, 2).await.unwrap(), n);
    }
    for r in expired {
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    }
    // The rest is as it was: tokens (used or not), grants, the revocation log.
    assert_eq!(
        s.get_refresh_token(&q1.token_hash).await.unwrap(),
        Some((q1.clone(), g2.clone()))
    );
    assert_eq!(
        s.get_refresh_token(&q2.token_hash).await.unwrap(),
        Some((q2.clone(), g2.clone()))
    );
    assert_eq!(s.get_grant(g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(s.get_grant(g2.id).await.unwrap(), Some(g2.clone()));
    assert_eq!(s.count_active_grants(T0 + secs(10)).await.unwrap(), 2);
    assert_eq!(log(&s).await, revocations);
    assert_eq!(count_all_refresh_tokens_by_deleting_them(&s).await, 2);
}

async fn retention_grants_take_their_refresh_tokens<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    // Five grants expired before the cut-off. Their tokens are given later expiries so
    // that only the grant's deletion can take them: used and unused ones.
    let mut expired = Vec::new();
    let mut their_tokens = Vec::new();
    for i in 0..5 {
        let (g, r) = grant_with_token(&s, &c, &u, T0 + secs(i), CUT - secs(5 - i), FAR).await;
        if i % 2 == 0 {
            let (used, new) = rotate(&s, &g, &r, T0 + secs(10 + i), FAR).await;
            their_tokens.extend([used, new]);
        } else {
            their_tokens.push(r);
        }
        expired.push(g);
    }
    // One of them revoked (its tokens deleted then, its revocation logged).
    let rev = grant_revocation(expired[1].id, FAR);
    assert!(s.revoke_grant(expired[1].id, T0 + secs(20), &rev).await.unwrap());
    their_tokens.retain(|r| r.grant_id != expired[1].id);
    // A grant expiring exactly at the cut-off, and a live one, each with a used token
    // and its successor: they stay with their tokens.
    let mut kept = Vec::new();
    let mut kept_tokens = Vec::new();
    for expires_at in [CUT, CUT + Duration::days(10)] {
        let (g, r) = grant_with_token(&s, &c, &u, T0, expires_at, expires_at).await;
        let (used, new) = rotate(&s, &g, &r, T0 + secs(30), expires_at).await;
        kept_tokens.extend([(used, g.clone()), (new, g.clone())]);
        kept.push(g);
    }
    for r in &their_tokens {
        assert!(s.get_refresh_token(&r.token_hash).await.unwrap().is_some());
    }
    let revocations = log(&s).await;
    assert!(revocations.iter().any(|e| e.revocation == rev));

    assert_eq!(s.delete_expired_grants(CUT - secs(5), 100).await.unwrap(), 0);
    for n in [2, 2, 1, 0] {
        assert_eq!(s.delete_expired_grants(CUT, 2).await.unwrap(), n);
    }
    for g in &expired {
        assert_eq!(s.get_grant(g.id).await.unwrap(), None);
    }
    for r in &their_tokens {
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    }
    for g in &kept {
        assert_eq!(s.get_grant(g.id).await.unwrap().as_ref(), Some(g));
    }
    for (r, g) in &kept_tokens {
        assert_eq!(
            s.get_refresh_token(&r.token_hash).await.unwrap(),
            Some((r.clone(), g.clone()))
        );
    }
    // The revocation log, the client and the user are untouched.
    assert_eq!(log(&s).await, revocations);
    assert_eq!(s.get_client(&c.id).await.unwrap(), Some(c));
    assert_eq!(s.get_user(u.id).await.unwrap(), Some(u));
    // No token row of a deleted grant is left behind (the joins above would not show it).
    assert_eq!(
        count_all_refresh_tokens_by_deleting_them(&s).await,
        kept_tokens.len() as u64
    );
}

fn audit_event(at: OffsetDateTime, event_type: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at,
        event_type: event_type.to_owned(),
        actor: Some("system".into()),
        user_id: Some(Uuid::new_v4()),
        client_id: Some("app".into()),
        ip: None,
        detail: serde_json::json!({ "at": at.unix_timestamp() }),
    }
}

async fn all_audit_events<S: Store>(s: &S) -> Vec<AuditEvent> {
    s.list_audit_events(&AuditFilter {
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn retention_audit_events<S: Store>(s: S) {
    // Five before the cut-off (two in the same second), one at it, two after.
    let old: Vec<_> = [5, 3, 3, 2, 1]
        .into_iter()
        .map(|n| audit_event(CUT - secs(n), "token.issued"))
        .collect();
    let kept = vec![
        audit_event(CUT, "token.issued"),
        audit_event(CUT + secs(1), "login.success"),
        audit_event(CUT + Duration::days(1), "token.refreshed"),
    ];
    s.insert_audit_events(&old).await.unwrap();
    s.insert_audit_events(&kept).await.unwrap();
    assert_eq!(all_audit_events(&s).await.len(), 8);

    assert_eq!(s.delete_audit_events_before(CUT - secs(5), 100).await.unwrap(), 0);
    for n in [2, 2, 1, 0] {
        assert_eq!(s.delete_audit_events_before(CUT, 2).await.unwrap(), n);
    }
    // Exactly the newer ones are left, unchanged, newest first.
    let newest_first: Vec<_> = kept.iter().rev().cloned().collect();
    assert_eq!(all_audit_events(&s).await, newest_first);
    assert_eq!(s.delete_audit_events_before(FAR, 100).await.unwrap(), 3);
    assert_eq!(all_audit_events(&s).await, vec![]);
}

/// Starts a node's core on `store` with its clock pinned at `now`.
async fn core_at(store: Arc<dyn Store>, kek: &Kek, now: OffsetDateTime, audit_retention_days: u32) -> Arc<Portcullis> {
    let mut settings = CoreSettings::for_issuer("http://localhost:9090");
    // ES256 keys are generated in microseconds; RSA would dominate the test time.
    settings.signing_alg = SigningAlg::ES256;
    settings.audit_retention_days = audit_retention_days;
    Portcullis::start(store, Arc::new(FixedClock::new(now)), settings, kek.clone())
        .await
        .unwrap()
}

async fn retention_cleanup_removes_rows_past_the_cut_offs<S: Store>(s: S) {
    let now = T0 + Duration::days(200);
    let day = Duration::days(1);
    let store = Arc::new(s);
    let s = store.as_ref();
    // Both nodes below must read the signing keys the first one stores.
    let kek = Kek::generate().unwrap();
    let (c, u) = setup(s, "app", "alice").await;

    // Expired more than a day ago: the grant and its tokens (used and unused) go.
    let gone_at = now - day - secs(1);
    let (gone, r) = grant_with_token(s, &c, &u, T0, gone_at, gone_at).await;
    let (gone_used, gone_new) = rotate(s, &gone, &r, T0 + secs(1), gone_at).await;
    // Expired less than a day ago: kept, so a replay of its used token is still caught.
    let recent_at = now - day + secs(1);
    let (recent, r) = grant_with_token(s, &c, &u, T0, recent_at, recent_at).await;
    let (recent_used, recent_new) = rotate(s, &recent, &r, T0 + secs(1), recent_at).await;
    // Live.
    let live_at = now + Duration::days(30);
    let (live, live_token) = grant_with_token(s, &c, &u, now - day, live_at, live_at).await;
    // Audit events on both sides of the 90 days, and an old one to test keeping forever.
    let ancient = audit_event(now - Duration::days(1000), "token.issued");
    let old = audit_event(now - Duration::days(90) - secs(1), "token.issued");
    let young = audit_event(now - Duration::days(90) + secs(1), "token.issued");
    let fresh = audit_event(now, "login.success");
    s.insert_audit_events(&[ancient.clone(), old.clone(), young.clone(), fresh.clone()])
        .await
        .unwrap();

    // audit_retention_days = 0: every audit event is kept, the rest goes all the same.
    core_at(store.clone(), &kek, now, 0).await.cleanup(now).await;
    assert_eq!(all_audit_events(s).await.len(), 4);
    assert_eq!(s.get_grant(gone.id).await.unwrap(), None);
    for r in [&gone_used, &gone_new] {
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    }
    assert_eq!(s.get_grant(recent.id).await.unwrap(), Some(recent.clone()));
    assert_eq!(
        s.get_refresh_token(&recent_new.token_hash).await.unwrap(),
        Some((recent_new.clone(), recent.clone()))
    );
    assert_eq!(
        s.get_refresh_token(&recent_used.token_hash).await.unwrap(),
        Some((recent_used.clone(), recent.clone()))
    );
    assert_eq!(
        s.get_refresh_token(&live_token.token_hash).await.unwrap(),
        Some((live_token.clone(), live.clone()))
    );

    // The default 90 days: the two older events go.
    core_at(store.clone(), &kek, now, 90).await.cleanup(now).await;
    let left: Vec<_> = all_audit_events(s).await.into_iter().map(|e| e.id).collect();
    assert_eq!(left, [fresh.id, young.id]);
    assert_eq!(s.get_grant(recent.id).await.unwrap(), Some(recent.clone()));
    assert_eq!(s.get_grant(live.id).await.unwrap(), Some(live.clone()));

    // The used token that expired less than a day ago, replayed: still found, and its
    // grant revoked (RFC 9700 §4.14.2).
    let next = refresh_for(&recent, now);
    assert_eq!(
        s.rotate_refresh_token(&recent_used.token_hash, &next, now, now + secs(600))
            .await
            .unwrap(),
        RefreshRotation::Reused { grant_id: recent.id }
    );
    assert_eq!(s.get_grant(recent.id).await.unwrap().unwrap().revoked_at, Some(now));
}
