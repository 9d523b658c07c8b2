//! Store contract cases for defense in depth (issue 6): failed-login counts and event
//! webhooks with their delivery log. Run on both backends like the rest.

use super::*;

contract!(
    login_failures_count_reset_and_clear,
    webhooks_roundtrip_and_delete_cascades,
    deliveries_claim_finish_retry_and_prune,
    concurrent_claims_never_share_an_attempt,
);

async fn login_failures_count_reset_and_clear<S: Store>(s: S) {
    let key = random_digest();
    let other = random_digest();
    assert_eq!(s.get_login_failures(&key).await.unwrap(), None);
    let long_ago = T0 - Duration::days(1);
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        let f = s
            .record_login_failure(&key, T0 + secs(i as i64), long_ago)
            .await
            .unwrap();
        assert_eq!(f.failures, n);
        assert_eq!(f.last_failure_at, T0 + secs(i as i64));
    }
    s.record_login_failure(&other, T0, long_ago).await.unwrap();
    assert_eq!(
        s.get_login_failures(&key).await.unwrap(),
        Some(LoginFailures {
            failures: 3,
            last_failure_at: T0 + secs(2)
        })
    );
    // A count older than the reset window starts again.
    let later = T0 + Duration::days(2);
    let f = s
        .record_login_failure(&key, later, later - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(f.failures, 1);
    // Taking failures off: the time of the last one kept; a count that reaches zero goes.
    s.record_login_failure(&key, later, long_ago).await.unwrap();
    s.record_login_failure(&key, later, long_ago).await.unwrap();
    s.forget_login_failures(&key, 2).await.unwrap();
    assert_eq!(
        s.get_login_failures(&key).await.unwrap(),
        Some(LoginFailures {
            failures: 1,
            last_failure_at: later
        })
    );
    s.forget_login_failures(&key, 5).await.unwrap();
    assert_eq!(s.get_login_failures(&key).await.unwrap(), None);
    s.forget_login_failures(&random_digest(), 1).await.unwrap();
    s.clear_login_failures(&key).await.unwrap();
    assert_eq!(s.get_login_failures(&key).await.unwrap(), None);
    s.clear_login_failures(&key).await.unwrap();
    // Pruning removes only stale counts.
    s.record_login_failure(&key, later, long_ago).await.unwrap();
    let stale: Vec<_> = (0..2).map(|_| random_digest()).collect();
    for k in &stale {
        s.record_login_failure(k, T0, long_ago).await.unwrap();
    }
    assert_eq!(s.delete_stale_login_failures(T0, 100).await.unwrap(), 0);
    // `other` and two more, two at a time.
    for n in [2, 1, 0] {
        assert_eq!(s.delete_stale_login_failures(T0 + secs(1), 2).await.unwrap(), n);
    }
    for k in stale.iter().chain([&other]) {
        assert!(s.get_login_failures(k).await.unwrap().is_none());
    }
    assert!(s.get_login_failures(&key).await.unwrap().is_some());
}

fn webhook(url: &str, at: OffsetDateTime) -> Webhook {
    Webhook {
        id: Uuid::new_v4(),
        url: url.to_owned(),
        event_types: vec!["login.*".to_owned(), "token.issued".to_owned()],
        secret_encrypted: vec![1, 2, 3, 4],
        enabled: true,
        created_at: at,
    }
}

fn delivery(w: &Webhook, event_type: &str, at: OffsetDateTime) -> WebhookDelivery {
    WebhookDelivery {
        id: Uuid::new_v4(),
        webhook_id: w.id,
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        attempt: 1,
        status: DeliveryStatus::Pending,
        response_code: None,
        error: None,
        payload: r#"{"type":"login.failure"}"#.to_owned(),
        next_attempt_at: at,
        created_at: at,
        completed_at: None,
    }
}

async fn webhooks_roundtrip_and_delete_cascades<S: Store>(s: S) {
    assert!(s.list_webhooks().await.unwrap().is_empty());
    let a = webhook("https://a.example/hook", T0);
    let b = Webhook {
        enabled: false,
        ..webhook("https://b.example/hook", T0 + secs(1))
    };
    s.insert_webhook(&b).await.unwrap();
    s.insert_webhook(&a).await.unwrap();
    assert!(matches!(s.insert_webhook(&a).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_webhook(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_webhook(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(s.list_webhooks().await.unwrap(), vec![a.clone(), b.clone()]);
    // A secret sealed again (another KEK) replaces the old one, on that webhook only.
    let b = Webhook {
        secret_encrypted: vec![7; 44],
        ..b
    };
    s.reseal_webhook_secret(b.id, &b.secret_encrypted).await.unwrap();
    assert_eq!(s.list_webhooks().await.unwrap(), vec![a.clone(), b.clone()]);
    assert!(matches!(
        s.reseal_webhook_secret(Uuid::new_v4(), &[1; 44]).await,
        Err(StoreError::NotFound)
    ));
    let d = delivery(&a, "login.failure", T0);
    s.insert_webhook_deliveries(std::slice::from_ref(&d)).await.unwrap();
    s.insert_webhook_deliveries(&[]).await.unwrap();
    assert_eq!(s.list_webhook_deliveries(Some(a.id), 10).await.unwrap(), vec![d]);
    s.delete_webhook(a.id).await.unwrap();
    assert!(matches!(s.delete_webhook(a.id).await, Err(StoreError::NotFound)));
    assert!(s.list_webhook_deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(s.list_webhooks().await.unwrap(), vec![b]);
}

async fn deliveries_claim_finish_retry_and_prune<S: Store>(s: S) {
    let w = webhook("https://a.example/hook", T0);
    s.insert_webhook(&w).await.unwrap();
    let due = delivery(&w, "login.failure", T0);
    let later = delivery(&w, "token.issued", T0 + secs(60));
    s.insert_webhook_deliveries(&[later.clone(), due.clone()])
        .await
        .unwrap();

    // Only what is due, marked sending with its lease.
    let lease = T0 + secs(30);
    let claimed = s.claim_webhook_deliveries(T0 + secs(1), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, due.id);
    assert_eq!(claimed[0].status, DeliveryStatus::Sending);
    assert_eq!(claimed[0].next_attempt_at, lease);
    // Claimed attempts are not claimed again while the lease holds…
    assert!(
        s.claim_webhook_deliveries(T0 + secs(2), T0 + secs(40), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // …but are after it expired (the node that claimed it died).
    let again = s
        .claim_webhook_deliveries(T0 + secs(31), T0 + secs(90), 10)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), vec![due.id]);

    // A failure with a retry: the attempt is recorded and the next one scheduled.
    let failed = WebhookDelivery {
        status: DeliveryStatus::Failed,
        response_code: Some(503),
        error: Some("the receiver answered 503".into()),
        completed_at: Some(T0 + secs(32)),
        ..again[0].clone()
    };
    let retry = WebhookDelivery {
        id: Uuid::new_v4(),
        attempt: 2,
        status: DeliveryStatus::Pending,
        response_code: None,
        error: None,
        next_attempt_at: T0 + secs(42),
        created_at: T0 + secs(32),
        completed_at: None,
        ..due.clone()
    };
    s.finish_webhook_delivery(&failed, Some(&retry)).await.unwrap();
    let log = s.list_webhook_deliveries(Some(w.id), 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![later.id, retry.id, due.id],
        "newest first"
    );
    assert_eq!(log[1], retry);
    let recorded = log.iter().find(|d| d.id == due.id).unwrap();
    assert_eq!(recorded.status, DeliveryStatus::Failed);
    assert_eq!(recorded.response_code, Some(503));
    assert_eq!(recorded.error.as_deref(), Some("the receiver answered 503"));
    assert_eq!(recorded.completed_at, Some(T0 + secs(32)));

    // The retry and the later event come due; success without a retry.
    let claimed = s
        .claim_webhook_deliveries(T0 + secs(60), T0 + secs(90), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for d in claimed {
        let done = WebhookDelivery {
            status: DeliveryStatus::Delivered,
            response_code: Some(200),
            completed_at: Some(T0 + secs(61)),
            ..d
        };
        s.finish_webhook_delivery(&done, None).await.unwrap();
    }
    assert_eq!(s.list_webhook_deliveries(None, 2).await.unwrap().len(), 2, "limit");
    assert!(
        s.claim_webhook_deliveries(T0 + secs(1000), T0 + secs(2000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Pruning keeps attempts still in flight.
    let pending = delivery(&w, "login.success", T0);
    s.insert_webhook_deliveries(std::slice::from_ref(&pending))
        .await
        .unwrap();
    for n in [2, 1, 0] {
        assert_eq!(s.delete_old_webhook_deliveries(T0 + secs(100), 2).await.unwrap(), n);
    }
    assert_eq!(s.list_webhook_deliveries(None, 10).await.unwrap(), vec![pending]);
}

async fn concurrent_claims_never_share_an_attempt<S: Store + Clone>(s: S) {
    let w = webhook("https://a.example/hook", T0);
    s.insert_webhook(&w).await.unwrap();
    let all: Vec<_> = (0..40)
        .map(|i| delivery(&w, "login.failure", T0 + secs(i % 5)))
        .collect();
    s.insert_webhook_deliveries(&all).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_webhook_deliveries(T0 + secs(10), T0 + secs(100), 15)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap().into_iter().map(|d| d.id));
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 40, "every attempt claimed once");
    assert_eq!(unique.len(), 40);
}
