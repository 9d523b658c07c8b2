//! Introspection mode: client authentication, active/inactive answers, and the cache's
//! bounds (token `exp`, maximum TTL, entry count).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use portcullis_protocol::token::IntrospectionResponse;
use portcullis_resource::{AuthError, Clock as _, FixedClock, IntrospectionValidator, InvalidToken};

use crate::support::{CLIENT_ID, CLIENT_SECRET, FakeIssuer, chunked, raw_server, token_shaped, unix};

const AUD: &str = "notes-api";

struct Setup {
    issuer: FakeIssuer,
    clock: Arc<FixedClock>,
    start: std::time::SystemTime,
}

impl Setup {
    async fn new() -> Self {
        let clock = Arc::new(FixedClock::starting_now());
        Self {
            issuer: FakeIssuer::start(&[]).await,
            start: clock.now(),
            clock,
        }
    }

    /// The token named `name`: shaped like an access token of this issuer, so that it is
    /// worth an introspection call; the same string for the same name throughout a test.
    fn token(&self, name: &str) -> String {
        token_shaped(&self.issuer.url, name, self.start)
    }

    /// An active answer for the token named `name`, expiring `ttl` seconds from the
    /// clock's now.
    fn active(&self, name: &str, ttl: i64) {
        let now = unix(self.clock.now());
        self.issuer.answer(
            &self.token(name),
            IntrospectionResponse {
                active: true,
                scope: Some("notes:read notes:write".into()),
                client_id: Some("notes-web".into()),
                sub: Some("alice".into()),
                exp: Some(now + ttl),
                iat: Some(now),
                aud: Some(AUD.into()),
                iss: Some(self.issuer.url.clone()),
                jti: Some(format!("jti-{name}")),
                token_type: Some("Bearer".into()),
                ..IntrospectionResponse::default()
            },
        );
    }

    fn revoke(&self, name: &str) {
        self.issuer.answer(&self.token(name), IntrospectionResponse::inactive());
    }

    async fn validator(&self, max_ttl: Duration, max_entries: usize) -> IntrospectionValidator {
        IntrospectionValidator::builder(&self.issuer.url, CLIENT_ID, CLIENT_SECRET)
            .audience(AUD)
            .clock(self.clock.clone())
            .cache_max_ttl(max_ttl)
            .cache_max_entries(max_entries)
            .build()
            .await
            .unwrap()
    }
}

fn reason(r: Result<portcullis_resource::VerifiedClaims, AuthError>) -> InvalidToken {
    match r {
        Err(AuthError::InvalidToken(reason)) => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn active_token_accepted() {
    let s = Setup::new().await;
    s.active("tok-1", 600);
    let v = s.validator(Duration::from_secs(5), 100).await;
    assert_eq!(v.introspection_endpoint(), format!("{}/introspect", s.issuer.url));
    let claims = v.validate(&s.token("tok-1")).await.unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.client_id, "notes-web");
    assert_eq!(claims.issuer, s.issuer.url);
    assert_eq!(claims.audience, [AUD]);
    assert_eq!(claims.scopes, ["notes:read", "notes:write"]);
    assert_eq!(claims.jti.as_deref(), Some("jti-tok-1"));
    assert_eq!(s.issuer.introspection_hits(), 1);
}

#[tokio::test]
async fn endpoint_given_directly() {
    let s = Setup::new().await;
    s.active("tok-1", 600);
    let v = IntrospectionValidator::new(format!("{}/introspect", s.issuer.url), AUD, CLIENT_ID, CLIENT_SECRET).unwrap();
    assert_eq!(v.validate(&s.token("tok-1")).await.unwrap().subject, "alice");
    assert_eq!(
        s.issuer.state.discovery_hits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(matches!(
        IntrospectionValidator::new("/introspect", AUD, CLIENT_ID, CLIENT_SECRET),
        Err(AuthError::Config(_))
    ));
    // A token meant for another API is refused.
    let other = IntrospectionValidator::new(
        format!("{}/introspect", s.issuer.url),
        "other-api",
        CLIENT_ID,
        CLIENT_SECRET,
    )
    .unwrap();
    assert_eq!(
        reason(other.validate(&s.token("tok-1")).await),
        InvalidToken::WrongAudience
    );
}

/// RFC 9068 §4 / RFC 7662 §4: the authorization server answers `active` for any of its
/// access tokens, so a validator that does not know its audience would take tokens meant
/// for other APIs. Building one is refused, as in JWKS mode.
#[tokio::test]
async fn an_audience_is_required() {
    let s = Setup::new().await;
    let built = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .build()
        .await;
    assert!(
        matches!(built, Err(AuthError::Config(ref m)) if m.contains("audience")),
        "{built:?}"
    );
    // Nor with an empty audience, or a leeway past a few minutes (RFC 7519 §4.1.4).
    let empty = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience("")
        .build()
        .await;
    assert!(
        matches!(empty, Err(AuthError::Config(ref m)) if m.contains("audience is empty")),
        "{empty:?}"
    );
    let lax = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .leeway(Duration::from_secs(3600))
        .build()
        .await;
    assert!(
        matches!(lax, Err(AuthError::Config(ref m)) if m.contains("leeway")),
        "{lax:?}"
    );
}

/// Tokens that could never be reported active — not a JWS compact token, not `at+jwt`,
/// with `crit`, another `iss`, no `iss` or `exp`, an `exp` past the leeway — are refused
/// without a call, so a flood of them cannot use up the API's share of the endpoint's rate
/// limit (and make it answer 429 to the tokens that matter).
#[tokio::test]
async fn tokens_that_cannot_be_active_cost_no_call() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = s.validator(Duration::from_secs(5), 100).await;
    let now = unix(s.clock.now());
    let shaped = |header: serde_json::Value, claims: serde_json::Value| {
        let b64 = |v: &serde_json::Value| crate::support::b64(v.to_string().as_bytes());
        format!("{}.{}.c2ln", b64(&header), b64(&claims))
    };
    let at = serde_json::json!({"alg": "RS256", "typ": "at+jwt"});
    let iss = s.issuer.url.clone();
    let cases = [
        ("x".to_owned(), InvalidToken::Malformed),
        ("opaque-token".to_owned(), InvalidToken::Malformed),
        ("a.b.c".to_owned(), InvalidToken::Malformed),
        (
            shaped(
                serde_json::json!({"alg": "RS256", "typ": "JWT"}),
                serde_json::json!({"iss": iss, "exp": now + 60}),
            ),
            InvalidToken::WrongType,
        ),
        (
            shaped(
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "crit": ["x"]}),
                serde_json::json!({"iss": iss, "exp": now + 60}),
            ),
            InvalidToken::CriticalHeader,
        ),
        (
            shaped(
                at.clone(),
                serde_json::json!({"iss": "https://evil.example", "exp": now + 60}),
            ),
            InvalidToken::WrongIssuer,
        ),
        (
            shaped(at.clone(), serde_json::json!({"exp": now + 60})),
            InvalidToken::MissingClaim,
        ),
        (
            shaped(at.clone(), serde_json::json!({"iss": iss})),
            InvalidToken::MissingClaim,
        ),
        (
            shaped(at.clone(), serde_json::json!({"iss": iss, "exp": now - 31})),
            InvalidToken::Expired,
        ),
    ];
    for (token, want) in &cases {
        assert_eq!(reason(v.validate(token).await), *want, "{token}");
    }
    // Not even while the endpoint is asking everyone to wait: a 401, not a 503.
    s.issuer.busy(Some((StatusCode::TOO_MANY_REQUESTS, Some("30"))));
    for _ in 0..50 {
        assert_eq!(reason(v.validate("junk").await), InvalidToken::Malformed);
    }
    assert_eq!(s.issuer.introspection_hits(), 0);
    s.issuer.busy(None);
    // So the real token is answered at once.
    assert_eq!(v.validate(&s.token("tok")).await.unwrap().subject, "alice");
    // An `exp` within the leeway is still worth asking about.
    let recent = shaped(at, serde_json::json!({"iss": iss, "exp": now - 20}));
    assert_eq!(reason(v.validate(&recent).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), 2);
}

/// A refused token is remembered for a few seconds, in a bounded map of its own: asked about
/// again it costs no call, and refusals never push active answers out of the cache.
#[tokio::test]
async fn refusals_are_remembered_briefly_apart_from_active_answers() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .clock(s.clock.clone())
        .cache_max_ttl(Duration::from_secs(60))
        .cache_max_entries(1)
        .refusal_cache_max_entries(2)
        .build()
        .await
        .unwrap();
    v.validate(&s.token("tok")).await.unwrap();
    for _ in 0..3 {
        assert_eq!(reason(v.validate(&s.token("unknown")).await), InvalidToken::Inactive);
    }
    assert_eq!(s.issuer.introspection_hits(), 2, "one call for each token");
    assert_eq!((v.cached_entries(), v.cached_refusals()), (1, 1));

    // A flood of distinct refused tokens: the refusals stay bounded, the active answer stays.
    for i in 0..5 {
        assert_eq!(
            reason(v.validate(&s.token(&format!("junk-{i}"))).await),
            InvalidToken::Inactive
        );
    }
    assert_eq!((v.cached_entries(), v.cached_refusals()), (1, 2));
    let hits = s.issuer.introspection_hits();
    v.validate(&s.token("tok")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), hits, "still cached");

    // The default TTL is 5 s: then the endpoint is asked again.
    s.clock.advance(Duration::from_secs(4));
    assert_eq!(reason(v.validate(&s.token("junk-4")).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), hits);
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(reason(v.validate(&s.token("junk-4")).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), hits + 1);

    // Active answers refused here for a lasting reason are remembered too; `nbf` in the
    // future will pass, and is not.
    let now = unix(s.clock.now());
    let answer = |aud: &str, nbf: Option<i64>| IntrospectionResponse {
        active: true,
        client_id: Some("notes-web".into()),
        sub: Some("alice".into()),
        exp: Some(now + 600),
        nbf,
        aud: Some(aud.into()),
        ..IntrospectionResponse::default()
    };
    s.issuer.answer(&s.token("billing"), answer("billing-api", None));
    s.issuer.answer(&s.token("later"), answer(AUD, Some(now + 120)));
    let hits = s.issuer.introspection_hits();
    for _ in 0..2 {
        assert_eq!(
            reason(v.validate(&s.token("billing")).await),
            InvalidToken::WrongAudience
        );
        assert_eq!(reason(v.validate(&s.token("later")).await), InvalidToken::NotYetValid);
    }
    assert_eq!(s.issuer.introspection_hits(), hits + 3);

    // Configurable, and off with a zero TTL.
    let off = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .clock(s.clock.clone())
        .refusal_cache_ttl(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let hits = s.issuer.introspection_hits();
    for _ in 0..2 {
        assert_eq!(reason(off.validate(&s.token("unknown")).await), InvalidToken::Inactive);
    }
    assert_eq!(s.issuer.introspection_hits(), hits + 2);
    assert_eq!(off.cached_refusals(), 0);
}

/// Plain http is refused for the issuer and the endpoint, configured or discovered, unless
/// the host is loopback (as for the fake issuer of every other test) or the builder opts in.
#[tokio::test]
async fn plain_http_refused_off_loopback() {
    let s = Setup::new().await;
    let config_error = |r: Result<IntrospectionValidator, AuthError>, what: &str| match r {
        Err(AuthError::Config(m)) => assert!(m.contains(what) && m.contains("http"), "{m}"),
        other => panic!("expected a configuration error about {what}, got {other:?}"),
    };
    config_error(
        IntrospectionValidator::new("http://192.0.2.1/introspect", AUD, CLIENT_ID, CLIENT_SECRET),
        "introspection endpoint",
    );
    IntrospectionValidator::new("https://192.0.2.1/introspect", AUD, CLIENT_ID, CLIENT_SECRET).unwrap();
    IntrospectionValidator::new("http://localhost:9/introspect", AUD, CLIENT_ID, CLIENT_SECRET).unwrap();

    let builder = |issuer: &str| IntrospectionValidator::builder(issuer, CLIENT_ID, CLIENT_SECRET).audience(AUD);
    // Refused before anything is fetched (nothing listens there).
    config_error(builder("http://id.example").build().await, "issuer");
    config_error(
        builder("https://id.example")
            .introspection_endpoint("http://192.0.2.1/introspect")
            .build()
            .await,
        "introspection endpoint",
    );
    let opted_in = builder("http://id.example")
        .introspection_endpoint("http://192.0.2.1/introspect")
        .insecure_allow_http()
        .build()
        .await
        .unwrap();
    assert_eq!(opted_in.introspection_endpoint(), "http://192.0.2.1/introspect");

    // An endpoint the discovery document names off loopback in plain http.
    *s.issuer.state.endpoints_base.lock().unwrap() = Some("http://192.0.2.1".into());
    config_error(builder(&s.issuer.url).build().await, "introspection endpoint");
    let discovered = builder(&s.issuer.url).insecure_allow_http().build().await.unwrap();
    assert_eq!(discovered.introspection_endpoint(), "http://192.0.2.1/introspect");
}

#[tokio::test]
async fn revocation_seen_at_once_without_cache() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = s.validator(Duration::ZERO, 100).await;
    v.validate(&s.token("tok")).await.unwrap();
    s.revoke("tok");
    assert_eq!(reason(v.validate(&s.token("tok")).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), 2);
}

#[tokio::test]
async fn cache_never_outlives_the_token_exp() {
    let s = Setup::new().await;
    s.active("short", 3);
    let v = s.validator(Duration::from_secs(60), 100).await;
    v.validate(&s.token("short")).await.unwrap();
    s.clock.advance(Duration::from_secs(2));
    v.validate(&s.token("short")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), 1, "served from the cache before exp");
    // Past exp (3 s) though well within the max TTL (60 s): asked again.
    s.clock.advance(Duration::from_secs(2));
    s.revoke("short");
    assert_eq!(reason(v.validate(&s.token("short")).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), 2);
}

#[tokio::test]
async fn cache_never_outlives_the_max_ttl() {
    let s = Setup::new().await;
    s.active("long", 3600);
    let v = s.validator(Duration::from_secs(10), 100).await;
    v.validate(&s.token("long")).await.unwrap();
    s.revoke("long");
    s.clock.advance(Duration::from_secs(9));
    // Still cached: the revocation is not visible yet (that is the price of the cache).
    v.validate(&s.token("long")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), 1);
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(reason(v.validate(&s.token("long")).await), InvalidToken::Inactive);
    assert_eq!(s.issuer.introspection_hits(), 2);
}

#[tokio::test]
async fn cache_is_bounded() {
    let s = Setup::new().await;
    for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
        // Different lifetimes, so the eviction order is known: the soonest to expire goes.
        s.active(t, 100 + i as i64 * 100);
    }
    let v = s.validator(Duration::from_secs(3600), 2).await;
    v.validate(&s.token("a")).await.unwrap();
    v.validate(&s.token("b")).await.unwrap();
    assert_eq!(v.cached_entries(), 2);
    v.validate(&s.token("c")).await.unwrap(); // evicts "a"
    assert_eq!(v.cached_entries(), 2);
    assert_eq!(s.issuer.introspection_hits(), 3);
    v.validate(&s.token("b")).await.unwrap();
    v.validate(&s.token("c")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), 3, "b and c are cached");
    v.validate(&s.token("a")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), 4, "a was evicted");
    assert_eq!(v.cached_entries(), 2);

    // Expired entries are dropped first when full.
    s.clock.advance(Duration::from_secs(250)); // the cache holds "c" (until 300 s) and "a" (until 100 s, stale now)
    s.active("d", 400);
    v.validate(&s.token("d")).await.unwrap();
    assert_eq!(v.cached_entries(), 2);

    // A zero bound disables the cache.
    let uncached = s.validator(Duration::from_secs(3600), 0).await;
    let hits = s.issuer.introspection_hits();
    uncached.validate(&s.token("d")).await.unwrap();
    uncached.validate(&s.token("d")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), hits + 2);
    assert_eq!(uncached.cached_entries(), 0);
}

#[tokio::test]
async fn answers_are_checked() {
    let s = Setup::new().await;
    let v = s.validator(Duration::ZERO, 100).await;
    let now = unix(s.clock.now());
    let base = IntrospectionResponse {
        active: true,
        scope: Some("notes:read".into()),
        client_id: Some("notes-web".into()),
        sub: Some("alice".into()),
        exp: Some(now + 60),
        aud: Some(AUD.into()),
        iss: Some(s.issuer.url.clone()),
        ..IntrospectionResponse::default()
    };
    let cases = [
        (
            IntrospectionResponse {
                aud: Some("billing".into()),
                ..base.clone()
            },
            InvalidToken::WrongAudience,
        ),
        (
            IntrospectionResponse {
                aud: None,
                ..base.clone()
            },
            InvalidToken::WrongAudience,
        ),
        (
            IntrospectionResponse {
                iss: Some("https://evil".into()),
                ..base.clone()
            },
            InvalidToken::WrongIssuer,
        ),
        (
            IntrospectionResponse {
                exp: Some(now - 31),
                ..base.clone()
            },
            InvalidToken::Expired,
        ),
        (
            IntrospectionResponse {
                exp: None,
                ..base.clone()
            },
            InvalidToken::MissingClaim,
        ),
        (
            IntrospectionResponse {
                nbf: Some(now + 60),
                ..base.clone()
            },
            InvalidToken::NotYetValid,
        ),
        (
            IntrospectionResponse {
                token_type: Some("refresh_token".into()),
                ..base.clone()
            },
            InvalidToken::NotAnAccessToken,
        ),
        (
            IntrospectionResponse {
                token_type: Some("N_A".into()),
                ..base.clone()
            },
            InvalidToken::NotAnAccessToken,
        ),
        // RFC 9449 §8: a DPoP-bound token needs its proof checked.
        (
            IntrospectionResponse {
                token_type: Some("DPoP".into()),
                ..base.clone()
            },
            InvalidToken::BoundToKey,
        ),
        // RFC 8693 §4.1: a delegation that cannot be read does not pass as the subject's
        // own token.
        (
            IntrospectionResponse {
                act: Some(serde_json::json!({"iss": "https://other.example"})),
                ..base.clone()
            },
            InvalidToken::Malformed,
        ),
    ];
    for (i, (answer, want)) in cases.into_iter().enumerate() {
        let token = s.token(&format!("t{i}"));
        s.issuer.answer(&token, answer);
        assert_eq!(reason(v.validate(&token).await), want, "case {i}");
    }
    // RFC 8705 §3.2: a certificate-bound token (`cnf`), whatever its token_type says.
    let mut bound = serde_json::to_value(&base).unwrap();
    bound["cnf"] = serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"});
    s.issuer.answer_json(&s.token("bound"), bound);
    assert_eq!(reason(v.validate(&s.token("bound")).await), InvalidToken::BoundToKey);
    // Without token_type, or Bearer in any case: a bearer access token.
    for (name, token_type) in [("absent", None), ("lower", Some("bearer"))] {
        let answer = IntrospectionResponse {
            token_type: token_type.map(str::to_owned),
            ..base.clone()
        };
        s.issuer.answer(&s.token(name), answer);
        v.validate(&s.token(name)).await.unwrap();
    }
    s.issuer.answer(&s.token("ok"), base);
    v.validate(&s.token("ok")).await.unwrap();
}

#[tokio::test]
async fn bad_client_credentials_are_an_upstream_error() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, "wrong")
        .audience(AUD)
        .build()
        .await
        .unwrap();
    // At start, `check_credentials` says so at once, naming the cause.
    let err = v.check_credentials().await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    let cause = format!("{:?}", std::error::Error::source(&err));
    assert!(cause.contains("refused the client credentials"), "{cause}");
    let err = v.validate(&s.token("tok")).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert_eq!(err.status(), 503);
    // The secret never shows in Debug output.
    assert!(!format!("{v:?}").contains("wrong"));
    // With the right secret it passes, and calls the endpoint once.
    let good = s.validator(Duration::ZERO, 100).await;
    let hits = s.issuer.introspection_hits();
    good.check_credentials().await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), hits + 1);
}

/// An introspection answer over 64 KiB is refused as the server's fault (503), declared
/// length or not; one just under is read.
#[tokio::test]
async fn oversized_answer_refused() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = s.validator(Duration::ZERO, 100).await;
    s.issuer.state.introspection_padding.store(64 * 1024, Ordering::SeqCst);
    let err = v.validate(&s.token("tok")).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(err.status(), 503);
    s.issuer.state.introspection_padding.store(60 * 1024, Ordering::SeqCst);
    v.validate(&s.token("tok")).await.unwrap();

    // In chunks, without a Content-Length.
    const CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked";
    let answer = serde_json::to_vec(&IntrospectionResponse {
        active: true,
        client_id: Some("notes-web".into()),
        sub: Some("alice".into()),
        exp: Some(unix(std::time::SystemTime::now()) + 600),
        aud: Some(AUD.into()),
        ..IntrospectionResponse::default()
    })
    .unwrap();
    let validator =
        |url: String| IntrospectionValidator::new(format!("{url}/introspect"), AUD, CLIENT_ID, CLIENT_SECRET).unwrap();
    let small = validator(raw_server(CHUNKED, chunked(&answer, 512)));
    assert_eq!(small.validate(&s.token("tok")).await.unwrap().subject, "alice");
    let mut huge = answer.clone();
    huge.resize(answer.len() + 1024 * 1024, b' ');
    let err = validator(raw_server(CHUNKED, chunked(&huge, 8 * 1024)))
        .validate(&s.token("tok"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");

    // A declared length over the limit is refused before reading.
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000";
    let err = validator(raw_server(head, answer))
        .validate(&s.token("tok"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

/// Concurrent validations of one token make one call; the others wait for its answer,
/// active or not. Different tokens are not held up by each other. (Cache off, so only the
/// coalescing saves the calls.)
#[tokio::test]
async fn concurrent_validations_of_one_token_share_one_call() {
    let s = Setup::new().await;
    s.active("tok", 600);
    *s.issuer.state.introspection_delay.lock().unwrap() = Duration::from_millis(300);
    let v = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .clock(s.clock.clone())
        .cache_max_ttl(Duration::ZERO)
        .refusal_cache_ttl(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let spawn_all = |tokens: &[&str]| {
        tokens
            .iter()
            .map(|t| {
                let (v, t) = (v.clone(), s.token(t));
                tokio::spawn(async move { v.validate(&t).await })
            })
            .collect::<Vec<_>>()
    };

    for task in spawn_all(&["tok"; 10]) {
        assert_eq!(task.await.unwrap().unwrap().subject, "alice");
    }
    assert_eq!(s.issuer.introspection_hits(), 1);

    for task in spawn_all(&["junk"; 10]) {
        assert_eq!(reason(task.await.unwrap()), InvalidToken::Inactive);
    }
    assert_eq!(s.issuer.introspection_hits(), 2);

    for task in spawn_all(&["tok", "junk", "tok", "junk"]) {
        let _ = task.await.unwrap();
    }
    assert_eq!(s.issuer.introspection_hits(), 4, "one call per distinct token");

    // Once answered, the next validation asks again (no cache here).
    v.validate(&s.token("tok")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), 5);
}

/// Distinct tokens: at most `max_concurrent_calls` calls at once, the others wait their
/// turn (a flood of made-up tokens does not open a connection each).
#[tokio::test]
async fn calls_for_distinct_tokens_are_capped() {
    let s = Setup::new().await;
    let names: Vec<String> = (0..6).map(|i| format!("tok-{i}")).collect();
    for name in &names {
        s.active(name, 600);
    }
    let tokens: Vec<String> = names.iter().map(|name| s.token(name)).collect();
    *s.issuer.state.introspection_delay.lock().unwrap() = Duration::from_millis(300);
    let v = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .clock(s.clock.clone())
        .max_concurrent_calls(2)
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (v, t) = (v.clone(), t.clone());
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().subject, "alice");
    }
    // Six 300 ms calls two at a time take three rounds; all at once would take one.
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.issuer.introspection_hits(), 6);
}

/// Calls queued for a slot when the endpoint answers 429 do not go out during the wait it
/// asked for.
#[tokio::test]
async fn queued_calls_respect_a_back_off_that_came_meanwhile() {
    let s = Setup::new().await;
    *s.issuer.state.introspection_delay.lock().unwrap() = Duration::from_millis(300);
    s.issuer.busy(Some((StatusCode::TOO_MANY_REQUESTS, Some("30"))));
    let v = IntrospectionValidator::builder(&s.issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .clock(s.clock.clone())
        .max_concurrent_calls(1)
        .build()
        .await
        .unwrap();
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (v, t) = (v.clone(), s.token(&format!("tok-{i}")));
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Err(AuthError::Upstream { .. })));
    }
    assert_eq!(s.issuer.introspection_hits(), 1, "only the first call went out");
}

/// A waiting request whose leader is dropped before the answer asks itself.
#[tokio::test]
async fn a_dropped_call_does_not_strand_the_waiters() {
    let s = Setup::new().await;
    s.active("tok", 600);
    *s.issuer.state.introspection_delay.lock().unwrap() = Duration::from_millis(300);
    let v = s.validator(Duration::ZERO, 100).await;
    let leader = {
        let (v, t) = (v.clone(), s.token("tok"));
        tokio::spawn(async move { v.validate(&t).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let follower = {
        let (v, t) = (v.clone(), s.token("tok"));
        tokio::spawn(async move { v.validate(&t).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert_eq!(follower.await.unwrap().unwrap().subject, "alice");
    assert_eq!(s.issuer.introspection_hits(), 2);
}

/// `429` with `Retry-After: 2`: no call for 2 s, each validation failing at once with the
/// time left; then calls again.
#[tokio::test]
async fn retry_after_is_honoured() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = s.validator(Duration::ZERO, 100).await;
    s.issuer.busy(Some((StatusCode::TOO_MANY_REQUESTS, Some("2"))));
    let err = v.validate(&s.token("tok")).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert_eq!(err.status(), 503);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(s.issuer.introspection_hits(), 1);

    s.issuer.busy(None);
    let err = v.validate(&s.token("tok")).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    s.clock.advance(Duration::from_millis(1500));
    let err = v.validate(&s.token("other")).await.unwrap_err(); // every token: the server is busy
    assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(s.issuer.introspection_hits(), 1, "no call while backing off");

    s.clock.advance(Duration::from_millis(500));
    assert_eq!(v.validate(&s.token("tok")).await.unwrap().subject, "alice");
    assert_eq!(s.issuer.introspection_hits(), 2);
}

/// The wait is bounded (60 s), and a `503` or a header that is missing or malformed gets a
/// short default (1 s) rather than none.
#[tokio::test]
async fn retry_after_is_bounded_and_tolerant() {
    let s = Setup::new().await;
    s.active("tok", 600);
    let v = s.validator(Duration::ZERO, 100).await;
    let cases = [
        (StatusCode::TOO_MANY_REQUESTS, Some("86400"), 60_000),
        (StatusCode::TOO_MANY_REQUESTS, Some("soon"), 1000),
        (StatusCode::TOO_MANY_REQUESTS, None, 1000),
        (StatusCode::SERVICE_UNAVAILABLE, Some("5"), 5000),
        (StatusCode::SERVICE_UNAVAILABLE, None, 1000),
    ];
    for (status, header, millis) in cases {
        let wait = Duration::from_millis(millis);
        s.issuer.busy(Some((status, header)));
        let hits = s.issuer.introspection_hits();
        assert_eq!(
            v.validate(&s.token("tok")).await.unwrap_err().retry_after(),
            Some(wait),
            "{status} {header:?}"
        );
        s.issuer.busy(None);
        s.clock.advance(wait - Duration::from_millis(1));
        assert!(v.validate(&s.token("tok")).await.is_err());
        assert_eq!(s.issuer.introspection_hits(), hits + 1);
        s.clock.advance(Duration::from_millis(1));
        v.validate(&s.token("tok")).await.unwrap();
        assert_eq!(s.issuer.introspection_hits(), hits + 2);
    }
    // Another server error holds calls back for the short default, whatever its header
    // says (RFC 9110 §10.2.3 gives Retry-After meaning on 503 and redirects only): the
    // endpoint is not called again by every request meanwhile.
    s.issuer.busy(Some((StatusCode::INTERNAL_SERVER_ERROR, Some("30"))));
    let hits = s.issuer.introspection_hits();
    assert_eq!(
        v.validate(&s.token("tok")).await.unwrap_err().retry_after(),
        Some(Duration::from_secs(1))
    );
    s.issuer.busy(None);
    for _ in 0..5 {
        assert!(v.validate(&s.token("tok")).await.is_err());
    }
    assert_eq!(s.issuer.introspection_hits(), hits + 1);
    s.clock.advance(Duration::from_secs(1));
    v.validate(&s.token("tok")).await.unwrap();
    assert_eq!(s.issuer.introspection_hits(), hits + 2);
}

/// RFC 9701: with `signed_answers`, only a JWT typed `token-introspection+jwt`, signed by
/// a key of the issuer's JWKS, from the issuer, for this client and not from the future
/// is taken; anything else (plain JSON too) is the authorization server's failure.
#[tokio::test]
async fn signed_answers_are_checked() {
    use serde_json::json;
    let key = crate::support::Key::ec("k1");
    let stranger = crate::support::Key::ec("k1");
    let issuer = FakeIssuer::start(&[&key]).await;
    let keys = portcullis_resource::JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .build()
        .await
        .unwrap();
    let v = IntrospectionValidator::builder(&issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(AUD)
        .cache_max_ttl(Duration::ZERO)
        .signed_answers(keys)
        .build()
        .await
        .unwrap();
    let now = unix(std::time::SystemTime::now());
    let token = token_shaped(&issuer.url, "t", std::time::SystemTime::now());
    let active = json!({
        "active": true, "sub": "alice", "client_id": "notes-web", "exp": now + 600, "iat": now,
        "aud": AUD, "iss": issuer.url, "scope": "notes:read", "token_type": "Bearer", "jti": "t",
    });
    let answer = |iss: &str, aud: &str, iat: Option<i64>| {
        let mut claims = json!({"iss": iss, "aud": aud, "jti": "a1", "token_introspection": active});
        if let Some(iat) = iat {
            claims["iat"] = json!(iat);
        }
        claims
    };
    let typed = |k: &crate::support::Key, typ: &str| json!({"alg": k.alg(), "kid": k.kid(), "typ": typ});
    const JWT: &str = "application/token-introspection+jwt";
    let good = key.sign_with_header(
        &typed(&key, "token-introspection+jwt"),
        &answer(&issuer.url, CLIENT_ID, Some(now)),
    );
    issuer.answer_raw(Some((JWT, &good)));
    assert_eq!(v.validate(&token).await.unwrap().subject, "alice");
    let refused = [
        ("application/json", active.to_string()),
        ("application/jwt", good.clone()),
        (
            JWT,
            stranger.sign_with_header(
                &typed(&stranger, "token-introspection+jwt"),
                &answer(&issuer.url, CLIENT_ID, Some(now)),
            ),
        ),
        (
            JWT,
            key.sign_with_header(&typed(&key, "at+jwt"), &answer(&issuer.url, CLIENT_ID, Some(now))),
        ),
        (
            JWT,
            key.sign_with_header(
                &typed(&key, "token-introspection+jwt"),
                &answer(&issuer.url, "other-api", Some(now)),
            ),
        ),
        (
            JWT,
            key.sign_with_header(
                &typed(&key, "token-introspection+jwt"),
                &answer("https://evil.example", CLIENT_ID, Some(now)),
            ),
        ),
        (
            JWT,
            key.sign_with_header(
                &typed(&key, "token-introspection+jwt"),
                &answer(&issuer.url, CLIENT_ID, Some(now + 3600)),
            ),
        ),
        (
            JWT,
            key.sign_with_header(
                &typed(&key, "token-introspection+jwt"),
                &answer(&issuer.url, CLIENT_ID, None),
            ),
        ),
        (JWT, {
            let last = if good.ends_with('A') { "B" } else { "A" };
            format!("{}{last}", &good[..good.len() - 1])
        }),
        (
            JWT,
            key.sign_with_header(
                &typed(&key, "token-introspection+jwt"),
                &answer(&issuer.url, CLIENT_ID, Some(now - 3600)),
            ),
        ),
        (JWT, {
            let mut claims = answer(&issuer.url, CLIENT_ID, Some(now));
            claims["token_introspection"]["jti"] = json!("another-token");
            key.sign_with_header(&typed(&key, "token-introspection+jwt"), &claims)
        }),
    ];
    for (content_type, body) in refused {
        issuer.answer_raw(Some((content_type, &body)));
        let r = v.validate(&token).await;
        assert!(
            matches!(r, Err(AuthError::Upstream { .. })),
            "{content_type} {body}: {r:?}"
        );
    }
    issuer.answer_raw(Some((JWT, &good)));
    assert!(v.validate(&token).await.is_ok(), "nothing refused was remembered");
}
