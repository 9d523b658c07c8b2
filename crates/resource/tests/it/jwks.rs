//! JWKS mode: every check a JWT access token goes through, and the key cache's refetch
//! rules (rate limit, rotation, Cache-Control, failures).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis_resource::jwks::MIN_REFETCH_INTERVAL;
use portcullis_resource::{Algorithm, AuthError, Clock as _, FixedClock, InvalidToken, JwksValidator};
use serde_json::{Value, json};

use portcullis_protocol::jwk::JwkSet;

use crate::support::{FakeIssuer, Key, chunked, claims, raw_server, sign_hs256, unix, unsigned};

const AUD: &str = "notes-api";

pub struct Setup {
    pub issuer: FakeIssuer,
    pub key: Key,
    pub clock: Arc<FixedClock>,
    pub validator: JwksValidator,
}

impl Setup {
    pub async fn new() -> Self {
        let key = Key::rsa("k1");
        let issuer = FakeIssuer::start(&[&key]).await;
        let clock = Arc::new(FixedClock::starting_now());
        let validator = JwksValidator::builder(&issuer.url)
            .audience(AUD)
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        Self {
            issuer,
            key,
            clock,
            validator,
        }
    }

    pub fn claims(&self) -> Value {
        claims(&self.issuer.url, AUD, self.clock.now())
    }

    pub fn token(&self) -> String {
        self.key.sign(&self.claims())
    }

    fn token_with(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut c = self.claims();
        change(&mut c);
        self.key.sign(&c)
    }

    async fn refused(&self, token: &str) -> InvalidToken {
        match self.validator.validate(token).await {
            Err(AuthError::InvalidToken(reason)) => reason,
            other => panic!("expected an invalid token, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn valid_token_accepted() {
    let s = Setup::new().await;
    let claims = s.validator.validate(&s.token()).await.unwrap();
    assert_eq!(claims.issuer, s.issuer.url);
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.client_id, "notes-web");
    assert_eq!(claims.audience, [AUD]);
    assert_eq!(claims.scopes, ["openid", "notes:read"]);
    assert_eq!(claims.expires_at, unix(s.clock.now()) + 600);
    assert_eq!(claims.jti.as_deref(), Some("jti-1"));
    assert_eq!(claims.grant_id.as_deref(), Some("grant-1"));
    assert!(claims.auth_time.is_some());
    // Discovery once, JWKS once, nothing per validation.
    assert_eq!(s.issuer.state.discovery_hits.load(Ordering::SeqCst), 1);
    assert_eq!(s.issuer.jwks_hits(), 1);
    assert_eq!(s.validator.jwks_uri(), format!("{}/jwks", s.issuer.url));
}

/// RFC 8693 §4.1: the actor of a delegated token is in the claims; an `act` that cannot
/// be read refuses the token rather than letting it pass as the subject's own.
#[tokio::test]
async fn actors_are_read_or_refuse_the_token() {
    let s = Setup::new().await;
    assert_eq!(s.validator.validate(&s.token()).await.unwrap().actor, None);
    let delegated = s.token_with(|c| c["act"] = json!({"sub": "svc-b", "act": {"sub": "svc-a"}}));
    let claims = s.validator.validate(&delegated).await.unwrap();
    let chain: Vec<&str> = claims
        .actor
        .iter()
        .flat_map(|a| a.chain())
        .map(|a| a.subject.as_str())
        .collect();
    assert_eq!(chain, ["svc-b", "svc-a"]);
    for bad in [json!("svc"), json!({"iss": "x"}), json!({"sub": "b", "act": 1})] {
        let token = s.token_with(|c| c["act"] = bad.clone());
        assert_eq!(s.refused(&token).await, InvalidToken::Malformed, "{bad}");
    }
}

#[tokio::test]
async fn es256_and_eddsa_accepted() {
    let (rsa, ec, ed) = (Key::rsa("r"), Key::ec("e"), Key::ed("d"));
    let issuer = FakeIssuer::start(&[&rsa, &ec, &ed]).await;
    let validator = JwksValidator::builder(&issuer.url).audience(AUD).build().await.unwrap();
    for key in [&rsa, &ec, &ed] {
        let token = key.sign(&claims(&issuer.url, AUD, std::time::SystemTime::now()));
        let claims = validator
            .validate(&token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(claims.subject, "alice");
    }
    // The EC key's kid with an RSA signature: the key is not for that algorithm.
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "e"});
    let token = rsa.sign_with_header(&header, &claims(&issuer.url, AUD, std::time::SystemTime::now()));
    assert!(matches!(
        validator.validate(&token).await,
        Err(AuthError::InvalidToken(InvalidToken::KeyAlgorithmMismatch))
    ));
}

#[tokio::test]
async fn expired_and_not_yet_valid() {
    let s = Setup::new().await;
    let now = unix(s.clock.now());
    // Default leeway is 30 s.
    let recent = s.token_with(|c| c["exp"] = json!(now - 20));
    assert!(s.validator.validate(&recent).await.is_ok());
    let expired = s.token_with(|c| c["exp"] = json!(now - 31));
    assert_eq!(s.refused(&expired).await, InvalidToken::Expired);
    let future = s.token_with(|c| c["nbf"] = json!(now + 60));
    assert_eq!(s.refused(&future).await, InvalidToken::NotYetValid);
    // Issued in the future (RFC 7519 §4.1.6), beyond the leeway; within it, accepted.
    let from_the_future = s.token_with(|c| c["iat"] = json!(now + 31));
    assert_eq!(s.refused(&from_the_future).await, InvalidToken::NotYetValid);
    let skewed = s.token_with(|c| c["iat"] = json!(now + 30));
    assert!(s.validator.validate(&skewed).await.is_ok());

    // A valid token expires as the clock moves on.
    let token = s.token();
    s.clock.advance(Duration::from_secs(600 + 31));
    assert_eq!(s.refused(&token).await, InvalidToken::Expired);
}

#[tokio::test]
async fn leeway_is_configurable() {
    let s = Setup::new().await;
    let strict = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .leeway(Duration::ZERO)
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let token = s.token_with(|c| c["exp"] = json!(unix(s.clock.now()) - 1));
    assert!(s.validator.validate(&token).await.is_ok());
    assert!(matches!(
        strict.validate(&token).await,
        Err(AuthError::InvalidToken(InvalidToken::Expired))
    ));
}

#[tokio::test]
async fn tampered_signature_and_payload() {
    let s = Setup::new().await;
    let token = s.token();
    let (input, sig) = token.rsplit_once('.').unwrap();
    // Flip a bit in the middle of the signature.
    let mut sig: Vec<u8> = sig.bytes().collect();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!("{input}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(s.refused(&bad_sig).await, InvalidToken::BadSignature);

    // Someone else's payload under our signature.
    let other = s.token_with(|c| c["sub"] = json!("mallory"));
    let (_, other_payload_and_sig) = other.split_once('.').unwrap();
    let (other_payload, _) = other_payload_and_sig.split_once('.').unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let swapped = format!("{header}.{other_payload}.{signature}");
    assert_eq!(s.refused(&swapped).await, InvalidToken::BadSignature);

    // Signed by a key with the right kid that is not the published one.
    let impostor = Key::rsa("k1");
    assert_eq!(s.refused(&impostor.sign(&s.claims())).await, InvalidToken::BadSignature);

    for garbage in ["", "abc", "a.b.c", "a.b.c.d.e"] {
        assert_eq!(s.refused(garbage).await, InvalidToken::Malformed, "{garbage:?}");
    }
}

#[tokio::test]
async fn wrong_issuer_and_audience() {
    let s = Setup::new().await;
    let other_issuer = s.token_with(|c| c["iss"] = json!("https://evil.example"));
    assert_eq!(s.refused(&other_issuer).await, InvalidToken::WrongIssuer);
    let slash = s.token_with(|c| c["iss"] = json!(format!("{}/", s.issuer.url)));
    assert_eq!(s.refused(&slash).await, InvalidToken::WrongIssuer);

    let other_aud = s.token_with(|c| c["aud"] = json!("billing-api"));
    assert_eq!(s.refused(&other_aud).await, InvalidToken::WrongAudience);
    let many = s.token_with(|c| c["aud"] = json!(["billing-api", AUD]));
    assert!(s.validator.validate(&many).await.is_ok());
    let none_of = s.token_with(|c| c["aud"] = json!(["billing-api"]));
    assert_eq!(s.refused(&none_of).await, InvalidToken::WrongAudience);

    // RFC 9449 §7 / RFC 8705 §3: a token bound to a key is not taken as a bearer token.
    let bound = s.token_with(|c| c["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}));
    assert_eq!(s.refused(&bound).await, InvalidToken::BoundToKey);

    // RFC 9068 §2.2: every one of these is REQUIRED.
    for claim in ["iss", "sub", "aud", "exp", "client_id", "iat", "jti"] {
        let missing = s.token_with(|c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert_eq!(s.refused(&missing).await, InvalidToken::MissingClaim, "{claim}");
    }
}

#[tokio::test]
async fn alg_none_refused() {
    let s = Setup::new().await;
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": "k1"});
        let token = unsigned(&header, &s.claims());
        assert_eq!(s.refused(&token).await, InvalidToken::UnsupportedAlgorithm, "{alg}");
        // Even with the real signature attached.
        let real_sig = s.token().rsplit_once('.').unwrap().1.to_owned();
        assert_eq!(
            s.refused(&format!("{token}{real_sig}")).await,
            InvalidToken::UnsupportedAlgorithm
        );
    }
}

#[tokio::test]
async fn hs256_with_the_public_key_as_secret_refused() {
    let s = Setup::new().await;
    for alg in ["HS256", "HS384", "HS512"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": "k1"});
        for secret in s.key.public_key_forms() {
            let token = sign_hs256(&header, &s.claims(), &secret);
            assert_eq!(s.refused(&token).await, InvalidToken::UnsupportedAlgorithm);
        }
    }
    // Nor can HMAC be configured into the allow-list.
    let err = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Config(ref m) if m.contains("HS256")), "{err}");
}

#[tokio::test]
async fn algorithm_allow_list() {
    let s = Setup::new().await;
    let es_only = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .algorithms([Algorithm::ES256])
        .build()
        .await;
    // The fake issuer publishes only an RSA key: nothing usable with ES256.
    assert!(matches!(es_only, Err(AuthError::Upstream { .. })), "{es_only:?}");

    let rs = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .algorithms([Algorithm::RS256])
        .build()
        .await
        .unwrap();
    let ec = Key::ec("k-ec");
    let ec_token = ec.sign(&s.claims());
    assert!(matches!(
        rs.validate(&ec_token).await,
        Err(AuthError::InvalidToken(InvalidToken::UnsupportedAlgorithm))
    ));
}

/// RFC 7515 §4.1.11: a `crit` header names extensions that must be understood; we
/// understand none, so a properly signed token that has one is refused.
#[tokio::test]
async fn crit_header_refused() {
    let s = Setup::new().await;
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("exp")] {
        let mut header = s.key.header();
        header["crit"] = crit.clone();
        header["exp"] = json!(0);
        let token = s.key.sign_with_header(&header, &s.claims());
        assert_eq!(s.refused(&token).await, InvalidToken::CriticalHeader, "{crit}");
    }
}

/// RFC 7517 §4.5: keys of different types may share a `kid`. The key made for the token's
/// algorithm is used, whichever comes first in the set.
#[tokio::test]
async fn duplicate_kid_uses_the_key_for_the_algorithm() {
    let (rsa, ec) = (Key::rsa("dup"), Key::ec("dup"));
    for order in [[&ec, &rsa], [&rsa, &ec]] {
        let issuer = FakeIssuer::start(&order).await;
        let validator = JwksValidator::builder(&issuer.url).audience(AUD).build().await.unwrap();
        for key in [&rsa, &ec] {
            let token = key.sign(&claims(&issuer.url, AUD, std::time::SystemTime::now()));
            let claims = validator
                .validate(&token)
                .await
                .unwrap_or_else(|e| panic!("{} first, {}: {e}", order[0].alg(), key.alg()));
            assert_eq!(claims.subject, "alice");
        }
        assert_eq!(issuer.jwks_hits(), 1);
    }
}

#[tokio::test]
async fn typ_must_be_at_jwt() {
    let s = Setup::new().await;
    let with_typ = |typ: Option<&str>| {
        let mut header = s.key.header();
        match typ {
            Some(t) => header["typ"] = json!(t),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        }
        s.key.sign_with_header(&header, &s.claims())
    };
    for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+jwt"] {
        assert!(s.validator.validate(&with_typ(Some(ok))).await.is_ok(), "{ok}");
    }
    for bad in [Some("JWT"), Some("application/jwt"), Some("id_token+jwt"), None] {
        assert_eq!(s.refused(&with_typ(bad)).await, InvalidToken::WrongType, "{bad:?}");
    }
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch() {
    let s = Setup::new().await;
    assert_eq!(s.issuer.jwks_hits(), 1);
    // Right after a fetch there is nothing new to fetch: the interval counts from it.
    let stranger = Key::rsa("not-published");
    assert_eq!(s.refused(&stranger.sign(&s.claims())).await, InvalidToken::UnknownKey);
    assert_eq!(s.issuer.jwks_hits(), 1);
    s.clock.advance(Duration::from_secs(10));
    assert_eq!(s.refused(&stranger.sign(&s.claims())).await, InvalidToken::UnknownKey);
    assert_eq!(s.issuer.jwks_hits(), 2, "one refetch for the unknown kid");
    // Known keys keep working without fetching.
    s.validator.validate(&s.token()).await.unwrap();
    assert_eq!(s.issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn flood_of_unknown_kids_is_rate_limited() {
    let s = Setup::new().await;
    let stranger = Key::rsa("x");
    let forged: Vec<String> = (0..200)
        .map(|i| {
            let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{i}")});
            stranger.sign_with_header(&header, &s.claims())
        })
        .collect();

    s.clock.advance(Duration::from_secs(10));
    // Concurrently: they queue for one fetch.
    let tasks: Vec<_> = forged[..100]
        .iter()
        .cloned()
        .map(|t| {
            let v = s.validator.clone();
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Err(AuthError::InvalidToken(InvalidToken::UnknownKey))
        ));
    }
    assert_eq!(s.issuer.jwks_hits(), 2);

    // Sequentially, within the interval (default 10 s): no more fetches.
    s.clock.advance(Duration::from_secs(9));
    for t in &forged[100..] {
        assert_eq!(s.refused(t).await, InvalidToken::UnknownKey);
    }
    assert_eq!(s.issuer.jwks_hits(), 2);
    // Valid tokens are unaffected.
    s.validator.validate(&s.token()).await.unwrap();

    // Once the interval has passed, one more fetch is allowed.
    s.clock.advance(Duration::from_secs(1));
    for t in &forged[..50] {
        assert_eq!(s.refused(t).await, InvalidToken::UnknownKey);
    }
    assert_eq!(s.issuer.jwks_hits(), 3);
}

#[tokio::test]
async fn refetch_interval_is_configurable() {
    let s = Setup::new().await;
    let v = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .refetch_interval(Duration::from_secs(60))
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    let before = s.issuer.jwks_hits();
    let stranger = Key::ec("zz").sign(&s.claims());
    // t = 0 (the build's fetch) to 55: inside the 60 s interval.
    for _ in 0..6 {
        assert!(v.validate(&stranger).await.is_err());
        s.clock.advance(Duration::from_secs(11));
    }
    assert_eq!(s.issuer.jwks_hits(), before);
    // t = 66: one fetch, then quiet again.
    assert!(v.validate(&stranger).await.is_err());
    assert_eq!(s.issuer.jwks_hits(), before + 1);
    s.clock.advance(Duration::from_secs(11));
    assert!(v.validate(&stranger).await.is_err());
    assert_eq!(s.issuer.jwks_hits(), before + 1);
}

/// A zero (or sub-second) refetch interval would let every token with a made-up `kid` cost
/// the issuer a JWKS request; the builder refuses it, like its other unsafe settings.
#[tokio::test]
async fn refetch_interval_has_a_floor() {
    let s = Setup::new().await;
    let build = |interval: Duration| {
        JwksValidator::builder(&s.issuer.url)
            .audience(AUD)
            .refetch_interval(interval)
            .clock(s.clock.clone())
            .build()
    };
    for too_short in [
        Duration::ZERO,
        Duration::from_millis(1),
        MIN_REFETCH_INTERVAL - Duration::from_nanos(1),
    ] {
        let err = build(too_short).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Config(ref m) if m.contains("refetch interval")),
            "{too_short:?}: {err}"
        );
    }
    assert_eq!(MIN_REFETCH_INTERVAL, Duration::from_secs(1));
    let v = build(MIN_REFETCH_INTERVAL).await.unwrap();
    // At the floor: a flood of unknown kids costs one fetch per second at most.
    let hits = s.issuer.jwks_hits();
    s.clock.advance(MIN_REFETCH_INTERVAL);
    for i in 0..20 {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{i}")});
        let forged = s.key.sign_with_header(&header, &s.claims());
        assert!(v.validate(&forged).await.is_err());
    }
    assert_eq!(s.issuer.jwks_hits(), hits + 1);
}

/// RFC 7517 §5: the JWK Set the issuer publishes is authoritative. A well-formed one with no
/// key usable here — empty, only keys for encryption, for an algorithm not accepted, or
/// whose `key_ops` exclude `verify` — withdraws the cached keys as soon as it is fetched
/// (not after `max_staleness`): tokens are refused as for an unknown key, until the issuer
/// publishes a key again.
#[tokio::test]
async fn published_set_without_usable_keys_withdraws_the_cached_keys() {
    // The validator's own key, published in a form it may not verify with.
    let changes = [
        None,
        Some(("use", json!("enc"))),
        Some(("alg", json!("PS256"))),
        Some(("key_ops", json!(["sign"]))),
    ];
    for change in changes {
        let s = Setup::new().await;
        let body = match change {
            None => r#"{"keys":[]}"#.to_owned(),
            Some((member, value)) => {
                let mut jwk = serde_json::to_value(s.key.jwk()).unwrap();
                jwk[member] = value;
                json!({ "keys": [jwk] }).to_string()
            }
        };
        let body = &body;
        let token = s.token();
        s.validator.validate(&token).await.unwrap();
        s.issuer.set_jwks_body(Some(body));
        // Past the keys' lifetime: a background refresh fetches the new set.
        s.clock.advance(Duration::from_secs(301));
        let _ = s.validator.validate(&token).await;
        s.validator.background_refresh_done().await;
        assert_eq!(s.issuer.jwks_hits(), 2, "{body}");
        assert_eq!(s.refused(&token).await, InvalidToken::UnknownKey, "{body}");
        assert_eq!(s.refused(&s.token()).await, InvalidToken::UnknownKey, "{body}");

        // The issuer publishes its key again: the next refetch (after the interval) has it.
        s.issuer.set_jwks_body(None);
        s.clock.advance(Duration::from_secs(10));
        s.validator.validate(&s.token()).await.unwrap();
        assert_eq!(s.issuer.jwks_hits(), 3, "{body}");
    }

    // The same through the refetch an unknown `kid` causes: the withdrawn set is taken,
    // and the key it no longer holds is refused at once.
    let s = Setup::new().await;
    s.issuer.set_jwks_body(Some(r#"{"keys":[]}"#));
    s.clock.advance(Duration::from_secs(10));
    let stranger = Key::ec("new").sign(&s.claims());
    assert_eq!(s.refused(&stranger).await, InvalidToken::UnknownKey);
    assert_eq!(s.issuer.jwks_hits(), 2);
    assert_eq!(s.refused(&s.token()).await, InvalidToken::UnknownKey);
}

/// What is a failed fetch, which keeps the cached keys (up to `max_staleness`): no answer or
/// an error status (see `failed_refresh_keeps_the_cached_keys`), or a body that is not a
/// JWK Set.
#[tokio::test]
async fn unparseable_jwks_keeps_the_cached_keys() {
    for body in ["not json", r#"{"nokeys":[]}"#, r#"{"keys":"k1"}"#, "[]"] {
        let s = Setup::new().await;
        s.issuer.set_jwks_body(Some(body));
        s.clock.advance(Duration::from_secs(301));
        s.validator.validate(&s.token()).await.unwrap();
        s.validator.background_refresh_done().await;
        assert_eq!(s.issuer.jwks_hits(), 2, "{body}");
        s.validator.validate(&s.token()).await.unwrap();
        // An unknown kid's refetch gets the same body: the server's fault, keys kept.
        s.clock.advance(Duration::from_secs(10));
        let err = s
            .validator
            .validate(&Key::ec("new").sign(&s.claims()))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Upstream { .. }), "{body}: {err}");
        s.validator.validate(&s.token()).await.unwrap();
    }
}

#[tokio::test]
async fn rotated_key_picked_up_without_restart() {
    let s = Setup::new().await;
    let old_token = s.token();
    s.validator.validate(&old_token).await.unwrap();

    // The issuer rotates: publishes k2 and signs with it; k1 retired from the JWKS.
    let k2 = Key::rsa("k2");
    s.issuer.set_keys(&[&k2]);
    // The validator fetched at t0; a legitimate new kid is allowed one refetch.
    s.clock.advance(Duration::from_secs(10));
    let new_token = k2.sign(&s.claims());
    let claims = s.validator.validate(&new_token).await.unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(s.issuer.jwks_hits(), 2);

    // The refreshed set no longer holds k1.
    assert_eq!(s.refused(&old_token).await, InvalidToken::UnknownKey);
}

#[tokio::test]
async fn cache_control_max_age_honoured_within_bounds() {
    let key = Key::rsa("k1");
    let issuer = FakeIssuer::start(&[&key]).await;
    issuer.set_cache_control(Some("public, max-age=120"));
    let clock = Arc::new(FixedClock::starting_now());
    let v = JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let token = |clock: &FixedClock| key.sign(&claims(&issuer.url, AUD, clock.now()));

    clock.advance(Duration::from_secs(119));
    v.validate(&token(&clock)).await.unwrap();
    v.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), 1, "fresh for max-age");
    clock.advance(Duration::from_secs(2));
    v.validate(&token(&clock)).await.unwrap();
    v.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), 2, "refreshed once max-age passed");

    // max-age=1 is raised to the minimum bound (default 60 s).
    issuer.set_cache_control(Some("max-age=1"));
    clock.advance(Duration::from_secs(121));
    v.validate(&token(&clock)).await.unwrap();
    v.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), 3);
    clock.advance(Duration::from_secs(30));
    v.validate(&token(&clock)).await.unwrap();
    v.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), 3, "max-age below the minimum is clamped up");
    clock.advance(Duration::from_secs(31));
    v.validate(&token(&clock)).await.unwrap();
    v.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), 4);

    // A huge max-age is capped by the configured maximum.
    issuer.set_cache_control(Some("max-age=31536000"));
    let capped = JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .cache_ttl_bounds(Duration::from_secs(10), Duration::from_secs(300))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let hits = issuer.jwks_hits();
    clock.advance(Duration::from_secs(301));
    capped.validate(&token(&clock)).await.unwrap();
    capped.background_refresh_done().await;
    assert_eq!(issuer.jwks_hits(), hits + 1);
}

#[tokio::test]
async fn failed_refresh_keeps_the_cached_keys() {
    let s = Setup::new().await;
    s.issuer.state.jwks_fail.store(true, Ordering::SeqCst);
    // An unknown kid while the server is failing: the refetch is attempted and reported as
    // the server's fault (503), not the caller's.
    s.clock.advance(Duration::from_secs(10));
    let stranger = Key::ec("new").sign(&s.claims());
    assert!(matches!(
        s.validator.validate(&stranger).await,
        Err(AuthError::Upstream { .. })
    ));
    assert_eq!(s.issuer.jwks_hits(), 2);
    // Asked again within the refetch interval: not fetched, and still the server's fault
    // (the key may be one the failed fetch would have brought), with when to try again;
    // an invalid_token would have the client throw a good token away.
    s.clock.advance(Duration::from_secs(3));
    let err = s.validator.validate(&stranger).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert_eq!(err.status(), 503);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err}");
    assert_eq!(s.issuer.jwks_hits(), 2);

    // Past the default 5-minute TTL: the refresh fails, the old key still verifies.
    s.clock.advance(Duration::from_secs(301));
    s.validator.validate(&s.token()).await.unwrap();
    s.validator.background_refresh_done().await;
    assert_eq!(s.issuer.jwks_hits(), 3);
    // And the failing server is not asked again on every request.
    for _ in 0..10 {
        s.validator.validate(&s.token()).await.unwrap();
        s.validator.background_refresh_done().await;
    }
    assert_eq!(s.issuer.jwks_hits(), 3);

    // Once it recovers, the next refresh after the interval succeeds.
    s.issuer.state.jwks_fail.store(false, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(10));
    s.validator.validate(&s.token()).await.unwrap();
    s.validator.background_refresh_done().await;
    assert_eq!(s.issuer.jwks_hits(), 4);
    s.validator.validate(&s.token()).await.unwrap();
    s.validator.background_refresh_done().await;
    assert_eq!(s.issuer.jwks_hits(), 4);
}

/// While the JWKS cannot be refreshed, the cached keys are used up to the maximum staleness
/// (default 24 h after they were fetched), then no longer: validations fail as the server's
/// fault (503) until a refresh succeeds.
#[tokio::test]
async fn keys_too_old_to_refresh_stop_being_trusted() {
    let s = Setup::new().await;
    s.issuer.state.jwks_fail.store(true, Ordering::SeqCst);
    // Just within the 24 h, after failed background refreshes: still in use.
    s.clock.advance(Duration::from_secs(24 * 3600));
    s.validator.validate(&s.token()).await.unwrap();
    s.validator.background_refresh_done().await;
    let hits = s.issuer.jwks_hits();
    assert_eq!(hits, 2);

    s.clock.advance(Duration::from_secs(11));
    let err = s.validator.validate(&s.token()).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert_eq!(err.status(), 503);
    // Tried to refresh first, and does not ask the failing server again within the interval.
    assert_eq!(s.issuer.jwks_hits(), hits + 1);
    let err = s.validator.validate(&s.token()).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("maximum staleness"), "{err}");
    assert_eq!(s.issuer.jwks_hits(), hits + 1);

    // Once the JWKS answers again, the next validation after the interval refreshes.
    s.issuer.state.jwks_fail.store(false, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(10));
    s.validator.validate(&s.token()).await.unwrap();
    assert_eq!(s.issuer.jwks_hits(), hits + 2);
    s.validator.validate(&s.token()).await.unwrap();
    assert_eq!(s.issuer.jwks_hits(), hits + 2);
}

#[tokio::test]
async fn max_staleness_is_configurable() {
    let s = Setup::new().await;
    let v = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .max_staleness(Duration::from_secs(600))
        .clock(s.clock.clone())
        .build()
        .await
        .unwrap();
    s.issuer.state.jwks_fail.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(600));
    v.validate(&s.token()).await.unwrap();
    v.background_refresh_done().await;
    s.clock.advance(Duration::from_secs(1));
    assert!(matches!(v.validate(&s.token()).await, Err(AuthError::Upstream { .. })));

    // Shorter than the minimum cache TTL makes no sense.
    let err = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .max_staleness(Duration::from_secs(30))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::Config(ref m) if m.contains("staleness")),
        "{err}"
    );
}

/// Plain http is refused for the issuer and the JWKS, configured or discovered, unless the
/// host is loopback (as for the fake issuer of every other test) or the builder opts in.
#[tokio::test]
async fn plain_http_refused_off_loopback() {
    let s = Setup::new().await;
    let config_error = |r: Result<JwksValidator, AuthError>, what: &str| match r {
        Err(AuthError::Config(m)) => assert!(m.contains(what) && m.contains("http"), "{m}"),
        other => panic!("expected a configuration error about {what}, got {other:?}"),
    };
    let loopback_jwks = format!("{}/jwks", s.issuer.url);
    // Refused before anything is fetched.
    config_error(
        JwksValidator::builder("http://id.example").audience(AUD).build().await,
        "issuer",
    );
    config_error(
        JwksValidator::builder("http://id.example")
            .audience(AUD)
            .jwks_uri(&loopback_jwks)
            .build()
            .await,
        "issuer",
    );
    config_error(
        JwksValidator::builder("https://id.example")
            .audience(AUD)
            .jwks_uri("http://192.0.2.1/jwks")
            .build()
            .await,
        "jwks_uri",
    );
    // Opted in: the issuer may be plain http anywhere.
    let opted_in = JwksValidator::builder("http://id.example")
        .audience(AUD)
        .jwks_uri(&loopback_jwks)
        .insecure_allow_http()
        .build()
        .await
        .unwrap();
    assert_eq!(opted_in.issuer(), "http://id.example");

    // A JWKS the discovery document names off loopback in plain http.
    *s.issuer.state.endpoints_base.lock().unwrap() = Some("http://192.0.2.1".into());
    config_error(
        JwksValidator::builder(&s.issuer.url).audience(AUD).build().await,
        "jwks_uri",
    );
    // Opted in, it is fetched (and here, nothing answers there).
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = JwksValidator::builder(&s.issuer.url)
        .audience(AUD)
        .http_client(quick)
        .insecure_allow_http()
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
}

/// Keys past their lifetime: requests go on with them while one refresh runs in the
/// background, however slow the JWKS endpoint is; a token with a new key waits for that
/// refresh instead of starting another.
#[tokio::test]
async fn expired_keys_are_refreshed_in_the_background() {
    let s = Setup::new().await;
    *s.issuer.state.jwks_delay.lock().unwrap() = Duration::from_millis(1500);
    let rotated = Key::ec("k2");
    s.issuer.set_keys(&[&s.key, &rotated]);
    s.clock.advance(Duration::from_secs(301));
    let started = std::time::Instant::now();
    for _ in 0..5 {
        s.validator.validate(&s.token()).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "requests waited for the refresh: {:?}",
        started.elapsed()
    );
    // Let the background refresh start (this runtime has one thread); the new key's token
    // then waits for that refresh rather than starting another: one fetch in all.
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.validator.validate(&rotated.sign(&s.claims())).await.unwrap();
    s.validator.background_refresh_done().await;
    assert_eq!(s.issuer.jwks_hits(), 2, "the first fetch and one refresh");
    // Fresh again: no more fetches.
    for _ in 0..3 {
        s.validator.validate(&s.token()).await.unwrap();
    }
    assert_eq!(s.issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn configuration_errors() {
    let key = Key::rsa("k1");
    let issuer = FakeIssuer::start(&[&key]).await;
    let no_aud = JwksValidator::builder(&issuer.url).build().await.unwrap_err();
    assert!(
        matches!(no_aud, AuthError::Config(ref m) if m.contains("audience")),
        "{no_aud}"
    );
    // An empty audience would match tokens with an empty `aud`; a leeway of more than a
    // few minutes would keep expired tokens working (RFC 7519 §4.1.4).
    let empty = JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .audience(" ")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(empty, AuthError::Config(ref m) if m.contains("audience is empty")),
        "{empty}"
    );
    let lax = JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .leeway(Duration::from_secs(301))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(lax, AuthError::Config(ref m) if m.contains("leeway")), "{lax}");
    JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .leeway(Duration::from_secs(300))
        .build()
        .await
        .unwrap();

    // Nothing listening: reported as the server's fault.
    let down = JwksValidator::builder("http://127.0.0.1:1")
        .audience(AUD)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(down, AuthError::Upstream { .. }), "{down}");

    // The discovery document must be for the issuer we asked about (OIDC Discovery §4.3).
    let alias = issuer.url.replace("127.0.0.1", "localhost");
    let mismatch = JwksValidator::builder(alias).audience(AUD).build().await.unwrap_err();
    assert!(
        matches!(mismatch, AuthError::Config(ref m) if m.contains("is for issuer")),
        "{mismatch}"
    );
    // A trailing slash on the configured issuer is tolerated.
    JwksValidator::builder(format!("{}/", issuer.url))
        .audience(AUD)
        .build()
        .await
        .unwrap();

    let wrong_issuer = JwksValidator::builder(format!("{}/tenant", issuer.url))
        .audience(AUD)
        .jwks_uri(format!("{}/jwks", issuer.url))
        .build()
        .await
        .unwrap();
    // With an explicit jwks_uri there is no discovery; `iss` must equal what was configured.
    let token = key.sign(&claims(&issuer.url, AUD, std::time::SystemTime::now()));
    assert!(matches!(
        wrong_issuer.validate(&token).await,
        Err(AuthError::InvalidToken(InvalidToken::WrongIssuer))
    ));
}

/// A JWKS over 1 MiB is refused as the server's fault (503) and the cached keys stay in
/// use; one just under the limit is read.
#[tokio::test]
async fn oversized_jwks_refused() {
    let s = Setup::new().await;
    let stranger = Key::ec("new").sign(&s.claims());
    s.issuer.state.jwks_padding.store(1024 * 1024, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(10));
    let err = s.validator.validate(&stranger).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert_eq!(s.issuer.jwks_hits(), 2);
    s.validator.validate(&s.token()).await.unwrap();

    s.issuer.state.jwks_padding.store(1000 * 1024, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(10));
    assert_eq!(
        s.refused(&stranger).await,
        InvalidToken::UnknownKey,
        "read, and the key is not in it"
    );
    assert_eq!(s.issuer.jwks_hits(), 3);
}

/// The limit holds without a `Content-Length` (the body is read in chunks and dropped past
/// 1 MiB), and a declared length over it is refused before reading.
#[tokio::test]
async fn oversized_jwks_refused_whatever_the_framing() {
    const CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked";
    let key = Key::rsa("k1");
    let jwks = serde_json::to_vec(&JwkSet { keys: vec![key.jwk()] }).unwrap();
    let build = |url: String| {
        JwksValidator::builder(url.clone())
            .audience(AUD)
            .jwks_uri(format!("{url}/jwks"))
            .build()
    };

    // The same server with a small body: accepted (so what fails below is the size).
    build(raw_server(CHUNKED, chunked(&jwks, 1024))).await.unwrap();

    let mut huge = jwks.clone();
    huge.resize(jwks.len() + 2 * 1024 * 1024, b' ');
    let err = build(raw_server(CHUNKED, chunked(&huge, 64 * 1024))).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");

    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000000";
    let err = build(raw_server(head, jwks)).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

/// The discovery document is bounded too.
#[tokio::test]
async fn oversized_discovery_document_refused() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300000";
    let url = raw_server(head, b"{}".to_vec());
    let err = JwksValidator::builder(url).audience(AUD).build().await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

/// A JWKS endpoint that hangs until the client's timeout: the requests with an unknown
/// `kid` queued behind the first one's fetch take its failure instead of each fetching (and
/// waiting for the timeout) in turn. Real time here, with a refetch interval shorter than
/// the timeout, as with the defaults (10 s each).
#[tokio::test]
async fn queued_unknown_kids_share_one_hanging_fetch() {
    let key = Key::rsa("k1");
    let issuer = FakeIssuer::start(&[&key]).await;
    let timeout = Duration::from_millis(1200);
    let v = JwksValidator::builder(&issuer.url)
        .audience(AUD)
        .http_client(reqwest::Client::builder().timeout(timeout).build().unwrap())
        .refetch_interval(MIN_REFETCH_INTERVAL)
        .build()
        .await
        .unwrap();
    *issuer.state.jwks_delay.lock().unwrap() = Duration::from_secs(5);
    tokio::time::sleep(MIN_REFETCH_INTERVAL + Duration::from_millis(50)).await;
    let stranger = Key::ec("new").sign(&claims(&issuer.url, AUD, std::time::SystemTime::now()));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (v, t) = (v.clone(), stranger.clone());
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    for task in tasks {
        let result = task.await.unwrap();
        assert!(matches!(result, Err(AuthError::Upstream { .. })), "{result:?}");
    }
    // The build's fetch and one refetch (two if a task came late to the queue), not eight.
    assert!(issuer.jwks_hits() <= 3, "{} JWKS fetches", issuer.jwks_hits());
    assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());
    // The interval counts from the end of that failed fetch, not its start: no fetch
    // now, and since the last one failed, still the server's fault rather than the token's.
    let hits = issuer.jwks_hits();
    let err = v.validate(&stranger).await.unwrap_err();
    assert!(matches!(err, AuthError::Upstream { .. }), "{err}");
    assert!(err.retry_after().is_some(), "{err}");
    assert_eq!(issuer.jwks_hits(), hits);
}
