//! Store contract cases for the admin surface (issue 4): API keys, the dashboard's
//! counts, and revoking one session of a user. Run on both backends like the rest.

use super::*;

contract!(
    api_keys_roundtrip_list_and_revoke,
    api_key_conflicts,
    admin_counts,
    delete_user_session_only_for_its_user,
    initial_access_tokens_are_spent_once_each,
);

fn api_key(name: &str, role: AdminRole, at: OffsetDateTime) -> ApiKey {
    ApiKey {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        key_hash: random_digest(),
        role,
        created_by: "root".to_owned(),
        created_by_id: Some(Uuid::new_v4()),
        created_at: at,
        expires_at: None,
        revoked_at: None,
    }
}

async fn api_keys_roundtrip_list_and_revoke<S: Store>(s: S) {
    assert_eq!(s.list_api_keys().await.unwrap(), vec![]);
    let older = api_key("deploy", AdminRole::Admin, T0);
    // A key made before the creator's id was recorded has none.
    let newer = ApiKey {
        expires_at: Some(T0 + Duration::days(30)),
        created_by_id: None,
        ..api_key("reports", AdminRole::Auditor, T0 + secs(10))
    };
    s.insert_api_key(&older).await.unwrap();
    s.insert_api_key(&newer).await.unwrap();
    assert_eq!(
        s.get_api_key_by_hash(&older.key_hash).await.unwrap(),
        Some(older.clone())
    );
    assert_eq!(
        s.get_api_key_by_hash(&newer.key_hash).await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(s.get_api_key_by_hash(&random_digest()).await.unwrap(), None);
    // Newest first.
    assert_eq!(s.list_api_keys().await.unwrap(), vec![newer.clone(), older.clone()]);

    assert!(s.revoke_api_key(older.id, T0 + secs(20)).await.unwrap());
    // Revoking again, or a key that does not exist, changes nothing.
    assert!(!s.revoke_api_key(older.id, T0 + secs(30)).await.unwrap());
    assert!(!s.revoke_api_key(Uuid::new_v4(), T0 + secs(30)).await.unwrap());
    let revoked = ApiKey {
        revoked_at: Some(T0 + secs(20)),
        ..older.clone()
    };
    // A revoked key is still found, so the caller can tell why it is refused.
    assert_eq!(
        s.get_api_key_by_hash(&older.key_hash).await.unwrap(),
        Some(revoked.clone())
    );
    assert_eq!(s.list_api_keys().await.unwrap(), vec![newer, revoked]);
}

async fn api_key_conflicts<S: Store>(s: S) {
    let k = api_key("deploy", AdminRole::Admin, T0);
    s.insert_api_key(&k).await.unwrap();
    let same_id = ApiKey {
        key_hash: random_digest(),
        ..k.clone()
    };
    assert!(matches!(s.insert_api_key(&same_id).await, Err(StoreError::Conflict(_))));
    let same_hash = ApiKey {
        id: Uuid::new_v4(),
        ..k.clone()
    };
    assert!(matches!(
        s.insert_api_key(&same_hash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_api_keys().await.unwrap(), vec![k]);
}

async fn admin_counts<S: Store>(s: S) {
    assert_eq!(s.count_clients().await.unwrap(), 0);
    assert_eq!(s.count_users().await.unwrap(), 0);
    setup(&s, "one", "alice").await;
    s.insert_client(&client("two", "Two")).await.unwrap();
    assert_eq!(s.count_clients().await.unwrap(), 2);
    assert_eq!(s.count_users().await.unwrap(), 1);

    let event = |i: i64, event_type: &str| AuditEvent {
        id: Uuid::new_v4(),
        at: T0 + secs(i),
        event_type: event_type.to_owned(),
        actor: None,
        user_id: None,
        client_id: None,
        ip: Some("192.0.2.9".into()),
        detail: serde_json::json!({}),
    };
    s.insert_audit_events(&[
        event(0, "login.failure"),
        event(10, "login.failure"),
        event(20, "login.failure"),
        event(20, "login.success"),
        event(30, "admin.login.failure"),
    ])
    .await
    .unwrap();
    assert_eq!(s.count_audit_events("login.failure", T0).await.unwrap(), 3);
    // `since` is inclusive.
    assert_eq!(s.count_audit_events("login.failure", T0 + secs(10)).await.unwrap(), 2);
    assert_eq!(s.count_audit_events("login.failure", T0 + secs(21)).await.unwrap(), 0);
    assert_eq!(s.count_audit_events("admin.login.failure", T0).await.unwrap(), 1);
    assert_eq!(s.count_audit_events("nothing", T0).await.unwrap(), 0);
}

async fn delete_user_session_only_for_its_user<S: Store>(s: S) {
    let (_, alice) = setup(&s, "app", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let alices = session(Some(alice.id), T0, 600);
    let other = session(Some(alice.id), T0, 600);
    let anonymous = session(None, T0, 600);
    for x in [&alices, &other, &anonymous] {
        assert!(s.create_session(x).await.unwrap());
    }
    // Not bob's: untouched.
    assert!(!s.delete_user_session(bob.id, &alices.id_hash).await.unwrap());
    assert!(!s.delete_user_session(alice.id, &anonymous.id_hash).await.unwrap());
    assert!(s.load_session(&alices.id_hash, T0).await.unwrap().is_some());

    assert!(s.delete_user_session(alice.id, &alices.id_hash).await.unwrap());
    assert!(!s.delete_user_session(alice.id, &alices.id_hash).await.unwrap());
    assert_eq!(s.load_session(&alices.id_hash, T0).await.unwrap(), None);
    // Only that one.
    assert_eq!(s.list_sessions_for_user(alice.id, T0).await.unwrap(), vec![other]);
    assert!(s.load_session(&anonymous.id_hash, T0).await.unwrap().is_some());
}

/// Initial access tokens: read back and listed newest first; a use spent while active
/// (not revoked, not expired, uses left), counted down, never below zero; a token
/// without a limit is not counted; of many spending the last use at once, one wins.
async fn initial_access_tokens_are_spent_once_each<S: Store>(s: S) {
    let token = |name: &str, at: OffsetDateTime, uses: Option<i64>| InitialAccessToken {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        token_hash: random_digest(),
        created_by: "root".to_owned(),
        created_at: at,
        expires_at: at + secs(3600),
        uses_left: uses,
        revoked_at: None,
    };
    let two = token("two", T0, Some(2));
    let unlimited = token("unlimited", T0 + secs(1), None);
    s.insert_initial_access_token(&two).await.unwrap();
    s.insert_initial_access_token(&unlimited).await.unwrap();
    assert!(matches!(
        s.insert_initial_access_token(&two).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.list_initial_access_tokens().await.unwrap(),
        vec![unlimited.clone(), two.clone()]
    );
    assert_eq!(
        s.get_initial_access_token_by_hash(&two.token_hash).await.unwrap(),
        Some(two.clone())
    );
    let at = T0 + secs(10);
    assert_eq!(
        s.spend_initial_access_token(&two.token_hash, at).await.unwrap(),
        Some(two.id)
    );
    assert_eq!(
        s.spend_initial_access_token(&two.token_hash, at).await.unwrap(),
        Some(two.id)
    );
    assert_eq!(
        s.spend_initial_access_token(&two.token_hash, at).await.unwrap(),
        None,
        "used up"
    );
    let stored = s
        .get_initial_access_token_by_hash(&two.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.uses_left, Some(0));
    for _ in 0..3 {
        assert_eq!(
            s.spend_initial_access_token(&unlimited.token_hash, at).await.unwrap(),
            Some(unlimited.id)
        );
    }
    let stored = s
        .get_initial_access_token_by_hash(&unlimited.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.uses_left, None);
    // Expired at its expiry; unknown; revoked.
    assert_eq!(
        s.spend_initial_access_token(&unlimited.token_hash, unlimited.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.spend_initial_access_token(&random_digest(), at).await.unwrap(), None);
    assert!(s.revoke_initial_access_token(unlimited.id, at).await.unwrap());
    assert!(
        !s.revoke_initial_access_token(unlimited.id, at).await.unwrap(),
        "already revoked"
    );
    assert!(!s.revoke_initial_access_token(Uuid::new_v4(), at).await.unwrap());
    assert_eq!(
        s.spend_initial_access_token(&unlimited.token_hash, at).await.unwrap(),
        None
    );

    // One last use, many at once.
    let last = token("last", T0, Some(1));
    s.insert_initial_access_token(&last).await.unwrap();
    let s = std::sync::Arc::new(s);
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let s = std::sync::Arc::clone(&s);
            let hash = last.token_hash;
            tokio::spawn(async move { s.spend_initial_access_token(&hash, at).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        if t.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
