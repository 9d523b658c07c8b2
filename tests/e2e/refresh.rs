//! Refresh tokens at the token endpoint, on both backends: rotation and reuse detection
//! (RFC 9700 §4.14.2), concurrent use, a public client's refresh without `client_id`, and
//! scopes the client has lost since the grant.

use portcullis_tests::{Backend, both_backends, http, spawn_app};
use serde_json::Value;

use crate::code_flow::{PASSWORD, REDIRECT, alice_signed_in, obtain_tokens, obtain_tokens_with};
use crate::token_endpoint::{allow_only, introspect, post_form, refresh_grant};

async fn refresh_rotation_and_reuse_detection(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, sec, tokens) = alice_signed_in(&app).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let a1 = tokens["access_token"].as_str().unwrap().to_owned();

    // Narrowing the scope works; widening it does not.
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some("openid profile email api:write")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")));
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some("openid\\profile")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")), "malformed");
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some("openid")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "openid");
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();
    let a2 = b["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);

    // Another client cannot use it.
    let (other, other_secret) = app.confidential_client(REDIRECT).await;
    let (s, b) = refresh_grant(&app, (other.id.as_str(), other_secret.expose()), &r2, None).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));

    // Reuse of r1: refused, and the whole grant dies — r2 and every access token.
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, None).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = refresh_grant(&app, (&id, &sec), &r2, None).await;
    assert_eq!(s, 400, "the rotated token died with the grant");
    for a in [&a1, &a2] {
        assert_eq!(introspect(&app, &id, &sec, a).await["active"], false);
    }
    app.stop().await;
}

/// RFC 6749 §6 lists no `client_id` for a refresh request and only confidential clients
/// must authenticate (§3.2.1): a public client's refresh token alone names its client,
/// with rotation and reuse detection as usual. A confidential client's token, or an
/// unknown one, still needs the client to authenticate.
async fn a_public_clients_refresh_needs_no_client_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let public = app.public_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            post_form(
                app,
                "/token",
                None,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let tokens = obtain_tokens(&app, public.id.as_str(), "", "alice").await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, _, b) = refresh(r1.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["id_token"].is_string());
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();
    let (s, _, b) = refresh(r1).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "reuse");
    // The grant died with its tokens: r2 names no client any more, so it gets what an
    // unknown token gets (a confidential client's live token must get the same).
    let (s, _, b) = refresh(r2.clone()).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "{b}");
    let named = [
        ("grant_type", "refresh_token"),
        ("refresh_token", r2.as_str()),
        ("client_id", public.id.as_str()),
    ];
    let (s, _, b) = post_form(&app, "/token", None, &named).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "the grant died");

    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let rc = obtain_tokens(&app, &id, &sec, "alice").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [rc.clone(), "an unknown token".to_owned()] {
        let (s, h, b) = refresh(token).await;
        assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "{b}");
        assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }
    let (s, b) = refresh_grant(&app, (&id, &sec), &rc, None).await;
    assert_eq!(s, 200, "left untouched: {b}");

    // A disabled public client is refused like any other.
    let tokens = obtain_tokens(&app, public.id.as_str(), "", "alice").await;
    app.core.set_client_disabled(&public.id, true, "test").await.unwrap();
    let (s, _, b) = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")), "{b}");
    app.stop().await;
}

/// A scope taken away from a client is taken away from the tokens its existing grants
/// give: refreshes (with or without a scope parameter) issue what is still allowed, and
/// the response's `scope` says so (RFC 6749 §5.1).
async fn refresh_drops_scopes_the_client_lost(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let tokens = obtain_tokens(&app, &id, &sec, "alice").await;
    assert_eq!(tokens["scope"], "email openid profile");
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    allow_only(&app, &client, "openid profile").await;
    assert_eq!(
        introspect(&app, &id, &sec, &r1).await["scope"],
        "openid profile",
        "what a refresh would issue now"
    );
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "openid profile");
    let access = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&app, &id, &sec, &access).await["scope"], "openid profile");
    let info: Value = http()
        .get(app.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.get("email").is_none(), "{info}");
    // Asking for it by name does not bring it back either.
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();
    let (s, b) = refresh_grant(&app, (&id, &sec), &r2, Some("openid email")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "openid");
    app.stop().await;
}

/// As at `/authorize` (OIDC Core §3.1.2.1), a refresh of an OpenID grant ignores scope
/// values the client may not use, such as the `offline_access` the authorization request
/// asked for and did not get: a relying party that sends its configured scope on every
/// refresh keeps working. A value the client may use but the grant lacks, a request
/// without `openid`, and a plain OAuth 2.0 grant's refresh are still refused.
async fn refresh_ignores_scopes_the_client_may_not_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let (id, sec) = (client.id.to_string(), secret.expose().to_owned());
    let tokens = obtain_tokens_with(&app, (&id, &sec), "alice", "openid profile offline_access", &[]).await;
    assert_eq!(tokens["scope"], "openid profile", "{tokens}");
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    for refused in ["offline_access", "openid profile api:read", "profile offline_access"] {
        let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some(refused)).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")), "{refused}: {b}");
    }
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some("openid profile offline_access")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "openid profile");
    assert!(b["id_token"].is_string(), "{b}");
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();

    // A plain OAuth 2.0 grant: nothing is ignored, as at /authorize.
    let tokens = obtain_tokens_with(&app, (&id, &sec), "alice", "api:read", &[]).await;
    assert_eq!(tokens["scope"], "api:read", "{tokens}");
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, b) = refresh_grant(&app, (&id, &sec), &r, Some("api:read offline_access")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")), "{b}");

    // Nothing left once the ignored values are dropped (the operator took `openid` from
    // the client since): invalid_scope, not a token for no scope.
    allow_only(&app, &client, "profile api:read").await;
    let (s, b) = refresh_grant(&app, (&id, &sec), &r2, Some("openid")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_scope")), "{b}");
    app.stop().await;
}

/// RFC 9700 §4.14.2: a used refresh token presented again revokes the grant, even when
/// the request also asks for a scope the grant never had (the scope check must not
/// answer first and let the reuse go unnoticed).
async fn reuse_with_a_widened_scope_still_revokes_the_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, sec, tokens) = alice_signed_in(&app).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, None).await;
    assert_eq!(s, 200, "{b}");
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();
    let a2 = b["access_token"].as_str().unwrap().to_owned();

    let (s, b) = refresh_grant(&app, (&id, &sec), &r1, Some("openid admin:everything")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "{b}");
    let (s, b) = refresh_grant(&app, (&id, &sec), &r2, None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "the grant was revoked"
    );
    assert_eq!(introspect(&app, &id, &sec, &a2).await["active"], false);
    app.stop().await;
}

async fn concurrent_refresh_exactly_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, sec, tokens) = alice_signed_in(&app).await;
    let r = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [("grant_type", "refresh_token"), ("refresh_token", r.as_str())];
    let (a, b) = tokio::join!(
        post_form(&app, "/token", Some((&id, &sec)), &form),
        post_form(&app, "/token", Some((&id, &sec)), &form)
    );
    let statuses = [a.0, b.0];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    app.stop().await;
}

/// OIDC Core §11: `offline_access` asks for a refresh token. A client that gets none (no
/// `refresh_token` grant) is not told it was granted; one that does is.
async fn offline_access_is_granted_only_with_a_refresh_token(backend: Backend) {
    use portcullis_core::clients::ClientInput;
    use portcullis_core::model::ClientKind;
    let app = spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    for (grants, granted) in [
        (&["authorization_code"][..], "openid"),
        (&["authorization_code", "refresh_token"][..], "offline_access openid"),
    ] {
        let (client, secret) = app
            .core
            .create_client(
                &ClientInput {
                    name: "Offline".into(),
                    kind: Some(ClientKind::Confidential),
                    redirect_uris: vec![REDIRECT.into()],
                    grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
                    scopes: "openid offline_access api:read".into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        let secret = secret.unwrap();
        let tokens = obtain_tokens_with(
            &app,
            (client.id.as_str(), secret.expose()),
            "alice",
            "openid offline_access",
            &[],
        )
        .await;
        assert_eq!(tokens["scope"], granted, "{grants:?}: {tokens}");
        assert_eq!(
            tokens["refresh_token"].is_string(),
            grants.contains(&"refresh_token"),
            "{tokens}"
        );
        // A plain OAuth 2.0 request too.
        let tokens = obtain_tokens_with(
            &app,
            (client.id.as_str(), secret.expose()),
            "alice",
            "api:read offline_access",
            &[],
        )
        .await;
        let plain = if grants.contains(&"refresh_token") {
            "api:read offline_access"
        } else {
            "api:read"
        };
        assert_eq!(tokens["scope"], plain, "{grants:?}: {tokens}");
    }
    // client_credentials never gives one.
    let (machine, secret) = app
        .core
        .create_client(
            &ClientInput {
                name: "Machine".into(),
                kind: Some(ClientKind::Confidential),
                grant_types: vec!["client_credentials".into()],
                scopes: "offline_access api:read".into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let r = http()
        .post(app.url("/token"))
        .basic_auth(machine.id.as_str(), Some(secret.unwrap().expose()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:read offline_access"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "api:read", "{body}");
    app.stop().await;
}

both_backends!(
    offline_access_is_granted_only_with_a_refresh_token,
    refresh_rotation_and_reuse_detection,
    a_public_clients_refresh_needs_no_client_id,
    refresh_drops_scopes_the_client_lost,
    refresh_ignores_scopes_the_client_may_not_use,
    reuse_with_a_widened_scope_still_revokes_the_grant,
    concurrent_refresh_exactly_one_wins,
);
