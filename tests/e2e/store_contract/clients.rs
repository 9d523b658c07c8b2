//! Store contract cases for clients: round trips, updates and what they revoke, disabling,
//! search, recorded assertions, deletion and its cascade, unused registrations.

use super::*;

pub(super) async fn client_roundtrip_and_conflict<S: Store>(s: S) {
    let mut c = client("web-app", "Web App");
    s.insert_client(&c).await.unwrap();
    assert_eq!(s.get_client(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(s.get_client(&ClientId::parse("nope").unwrap()).await.unwrap(), None);

    let dup = client("web-app", "Another");
    assert!(matches!(s.insert_client(&dup).await, Err(StoreError::Conflict(_))));

    // A public client: no secret, empty lists.
    let mut p = client("spa", "SPA");
    p.kind = ClientKind::Public;
    p.secret_hash = None;
    p.post_logout_redirect_uris = vec![];
    p.cors_origins = vec![];
    p.access_token_ttl = None;
    p.logo_uri = None;
    p.require_signed_request_object = false;
    p.backchannel_logout_uri = None;
    p.sector_identifier_uri = None;
    s.insert_client(&p).await.unwrap();
    assert_eq!(s.get_client(&p.id).await.unwrap(), Some(p));

    c.name = "unchanged".into();
    assert_ne!(s.get_client(&c.id).await.unwrap(), Some(c));
}

pub(super) async fn client_update<S: Store>(s: S) {
    let c = client("web-app", "Web App");
    s.insert_client(&c).await.unwrap();
    let mut changed = c.clone();
    changed.name = "Renamed".into();
    changed.kind = ClientKind::Public;
    changed.secret_hash = None;
    changed.redirect_uris = vec![RedirectUri::parse("http://127.0.0.1:8080/cb").unwrap()];
    changed.grant_types = vec![GrantType::ClientCredentials];
    changed.scopes = ScopeSet::parse("api:read").unwrap();
    changed.first_party = true;
    changed.refresh_token_ttl = Some(86400);
    changed.id_token_signed_response_alg = Some(SigningAlg::ES256);
    changed.jwks =
        Some(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.into());
    changed.require_signed_request_object = false;
    changed.backchannel_logout_uri = None;
    changed.pairwise_sector = None;
    changed.frontchannel_logout_uri = None;
    changed.sector_identifier_uri = None;
    changed.introspection_signed_response_alg = None;
    changed.token_endpoint_auth_signing_alg = None;
    changed.backchannel_logout_session_required = false;
    changed.default_max_age = None;
    changed.request_uris = vec![];
    changed.userinfo_signed_response_alg = Some(SigningAlg::EdDSA);
    changed.disabled = true;
    changed.updated_at = T0 + secs(100);
    // created_at is not updatable.
    changed.created_at = T0 + secs(50);
    s.update_client(&changed, &[]).await.unwrap();
    let stored = s.get_client(&c.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        Client {
            created_at: T0,
            revision: 1,
            ..changed.clone()
        }
    );

    // A write naming a revision other than the stored one changes nothing: `Stale`, for a
    // plain update and for a disable alike.
    let mut late = changed.clone();
    late.name = "Late".into();
    late.updated_at = T0 + secs(200);
    let rev = Revocation {
        target: RevocationTarget::ClientUntil {
            client_id: c.id.as_str().to_owned(),
            issued_until: 5,
        },
        expires_at: T0 + secs(700),
    };
    assert!(matches!(
        s.update_client(&late, std::slice::from_ref(&rev)).await,
        Err(StoreError::Stale)
    ));
    assert!(matches!(
        s.disable_client(&late, T0 + secs(200), std::slice::from_ref(&rev))
            .await,
        Err(StoreError::Stale)
    ));
    assert_eq!(s.get_client(&c.id).await.unwrap().unwrap(), stored, "unchanged");
    assert!(logged(&s, &rev.target).await.is_none(), "nothing recorded");
    late.revision = 1;
    late.require_signed_request_object = true;
    late.backchannel_logout_uri = Some("http://127.0.0.1:9000/logout".into());
    late.pairwise_sector = Some("other.example".into());
    late.frontchannel_logout_uri = Some("http://127.0.0.1:8080/fc".into());
    late.sector_identifier_uri = Some("https://other.example/sectors.json".into());
    late.introspection_signed_response_alg = Some(SigningAlg::EdDSA);
    late.request_object_signing_alg = None;
    late.backchannel_logout_session_required = false;
    late.default_max_age = Some(0);
    s.update_client(&late, &[]).await.unwrap();
    let stored = s.get_client(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.name.as_str(),
            stored.revision,
            stored.require_signed_request_object,
            stored.backchannel_logout_uri.as_deref(),
            stored.pairwise_sector.as_deref(),
            stored.frontchannel_logout_uri.as_deref(),
            stored.sector_identifier_uri.as_deref(),
            stored.introspection_signed_response_alg,
            stored.request_object_signing_alg.as_deref(),
            stored.backchannel_logout_session_required,
            stored.default_max_age,
        ),
        (
            "Late",
            2,
            true,
            Some("http://127.0.0.1:9000/logout"),
            Some("other.example"),
            Some("http://127.0.0.1:8080/fc"),
            Some("https://other.example/sectors.json"),
            Some(SigningAlg::EdDSA),
            None,
            false,
            Some(0),
        )
    );

    let missing = client("missing", "Missing");
    assert!(matches!(
        s.update_client(&missing, &[]).await,
        Err(StoreError::NotFound)
    ));
}

/// Disabling a client: the update and its revocation in one transaction; the
/// `ClientUntil` target comes back from the log as written.
pub(super) async fn client_update_revoking<S: Store>(s: S) {
    let c = client("web-app", "Web App");
    s.insert_client(&c).await.unwrap();
    let disabled = Client {
        disabled: true,
        updated_at: T0 + secs(100),
        ..c.clone()
    };
    let rev = Revocation {
        target: RevocationTarget::ClientUntil {
            client_id: c.id.as_str().to_owned(),
            issued_until: (T0 + secs(100)).unix_timestamp(),
        },
        expires_at: T0 + secs(700),
    };
    s.update_client(&disabled, std::slice::from_ref(&rev)).await.unwrap();
    assert_eq!(
        s.get_client(&c.id).await.unwrap(),
        Some(Client {
            revision: 1,
            ..disabled
        })
    );
    assert_eq!(logged(&s, &rev.target).await.unwrap().revocation, rev);

    let missing = client("missing", "Missing");
    let other = Revocation {
        target: RevocationTarget::ClientUntil {
            client_id: "missing".into(),
            issued_until: 1,
        },
        expires_at: T0 + secs(700),
    };
    assert!(matches!(
        s.update_client(&missing, std::slice::from_ref(&other)).await,
        Err(StoreError::NotFound)
    ));
    assert!(logged(&s, &other.target).await.is_none(), "nothing recorded");
}

/// A client and another, each with a grant and refresh token of alice's and her consent;
/// the first also with an unused code.
struct Records {
    c: Client,
    u: User,
    other: Client,
    g: Grant,
    r: RefreshToken,
    og: Grant,
    or: RefreshToken,
    pending: AuthorizationCode,
}

async fn client_with_records<S: Store>(s: &S, id: &str, other_id: &str) -> Records {
    let (c, u) = setup(s, id, "alice").await;
    let other = client(other_id, other_id);
    s.insert_client(&other).await.unwrap();
    let (g, r) = issue(s, &c, &u, T0).await;
    let (og, or) = issue(s, &other, &u, T0).await;
    let pending = code(&c, &u, T0);
    s.insert_code(&pending).await.unwrap();
    for client_id in [&c.id, &other.id] {
        s.upsert_consent(&Consent {
            user_id: u.id,
            client_id: client_id.clone(),
            scope: ScopeSet::parse("openid").unwrap(),
            granted_at: T0,
        })
        .await
        .unwrap();
    }
    Records {
        c,
        u,
        other,
        g,
        r,
        og,
        or,
        pending,
    }
}

pub(super) async fn client_disable_ends_its_grants<S: Store>(s: S) {
    let Records {
        c,
        u,
        other: _,
        g,
        r,
        og,
        or,
        pending,
    } = client_with_records(&s, "compromised", "bystander").await;

    let at = T0 + secs(100);
    let disabled = Client {
        disabled: true,
        updated_at: at,
        ..c.clone()
    };
    let until = Revocation {
        target: RevocationTarget::ClientUntil {
            client_id: c.id.as_str().to_owned(),
            issued_until: at.unix_timestamp(),
        },
        expires_at: T0 + secs(700),
    };
    s.disable_client(&disabled, at, std::slice::from_ref(&until))
        .await
        .unwrap();
    assert_eq!(
        s.get_client(&c.id).await.unwrap(),
        Some(Client {
            revision: 1,
            ..disabled.clone()
        })
    );
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, Some(at));
    assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    assert_eq!(s.get_code(&pending.code_hash, T0).await.unwrap(), None);
    assert!(s.active_grant_ids_for_client(&c.id).await.unwrap().is_empty());
    assert_eq!(logged(&s, &until.target).await.unwrap().revocation, until);
    assert!(
        logged(&s, &RevocationTarget::Grant(g.id)).await.is_some(),
        "the grant's access tokens are covered"
    );
    // Consent stays; another client's records are untouched.
    assert!(s.get_consent(u.id, &c.id).await.unwrap().is_some());
    assert!(s.get_grant(og.id).await.unwrap().unwrap().revoked_at.is_none());
    assert!(s.get_refresh_token(&or.token_hash).await.unwrap().is_some());

    let missing = client("missing", "Missing");
    assert!(matches!(
        s.disable_client(&missing, at, &[]).await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn client_list_search<S: Store>(s: S) {
    for (id, name) in [("svc-GAMMA", "Zeta service"), ("a1", "alpha App"), ("b2", "Beta")] {
        s.insert_client(&client(id, name)).await.unwrap();
    }
    let names = |v: Vec<Client>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_clients(None).await.unwrap()),
        ["alpha App", "Beta", "Zeta service"]
    );
    assert_eq!(names(s.list_clients(Some("APP")).await.unwrap()), ["alpha App"]);
    assert_eq!(names(s.list_clients(Some("gamma")).await.unwrap()), ["Zeta service"]);
    assert_eq!(names(s.list_clients(Some("%")).await.unwrap()), Vec::<String>::new());
    assert_eq!(names(s.list_clients(Some("")).await.unwrap()).len(), 3);
    // A page at a time, in the same order; names that tie are ordered by id.
    s.insert_client(&client("b1", "beta")).await.unwrap();
    assert_eq!(names(s.clients_page(None, 2, 0).await.unwrap()), ["alpha App", "beta"]);
    assert_eq!(
        s.clients_page(None, 2, 1)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["b1", "b2"]
    );
    assert_eq!(names(s.clients_page(Some("a"), 10, 3).await.unwrap()), ["Zeta service"]);
    assert!(s.clients_page(None, 10, 4).await.unwrap().is_empty());
    assert!(s.clients_page(None, 0, 0).await.unwrap().is_empty());
}

/// A client assertion's `jti` is taken once per client until the assertion expires
/// (RFC 7523 §3 item 7); expired records are taken over, and cleaned up in batches.
pub(super) async fn client_assertions_are_recorded_once<S: Store>(s: S) {
    let a = ClientId::parse("app-a").unwrap();
    let b = ClientId::parse("app-b").unwrap();
    let exp = T0 + secs(60);
    assert!(s.record_client_jti(&a, "j1", exp, T0).await.unwrap());
    assert!(
        !s.record_client_jti(&a, "j1", exp, T0 + secs(1)).await.unwrap(),
        "a replay"
    );
    assert!(
        !s.record_client_jti(&a, "j1", T0 + secs(3600), T0 + secs(59))
            .await
            .unwrap()
    );
    assert!(
        s.record_client_jti(&b, "j1", exp, T0).await.unwrap(),
        "another client's"
    );
    assert!(s.record_client_jti(&a, "j2", T0 + secs(10), T0).await.unwrap());
    // Kept until its time, that instant included (the caller keeps it past the last
    // moment any node would take the assertion); after it, the jti is free again.
    assert!(
        !s.record_client_jti(&a, "j2", T0 + secs(600), T0 + secs(10))
            .await
            .unwrap()
    );
    assert!(
        s.record_client_jti(&a, "j2", T0 + secs(600), T0 + secs(11))
            .await
            .unwrap()
    );
    assert!(
        !s.record_client_jti(&a, "j2", T0 + secs(600), T0 + secs(12))
            .await
            .unwrap()
    );
    // Cleanup: the two expiring at T0 + 60 go, in batches; j2 (T0 + 600) stays.
    assert_eq!(s.delete_expired_client_assertions(T0 + secs(61), 1).await.unwrap(), 1);
    assert_eq!(s.delete_expired_client_assertions(T0 + secs(61), 10).await.unwrap(), 1);
    assert_eq!(s.delete_expired_client_assertions(T0 + secs(61), 10).await.unwrap(), 0);
    assert!(
        !s.record_client_jti(&a, "j2", T0 + secs(700), T0 + secs(61))
            .await
            .unwrap()
    );
    assert!(
        s.record_client_jti(&a, "j1", exp + secs(100), T0 + secs(61))
            .await
            .unwrap()
    );
}

pub(super) async fn client_delete_cascades<S: Store>(s: S) {
    let Records {
        c,
        u,
        other,
        g,
        r,
        og,
        or,
        pending,
    } = client_with_records(&s, "doomed", "survivor").await;

    assert_eq!(s.active_grant_ids_for_client(&c.id).await.unwrap(), vec![g.id]);
    let revs = [
        grant_revocation(g.id, T0 + secs(600)),
        Revocation {
            target: RevocationTarget::Client(c.id.as_str().to_owned()),
            expires_at: T0 + secs(600),
        },
    ];
    s.delete_client(&c.id, &revs).await.unwrap();

    assert_eq!(s.get_client(&c.id).await.unwrap(), None);
    assert_eq!(s.get_grant(g.id).await.unwrap(), None);
    assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    assert_eq!(s.get_code(&pending.code_hash, T0).await.unwrap(), None);
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), None);
    assert!(s.active_grant_ids_for_client(&c.id).await.unwrap().is_empty());
    for rev in &revs {
        assert_eq!(logged(&s, &rev.target).await.unwrap().revocation, *rev);
    }
    // The other client's records are untouched.
    assert!(s.get_grant(og.id).await.unwrap().is_some());
    assert!(s.get_refresh_token(&or.token_hash).await.unwrap().is_some());
    assert!(s.get_consent(u.id, &other.id).await.unwrap().is_some());

    assert!(matches!(s.delete_client(&c.id, &[]).await, Err(StoreError::NotFound)));
}

/// Self-registered clients without a grant, registered before the cut-off, oldest
/// first, up to the limit; an operator's client, a newer one or one with a grant (even
/// revoked) is not listed.
pub(super) async fn unused_registered_clients_are_listed<S: Store>(s: S) {
    let at = |id: &str, created: OffsetDateTime, registered: bool| {
        let mut c = client(id, id);
        c.created_at = created;
        c.registration_token_hash = registered.then_some([9; 32]);
        c
    };
    for c in [
        at("old-b", T0 + secs(20), true),
        at("old-a", T0 + secs(10), true),
        at("operators", T0, false),
        at("new", T0 + secs(1000), true),
        at("in-use", T0, true),
    ] {
        s.insert_client(&c).await.unwrap();
    }
    let u = user("alice");
    s.insert_user(&u).await.unwrap();
    let in_use = s
        .get_client(&ClientId::parse("in-use").unwrap())
        .await
        .unwrap()
        .unwrap();
    let (g, _) = issue(&s, &in_use, &u, T0).await;
    s.revoke_grant(g.id, T0 + secs(5), &grant_revocation(g.id, T0 + secs(600)))
        .await
        .unwrap();
    let cut = T0 + secs(500);
    let ids = |v: Vec<ClientId>| v.iter().map(|c| c.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(
        ids(s.unused_registered_clients(cut, 10).await.unwrap()),
        ["old-a", "old-b"]
    );
    assert_eq!(ids(s.unused_registered_clients(cut, 1).await.unwrap()), ["old-a"]);
    assert!(s.unused_registered_clients(T0, 10).await.unwrap().is_empty());
}
