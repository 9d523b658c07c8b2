//! ID token signing algorithms, on both backends: a client registering ES256 ID tokens
//! (`id_token_signed_response_alg`), RS256 ID tokens beside ES256 access tokens, and
//! signing keys healing from upgrades and mistakes.

use openidconnect::{Nonce, OAuth2TokenResponse, TokenResponse};
use portcullis_tests::{Backend, TestApp, both_backends, http, spawn_with};
use serde_json::Value;
use url::Url;

use crate::code_flow::{
    PASSWORD, REDIRECT, hinted_request, id_claims_with_at_hash, obtain_tokens_with, relying_party, rp_http_client,
    sign_in_through,
};
use crate::forms::param;

/// The `alg` of every key in the JWKS, sorted.
async fn jwks_algs(app: &TestApp) -> Vec<String> {
    let v: Value = http().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let mut algs: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_owned())
        .collect();
    algs.sort();
    algs
}

/// OIDC Registration §2 `id_token_signed_response_alg`: a client registered for the
/// server's ES256 gets ES256 ID tokens, from the code and from a refresh, which a relying
/// party set up for ES256 verifies (one that expects only RS256 refuses them);
/// the admin form offers and keeps the choice.
async fn a_client_may_register_es256_id_tokens(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = spawn_with(&url, guard.clone(), |s| {
        s.core.signing_alg = portcullis_protocol::SigningAlg::ES256;
    })
    .await;
    let mut input = portcullis_core::clients::ClientInput {
        name: "ES256 app".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: "openid profile".into(),
        id_token_signed_response_alg: Some("ES256".into()),
        ..Default::default()
    };
    let (client, secret) = app.core.create_client(&input, "test").await.unwrap();
    let secret = secret.unwrap();
    app.user("alice", PASSWORD).await;
    let http_client = rp_http_client();
    let rp = relying_party(&app, &http_client, client.id.as_str(), secret.expose()).await;
    let (b, tokens, nonce) = sign_in_through(&app, &rp, &http_client).await;
    let alg_of = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().alg;
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(alg_of(&id_token.to_string()), jsonwebtoken::Algorithm::ES256);
    // The ES256 ID token is a good id_token_hint (prompt=none: a code at once) and names
    // the person at /logout.
    let hinted = hinted_request(&app, client.id.as_str(), &id_token.to_string());
    let resp = b.get(hinted).send().await.unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(param(&back, "code").is_some(), "{back}");
    let mut logout = Url::parse(&app.url("/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", &id_token.to_string());
    let html = b.get(logout).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("/logout/confirm") && !html.contains("id=\"other-account\""),
        "{html}"
    );
    let rs256_only = rp
        .id_token_verifier()
        .set_allowed_algs(vec![openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(
        id_token.claims(&rs256_only, &nonce).is_err(),
        "a relying party expecting RS256 refuses it"
    );
    let es256 = rp
        .id_token_verifier()
        .set_allowed_algs(vec![openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    // at_hash is computed for the ID token's algorithm (SHA-256 for ES256 too).
    id_claims_with_at_hash(&tokens, &es256, &nonce);
    let refreshed = rp
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    let id_token = refreshed.id_token().expect("an ID token on refresh");
    assert_eq!(alg_of(&id_token.to_string()), jsonwebtoken::Algorithm::ES256);
    id_token
        .claims(&es256, |_: Option<&Nonce>| Ok::<(), String>(()))
        .unwrap();
    // Another client keeps the default (its ID tokens: the test below).
    let (other, _) = app.confidential_client(REDIRECT).await;

    // The admin form offers ES256 and shows the client's choice.
    crate::admin_support::operator(&app, "root", portcullis_core::model::AdminRole::Admin).await;
    let p = crate::admin_support::Pages::sign_in(&app, "root", crate::admin_support::ADMIN_PASSWORD).await;
    let (_, html) = p.get(&format!("/admin/clients/{}/edit", client.id)).await;
    assert!(
        html.contains(r#"<option value="ES256" selected>ES256</option>"#),
        "{html}"
    );
    let (_, html) = p.get(&format!("/admin/clients/{}/edit", other.id)).await;
    assert!(
        html.contains(r#"<option value="" selected>RS256 (default)</option>"#),
        "{html}"
    );
    assert!(html.contains(r#"<option value="ES256">ES256</option>"#), "{html}");
    app.stop().await;

    // Back to RS256 and the ES256 keys retired: the client's refresh is refused before
    // the refresh token is used up, and works once the client is edited.
    let app = spawn_with(&url, guard, |_| {}).await;
    // Discovery lists ES256 while it still signs this client's ID tokens (OIDC Discovery
    // §3), and no longer once its keys are retired.
    let id_token_algs = || async {
        app.get_json("/.well-known/openid-configuration").await["id_token_signing_alg_values_supported"].clone()
    };
    assert_eq!(id_token_algs().await, serde_json::json!(["RS256", "ES256"]));
    // Retiring them is refused while a client names the algorithm, naming the client.
    let e = app
        .core
        .retire_signing_keys(portcullis_protocol::SigningAlg::ES256, "test")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(client.id.as_str()) && e.to_string().contains("1 client(s) registered ES256"),
        "{e}"
    );
    assert_eq!(id_token_algs().await, serde_json::json!(["RS256", "ES256"]));
    // Retired all the same (by an earlier version, or racing the client's edit).
    let now = app.core.now();
    app.core
        .store
        .retire_keys(
            portcullis_protocol::SigningAlg::ES256,
            now,
            now + time::Duration::hours(1),
        )
        .await
        .unwrap();
    app.core.keys.reload(app.core.store.as_ref(), now).await.unwrap();
    assert_eq!(id_token_algs().await, serde_json::json!(["RS256"]));
    let refresh = |token: String| {
        let (app, id, secret) = (&app, client.id.as_str(), secret.expose());
        async move {
            let r = http()
                .post(app.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let token = refreshed.refresh_token().unwrap().secret().clone();
    let (s, v) = refresh(token.clone()).await;
    assert_eq!((s, v["error"].as_str()), (500, Some("server_error")), "{v}");
    // A grant without `openid` makes no ID token: code and refresh work as ever.
    let plain = obtain_tokens_with(&app, (client.id.as_str(), secret.expose()), "alice", "profile", &[]).await;
    assert!(plain["id_token"].is_null(), "{plain}");
    let (s, v) = refresh(plain["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, 200, "{v}");
    input.id_token_signed_response_alg = None;
    app.core.update_client(&client.id, &input, "test").await.unwrap();
    let (s, v) = refresh(token).await;
    assert_eq!(s, 200, "the refresh token was not used up: {v}");
    assert_eq!(alg_of(v["id_token"].as_str().unwrap()), jsonwebtoken::Algorithm::RS256);
    app.stop().await;
}

/// OIDC Core §15.1 and Discovery §3: with access tokens signed ES256, ID tokens are still
/// RS256 (the default `id_token_signed_response_alg`), from their own keys, and a
/// relying party that knows only RS256 (the `openidconnect` crate's default) verifies them.
async fn id_tokens_are_rs256_when_access_tokens_are_es256(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = spawn_with(&url, guard.clone(), |s| {
        s.core.signing_alg = portcullis_protocol::SigningAlg::ES256;
    })
    .await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    app.user("alice", PASSWORD).await;
    let http_client = rp_http_client();
    let meta = app.get_json("/.well-known/openid-configuration").await;
    // RS256 is the default; a client may register the server's other algorithm.
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );
    let prompts = meta["prompt_values_supported"].as_array().unwrap();
    assert!(prompts.iter().any(|p| p == "select_account"), "{prompts:?}");
    // An active and a next key for each algorithm.
    assert_eq!(jwks_algs(&app).await, ["ES256", "ES256", "RS256", "RS256"]);

    let rp = relying_party(&app, &http_client, client.id.as_str(), secret.expose()).await;
    let (b, tokens, nonce) = sign_in_through(&app, &rp, &http_client).await;
    let alg_of = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().alg;
    assert_eq!(alg_of(tokens.access_token().secret()), jsonwebtoken::Algorithm::ES256);
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(alg_of(&id_token.to_string()), jsonwebtoken::Algorithm::RS256);
    // at_hash is computed for the ID token's algorithm over the ES256 access token.
    id_claims_with_at_hash(&tokens, &rp.id_token_verifier(), &nonce);
    // The RS256 ID token works as id_token_hint (OIDC Core §3.1.2.1) under ES256 settings.
    let hinted = hinted_request(&app, client.id.as_str(), &id_token.to_string());
    let resp = b.get(hinted.clone()).send().await.unwrap();
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert!(param(&back, "code").is_some(), "{back}");
    // A refresh signs both again, each with its own key.
    let refreshed = rp
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_eq!(
        alg_of(refreshed.access_token().secret()),
        jsonwebtoken::Algorithm::ES256
    );
    assert_eq!(
        alg_of(&refreshed.id_token().unwrap().to_string()),
        jsonwebtoken::Algorithm::RS256
    );

    // Rotation is per algorithm: rotating ES256 leaves the RS256 keys alone; an algorithm
    // not in use has no keys to rotate.
    let rs256_before: Vec<_> = app
        .core
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.alg == portcullis_protocol::SigningAlg::RS256)
        .map(|k| (k.kid, k.state))
        .collect();
    app.core
        .rotate_signing_keys(Some(portcullis_protocol::SigningAlg::ES256), true, "test")
        .await
        .unwrap();
    let keys = app.core.list_signing_keys().await.unwrap();
    let rs256_after: Vec<_> = keys
        .iter()
        .filter(|k| k.alg == portcullis_protocol::SigningAlg::RS256)
        .map(|k| (k.kid.clone(), k.state))
        .collect();
    assert_eq!(rs256_before, rs256_after);
    assert_eq!(
        keys.iter()
            .filter(|k| k.alg == portcullis_protocol::SigningAlg::ES256)
            .count(),
        3,
        "next, active, retired"
    );
    let e = app
        .core
        .rotate_signing_keys(Some(portcullis_protocol::SigningAlg::EdDSA), true, "test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not in use"), "{e}");
    let e = app
        .core
        .retire_signing_keys(portcullis_protocol::SigningAlg::ES256, "test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    app.stop().await;

    // Back to RS256 access tokens: a restart; the ES256 keys stay until retired.
    let app = spawn_with(&url, guard, |_| {}).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let (status, token) = app.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(
        alg_of(token["access_token"].as_str().unwrap()),
        jsonwebtoken::Algorithm::RS256
    );
    let live = |keys: &[portcullis_core::model::SigningKeyRecord]| {
        keys.iter()
            .filter(|k| {
                k.alg == portcullis_protocol::SigningAlg::ES256 && k.state != portcullis_core::model::KeyState::Retired
            })
            .count()
    };
    assert_eq!(live(&app.core.list_signing_keys().await.unwrap()), 2);
    app.core
        .retire_signing_keys(portcullis_protocol::SigningAlg::ES256, "test")
        .await
        .unwrap();
    let keys = app.core.list_signing_keys().await.unwrap();
    assert_eq!(live(&keys), 0);
    // Again, or an algorithm that never had keys: nothing to retire, said so, not
    // recorded as a retirement.
    for alg in [
        portcullis_protocol::SigningAlg::ES256,
        portcullis_protocol::SigningAlg::EdDSA,
    ] {
        let e = app.core.retire_signing_keys(alg, "test").await.unwrap_err();
        assert!(
            e.to_string().contains("no") && e.to_string().contains("keys to retire"),
            "{e}"
        );
    }
    app.core.audit.flush().await;
    let retired = app.audit_events("key.retired").await;
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert!(
        keys.iter()
            .filter(|k| k.alg == portcullis_protocol::SigningAlg::ES256)
            .all(|k| k.publish_until.is_some_and(|t| t > app.core.now())),
        "retired keys stay published while their tokens live"
    );
    assert!(jwks_algs(&app).await.iter().any(|a| a == "ES256"));
    // The periodic cleanup deletes them once their publication has ended.
    let after = app.core.now() + app.core.settings.retired_key_publication() + time::Duration::seconds(1);
    app.core.cleanup(after).await;
    let keys = app.core.list_signing_keys().await.unwrap();
    assert!(
        keys.iter().all(|k| k.alg != portcullis_protocol::SigningAlg::ES256),
        "{keys:?}"
    );
    app.stop().await;
}

/// Upgrades and mistakes: a next key left by `keys rotate --alg` is promoted when its
/// algorithm becomes `signing_alg` (it was published already), and keys a node signs with
/// that disappear (retired by an operator whose settings differ) are made again.
async fn signing_keys_heal_from_upgrades_and_mistakes(backend: Backend) {
    use portcullis_core::model::KeyState;
    use portcullis_protocol::SigningAlg;
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = spawn_with(&url, guard.clone(), |_| {}).await;
    // What an earlier version's `keys rotate --alg ES256` left: an ES256 next key.
    let kek = portcullis_core::crypto::Kek::parse(portcullis_tests::TEST_KEK).unwrap();
    let es_next = portcullis_core::keys::generate(&kek, SigningAlg::ES256, KeyState::Next, app.core.now())
        .await
        .unwrap();
    app.core.store.insert_key(&es_next).await.unwrap();
    app.stop().await;

    let app = spawn_with(&url, guard, |s| s.core.signing_alg = SigningAlg::ES256).await;
    let keys = app.core.list_signing_keys().await.unwrap();
    let state_of = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state);
    assert_eq!(
        state_of(&es_next.kid),
        Some(KeyState::Active),
        "the published key signs"
    );
    let es: Vec<_> = keys.iter().filter(|k| k.alg == SigningAlg::ES256).collect();
    assert_eq!(es.len(), 2, "{es:?}");
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let token = || app.client_credentials(client.id.as_str(), secret.expose());
    let (status, body) = token().await;
    assert_eq!(status, 200, "{body}");
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(es_next.kid.as_str()));

    // Someone retires the ES256 keys behind this node's back: within a resync interval
    // (500 ms in tests) it has new ones and issues tokens again.
    let now = app.core.now();
    app.core
        .store
        .retire_keys(SigningAlg::ES256, now, now + time::Duration::hours(1))
        .await
        .unwrap();
    let mut healed = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let keys = app.core.list_signing_keys().await.unwrap();
        let live = |state| keys.iter().any(|k| k.alg == SigningAlg::ES256 && k.state == state);
        if live(KeyState::Active) && live(KeyState::Next) && app.core.keys.ring().signer(SigningAlg::ES256).is_some() {
            healed = true;
            break;
        }
    }
    assert!(healed, "no new ES256 keys");
    let (status, body) = token().await;
    assert_eq!(status, 200, "{body}");
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_ne!(header.kid.as_deref(), Some(es_next.kid.as_str()));
    app.stop().await;
}

/// OIDC Core §5.3.2 with `userinfo_signed_response_alg`: UserInfo answers such a client
/// with a JWT (`application/jwt`) signed by a key in the JWKS, with `iss`, `aud` and the
/// claims the JSON answer has, which the `openidconnect` crate verifies; other clients
/// keep plain JSON. Discovery lists the algorithms; an algorithm without keys is refused
/// at registration (admin API and `/register`), where a good one is echoed.
async fn a_client_may_register_signed_userinfo(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.signing_alg = portcullis_protocol::SigningAlg::ES256;
        s.core.registration = portcullis_core::registration::RegistrationMode::Open;
    })
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["userinfo_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );
    let input = |alg: Option<&str>| portcullis_core::clients::ClientInput {
        name: "Signed UserInfo".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".into()],
        scopes: "openid profile email".into(),
        userinfo_signed_response_alg: alg.map(str::to_owned),
        ..Default::default()
    };
    app.user("alice", PASSWORD).await;
    for alg in ["RS256", "ES256"] {
        let (client, secret) = app.core.create_client(&input(Some(alg)), "test").await.unwrap();
        let secret = secret.unwrap();
        let tokens = obtain_tokens_with(
            &app,
            (client.id.as_str(), secret.expose()),
            "alice",
            "openid profile email",
            &[],
        )
        .await;
        let access = tokens["access_token"].as_str().unwrap();
        let r = http()
            .get(app.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/jwt");
        let jwt = r.text().await.unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.get_json("/jwks").await).unwrap();
        let key = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("signed by a published key");
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_audience(&[client.id.as_str()]);
        v.set_issuer(&[&app.issuer]);
        v.set_required_spec_claims(&["iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(&jwt, &jsonwebtoken::DecodingKey::from_jwk(key).unwrap(), &v)
            .unwrap()
            .claims;
        let id_claims = crate::pairwise::jwt_claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(claims["sub"], id_claims["sub"]);
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["email"], "alice@example.com");

        // A real relying party verifies it too (the `openidconnect` crate's UserInfo
        // verifier takes RS256 only).
        if alg != "RS256" {
            continue;
        }
        let http_client = rp_http_client();
        let rp = relying_party(&app, &http_client, client.id.as_str(), secret.expose()).await;
        let (_, tokens, _) = sign_in_through(&app, &rp, &http_client).await;
        let info: openidconnect::core::CoreUserInfoClaims = rp
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .require_signed_response(true)
            .request_async(&http_client)
            .await
            .unwrap();
        assert_eq!(info.subject().as_str(), claims["sub"].as_str().unwrap());
    }
    // Plain JSON for the others.
    let (plain, secret) = app.core.create_client(&input(None), "test").await.unwrap();
    let tokens = obtain_tokens_with(
        &app,
        (plain.id.as_str(), secret.unwrap().expose()),
        "alice",
        "openid",
        &[],
    )
    .await;
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");

    // Refused: an algorithm without keys here, or none at all.
    for bad in ["EdDSA", "HS256", "none"] {
        let e = app.core.create_client(&input(Some(bad)), "test").await.unwrap_err();
        assert!(
            matches!(
                e,
                portcullis_core::Error::Invalid {
                    field: "userinfo_signed_response_alg",
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
    }
    let register = |alg: &str| {
        http()
            .post(app.url("/register"))
            .json(&serde_json::json!({"redirect_uris": [REDIRECT], "userinfo_signed_response_alg": alg}))
            .send()
    };
    let r = register("ES256").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["userinfo_signed_response_alg"],
        "ES256"
    );
    let r = register("PS256").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client_metadata");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("userinfo_signed_response_alg:"),
        "{e}"
    );
    app.stop().await;
}

/// `keys publish --alg` ahead of a `signing_alg` change: the algorithm's keys are in the
/// JWKS before any node signs with them, and a node restarted with it signs with the key
/// published then, so resource servers meet no unknown `kid`.
async fn keys_are_published_before_signing_alg_changes(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let guard = guard.map(std::sync::Arc::new);
    let app = spawn_with(&url, guard.clone(), |_| {}).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!("database_url = \"{url}\"\nkek = \"{}\"\n", portcullis_tests::TEST_KEK),
    )
    .unwrap();
    let err = crate::cli::portcullis(&config, &["keys", "publish", "--alg", "HS256"])
        .await
        .unwrap_err();
    assert!(err.starts_with("--alg"), "{err}");
    crate::cli::portcullis(&config, &["keys", "publish", "--alg", "ES256"])
        .await
        .unwrap();
    // The running RS256 node publishes them within its resync, and does not sign with them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while jwks_algs(&app).await != ["ES256", "ES256", "RS256", "RS256"] {
        assert!(std::time::Instant::now() < deadline, "{:?}", jwks_algs(&app).await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let header = |token: &Value| jsonwebtoken::decode_header(token["access_token"].as_str().unwrap()).unwrap();
    let (s, token) = app.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(s, 200, "{token}");
    assert_eq!(header(&token).alg, jsonwebtoken::Algorithm::RS256);
    let es256 = || async {
        app.core
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.alg == portcullis_protocol::SigningAlg::ES256)
            .map(|k| (k.kid, k.state))
            .collect::<Vec<_>>()
    };
    let published = es256().await;
    assert_eq!(published.len(), 2, "an active and a next key: {published:?}");
    // Again: nothing more.
    crate::cli::portcullis(&config, &["keys", "publish", "--alg", "ES256"])
        .await
        .unwrap();
    assert_eq!(es256().await, published);
    app.core.audit.flush().await;
    assert_eq!(app.audit_events("key.published").await.len(), 1);
    app.stop().await;

    let app = spawn_with(&url, guard, |s| {
        s.core.signing_alg = portcullis_protocol::SigningAlg::ES256;
    })
    .await;
    let (s, token) = app.client_credentials(client.id.as_str(), secret.expose()).await;
    assert_eq!(s, 200, "{token}");
    let signed_by = header(&token);
    assert_eq!(signed_by.alg, jsonwebtoken::Algorithm::ES256);
    let active = published
        .iter()
        .find(|(_, state)| *state == portcullis_core::model::KeyState::Active)
        .unwrap();
    assert_eq!(signed_by.kid.as_deref(), Some(active.0.as_str()));
    app.stop().await;
}

both_backends!(
    a_client_may_register_es256_id_tokens,
    a_client_may_register_signed_userinfo,
    id_tokens_are_rs256_when_access_tokens_are_es256,
    signing_keys_heal_from_upgrades_and_mistakes,
    keys_are_published_before_signing_alg_changes,
);
