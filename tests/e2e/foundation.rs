//! Foundation: discovery accepted by a real OIDC client, JWKS verifying what the server
//! signs, key rotation published before use, health endpoints.

use std::time::{Duration, Instant};

use jsonwebtoken::{DecodingKey, Validation};
use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;
use portcullis_protocol::claims::AccessTokenClaims;
use portcullis_protocol::jwk::JwkSet;
use portcullis_tests::{Backend, both_backends, fresh_database, http, spawn_app, spawn_app_on};
use serde_json::Value;

async fn discovery_is_accepted_by_openidconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &client)
        .await
        .unwrap();
    assert_eq!(meta.issuer().as_str(), app.issuer);
    assert_eq!(meta.token_endpoint().unwrap().as_str(), app.url("/token"));
    assert_eq!(meta.jwks().keys().len(), 2, "active and next keys are published");

    // RFC 8414 document at its own well-known path, with the same issuer.
    let rfc8414 = app.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(rfc8414["issuer"], app.issuer);
    assert_eq!(rfc8414["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(rfc8414["authorization_response_iss_parameter_supported"], true);
    app.stop().await;
}

/// Verifies `token` with the JWKS the server publishes, as a resource server would.
async fn verify_with_jwks(issuer: &str, token: &str) -> Result<AccessTokenClaims, String> {
    let jwks: JwkSet = http()
        .get(format!("{issuer}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.keys.iter().find(|k| k.kid == kid).ok_or("kid not in JWKS")?;
    let key = DecodingKey::from_rsa_components(jwk.n.as_deref().unwrap(), jwk.e.as_deref().unwrap()).unwrap();
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[issuer]);
    jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn client_credentials_token(app: &portcullis_tests::TestApp, id: &str, secret: &str) -> String {
    let body: Value = http()
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn jwks_verifies_tokens_and_rotation_publishes_before_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, secret) = app.confidential_client("https://app.example/cb").await;
    let token = client_credentials_token(&app, client.id.as_str(), secret.expose()).await;
    let claims = verify_with_jwks(&app.issuer, &token).await.unwrap();
    assert_eq!(claims.client_id, client.id.as_str());
    assert_eq!(claims.scope, "api:read");

    // A tampered token fails verification against the same JWKS.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert!(verify_with_jwks(&app.issuer, &parts.join(".")).await.is_err());

    let before: JwkSet = http().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let signing_kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let next_kid = before
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .find(|k| *k != signing_kid)
        .unwrap();

    // The next key was created at start: too new to sign (a JWKS fetched before it may
    // still be cached), so a rotation now is refused and changes nothing. Once it has been
    // published for the window, it may.
    let core = &app.core;
    let rotate_at = |now| {
        core.keys.rotate(
            core.store.as_ref(),
            portcullis_protocol::SigningAlg::RS256,
            now,
            core.settings.retired_key_publication(),
            core.settings.key_publication_window(),
        )
    };
    let keys_before = core.store.list_keys().await.unwrap();
    let next_created = keys_before.iter().find(|k| k.kid == next_kid).unwrap().created_at;
    let ready = next_created + core.settings.key_publication_window();
    let err = rotate_at(ready - time::Duration::seconds(1)).await.unwrap_err();
    assert!(
        matches!(&err, portcullis_core::Error::Invalid { field: "force", message } if message.contains(&next_kid)),
        "{err:?}"
    );
    let kids_of = |keys: &[portcullis_core::model::SigningKeyRecord]| {
        keys.iter().map(|k| (k.kid.clone(), k.state)).collect::<Vec<_>>()
    };
    assert_eq!(kids_of(&core.store.list_keys().await.unwrap()), kids_of(&keys_before));
    // Two rotations at once: each promotes only the next key it checked, so the later
    // one cannot promote the brand-new key the earlier one made.
    let (a, b) = tokio::join!(rotate_at(ready), rotate_at(ready));
    let (new_next, lost) = match (a, b) {
        (Ok(kid), Err(e)) | (Err(e), Ok(kid)) => (kid, e),
        other => panic!("exactly one rotation wins: {other:?}"),
    };
    // Refused as a conflict, or (had it looked after the winner finished) as too soon.
    assert!(
        matches!(
            lost,
            portcullis_core::Error::Conflict(_) | portcullis_core::Error::Invalid { field: "force", .. }
        ),
        "{lost:?}"
    );
    let after: JwkSet = http().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = after.keys.iter().map(|k| k.kid.as_str()).collect();
    // The new next key is published, the previously published next key now signs, and
    // the retired key stays published for tokens it signed.
    assert!(kids.contains(&new_next.as_str()));
    assert!(kids.contains(&next_kid.as_str()));
    assert!(kids.contains(&signing_kid.as_str()));
    let token2 = client_credentials_token(&app, client.id.as_str(), secret.expose()).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token2).unwrap().kid.unwrap(),
        next_kid,
        "the key published before rotation signs after it"
    );
    assert!(
        before.keys.iter().any(|k| k.kid == next_kid),
        "it was published before it signed"
    );
    verify_with_jwks(&app.issuer, &token2).await.unwrap();
    verify_with_jwks(&app.issuer, &token).await.unwrap();
    app.stop().await;
}

async fn health_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    for base in [&app.issuer, &app.admin_url] {
        let r = http().get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = http().get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    app.stop().await;
}

/// A TCP relay from a port of its own to `target`; aborting the task closes the port and
/// every relayed connection, as when the database server goes down.
async fn relay(target: String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        // Dropped with this task, aborting the connections.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task)
}

/// With PostgreSQL down, `/readyz` answers 503 within its own bound, not after the
/// pool's 10 s acquire timeout (sqlx retries a refused connection until then), which is
/// longer than a load balancer's or Kubernetes' probe waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_promptly_when_the_database_is_down() {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let mut via_relay = url::Url::parse(&url).unwrap();
    let target = format!("{}:{}", via_relay.host_str().unwrap(), via_relay.port().unwrap_or(5432));
    let (port, relay) = relay(target).await;
    via_relay.set_port(Some(port)).unwrap();
    let app = spawn_app_on(via_relay.as_str(), None).await;
    let r = http().get(format!("{}/readyz", app.admin_url)).send().await.unwrap();
    assert_eq!(r.status(), 200);

    relay.abort();
    let _ = relay.await;
    let started = Instant::now();
    let r = http().get(format!("{}/readyz", app.admin_url)).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "database unreachable");
    assert!(took < Duration::from_secs(5), "/readyz took {took:?}");
    app.stop().await;
}

both_backends!(
    discovery_is_accepted_by_openidconnect,
    jwks_verifies_tokens_and_rotation_publishes_before_use,
    health_endpoints
);
