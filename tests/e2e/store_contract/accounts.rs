//! Store contract cases for accounts and their surroundings: users, admins, consents,
//! pending requests, browser sessions, audit events, health.

use super::*;

pub(super) async fn ping<S: Store>(s: S) {
    s.ping().await.unwrap();
}

pub(super) async fn user_roundtrip_conflict_and_search<S: Store>(s: S) {
    let alice = user("alice");
    s.insert_user(&alice).await.unwrap();
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.get_user(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(s.get_user_by_username("alice").await.unwrap(), Some(alice.clone()));
    // Usernames are one account regardless of case.
    assert_eq!(s.get_user_by_username("ALICE").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.get_user_by_username("alic").await.unwrap(), None);
    assert!(matches!(
        s.insert_user(&user("alice")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_user(&user("Alice")).await,
        Err(StoreError::Conflict(_))
    ));

    let mut bob = user("bob");
    bob.email = None;
    bob.name = Some("Robert Tables".into());
    bob.email_verified = false;
    s.insert_user(&bob).await.unwrap();
    let mut carol = user("carol");
    carol.email = Some("c@ROBERTS.example".into());
    carol.name = None;
    s.insert_user(&carol).await.unwrap();

    let names = |v: Vec<User>| v.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(names(s.list_users(None).await.unwrap()), ["alice", "bob", "carol"]);
    assert_eq!(names(s.list_users(Some("ROBERT")).await.unwrap()), ["bob", "carol"]);
    assert_eq!(names(s.list_users(Some("LIC")).await.unwrap()), ["alice"]);
    assert_eq!(names(s.list_users(Some("_")).await.unwrap()), Vec::<String>::new());
    assert_eq!(names(s.users_page(None, 2, 0).await.unwrap()), ["alice", "bob"]);
    assert_eq!(names(s.users_page(None, 2, 2).await.unwrap()), ["carol"]);
    assert_eq!(names(s.users_page(Some("ROBERT"), 1, 1).await.unwrap()), ["carol"]);
    assert_eq!(s.get_user(bob.id).await.unwrap(), Some(bob));
}

pub(super) async fn user_updates_of_missing_user_are_not_found<S: Store>(s: S) {
    let id = Uuid::new_v4();
    assert!(matches!(
        s.set_user_password(id, "x", None, T0, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_user_disabled(id, true, T0, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_user_disabled(id, false, T0, &[]).await,
        Err(StoreError::NotFound)
    ));
    let mut ghost = user("ghost");
    ghost.id = id;
    assert!(matches!(
        s.update_user_profile(&ghost, &ghost).await,
        Err(StoreError::NotFound)
    ));
    assert!(log(&s).await.is_empty());
}

/// A profile edit replaces `email`, `email_verified`, the three names and `updated_at`,
/// and nothing else.
pub(super) async fn user_profile_update<S: Store>(s: S) {
    let alice = user("alice");
    s.insert_user(&alice).await.unwrap();
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let mut edited = alice.clone();
    edited.email = None;
    edited.email_verified = !alice.email_verified;
    edited.name = Some("Alice Q. Liddell".into());
    edited.given_name = None;
    edited.family_name = Some("Liddell".into());
    edited.updated_at = T0 + secs(60);
    // Fields a profile edit does not touch, changed here, stay as stored.
    let mut sent = edited.clone();
    sent.username = "mallory".into();
    sent.password_hash = "changed".into();
    sent.disabled = true;
    sent.created_at = T0 + secs(5);
    assert!(s.update_user_profile(&sent, &alice).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(edited.clone()));
    assert_eq!(s.get_user(bob.id).await.unwrap(), Some(bob), "others unchanged");
    // Written over a profile that is no longer the one read: refused, nothing written.
    let mut late = alice.clone();
    late.name = Some("Overwritten".into());
    late.updated_at = T0 + secs(120);
    assert!(!s.update_user_profile(&late, &alice).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(edited.clone()));
    // Read again, it is written (a null email compares as null).
    let mut cleared = edited.clone();
    cleared.name = None;
    assert!(s.update_user_profile(&cleared, &edited).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(cleared.clone()));
    // A null name compares as null too; a stale one (a name where there is none) does not.
    let mut named = cleared.clone();
    named.name = Some("Named".into());
    assert!(!s.update_user_profile(&named, &edited).await.unwrap());
    assert!(s.update_user_profile(&named, &cleared).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(named.clone()));
    // The given and family names are compared as well, null or not.
    let mut renamed = named.clone();
    renamed.given_name = Some("Alice".into());
    let mut stale = named.clone();
    stale.given_name = Some("Al".into());
    assert!(!s.update_user_profile(&renamed, &stale).await.unwrap());
    let mut stale = named.clone();
    stale.family_name = Some("Hargreaves".into());
    assert!(!s.update_user_profile(&renamed, &stale).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(named.clone()));
    assert!(s.update_user_profile(&renamed, &named).await.unwrap());
    assert_eq!(s.get_user(alice.id).await.unwrap(), Some(renamed));
}

/// Alice with two grants, a pending code and a session; Bob with a grant and a session.
struct AliceAndBob {
    c: Client,
    u: User,
    bob: User,
    g1: Grant,
    r1: RefreshToken,
    g2: Grant,
    r2: RefreshToken,
    bg: Grant,
    br: RefreshToken,
    pending: AuthorizationCode,
    sess: BrowserSession,
    bob_sess: BrowserSession,
}

async fn alice_and_bob<S: Store>(s: &S) -> AliceAndBob {
    let (c, u) = setup(s, "app", "alice").await;
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let (g1, r1) = issue(s, &c, &u, T0).await;
    let (g2, r2) = issue(s, &c, &u, T0 + secs(1)).await;
    let (bg, br) = issue(s, &c, &bob, T0).await;
    let pending = code(&c, &u, T0);
    s.insert_code(&pending).await.unwrap();
    let sess = session(Some(u.id), T0, 3600);
    let bob_sess = session(Some(bob.id), T0, 3600);
    assert!(s.create_session(&sess).await.unwrap());
    assert!(s.create_session(&bob_sess).await.unwrap());
    AliceAndBob {
        c,
        u,
        bob,
        g1,
        r1,
        g2,
        r2,
        bg,
        br,
        pending,
        sess,
        bob_sess,
    }
}

pub(super) async fn password_change_revokes_grants_sessions_and_codes<S: Store>(s: S) {
    let AliceAndBob {
        c: _,
        u,
        bob: _,
        g1,
        r1,
        g2,
        r2,
        bg,
        br,
        pending,
        sess,
        bob_sess,
    } = alice_and_bob(&s).await;

    let mut ids = s.active_grant_ids_for_user(u.id).await.unwrap();
    ids.sort();
    let mut expected = vec![g1.id, g2.id];
    expected.sort();
    assert_eq!(ids, expected);

    // The caller listed only g1 (g2 "appeared" after it looked): both are revoked and logged.
    let later = T0 + secs(10);
    s.set_user_password(
        u.id,
        "new-hash",
        None,
        later,
        &[grant_revocation(g1.id, later + secs(600))],
    )
    .await
    .unwrap();

    let stored = s.get_user(u.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "new-hash");
    assert_eq!(stored.updated_at, later);
    for (g, r) in [(&g1, &r1), (&g2, &r2)] {
        assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, Some(later));
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
        let entry = logged(&s, &RevocationTarget::Grant(g.id))
            .await
            .expect("grant revocation logged");
        assert_eq!(entry.revocation.expires_at, later + secs(600));
    }
    assert!(s.active_grant_ids_for_user(u.id).await.unwrap().is_empty());
    assert!(s.list_grants_for_user(u.id, later).await.unwrap().is_empty());
    assert_eq!(s.load_session(&sess.id_hash, later).await.unwrap(), None);
    assert!(s.list_sessions_for_user(u.id, later).await.unwrap().is_empty());
    assert_eq!(s.get_code(&pending.code_hash, later).await.unwrap(), None);

    // Bob is untouched.
    assert_eq!(s.get_grant(bg.id).await.unwrap().unwrap().revoked_at, None);
    assert!(s.get_refresh_token(&br.token_hash).await.unwrap().is_some());
    assert!(s.load_session(&bob_sess.id_hash, later).await.unwrap().is_some());

    // Replacing a hash that is no longer the stored one: Conflict, and nothing changes.
    let entries = log(&s).await.len();
    assert!(matches!(
        s.set_user_password(u.id, "overtaken", Some("old-hash"), later, &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().password_hash, "new-hash");
    assert_eq!(log(&s).await.len(), entries);
    assert!(matches!(
        s.set_user_password(Uuid::new_v4(), "x", Some("new-hash"), later, &[])
            .await,
        Err(StoreError::NotFound)
    ));
    s.set_user_password(u.id, "newer-hash", Some("new-hash"), later, &[])
        .await
        .unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().password_hash, "newer-hash");
}

/// Deleting a user revokes their grants (the ones the caller listed and any made
/// meanwhile, logged so their access tokens stay refused) and removes them with their
/// codes, refresh tokens, consents and sessions; another user is untouched.
pub(super) async fn deleting_a_user_revokes_and_removes_what_is_theirs<S: Store>(s: S) {
    let AliceAndBob {
        c,
        u,
        bob,
        g1,
        r1,
        g2,
        r2,
        bg,
        br,
        pending,
        sess,
        bob_sess,
    } = alice_and_bob(&s).await;
    for who in [&u, &bob] {
        s.upsert_consent(&Consent {
            user_id: who.id,
            client_id: c.id.clone(),
            scope: ScopeSet::parse("openid").unwrap(),
            granted_at: T0,
        })
        .await
        .unwrap();
    }

    let at = T0 + secs(10);
    s.delete_user(u.id, at, &[grant_revocation(g1.id, at + secs(600))])
        .await
        .unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap(), None);
    assert_eq!(s.get_user_by_username("alice").await.unwrap(), None);
    for (g, r) in [(&g1, &r1), (&g2, &r2)] {
        assert_eq!(s.get_grant(g.id).await.unwrap(), None);
        assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
        let entry = logged(&s, &RevocationTarget::Grant(g.id))
            .await
            .expect("grant revocation logged");
        assert_eq!(entry.revocation.expires_at, at + secs(600));
    }
    assert_eq!(s.get_code(&pending.code_hash, at).await.unwrap(), None);
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), None);
    assert_eq!(s.load_session(&sess.id_hash, at).await.unwrap(), None);
    assert!(!s.save_session(&sess).await.unwrap(), "not brought back by a late save");

    // Bob is untouched.
    assert_eq!(s.get_grant(bg.id).await.unwrap().unwrap().revoked_at, None);
    assert!(s.get_refresh_token(&br.token_hash).await.unwrap().is_some());
    assert!(s.get_consent(bob.id, &c.id).await.unwrap().is_some());
    assert!(s.load_session(&bob_sess.id_hash, at).await.unwrap().is_some());

    // Gone: a second delete finds nothing and logs nothing more.
    let entries = log(&s).await.len();
    assert!(matches!(s.delete_user(u.id, at, &[]).await, Err(StoreError::NotFound)));
    assert_eq!(log(&s).await.len(), entries);
    // The name is free again, for another user.
    let again = user("alice");
    s.insert_user(&again).await.unwrap();
    assert_ne!(again.id, u.id);
}

pub(super) async fn disabling_revokes_and_enabling_does_not<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    let (g, r) = issue(&s, &c, &u, T0).await;
    let sess = session(Some(u.id), T0, 3600);
    assert!(s.create_session(&sess).await.unwrap());

    let at = T0 + secs(5);
    s.set_user_disabled(u.id, true, at, &[grant_revocation(g.id, at + secs(600))])
        .await
        .unwrap();
    let stored = s.get_user(u.id).await.unwrap().unwrap();
    assert!(stored.disabled);
    assert_eq!(stored.updated_at, at);
    assert_eq!(s.get_grant(g.id).await.unwrap().unwrap().revoked_at, Some(at));
    assert_eq!(s.get_refresh_token(&r.token_hash).await.unwrap(), None);
    assert_eq!(s.load_session(&sess.id_hash, at).await.unwrap(), None);
    // A request that loaded the session before and saves it now does not bring it back.
    assert!(!s.save_session(&sess).await.unwrap());
    assert_eq!(s.load_session(&sess.id_hash, at).await.unwrap(), None);
    assert!(logged(&s, &RevocationTarget::Grant(g.id)).await.is_some());

    let (g2, _) = issue(&s, &c, &u, at).await;
    let sess2 = session(Some(u.id), at, 3600);
    assert!(s.create_session(&sess2).await.unwrap());
    let entries = log(&s).await.len();
    s.set_user_disabled(u.id, false, at + secs(1), &[]).await.unwrap();
    assert!(!s.get_user(u.id).await.unwrap().unwrap().disabled);
    assert_eq!(s.get_grant(g2.id).await.unwrap().unwrap().revoked_at, None);
    assert!(s.load_session(&sess2.id_hash, at).await.unwrap().is_some());
    assert_eq!(log(&s).await.len(), entries);
}

pub(super) async fn admins<S: Store>(s: S) {
    assert_eq!(s.count_admins().await.unwrap(), 0);
    let a = Admin {
        id: Uuid::new_v4(),
        username: "root".into(),
        password_hash: "$argon2id$x".into(),
        role: AdminRole::Admin,
        created_at: T0,
    };
    s.insert_admin(&a).await.unwrap();
    let b = Admin {
        id: Uuid::new_v4(),
        username: "watcher".into(),
        role: AdminRole::Auditor,
        ..a.clone()
    };
    s.insert_admin(&b).await.unwrap();
    assert_eq!(s.count_admins().await.unwrap(), 2);
    assert_eq!(s.get_admin_by_username("root").await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_admin_by_username("watcher").await.unwrap(), Some(b.clone()));
    assert_eq!(s.get_admin_by_username("nobody").await.unwrap(), None);
    let dup = Admin {
        id: Uuid::new_v4(),
        ..a.clone()
    };
    assert!(matches!(s.insert_admin(&dup).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.count_admins().await.unwrap(), 2);

    // Listed by username, case-insensitively; updated and deleted by id.
    let names = |v: Vec<Admin>| v.into_iter().map(|a| a.username).collect::<Vec<_>>();
    assert_eq!(names(s.list_admins().await.unwrap()), ["root", "watcher"]);
    s.set_admin_password_hash(a.id, "$argon2id$y").await.unwrap();
    let stored = s.get_admin_by_username("root").await.unwrap().unwrap();
    assert_eq!(
        (stored.password_hash.as_str(), stored.role),
        ("$argon2id$y", AdminRole::Admin)
    );
    let ghost = Uuid::new_v4();
    assert!(matches!(
        s.set_admin_password_hash(ghost, "$argon2id$z").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_admin_role(ghost, AdminRole::Admin).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(s.delete_admin(ghost).await, Err(StoreError::NotFound)));

    // root is the only admin: it can be neither demoted nor deleted, and stays as it was.
    assert!(!s.set_admin_role(a.id, AdminRole::Auditor).await.unwrap());
    assert!(!s.delete_admin(a.id).await.unwrap());
    assert_eq!(
        s.get_admin_by_username("root").await.unwrap().unwrap().role,
        AdminRole::Admin
    );
    // An auditor may always change; with a second admin, root may go.
    assert!(s.set_admin_role(b.id, AdminRole::Auditor).await.unwrap());
    assert!(s.set_admin_role(b.id, AdminRole::Admin).await.unwrap());
    assert!(s.set_admin_role(a.id, AdminRole::Auditor).await.unwrap());
    let stored = s.get_admin_by_username("root").await.unwrap().unwrap();
    assert_eq!(
        (stored.password_hash.as_str(), stored.role),
        ("$argon2id$y", AdminRole::Auditor)
    );
    assert!(
        !s.set_admin_role(b.id, AdminRole::Auditor).await.unwrap(),
        "watcher is now the last admin"
    );
    assert!(s.delete_admin(a.id).await.unwrap());
    assert!(matches!(s.delete_admin(a.id).await, Err(StoreError::NotFound)));

    // Concurrent demotions of many admins leave exactly one: the check and the write are
    // one step.
    let mut ids = Vec::new();
    for i in 0..16 {
        let x = Admin {
            id: Uuid::new_v4(),
            username: format!("op{i}"),
            role: AdminRole::Admin,
            ..a.clone()
        };
        s.insert_admin(&x).await.unwrap();
        ids.push(x.id);
    }
    ids.push(b.id);
    let s = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let s = s.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                s.set_admin_role(id, AdminRole::Auditor).await.unwrap()
            } else {
                s.delete_admin(id).await.unwrap()
            }
        });
    }
    let outcomes = tasks.join_all().await;
    assert_eq!(outcomes.iter().filter(|done| !**done).count(), 1, "{outcomes:?}");
    let admins = s.list_admins().await.unwrap();
    assert_eq!(
        admins.iter().filter(|x| x.role == AdminRole::Admin).count(),
        1,
        "{admins:?}"
    );
}

pub(super) async fn consents<S: Store>(s: S) {
    let (c, u) = setup(&s, "app", "alice").await;
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), None);
    let first = Consent {
        user_id: u.id,
        client_id: c.id.clone(),
        scope: ScopeSet::parse("openid").unwrap(),
        granted_at: T0,
    };
    s.upsert_consent(&first).await.unwrap();
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), Some(first.clone()));
    let second = Consent {
        scope: ScopeSet::parse("openid email profile").unwrap(),
        granted_at: T0 + secs(9),
        ..first
    };
    s.upsert_consent(&second).await.unwrap();
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), Some(second.clone()));
    // Listed per user: another client's consent is there too, another user's is not.
    let other_client = client("other", "other app");
    s.insert_client(&other_client).await.unwrap();
    let bob = user("bob");
    s.insert_user(&bob).await.unwrap();
    let to_other = Consent {
        client_id: other_client.id.clone(),
        ..second.clone()
    };
    s.upsert_consent(&to_other).await.unwrap();
    s.upsert_consent(&Consent {
        user_id: bob.id,
        ..second.clone()
    })
    .await
    .unwrap();
    let mut listed = s.list_consents_for_user(u.id).await.unwrap();
    listed.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
    assert_eq!(listed, vec![second, to_other]);
    assert!(s.delete_consent(u.id, &c.id).await.unwrap());
    assert!(!s.delete_consent(u.id, &c.id).await.unwrap());
    assert_eq!(s.get_consent(u.id, &c.id).await.unwrap(), None);
}

pub(super) async fn pending_requests<S: Store + Clone>(s: S) {
    let (mine, theirs) = (random_digest(), random_digest());
    let pending = |id: &str, owner: Digest, at: i64| PendingRequest {
        id: id.to_owned(),
        owner,
        request: format!(r#"{{"id":"{id}"}}"#),
        created_at: T0 + secs(at),
        expires_at: T0 + secs(at + 3600),
    };
    let first = pending("first", mine, 0);
    s.insert_pending_request(&first, 3).await.unwrap();
    s.insert_pending_request(&pending("theirs", theirs, 0), 3)
        .await
        .unwrap();
    // Only its owner finds a request, and only until it expires.
    assert_eq!(
        s.get_pending_request("first", &mine, T0).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(s.get_pending_request("first", &theirs, T0).await.unwrap(), None);
    assert_eq!(
        s.get_pending_request("first", &mine, first.expires_at).await.unwrap(),
        None
    );
    assert_eq!(s.get_pending_request("nothing", &mine, T0).await.unwrap(), None);

    // Updates and deletes by their owner only.
    assert!(!s.update_pending_request("first", &theirs, "x").await.unwrap());
    assert!(s.update_pending_request("first", &mine, r#"{"step":2}"#).await.unwrap());
    assert_eq!(
        s.get_pending_request("first", &mine, T0)
            .await
            .unwrap()
            .unwrap()
            .request,
        r#"{"step":2}"#
    );
    assert!(!s.delete_pending_request("first", &theirs).await.unwrap());

    // An owner keeps its `keep` newest requests (inserted in the same second too);
    // another owner's are untouched.
    for id in ["second", "third", "fourth"] {
        s.insert_pending_request(&pending(id, mine, 1), 3).await.unwrap();
    }
    assert_eq!(s.get_pending_request("first", &mine, T0).await.unwrap(), None);
    for id in ["second", "third", "fourth"] {
        assert!(s.get_pending_request(id, &mine, T0).await.unwrap().is_some(), "{id}");
    }
    assert!(s.get_pending_request("theirs", &theirs, T0).await.unwrap().is_some());
    assert!(s.delete_pending_request("third", &mine).await.unwrap());
    assert!(!s.delete_pending_request("third", &mine).await.unwrap());
    assert_eq!(s.get_pending_request("third", &mine, T0).await.unwrap(), None);

    // Concurrent requests of one owner each keep theirs (two tabs at once).
    let inserts: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let p = pending(&format!("tab-{i}"), theirs, 2);
            tokio::spawn(async move { s.insert_pending_request(&p, 10).await })
        })
        .collect();
    for done in inserts {
        done.await.unwrap().unwrap();
    }
    for i in 0..8 {
        let id = format!("tab-{i}");
        assert!(s.get_pending_request(&id, &theirs, T0).await.unwrap().is_some(), "{id}");
    }
    // Concurrent inserts that trim: exactly `keep` remain, and none is older than one
    // that went. `keep` 0 keeps the new one all the same.
    let many = random_digest();
    let inserts: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let p = pending(&format!("many-{i}"), many, 2);
            tokio::spawn(async move { s.insert_pending_request(&p, 3).await })
        })
        .collect();
    for done in inserts {
        done.await.unwrap().unwrap();
    }
    let mut kept = Vec::new();
    for i in 0..8 {
        if s.get_pending_request(&format!("many-{i}"), &many, T0)
            .await
            .unwrap()
            .is_some()
        {
            kept.push(i);
        }
    }
    assert_eq!(kept.len(), 3, "{kept:?}");
    s.insert_pending_request(&pending("last", many, 2), 0).await.unwrap();
    assert!(s.get_pending_request("last", &many, T0).await.unwrap().is_some());
    for i in kept {
        assert_eq!(
            s.get_pending_request(&format!("many-{i}"), &many, T0).await.unwrap(),
            None
        );
    }

    // Expired ones are deleted in batches.
    let expiry = T0 + secs(3600);
    assert_eq!(
        s.delete_expired_pending_requests(expiry - secs(1), 100).await.unwrap(),
        0
    );
    assert_eq!(s.delete_expired_pending_requests(expiry, 1).await.unwrap(), 1);
    assert_eq!(s.delete_expired_pending_requests(expiry, 100).await.unwrap(), 0);
    assert_eq!(
        s.delete_expired_pending_requests(expiry + secs(2), 100).await.unwrap(),
        11
    );
}

pub(super) async fn sessions<S: Store>(s: S) {
    let (_, u) = setup(&s, "app", "alice").await;
    let anonymous = session(None, T0, 600);
    assert_eq!(anonymous.sid, None);
    // Save only updates: a session not created (or deleted since) stays absent.
    assert!(!s.save_session(&anonymous).await.unwrap());
    assert_eq!(s.load_session(&anonymous.id_hash, T0).await.unwrap(), None);
    assert!(s.create_session(&anonymous).await.unwrap());
    assert_eq!(
        s.load_session(&anonymous.id_hash, T0).await.unwrap(),
        Some(anonymous.clone())
    );

    // Save replaces; logging in attaches the user and the sign-in's sid.
    let logged_in = BrowserSession {
        data: r#"{"user":"alice"}"#.into(),
        user_id: Some(u.id),
        sid: Some("sid-alice".into()),
        ip: None,
        ..anonymous.clone()
    };
    assert!(s.save_session(&logged_in).await.unwrap());
    assert_eq!(
        s.load_session(&anonymous.id_hash, T0).await.unwrap(),
        Some(logged_in.clone())
    );

    // Create refuses a taken id.
    assert!(
        !s.create_session(&BrowserSession {
            data: "other".into(),
            ..anonymous.clone()
        })
        .await
        .unwrap()
    );
    assert_eq!(
        s.load_session(&anonymous.id_hash, T0).await.unwrap(),
        Some(logged_in.clone())
    );
    let short = session(Some(u.id), T0 + secs(1), 10);
    assert!(short.sid.is_some());
    assert!(s.create_session(&short).await.unwrap());
    assert_eq!(s.load_session(&short.id_hash, T0).await.unwrap(), Some(short.clone()));

    // Expired sessions are hidden, then deleted.
    assert_eq!(s.load_session(&short.id_hash, short.expires_at).await.unwrap(), None);
    assert_eq!(s.load_session(&random_digest(), T0).await.unwrap(), None);
    let list = s.list_sessions_for_user(u.id, T0 + secs(5)).await.unwrap();
    assert_eq!(list, vec![short.clone(), logged_in.clone()]);
    assert_eq!(
        s.list_sessions_for_user(u.id, short.expires_at).await.unwrap(),
        vec![logged_in.clone()]
    );
    assert_eq!(
        s.delete_expired_sessions(short.expires_at - secs(1), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.delete_expired_sessions(short.expires_at, 1).await.unwrap(), 1);
    assert_eq!(s.delete_expired_sessions(short.expires_at, 1).await.unwrap(), 0);
    assert_eq!(s.load_session(&short.id_hash, T0).await.unwrap(), None);

    // Signed out in place (the session kept, anonymous again): saving clears the sid.
    let signed_out = BrowserSession {
        user_id: None,
        sid: None,
        ..logged_in.clone()
    };
    assert!(s.save_session(&signed_out).await.unwrap());
    assert_eq!(s.load_session(&logged_in.id_hash, T0).await.unwrap(), Some(signed_out));
    assert_eq!(s.list_sessions_for_user(u.id, T0).await.unwrap(), vec![]);

    s.delete_session(&logged_in.id_hash).await.unwrap();
    assert_eq!(s.load_session(&logged_in.id_hash, T0).await.unwrap(), None);
    s.delete_session(&logged_in.id_hash).await.unwrap();
    // Signed out: a request still holding the session cannot save it back.
    assert!(!s.save_session(&logged_in).await.unwrap());
    assert_eq!(s.load_session(&logged_in.id_hash, T0).await.unwrap(), None);
}

pub(super) async fn audit_events<S: Store>(s: S) {
    let alice = Uuid::new_v4();
    let event = |i: i64, event_type: &str, user_id: Option<Uuid>, client_id: Option<&str>| AuditEvent {
        id: Uuid::new_v4(),
        at: T0 + secs(i),
        event_type: event_type.to_owned(),
        actor: Some("system".into()),
        user_id,
        client_id: client_id.map(str::to_owned),
        ip: Some("198.51.100.7".into()),
        detail: serde_json::json!({ "i": i, "nested": { "ok": true }, "list": [1, "two"] }),
    };
    let first = vec![
        event(0, "login.success", Some(alice), None),
        event(1, "token.issued", Some(alice), Some("app")),
        event(2, "login.failure", None, None),
    ];
    s.insert_audit_events(&first).await.unwrap();
    // Same instant as the last one: written later, listed first.
    let tie = AuditEvent {
        actor: None,
        ip: None,
        detail: serde_json::json!({}),
        ..event(2, "admin.client.created", None, Some("app"))
    };
    s.insert_audit_events(std::slice::from_ref(&tie)).await.unwrap();
    s.insert_audit_events(&[]).await.unwrap();
    assert!(matches!(
        s.insert_audit_events(std::slice::from_ref(&tie)).await,
        Err(StoreError::Conflict(_))
    ));

    let all = s.list_audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        all,
        vec![tie.clone(), first[2].clone(), first[1].clone(), first[0].clone()]
    );

    let only = |f: AuditFilter| {
        let s = &s;
        async move {
            s.list_audit_events(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        only(AuditFilter {
            event_type: Some("login.success".into()),
            ..Default::default()
        })
        .await,
        [first[0].id]
    );
    assert_eq!(
        only(AuditFilter {
            user_id: Some(alice),
            ..Default::default()
        })
        .await,
        [first[1].id, first[0].id]
    );
    assert_eq!(
        only(AuditFilter {
            client_id: Some("app".into()),
            ..Default::default()
        })
        .await,
        [tie.id, first[1].id]
    );
    assert_eq!(
        only(AuditFilter {
            since: Some(T0 + secs(1)),
            until: Some(T0 + secs(2)),
            ..Default::default()
        })
        .await,
        [first[1].id]
    );
    assert_eq!(
        only(AuditFilter {
            user_id: Some(alice),
            client_id: Some("app".into()),
            ..Default::default()
        })
        .await,
        [first[1].id]
    );
    assert_eq!(
        only(AuditFilter {
            limit: 2,
            ..Default::default()
        })
        .await,
        [tie.id, first[2].id]
    );
    assert_eq!(
        only(AuditFilter {
            limit: 2,
            offset: 2,
            ..Default::default()
        })
        .await,
        [first[1].id, first[0].id]
    );
    assert!(
        only(AuditFilter {
            offset: 4,
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // A limit of 0 means the default page of 50.
    let many: Vec<_> = (10..70).map(|i| event(i, "token.refreshed", None, None)).collect();
    s.insert_audit_events(&many).await.unwrap();
    assert_eq!(s.list_audit_events(&AuditFilter::default()).await.unwrap().len(), 50);
    assert_eq!(
        s.list_audit_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        64
    );
}
