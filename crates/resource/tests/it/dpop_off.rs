//! With DPoP off (no `dpop_base_url`), the extractors answer exactly as they did before
//! DPoP support: the `DPoP` scheme is a scheme they do not know, and any `cnf` but `null`
//! refuses a token as bound to a key, first of all.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use portcullis_resource::{AuthError, Clock as _, IntrospectionValidator, InvalidToken};
use serde_json::json;
use tower::ServiceExt as _;

use crate::dpop::{DpopSetup, REALM, app, thumbprint};
use crate::support::{CLIENT_ID, CLIENT_SECRET, FakeIssuer, token_shaped, unix};

/// Status, every header (sorted) and the body of an answer, to compare answers byte for byte.
type RawAnswer = (StatusCode, Vec<(String, Vec<u8>)>, Vec<u8>);

async fn raw(app: &Router, headers: &[(&str, &str)]) -> RawAnswer {
    let mut req = Request::builder().uri("/notes");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let mut all: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    all.sort();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, all, body.to_vec())
}

/// RFC 6750 §3.1: a request with a scheme we do not know has no credentials for us: `401`,
/// a bare `Bearer realm="…"` challenge, no error code, no body — for `DPoP` as for `Basic`,
/// whatever follows it. (It was `invalid_token` with a JSON body.)
#[tokio::test]
async fn the_dpop_scheme_is_an_unknown_scheme() {
    let d = DpopSetup::new().await;
    let app = app(d.s.validator.clone());
    let token = d.bound_token();
    let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
    let basic = raw(&app, &[("authorization", "Basic YTpi")]).await;
    assert_eq!(basic.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        basic.1,
        [
            ("content-length".to_owned(), b"0".to_vec()),
            (
                "www-authenticate".to_owned(),
                format!(r#"Bearer realm="{REALM}""#).into_bytes()
            )
        ]
    );
    assert!(basic.2.is_empty());
    let bound = format!("DPoP {token}");
    for headers in [
        vec![("authorization", "DPoP abc")],
        vec![("authorization", "DPoP a\"b")],
        vec![("authorization", "DPoP")],
        vec![("authorization", "dpop abc"), ("dpop", "x")],
        vec![("authorization", bound.as_str()), ("dpop", proof.as_str())],
    ] {
        assert_eq!(raw(&app, &headers).await, basic, "{headers:?}");
    }
    // Called by hand, `validate_dpop` says why.
    assert!(matches!(
        d.s.validator
            .validate_dpop(&token, &proof, &"GET".parse().unwrap(), &"/notes".parse().unwrap())
            .await,
        Err(AuthError::InvalidToken(InvalidToken::DpopNotEnabled))
    ));
}

/// The answer a token bound to a key got before DPoP support, and gets with DPoP off.
fn bound_to_key() -> RawAnswer {
    let description = InvalidToken::BoundToKey.description();
    let body = format!(r#"{{"error":"invalid_token","error_description":"{description}"}}"#);
    (
        StatusCode::UNAUTHORIZED,
        vec![
            ("content-length".to_owned(), body.len().to_string().into_bytes()),
            ("content-type".to_owned(), b"application/json".to_vec()),
            (
                "www-authenticate".to_owned(),
                format!(r#"Bearer realm="{REALM}", error="invalid_token", error_description="{description}""#)
                    .into_bytes(),
            ),
        ],
        body.into_bytes(),
    )
}

/// A bearer token's `cnf`, JWKS mode: `null` is no `cnf` (the token is accepted, as it was);
/// any other value refuses the token as bound to a key, before anything else is looked at
/// (an expired bound token too), with the very answer it had.
#[tokio::test]
async fn cnf_of_bearer_tokens_as_before() {
    let d = DpopSetup::new().await;
    let app = app(d.s.validator.clone());
    let null = d.bound_token_with(|c| c["cnf"] = json!(null));
    let a = raw(&app, &[("authorization", &format!("Bearer {null}"))]).await;
    assert_eq!(a.0, StatusCode::OK, "{:?}", String::from_utf8_lossy(&a.2));
    for cnf in [
        json!({"jkt": thumbprint(&d.client.key)}),
        json!("x"),
        json!({}),
        json!([]),
        json!({"jkt": 1}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    ] {
        let token = d.bound_token_with(|c| c["cnf"] = cnf.clone());
        let a = raw(&app, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(a, bound_to_key(), "{cnf}");
    }
    let expired = d.bound_token_with(|c| c["exp"] = json!(0));
    let a = raw(&app, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!(a, bound_to_key());
}

/// The same in introspection mode: `null` is no `cnf`; any other `cnf`, or `token_type`
/// `DPoP`, refuses the token as bound to a key, and the refusal is remembered as it was
/// (one call for two requests).
#[tokio::test]
async fn cnf_of_introspected_tokens_as_before() {
    let issuer = FakeIssuer::start(&[]).await;
    let clock = std::sync::Arc::new(portcullis_resource::FixedClock::starting_now());
    let now = unix(clock.now());
    let validator = IntrospectionValidator::builder(&issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(REALM)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let app = app(validator);
    let answer = |name: &str, cnf: serde_json::Value, token_type: &str| {
        let token = token_shaped(&issuer.url, name, clock.now());
        issuer.answer_json(
            &token,
            json!({
                "active": true, "scope": "notes:read", "client_id": "cli", "sub": "bob",
                "exp": now + 60, "aud": REALM, "iss": issuer.url, "token_type": token_type, "cnf": cnf,
            }),
        );
        token
    };
    let null = answer("null", json!(null), "Bearer");
    let a = raw(&app, &[("authorization", &format!("Bearer {null}"))]).await;
    assert_eq!(a.0, StatusCode::OK, "{:?}", String::from_utf8_lossy(&a.2));
    let mut hits = issuer.introspection_hits();
    for (name, cnf, token_type) in [
        (
            "jkt",
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            "DPoP",
        ),
        ("string", json!("x"), "Bearer"),
        ("empty", json!({}), "Bearer"),
        ("typed", json!(null), "DPoP"),
    ] {
        let token = answer(name, cnf, token_type);
        for _ in 0..2 {
            let a = raw(&app, &[("authorization", &format!("Bearer {token}"))]).await;
            assert_eq!(a, bound_to_key(), "{name}");
        }
        hits += 1;
        assert_eq!(issuer.introspection_hits(), hits, "{name}: the refusal is remembered");
    }
}
