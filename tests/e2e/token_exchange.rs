//! Token exchange (RFC 8693) on both backends: a service an operator gave the grant
//! trades the access token it was called with for one of its own, for the API it calls,
//! with the same subject (as the service sees the person), no more scope and no longer
//! life; revoking the subject token's grant revokes it too; an actor token is named in
//! `act`; everything else is refused in RFC 8693 §2.2.2's terms.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::{ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_app};
use serde_json::{Value, json};

use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens_with};
use crate::pairwise::jwt_claims;

const DOWNSTREAM: &str = "https://ledger.example/api";

/// A service allowed to exchange tokens, for `DOWNSTREAM`, with `scopes`: id and secret.
async fn service(app: &TestApp, scopes: &str, subject_type: Option<&str>) -> (String, String) {
    let (c, s) = app
        .core
        .create_client(
            &ClientInput {
                name: "Orders service".into(),
                kind: Some(ClientKind::Confidential),
                grant_types: vec![TOKEN_EXCHANGE_GRANT.into(), "client_credentials".into()],
                scopes: scopes.into(),
                resources: vec![DOWNSTREAM.into()],
                // Longer than the subject tokens': the exchanged one still ends with theirs.
                access_token_ttl: Some(3600),
                subject_type: subject_type.map(str::to_owned),
                sector_identifier: subject_type.map(|_| "orders.example".to_owned()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    (c.id.as_str().to_owned(), s.unwrap().expose().to_owned())
}

/// `/token` with a token exchange by `(id, secret)`: status and body.
async fn exchange(app: &TestApp, (id, secret): (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let mut fields = vec![("grant_type", TOKEN_EXCHANGE_GRANT)];
    fields.extend_from_slice(form);
    let r = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&fields)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A token exchange by `who` refused with `400` and `error`: its body.
async fn exchange_refused(app: &TestApp, who: (&str, &str), form: &[(&str, &str)], error: &str) -> Value {
    let (status, body) = exchange(app, who, form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{form:?}: {body}");
    body
}

async fn introspect(app: &TestApp, (id, secret): (&str, &str), token: &str) -> Value {
    crate::token_endpoint::introspect(app, id, secret, token).await
}

async fn a_service_exchanges_the_token_it_was_called_with(backend: Backend) {
    let app = spawn_app(backend).await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(TOKEN_EXCHANGE_GRANT))
    );
    let alice = app.user("alice", PASSWORD).await;
    let (web, web_secret) = app.confidential_client(REDIRECT).await;
    let web = (web.id.as_str().to_owned(), web_secret.expose().to_owned());
    let signed_in = obtain_tokens_with(&app, (&web.0, &web.1), "alice", "openid api:read api:write", &[]).await;
    let subject = signed_in["access_token"].as_str().unwrap();
    let subject_claims = jwt_claims(subject);
    let svc = service(&app, "api:read orders:write", None).await;
    let svc_ref = (svc.0.as_str(), svc.1.as_str());

    let (status, body) = exchange(
        &app,
        svc_ref,
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("resource", DOWNSTREAM),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api:read", "what the two share");
    assert!(
        body.get("refresh_token").is_none() && body.get("id_token").is_none(),
        "{body}"
    );
    let exchanged = body["access_token"].as_str().unwrap();
    let claims = jwt_claims(exchanged);
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["client_id"], svc.0);
    assert_eq!(claims["aud"], DOWNSTREAM);
    assert_eq!(claims["grant_id"], subject_claims["grant_id"]);
    assert!(claims["exp"].as_i64().unwrap() <= subject_claims["exp"].as_i64().unwrap());
    assert!(claims.get("act").is_none(), "no actor token: {claims}");
    let seen = introspect(&app, svc_ref, exchanged).await;
    assert_eq!(
        (seen["active"].as_bool(), seen["aud"].as_str()),
        (Some(true), Some(DOWNSTREAM))
    );

    // A scope the service has but the subject token has not is not given.
    exchange_refused(
        &app,
        svc_ref,
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("scope", "api:read orders:write"),
        ],
        "invalid_scope",
    )
    .await;

    // An actor token: the service's own, named in `act`; the audience by its name.
    let (_, own) = app.client_credentials(&svc.0, &svc.1).await;
    let (status, body) = exchange(
        &app,
        svc_ref,
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", own["access_token"].as_str().unwrap()),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
            ("audience", DOWNSTREAM),
            ("scope", "api:read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let acted = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_claims(&acted)["act"], json!({"sub": svc.0}));
    assert_eq!(introspect(&app, svc_ref, &acted).await["act"], json!({"sub": svc.0}));
    // Exchanged again by another service, its own token the actor: the earlier actor is
    // nested.
    let second = service(&app, "api:read", None).await;
    let (_, second_token) = app.client_credentials(&second.0, &second.1).await;
    let (status, body) = exchange(
        &app,
        (&second.0, &second.1),
        &[
            ("subject_token", &acted),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", second_token["access_token"].as_str().unwrap()),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
            ("resource", DOWNSTREAM),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let twice = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jwt_claims(&twice)["act"],
        json!({"sub": second.0, "act": {"sub": svc.0}})
    );
    // The API they call learns who acts, by JWKS and by introspection
    // (portcullis-resource); a token got without an actor names none.
    let by_keys = portcullis_resource::JwksValidator::builder(app.issuer.clone())
        .audience(DOWNSTREAM)
        .build()
        .await
        .unwrap();
    let by_introspection = portcullis_resource::IntrospectionValidator::builder(app.issuer.clone(), &svc.0, &svc.1)
        .audience(DOWNSTREAM)
        .build()
        .await
        .unwrap();
    let chain = |c: &portcullis_resource::VerifiedClaims| -> Vec<String> {
        c.actor
            .iter()
            .flat_map(|a| a.chain())
            .map(|a| a.subject.clone())
            .collect()
    };
    let seen = by_keys.validate(&twice).await.unwrap();
    assert_eq!(seen.subject, alice.id.to_string());
    assert_eq!(chain(&seen), [second.0.clone(), svc.0.clone()]);
    let seen = by_introspection.validate(&acted).await.unwrap();
    assert_eq!(
        (seen.subject.as_str(), chain(&seen)),
        (alice.id.to_string().as_str(), vec![svc.0.clone()])
    );
    assert_eq!(by_keys.validate(exchanged).await.unwrap().actor, None);

    // Never openid: an exchange signs nobody in.
    let pairwise = service(&app, "openid api:read", Some("pairwise")).await;
    let (status, body) = exchange(
        &app,
        (&pairwise.0, &pairwise.1),
        &[("subject_token", subject), ("subject_token_type", ACCESS_TOKEN_TYPE)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "api:read");
    let (status, refused) = exchange(
        &app,
        (&pairwise.0, &pairwise.1),
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("scope", "openid api:read"),
        ],
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_scope")),
        "{refused}"
    );
    // A pairwise client is not handed its own identifier of the person beside the one in
    // the subject token (OIDC Core §8.1: it could link the two): the subject's stays.
    let sub = jwt_claims(body["access_token"].as_str().unwrap())["sub"].clone();
    assert_eq!(sub, json!(alice.id.to_string()));
    // Nor is a public client handed the person's public identifier for a pairwise
    // client's token: the pairwise one stays.
    let (private_web, private_secret) = app
        .core
        .create_client(
            &ClientInput {
                name: "Private web app".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid api:read".into(),
                subject_type: Some("pairwise".into()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let private_sign_in = obtain_tokens_with(
        &app,
        (private_web.id.as_str(), private_secret.unwrap().expose()),
        "alice",
        "openid api:read",
        &[],
    )
    .await;
    let private_token = private_sign_in["access_token"].as_str().unwrap();
    let pseudonym = jwt_claims(private_token)["sub"].clone();
    assert_ne!(pseudonym, json!(alice.id.to_string()));
    let (status, body) = exchange(
        &app,
        svc_ref,
        &[
            ("subject_token", private_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(jwt_claims(body["access_token"].as_str().unwrap())["sub"], pseudonym);

    // Ending alice's grant with the web app ends what was exchanged from it.
    let r = http()
        .post(app.url("/revoke"))
        .basic_auth(&web.0, Some(&web.1))
        .form(&[("token", signed_in["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&app, svc_ref, exchanged).await["active"], false);
    exchange_refused(
        &app,
        svc_ref,
        &[("subject_token", subject), ("subject_token_type", ACCESS_TOKEN_TYPE)],
        "invalid_request",
    )
    .await;
    // A person's token whose grant is gone (cleaned up) is not exchanged: nothing tells
    // whether it was revoked. (A second sign-in, its grant deleted behind the server.)
    let other_sign_in = obtain_tokens_with(&app, (&web.0, &web.1), "alice", "openid api:read", &[]).await;
    let orphan = other_sign_in["access_token"].as_str().unwrap();
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    assert!(app.core.store.delete_expired_grants(far, 1000).await.unwrap() >= 2);
    exchange_refused(
        &app,
        svc_ref,
        &[("subject_token", orphan), ("subject_token_type", ACCESS_TOKEN_TYPE)],
        "invalid_request",
    )
    .await;

    app.stop().await;
}

async fn what_cannot_be_exchanged_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (web, web_secret) = app.confidential_client(REDIRECT).await;
    let (_, token) = app.client_credentials(web.id.as_str(), web_secret.expose()).await;
    let subject = token["access_token"].as_str().unwrap().to_owned();
    let svc = service(&app, "api:read", None).await;
    let svc_ref = (svc.0.as_str(), svc.1.as_str());
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("subject_token", subject.clone()),
            ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
        ];
        for (k, v) in extra {
            form.retain(|(name, _)| name != k);
            if !v.is_empty() {
                form.push((k, (*v).to_owned()));
            }
        }
        form
    };
    /// A form, and the error and words of its refusal.
    type Case = (Vec<(&'static str, String)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            with(&[("subject_token", "not-a-token")]),
            "invalid_request",
            "subject_token",
        ),
        (
            with(&[("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token")]),
            "invalid_request",
            "subject_token_type",
        ),
        (
            with(&[("subject_token_type", "")]),
            "invalid_request",
            "subject_token_type",
        ),
        (
            with(&[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")]),
            "invalid_request",
            "requested_token_type",
        ),
        (
            with(&[("actor_token_type", ACCESS_TOKEN_TYPE)]),
            "invalid_request",
            "actor_token_type",
        ),
        (with(&[("scope", "api:write")]), "invalid_scope", "api:write"),
        (
            with(&[("resource", "https://elsewhere.example/api")]),
            "invalid_target",
            "resource",
        ),
        (
            with(&[("resource", DOWNSTREAM), ("audience", "https://elsewhere.example/api")]),
            "invalid_target",
            "different APIs",
        ),
    ];
    for (form, error, says) in cases {
        let mut fields = vec![("grant_type", TOKEN_EXCHANGE_GRANT.to_owned())];
        fields.extend(form.iter().map(|(k, v)| (*k, v.clone())));
        let r = http()
            .post(app.url("/token"))
            .basic_auth(&svc.0, Some(&svc.1))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{form:?}: {body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{says}: {body}"
        );
    }
    // A client without the grant, and a subject token bound to a DPoP key.
    exchange_refused(
        &app,
        (web.id.as_str(), web_secret.expose()),
        &[("subject_token", &subject), ("subject_token_type", ACCESS_TOKEN_TYPE)],
        "unauthorized_client",
    )
    .await;
    let key = crate::private_key_jwt::client_key(portcullis_protocol::SigningAlg::ES256, "dpop").await;
    let r = http()
        .post(app.url("/token"))
        .basic_auth(web.id.as_str(), Some(web_secret.expose()))
        .header("DPoP", crate::dpop::proof(&key, "POST", &app.url("/token"), None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let bound: Value = r.json().await.unwrap();
    let body = exchange_refused(
        &app,
        svc_ref,
        &[
            ("subject_token", bound["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
        "invalid_request",
    )
    .await;
    assert!(body["error_description"].as_str().unwrap().contains("DPoP"), "{body}");
    // A client's own token: its subject stays that client.
    let (status, body) = exchange(
        &app,
        svc_ref,
        &[("subject_token", &subject), ("subject_token_type", ACCESS_TOKEN_TYPE)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["sub"],
        web.id.as_str()
    );
    // Another client's token as the actor: the client names only itself.
    let body = exchange_refused(
        &app,
        svc_ref,
        &[
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", &subject),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
        "invalid_request",
    )
    .await;
    assert!(
        body["error_description"].as_str().unwrap().contains("this client"),
        "{body}"
    );
    // A token for another API is not made into one for the service's.
    const ELSEWHERE: &str = "https://elsewhere.example/api";
    let for_elsewhere = crate::token_endpoint::token_for_api(&app, "Elsewhere caller", ELSEWHERE).await;
    let body = exchange_refused(
        &app,
        svc_ref,
        &[
            ("subject_token", for_elsewhere.as_str()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
        "invalid_request",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not one of this client's"),
        "{body}"
    );
    // Chains stay short.
    let mut token = subject.clone();
    for _ in 0..portcullis_core::exchange::MAX_DEPTH {
        let (status, body) = exchange(
            &app,
            svc_ref,
            &[("subject_token", &token), ("subject_token_type", ACCESS_TOKEN_TYPE)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        token = body["access_token"].as_str().unwrap().to_owned();
    }
    exchange_refused(
        &app,
        svc_ref,
        &[("subject_token", &token), ("subject_token_type", ACCESS_TOKEN_TYPE)],
        "invalid_request",
    )
    .await;
    // Revoking the token it came from (a client's own, no grant stored) ends it.
    assert_eq!(introspect(&app, svc_ref, &token).await["active"], true);
    let r = http()
        .post(app.url("/revoke"))
        .basic_auth(web.id.as_str(), Some(web_secret.expose()))
        .form(&[("token", subject.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        introspect(&app, svc_ref, &token).await["active"],
        false,
        "five exchanges down"
    );
    // Tokens in the query string are refused; several audiences are invalid_target.
    let r = http()
        .post(format!(
            "{}?actor_token=x&actor_token_type={ACCESS_TOKEN_TYPE}",
            app.url("/token")
        ))
        .basic_auth(&svc.0, Some(&svc.1))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", "x"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = http()
        .post(app.url("/token"))
        .basic_auth(&svc.0, Some(&svc.1))
        .body(format!(
            "grant_type={TOKEN_EXCHANGE_GRANT}&subject_token=x&subject_token_type={ACCESS_TOKEN_TYPE}&audience=a&audience=b"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_target");
    // Nor may a public client have the grant, nor one that registers itself.
    let e = app
        .core
        .create_client(
            &ClientInput {
                name: "Public".into(),
                kind: Some(ClientKind::Public),
                grant_types: vec![TOKEN_EXCHANGE_GRANT.into()],
                scopes: "api:read".into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("token exchange"), "{e}");
    app.stop().await;
}

both_backends!(
    a_service_exchanges_the_token_it_was_called_with,
    what_cannot_be_exchanged_is_refused,
);
