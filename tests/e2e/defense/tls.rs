//! Built-in TLS: the server answers https with a certificate from PEM files (rustls on
//! aws-lc-rs), and with an https issuer the cookies become `__Host-…; Secure` and HSTS
//! is sent.

use std::sync::Arc;

use axum::http::Method;
use portcullis_cli::config::TlsFiles;
use portcullis_cli::http_client::{Answer, send};
use portcullis_core::outbound::{OutboundPolicy, Reach};
use portcullis_tests::{Backend, both_backends, fresh_database, spawn_with};

use super::pages::assert_page_headers;

/// A TLS client configuration that trusts exactly `roots`.
fn trusting(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn get(tls: &Arc<rustls::ClientConfig>, url: &str) -> Result<Answer, String> {
    send(
        tls,
        &OutboundPolicy::default(),
        Reach::Any,
        Method::GET,
        &url::Url::parse(url).unwrap(),
        &[],
        Default::default(),
        Some(1 << 20),
    )
    .await
}

async fn built_in_tls_with_secure_cookies_and_hsts(backend: Backend) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-tls").unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();

    let (url, guard) = fresh_database(backend).await;
    let tls_files = files.clone();
    let app = spawn_with(&url, guard.map(Arc::new), move |s| {
        s.core.issuer = s.core.issuer.replace("http://", "https://");
        s.core.access_token_audience = s.core.issuer.clone();
        s.tls = Some(tls_files);
    })
    .await;
    let base = app.issuer.replace("http://", "https://");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = trusting(roots);

    let (status, _, body) = get(&client, &format!("{base}/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["issuer"], base);
    let (status, headers, _) = get(&client, &format!("{base}/login")).await.unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains_key("set-cookie"), "the login page starts a session");
    assert_page_headers("login over https", &headers, true);
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    // The admin listener is TLS too.
    let admin = app.admin_url.replace("http://", "https://");
    let (status, _, _) = get(&client, &format!("{admin}/healthz")).await.unwrap();
    assert!(status.is_success());

    // Plain http to the TLS port gets nowhere; a client that does not trust the
    // certificate refuses it.
    assert!(portcullis_tests::http().get(app.url("/healthz")).send().await.is_err());
    let strict = trusting(rustls::RootCertStore::empty());
    let err = get(&strict, &format!("{base}/healthz")).await.unwrap_err();
    assert!(err.starts_with("TLS with"), "{err}");

    // Nor does the server itself when it reads a client's jwks_uri: keys behind a
    // certificate the system does not trust authenticate nobody.
    let key = crate::private_key_jwt::client_key(portcullis_protocol::SigningAlg::ES256, "k").await;
    let input = portcullis_core::clients::ClientInput {
        name: "Keys behind an untrusted certificate".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks_uri: Some(format!("{base}/jwks")),
        ..Default::default()
    };
    let (published, _) = app.core.create_client(&input, "test").await.unwrap();
    let assertion = crate::private_key_jwt::sign(&key, &crate::private_key_jwt::claims(published.id.as_str(), &base));
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", crate::private_key_jwt::ASSERTION_TYPE)
        .append_pair("client_assertion", &assertion)
        .finish();
    let (status, _, body) = send(
        &client,
        &OutboundPolicy::default(),
        Reach::Any,
        Method::POST,
        &url::Url::parse(&format!("{base}/token")).unwrap(),
        &[("content-type", "application/x-www-form-urlencoded".to_owned())],
        form.into(),
        Some(1 << 16),
    )
    .await
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_client")),
        "{body}"
    );
    app.core.audit.flush().await;
    let failure = app.audit_events("client.auth_failed").await.remove(0);
    let cause = failure.detail["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("TLS with"), "{cause}");
    app.stop().await;
}

both_backends!(built_in_tls_with_secure_cookies_and_hsts);
