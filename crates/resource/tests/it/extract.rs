//! The axum extractors and RFC 6750 §3 responses, driven through a router with `oneshot`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_protocol::token::IntrospectionResponse;
use portcullis_resource::{
    AuthRejection, IntrospectionValidator, JwksValidator, ScopeRequirement, Scoped, Validator, VerifiedClaims,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::jwks::Setup;
use crate::support::{CLIENT_ID, CLIENT_SECRET, FakeIssuer, Key, token_shaped};

struct NotesRead;
impl ScopeRequirement for NotesRead {
    const SCOPES: &'static [&'static str] = &["notes:read"];
}

struct NotesReadAndAdmin;
impl ScopeRequirement for NotesReadAndAdmin {
    const SCOPES: &'static [&'static str] = &["notes:read", "notes:admin"];
}

/// A state with the validator as one field among others, reached through `FromRef`.
#[derive(Clone)]
struct AppState {
    validator: Validator,
    name: &'static str,
}

impl FromRef<AppState> for Validator {
    fn from_ref(state: &AppState) -> Self {
        state.validator.clone()
    }
}

async fn notes_get(caller: Scoped<NotesRead>) -> Json<Value> {
    Json(json!({"sub": caller.subject, "client_id": caller.client_id}))
}

async fn notes_post(claims: VerifiedClaims) -> Result<&'static str, AuthRejection> {
    claims.require_scope("notes:write")?;
    Ok("created")
}

/// Scopes decided at run time, from the path.
async fn board_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(board): axum::extract::Path<String>,
    claims: VerifiedClaims,
) -> Result<String, AuthRejection> {
    state
        .validator
        .require_scopes(&claims, &[&format!("boards:{board}:read")])?;
    Ok(format!("board {board}"))
}

async fn admin(_caller: Scoped<NotesReadAndAdmin>) -> &'static str {
    "admin"
}

async fn me(axum::extract::State(state): axum::extract::State<AppState>, claims: VerifiedClaims) -> String {
    format!("{}:{}", state.name, claims.subject)
}

fn app(validator: Validator) -> Router {
    Router::new()
        .route("/notes", get(notes_get).post(notes_post))
        .route("/admin", get(admin))
        .route("/me", get(me))
        .route("/boards/{board}", get(board_get))
        .with_state(AppState {
            validator,
            name: "notes",
        })
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(app: &Router, method: &str, uri: &str, auth: Option<&str>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        challenge,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn valid_token_with_scope() {
    let s = Setup::new().await;
    let app = app(s.validator.clone().into());
    let bearer = format!("Bearer {}", s.token());
    let a = call(&app, "GET", "/notes", Some(&bearer)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        serde_json::from_str::<Value>(&a.body).unwrap(),
        json!({"sub": "alice", "client_id": "notes-web"})
    );
    // The scheme is case-insensitive (RFC 7235 §2.1).
    let lower = format!("bearer {}", s.token());
    assert_eq!(call(&app, "GET", "/notes", Some(&lower)).await.status, StatusCode::OK);
    // State and claims together.
    assert_eq!(call(&app, "GET", "/me", Some(&bearer)).await.body, "notes:alice");
}

#[tokio::test]
async fn no_token_is_401_without_error_attribute() {
    let s = Setup::new().await;
    let app = app(s.validator.clone().into());
    for auth in [None, Some("Basic YWxpY2U6c2VjcmV0")] {
        let a = call(&app, "GET", "/notes", auth).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        // RFC 6750 §3.1: no error code when the request had no authentication.
        assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="notes-api""#));
    }
}

#[tokio::test]
async fn invalid_token_is_401_invalid_token() {
    let s = Setup::new().await;
    let app = app(s.validator.clone().into());
    let expired = {
        let mut c = s.claims();
        c["exp"] = json!(0);
        s.key.sign(&c)
    };
    let forged = Key::rsa("k1").sign(&s.claims());
    for token in [expired, forged, "not.a.jwt".to_owned()] {
        let a = call(&app, "GET", "/notes", Some(&format!("Bearer {token}"))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let challenge = a.challenge.unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="notes-api", error="invalid_token", error_description=""#),
            "{challenge}"
        );
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    let a = call(&app, "GET", "/notes", Some("Bearer")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.challenge.unwrap().contains(r#"error="invalid_request""#));
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let s = Setup::new().await;
    let app = app(s.validator.clone().into());
    let bearer = format!("Bearer {}", s.token()); // scope "openid notes:read"

    // Through the method on the claims (handler-returned rejection, no realm).
    let a = call(&app, "POST", "/notes", Some(&bearer)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let challenge = a.challenge.unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.ends_with(r#"scope="notes:write""#), "{challenge}");
    assert_eq!(
        serde_json::from_str::<Value>(&a.body).unwrap()["error"],
        "insufficient_scope"
    );

    // Through the extractor: realm included, every scope needed listed.
    let a = call(&app, "GET", "/admin", Some(&bearer)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let challenge = a.challenge.unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="notes-api", error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.ends_with(r#"scope="notes:read notes:admin""#), "{challenge}");

    // Through the validator, for scopes decided at run time: realm included too.
    let a = call(&app, "GET", "/boards/b7", Some(&bearer)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let challenge = a.challenge.unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="notes-api", error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.ends_with(r#"scope="boards:b7:read""#), "{challenge}");
    let mut c = s.claims();
    c["scope"] = json!("boards:b7:read");
    let reader = format!("Bearer {}", s.key.sign(&c));
    assert_eq!(call(&app, "GET", "/boards/b7", Some(&reader)).await.body, "board b7");

    // With the scope, the POST goes through.
    let mut c = s.claims();
    c["scope"] = json!("notes:write");
    let writer = format!("Bearer {}", s.key.sign(&c));
    assert_eq!(call(&app, "POST", "/notes", Some(&writer)).await.body, "created");
}

#[tokio::test]
async fn token_in_query_string_refused() {
    let s = Setup::new().await;
    let app = app(s.validator.clone().into());
    let token = s.token();
    let a = call(&app, "GET", &format!("/notes?access_token={token}"), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.challenge.unwrap().contains(r#"error="invalid_request""#));
    assert!(!a.body.contains("alice"));
    // Not even alongside a valid header: two methods at once are invalid (RFC 6750 §3.1).
    let a = call(
        &app,
        "GET",
        &format!("/notes?access_token={token}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Nor with the name percent-encoded, as the application would still read it.
    for name in ["%61ccess_token", "access%5ftoken", "%61ccess%5Ftoken"] {
        let a = call(
            &app,
            "GET",
            &format!("/notes?{name}={token}"),
            Some(&format!("Bearer {token}")),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}");
        assert!(a.challenge.unwrap().contains(r#"error="invalid_request""#));
    }
}

#[tokio::test]
async fn state_can_be_the_validator_itself() {
    let s = Setup::new().await;
    let app = Router::new()
        .route("/notes", get(notes_get))
        .with_state(s.validator.clone());
    let a = call(&app, "GET", "/notes", Some(&format!("Bearer {}", s.token()))).await;
    assert_eq!(a.status, StatusCode::OK);
}

/// A token of `issuer` named `name` (its signature is never checked: the fake issuer answers
/// for it by name).
fn token_named(issuer: &FakeIssuer, name: &str) -> String {
    token_shaped(&issuer.url, name, std::time::SystemTime::now())
}

/// The fake issuer answers the token it returns as bob's, active for a minute, with `scope`.
fn issuer_knows_bob(issuer: &FakeIssuer, scope: &str) -> String {
    let now = crate::support::unix(std::time::SystemTime::now());
    let token = token_named(issuer, "bob");
    issuer.answer(
        &token,
        IntrospectionResponse {
            active: true,
            scope: Some(scope.into()),
            client_id: Some("cli".into()),
            sub: Some("bob".into()),
            exp: Some(now + 60),
            aud: Some("notes-api".into()),
            ..IntrospectionResponse::default()
        },
    );
    token
}

/// An introspection validator for `notes-api` against `issuer`, without a cache (every
/// validation it makes is a call).
async fn uncached_validator(issuer: &FakeIssuer) -> IntrospectionValidator {
    IntrospectionValidator::builder(&issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience("notes-api")
        .cache_max_ttl(Duration::ZERO)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn introspection_behind_the_same_extractor() {
    let issuer = FakeIssuer::start(&[]).await;
    let bob = format!("Bearer {}", issuer_knows_bob(&issuer, "notes:read"));
    let v = uncached_validator(&issuer).await;
    let router = app(v.clone().into());
    let a = call(&router, "GET", "/notes", Some(&bob)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("bob"));
    let other = format!("Bearer {}", token_named(&issuer, "other"));
    let a = call(&router, "GET", "/notes", Some(&other)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge
            .unwrap()
            .contains(r#"error_description="the token is not active""#)
    );

    // The authorization server unreachable: 503, nothing about the cause in the answer.
    let down =
        IntrospectionValidator::new("http://127.0.0.1:1/introspect", "notes-api", CLIENT_ID, CLIENT_SECRET).unwrap();
    let a = call(&app(down.into()), "GET", "/notes", Some(&bob)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!a.body.contains("127.0.0.1"), "{}", a.body);
    assert!(a.challenge.is_none());
}

/// A layer that demands a valid token (its own validator) before the inner router runs.
async fn gate(_claims: VerifiedClaims, request: Request<Body>, next: Next) -> Response {
    next.run(request).await
}

async fn whoami(claims: VerifiedClaims) -> String {
    claims.subject
}

/// Claims a layer validated for one audience must not open a router that answers to
/// another: the inner extractor, with another validator in its state, checks the token
/// against its own rules.
#[tokio::test]
async fn claims_are_reused_only_by_the_validator_that_checked_them() {
    let s = Setup::new().await; // audience notes-api
    let billing = JwksValidator::builder(&s.issuer.url)
        .audience("billing-api")
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/invoices", get(whoami))
        .with_state(Validator::from(billing))
        .layer(middleware::from_fn_with_state(
            Validator::from(s.validator.clone()),
            gate,
        ));

    // Good for the layer's audience only: the inner router refuses it.
    let a = call(&app, "GET", "/invoices", Some(&format!("Bearer {}", s.token()))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let challenge = a.challenge.unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="billing-api", error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("not meant for this resource server"), "{challenge}");

    // A token for both audiences passes both.
    let mut c = s.claims();
    c["aud"] = json!(["notes-api", "billing-api"]);
    let both = s.key.sign(&c);
    let a = call(&app, "GET", "/invoices", Some(&format!("Bearer {both}"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "alice");

    // Same with the two validators the other way round: the layer refuses it.
    let a = call(
        &app,
        "GET",
        "/invoices",
        Some(&format!("Bearer {}", {
            let mut c = s.claims();
            c["aud"] = json!("billing-api");
            s.key.sign(&c)
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.challenge.unwrap().starts_with(r#"Bearer realm="notes-api""#));
}

/// The same validator, in a layer and in the handler (twice), asks the authorization server
/// once per request.
#[tokio::test]
async fn the_same_validator_validates_once_per_request() {
    let issuer = FakeIssuer::start(&[]).await;
    let bob = format!("Bearer {}", issuer_knows_bob(&issuer, "notes:read notes:admin"));
    let v = uncached_validator(&issuer).await;
    async fn both(_read: Scoped<NotesRead>, admin: Scoped<NotesReadAndAdmin>) -> String {
        admin.subject.clone()
    }
    let app = Router::new()
        .route("/admin", get(both))
        .with_state(v.clone())
        .layer(middleware::from_fn_with_state(Validator::from(v.clone()), gate));
    let a = call(&app, "GET", "/admin", Some(&bob)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "bob");
    assert_eq!(issuer.introspection_hits(), 1);

    // Another validator configured alike is still another validator: it asks again.
    let twin = uncached_validator(&issuer).await;
    let app = Router::new()
        .route("/admin", get(both))
        .with_state(twin)
        .layer(middleware::from_fn_with_state(Validator::from(v), gate));
    assert_eq!(call(&app, "GET", "/admin", Some(&bob)).await.status, StatusCode::OK);
    assert_eq!(issuer.introspection_hits(), 3);
}

/// A middleware that replaced the token after a layer validated it: the claims of the old
/// token are not handed to the handler.
#[tokio::test]
async fn claims_are_not_reused_for_another_token() {
    async fn swap(mut request: Request<Body>, next: Next) -> Response {
        let forged = header::HeaderValue::from_static("Bearer not.a.jwt");
        request.headers_mut().insert(header::AUTHORIZATION, forged);
        next.run(request).await
    }
    let s = Setup::new().await;
    let app = Router::new()
        .route("/me", get(whoami))
        .with_state(s.validator.clone())
        .layer(middleware::from_fn(swap))
        .layer(middleware::from_fn_with_state(
            Validator::from(s.validator.clone()),
            gate,
        ));
    let a = call(&app, "GET", "/me", Some(&format!("Bearer {}", s.token()))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.challenge.unwrap().contains("the token is malformed"));
}

/// The authorization server asked to wait: the API answers 503 with `Retry-After` (whole
/// seconds, rounded up) and does not call it again meanwhile.
#[tokio::test]
async fn busy_authorization_server_is_503_with_retry_after() {
    let issuer = FakeIssuer::start(&[]).await;
    let clock = std::sync::Arc::new(portcullis_resource::FixedClock::starting_now());
    let v = IntrospectionValidator::builder(&issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience("notes-api")
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let router = app(v.into());
    let token = format!("Bearer {}", token_named(&issuer, "any"));
    issuer.busy(Some((StatusCode::TOO_MANY_REQUESTS, Some("7"))));
    for (advance, expected) in [(0, "7"), (2500, "5")] {
        clock.advance(Duration::from_millis(advance));
        let response = router
            .clone()
            .oneshot(
                Request::get("/notes")
                    .header(header::AUTHORIZATION, &token)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], expected);
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["error"],
            "temporarily_unavailable"
        );
    }
    assert_eq!(issuer.introspection_hits(), 1);
}
