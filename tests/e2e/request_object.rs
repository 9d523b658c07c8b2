//! Request objects (RFC 9101, OIDC Core §6.1) on both backends: a client that
//! registered keys for `private_key_jwt` sends its authorization request as a JWT it
//! signs, to `/authorize` or to `/par`. Only the parameters inside are read; an object
//! not signed by the client, not for this server, expired, or malformed is
//! `invalid_request_object`, sent to a registered redirect URI or shown; and an object
//! read in the browser cannot be played as the client's assertion.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::{Value, json};
use time::OffsetDateTime;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::dpop::{proof, thumbprint};
use crate::forms::Step;
use crate::jwks_uri::{Published, key_host};
use crate::private_key_jwt::{ASSERTION_TYPE, ClientKey, claims, client_key, sign};
use crate::registration::{open_registration, register};

const VERIFIER: &str = "jar-verifier-jar-verifier-jar-verifier-jar-verifier";

fn challenge() -> String {
    portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(VERIFIER.as_bytes()))
}

/// A client with `keys` registered, for the code flow.
async fn keyed_client(app: &TestApp, keys: &[&ClientKey], par_only: bool) -> String {
    client_with(app, keys, par_only, false).await
}

/// `keyed_client`, also requiring its requests to be signed if `signed_only`.
async fn client_with(app: &TestApp, keys: &[&ClientKey], par_only: bool, signed_only: bool) -> String {
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    let (client, secret) = app
        .core
        .create_client(
            &ClientInput {
                name: "Signed requests".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scopes: "openid profile email".into(),
                jwks: Some(jwks.to_string()),
                require_pushed_authorization_requests: par_only,
                require_signed_request_object: signed_only,
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert!(secret.is_none(), "a client with keys has no secret");
    client.id.as_str().to_owned()
}

/// The claims of a good request object from `client_id`, with `change` applied (a
/// `Null` removes a claim).
fn object(app: &TestApp, client_id: &str, change: &[(&str, Value)]) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut c = json!({
        "iss": client_id,
        "aud": app.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "inside-state",
        "nonce": "inside-nonce",
        "code_challenge": challenge(),
        "code_challenge_method": "S256",
    });
    for (name, value) in change {
        if value.is_null() {
            c.as_object_mut().unwrap().remove(*name);
        } else {
            c[*name] = value.clone();
        }
    }
    c
}

/// `claims` signed by `key`, typed as a request object.
fn signed(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("oauth-authz-req+jwt".into());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64(v: &[u8]) -> String {
    portcullis_core::crypto::b64url(v)
}

fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    u
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The code exchanged at `/token` by `client_id` authenticating with `key`.
async fn exchange(app: &TestApp, client_id: &str, key: &ClientKey, code: &str) -> (u16, Value) {
    let assertion = sign(key, &claims(client_id, &app.issuer));
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn payload(jwt: &str) -> Value {
    payload_of(jwt, 1)
}

/// Part `n` of a compact JWT, decoded (0: the header, 1: the payload).
fn payload_of(jwt: &str, n: usize) -> Value {
    let part = jwt.split('.').nth(n).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

async fn signed_requests_are_read_alone(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let rs = client_key(SigningAlg::RS256, "rs-1").await;
    let id = keyed_client(&app, &[&es, &rs], false).await;

    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["request_parameter_supported"], true);
    let algs = meta["request_object_signing_alg_values_supported"].as_array().unwrap();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert!(algs.iter().any(|a| a == alg), "{alg}: {algs:?}");
    }
    assert!(!algs.iter().any(|a| a == "none" || a == "HS256"), "{algs:?}");

    // Parameters beside the object are not read: not this unregistered redirect_uri,
    // this scope or this state. Numbers (max_age) and the claims request (an object)
    // are taken as they are.
    let claims = object(
        &app,
        &id,
        &[
            ("max_age", json!(3600)),
            ("claims", json!({"userinfo": {"email": null}})),
        ],
    );
    let url = authorize_url(
        &app,
        &[
            ("client_id", id.as_str()),
            ("response_type", "code"),
            ("request", &signed(&es, &claims)),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
            ("state", "outside-state"),
            // Each would change the answer if read: a login_required error, a page
            // that posts, a refusal of a malformed thumbprint.
            ("prompt", "none"),
            ("response_mode", "form_post"),
            ("dpop_jkt", "not-a-thumbprint"),
        ],
    );
    let back = match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => u,
        other => panic!("no redirect to the client: {other:?}"),
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    let code = param(&back, "code").unwrap();
    let (s, tokens) = exchange(&app, &id, &rs, &code).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["scope"], "email openid profile", "{tokens}");
    assert_eq!(payload(tokens["id_token"].as_str().unwrap())["nonce"], "inside-nonce");

    // Untyped, RS256, an aud list naming this server, no client_id inside: taken too.
    let mut claims = object(&app, &id, &[("client_id", Value::Null)]);
    claims["aud"] = json!(["https://other.example", app.issuer]);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(rs.kid.clone());
    header.typ = None;
    let jwt = jsonwebtoken::encode(&header, &claims, &rs.encoding).unwrap();
    assert!(!payload_of(&jwt, 0).as_object().unwrap().contains_key("typ"));
    let r = browser()
        .get(authorize_url(&app, &[("client_id", &id), ("request", &jwt)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));

    // A valid object asking for what the client may not have is refused as the same
    // request in the query would be, at the redirect URI inside, with the state inside.
    let claims = object(&app, &id, &[("scope", json!("admin"))]);
    let r = browser()
        .get(authorize_url(
            &app,
            &[("client_id", &id), ("request", &signed(&es, &claims))],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    app.stop().await;
}

/// GET `/authorize` with `request` and `extra` beside it: where it redirects, or the
/// status and page.
async fn send(app: &TestApp, client_id: &str, request: &str, extra: &[(&str, &str)]) -> Result<Url, (u16, String)> {
    let mut pairs = vec![("client_id", client_id), ("request", request)];
    pairs.extend_from_slice(extra);
    let r = browser().get(authorize_url(app, &pairs)).send().await.unwrap();
    match r.headers().get("location") {
        Some(l) if r.status() == 303 => Ok(Url::parse(&app.url("/")).unwrap().join(l.to_str().unwrap()).unwrap()),
        _ => Err((r.status().as_u16(), r.text().await.unwrap())),
    }
}

/// Sent beside the object: a registered redirect URI and a state, so that a refusal is
/// redirected there.
const BESIDE: [(&str, &str); 2] = [("redirect_uri", REDIRECT), ("state", "outside-state")];

/// The request object is refused with `code`, sent to the redirect URI beside it with
/// the state beside it, its description containing `why`.
async fn refused_with(app: &TestApp, client_id: &str, request: &str, code: &str, why: &str) {
    let back = send(app, client_id, request, &BESIDE)
        .await
        .unwrap_or_else(|page| panic!("{why}: not redirected: {page:?}"));
    assert!(back.as_str().starts_with(REDIRECT), "{why}: {back}");
    assert_eq!(param(&back, "error").as_deref(), Some(code), "{why}: {back}");
    assert_eq!(param(&back, "state").as_deref(), Some("outside-state"), "{back}");
    assert_eq!(param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    let description = param(&back, "error_description").unwrap_or_default();
    assert!(description.contains(why), "expected {why:?}: {description}");
    assert!(param(&back, "code").is_none());
}

async fn bad_request_objects_are_refused(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], false).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let not_signed = "is not signed by a key registered for the client";

    // Claims that are wrong, in a correctly signed object.
    for (change, why) in [
        (vec![("iss", Value::Null)], "iss must be the client_id"),
        (vec![("iss", json!("someone-else"))], "iss must be the client_id"),
        (vec![("aud", Value::Null)], "aud must be this server's issuer"),
        (
            vec![("aud", json!("https://other.example"))],
            "aud must be this server's issuer",
        ),
        (
            vec![("aud", json!([app.url("/authorize")]))],
            "aud must be this server's issuer",
        ),
        (vec![("exp", json!(now - 120))], "has expired"),
        (vec![("exp", json!(now + 7300))], "more than an hour ahead"),
        (vec![("exp", json!("soon"))], "exp must be a number"),
        (vec![("nbf", json!(now + 600))], "not valid yet"),
        (vec![("iat", json!(now + 600))], "issued in the future"),
        (
            vec![("client_id", json!("another-client"))],
            "client_id is not the client_id",
        ),
        (
            vec![("request_uri", json!("https://app.example/req.jwt"))],
            "must not contain request_uri",
        ),
        (vec![("request", json!("a.b.c"))], "must not contain request"),
        (vec![("scope", json!(["openid"]))], "scope must be a string"),
    ] {
        let jwt = signed(&es, &object(&app, &id, &change));
        refused_with(&app, &id, &jwt, "invalid_request_object", why).await;
    }

    // Without exp (RFC 9101 and OIDC Core §6.1 make it optional; the OpenID conformance
    // suite's signed objects carry none), the object is taken: on to the login page.
    let jwt = signed(&es, &object(&app, &id, &[("exp", Value::Null)]));
    let next = send(&app, &id, &jwt, &BESIDE).await.unwrap();
    assert_eq!(next.path(), "/login", "{next}");

    // Signatures and forms that are not this client's.
    let other = client_key(SigningAlg::ES256, "es-1").await;
    let good = object(&app, &id, &[]);
    refused_with(&app, &id, &signed(&other, &good), "invalid_request_object", not_signed).await;
    let body = b64(good.to_string().as_bytes());
    let unsigned = format!("{}.{body}.", b64(br#"{"alg":"none"}"#));
    refused_with(
        &app,
        &id,
        &unsigned,
        "invalid_request_object",
        "must be signed with RS256",
    )
    .await;
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    refused_with(&app, &id, &hs, "invalid_request_object", "must be signed with RS256").await;
    refused_with(&app, &id, "a.b.c.d.e", "invalid_request_object", "encrypted").await;
    refused_with(&app, &id, "not a jwt", "invalid_request_object", "not a signed JWT").await;
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    let dpop_typed = jsonwebtoken::encode(&header, &good, &es.encoding).unwrap();
    refused_with(&app, &id, &dpop_typed, "invalid_request_object", "typ must be").await;
    let huge = signed(&es, &object(&app, &id, &[("login_hint", json!("x".repeat(20_000)))]));
    refused_with(&app, &id, &huge, "invalid_request_object", "longer than").await;
    // OIDC Core §6.1: a response_type beside the object must be the one inside.
    let back = send(&app, &id, &signed(&es, &good), &[("response_type", "token"), BESIDE[0]])
        .await
        .unwrap();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_request_object"),
        "{back}"
    );
    // request and request_uri together.
    let back = send(
        &app,
        &id,
        &signed(&es, &good),
        &[("request_uri", "urn:ietf:params:oauth:request_uri:x"), BESIDE[0]],
    )
    .await
    .unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");

    // Nothing beside the object says where to answer: the refusal is shown.
    for extra in [vec![], vec![("redirect_uri", "https://evil.example/cb")]] {
        let (status, page) = send(&app, &id, &signed(&other, &good), &extra).await.unwrap_err();
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("cannot be used"), "{page}");
    }
    // Problems with the client are pages, as without an object.
    let (status, _) = send(&app, "no-such-client", &signed(&es, &good), &BESIDE)
        .await
        .unwrap_err();
    assert_eq!(status, 400);
    let r = browser()
        .get(authorize_url(&app, &[("request", &signed(&es, &good))]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A client with a secret, or a public client, has no keys to sign with.
    let (secret_client, _) = app.confidential_client(REDIRECT).await;
    let public = app.public_client(REDIRECT).await;
    for client in [secret_client.id.as_str(), public.id.as_str()] {
        let jwt = signed(&es, &object(&app, client, &[]));
        refused_with(&app, client, &jwt, "invalid_request_object", not_signed).await;
    }

    // A client that must push its requests cannot send an object through the browser.
    let pushed_only = keyed_client(&app, &[&es], true).await;
    let back = send(&app, &pushed_only, &signed(&es, &object(&app, &pushed_only, &[])), &[])
        .await
        .unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert!(param(&back, "error_description").unwrap().contains("pushed"));
    app.stop().await;
}

/// POSTs `form` to `/par`, authenticated by an assertion signed by `key`.
async fn push(app: &TestApp, client_id: &str, key: &ClientKey, form: &[(&str, &str)]) -> (u16, Value) {
    push_with(app, client_id, key, form, None).await
}

/// `push`, with a DPoP proof signed by `dpop` if any.
async fn push_with(
    app: &TestApp,
    client_id: &str,
    key: &ClientKey,
    form: &[(&str, &str)],
    dpop: Option<&ClientKey>,
) -> (u16, Value) {
    let assertion = sign(key, &claims(client_id, &app.issuer));
    let mut fields = vec![
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    fields.extend_from_slice(form);
    let mut r = http().post(app.url("/par")).form(&fields);
    if let Some(k) = dpop {
        r = r.header("DPoP", proof(k, "POST", &app.url("/par"), None));
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn pushed_request_objects(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], true).await;

    // RFC 9126 §3: the object is pushed; only what is inside it counts.
    let jwt = signed(&es, &object(&app, &id, &[]));
    let (s, pushed) = push(&app, &id, &es, &[("request", &jwt), ("state", "outside-state")]).await;
    assert_eq!(s, 201, "{pushed}");
    let uri = pushed["request_uri"].as_str().unwrap();
    let url = authorize_url(&app, &[("client_id", id.as_str()), ("request_uri", uri)]);
    let back = match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => u,
        other => panic!("no redirect to the client: {other:?}"),
    };
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    let (s, tokens) = exchange(&app, &id, &es, &param(&back, "code").unwrap()).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(payload(tokens["id_token"].as_str().unwrap())["nonce"], "inside-nonce");

    // A bad object is a JSON error.
    let other = client_key(SigningAlg::ES256, "es-1").await;
    for (jwt, error) in [
        (signed(&other, &object(&app, &id, &[])), "invalid_request_object"),
        (
            signed(&es, &object(&app, &id, &[("client_id", json!("another"))])),
            "invalid_request_object",
        ),
        (
            signed(
                &es,
                &object(&app, &id, &[("redirect_uri", json!("https://evil.example/cb"))]),
            ),
            "invalid_request",
        ),
    ] {
        let (s, body) = push(&app, &id, &es, &[("request", &jwt)]).await;
        assert_eq!((s, body["error"].as_str()), (400, Some(error)), "{body}");
    }
    let (s, body) = push(&app, &id, &es, &[("request", &jwt), ("request", &jwt)]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // RFC 9449 §10.1: a proof sent with the push binds the code; a dpop_jkt inside the
    // object must name the proof's key, and one beside it is not read.
    let holder = client_key(SigningAlg::ES256, "dpop").await;
    let stranger = client_key(SigningAlg::ES256, "dpop-2").await;
    let inside = |jkt: &str| signed(&es, &object(&app, &id, &[("dpop_jkt", json!(jkt))]));
    let (s, body) = push_with(
        &app,
        &id,
        &es,
        &[("request", &inside(&thumbprint(&stranger.jwk)))],
        Some(&holder),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let (s, body) = push_with(
        &app,
        &id,
        &es,
        &[("request", &inside(&thumbprint(&holder.jwk)))],
        Some(&holder),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let beside = thumbprint(&stranger.jwk);
    let (s, body) = push_with(
        &app,
        &id,
        &es,
        &[
            ("request", &signed(&es, &object(&app, &id, &[]))),
            ("dpop_jkt", &beside),
        ],
        Some(&holder),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    app.stop().await;
}

/// RFC 8707 in an object: `resource` as a string or an array; one API per request here,
/// so an array of two is refused as the parameter sent twice is (`invalid_target`).
async fn resources_in_objects(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let api = "https://api.one.example/";
    let jwks = json!({"keys": [es.jwk.clone()]});
    let (client, _) = app
        .core
        .create_client(
            &ClientInput {
                name: "Signed requests for an API".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                jwks: Some(jwks.to_string()),
                resources: vec![api.into(), "https://api.two.example/".into()],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let id = client.id.as_str();
    for resource in [json!(api), json!([api])] {
        let jwt = signed(
            &es,
            &object(&app, id, &[("scope", json!("openid")), ("resource", resource)]),
        );
        let u = send(&app, id, &jwt, &[]).await.unwrap();
        assert_eq!(u.path(), "/login", "{u}");
    }
    let two = json!([api, "https://api.two.example/"]);
    let jwt = signed(&es, &object(&app, id, &[("scope", json!("openid")), ("resource", two)]));
    let back = send(&app, id, &jwt, &[]).await.unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_target"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    assert!(param(&back, "error_description").unwrap().contains("one API"));
    let jwt = signed(&es, &object(&app, id, &[("resource", json!([1]))]));
    refused_with(&app, id, &jwt, "invalid_request_object", "resource must be a string").await;
    app.stop().await;
}

/// The parameters of a plain request (no object) from `client_id`.
fn plain(client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", client_id.to_owned()),
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid".into()),
        ("state", "plain-state".into()),
        ("code_challenge", challenge()),
        ("code_challenge_method", "S256".into()),
    ]
}

/// A plain request from `client_id` is refused at its redirect URI, saying objects are
/// required.
async fn plain_is_refused(app: &TestApp, client_id: &str) {
    let pairs = plain(client_id);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = browser().get(authorize_url(app, &pairs)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("plain-state"));
    assert!(
        param(&back, "error_description").unwrap().contains("request objects"),
        "{back}"
    );
}

/// RFC 9101 §10.5: a client registered with `require_signed_request_object` is taken only
/// with an object, through the browser or pushed; a plain push is a JSON error.
async fn a_client_can_require_objects(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = client_with(&app, &[&es], false, true).await;
    assert_eq!(
        app.get_json("/.well-known/openid-configuration").await["require_signed_request_object"],
        false
    );
    plain_is_refused(&app, &id).await;
    let u = send(&app, &id, &signed(&es, &object(&app, &id, &[])), &[])
        .await
        .unwrap();
    assert_eq!(u.path(), "/login", "{u}");
    let form = plain(&id);
    let form: Vec<(&str, &str)> = form.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let (s, body) = push(&app, &id, &es, &form).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let (s, body) = push(&app, &id, &es, &[("request", &signed(&es, &object(&app, &id, &[])))]).await;
    assert_eq!(s, 201, "{body}");
    // Another client of the same server is not affected.
    let other = keyed_client(&app, &[&es], false).await;
    let pairs = plain(&other);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    app.stop().await;
}

/// The server-wide `require_signed_request_object`: every client's requests, said in
/// discovery.
async fn the_server_can_require_objects(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.require_signed_request_object = true;
    })
    .await;
    assert_eq!(
        app.get_json("/.well-known/openid-configuration").await["require_signed_request_object"],
        true
    );
    let (secret_client, _) = app.confidential_client(REDIRECT).await;
    plain_is_refused(&app, secret_client.id.as_str()).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], false).await;
    plain_is_refused(&app, &id).await;
    let u = send(&app, &id, &signed(&es, &object(&app, &id, &[])), &[])
        .await
        .unwrap();
    assert_eq!(u.path(), "/login", "{u}");
    app.stop().await;
}

/// A client that publishes its keys at a `jwks_uri`: objects are checked with those,
/// read again for a key published since, and refused once no key verifies them.
async fn published_keys_verify_objects(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.jwks_uri_retry_gap = std::time::Duration::from_millis(200);
    })
    .await;
    let first = client_key(SigningAlg::ES256, "first").await;
    let second = client_key(SigningAlg::RS256, "second").await;
    let published = Published::default();
    published.keys(&[&first]);
    let host = key_host(published.clone()).await;
    let (client, _) = app
        .core
        .create_client(
            &ClientInput {
                name: "Published keys".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid profile".into(),
                jwks_uri: Some(format!("{host}/jwks")),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let id = client.id.as_str();
    let at_login = |r: Result<Url, (u16, String)>| {
        let u = r.unwrap_or_else(|page| panic!("{page:?}"));
        assert_eq!(u.path(), "/login", "{u}");
    };
    at_login(send(&app, id, &signed(&first, &object(&app, id, &[])), &[]).await);
    assert_eq!(published.hits(), 1);
    // A rollover: the client publishes a new key and signs with it.
    published.keys(&[&second]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    at_login(send(&app, id, &signed(&second, &object(&app, id, &[])), &[]).await);
    assert_eq!(published.hits(), 2);
    // The first key is gone from the set read: refused.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    refused_with(
        &app,
        id,
        &signed(&first, &object(&app, id, &[])),
        "invalid_request_object",
        "is not signed by a key registered for the client",
    )
    .await;
    assert_eq!(published.hits(), 3, "read again before refusing");
    app.stop().await;
}

/// RFC 9101 §10.8: an object seen in the browser, signed by the client for this server,
/// is not the client's credential at `/token`, even with a `sub` and a `jti`.
async fn an_object_is_not_an_assertion(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], false).await;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(es.kid.clone());
    let seen = object(&app, &id, &[("sub", json!(id))]);
    let jwt = jsonwebtoken::encode(&header, &seen, &es.encoding).unwrap();
    let r = http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &jwt),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not a client assertion"),
        "{body}"
    );
    app.stop().await;
}

/// OIDC Registration §2: a client that registers `token_endpoint_auth_signing_alg` and
/// `request_object_signing_alg` has them echoed, and anything it signs with another of
/// its keys' algorithms is refused; an algorithm the server does not take is refused at
/// registration.
async fn registered_algorithms_are_the_only_ones_taken(backend: Backend) {
    let app = open_registration(backend).await;
    let es = client_key(SigningAlg::ES256, "es").await;
    let rs = client_key(SigningAlg::RS256, "rs").await;
    let metadata = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [es.jwk, rs.jwk]},
        "token_endpoint_auth_signing_alg": "ES256",
        "request_object_signing_alg": "RS256",
    });
    let (status, reg) = register(&app, &metadata).await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["token_endpoint_auth_signing_alg"], "ES256");
    assert_eq!(reg["request_object_signing_alg"], "RS256");
    let id = reg["client_id"].as_str().unwrap();
    let revoke =
        async |key: &ClientKey| crate::private_key_jwt::authenticate_at_revoke(&app, &app.issuer, id, key).await;
    let (status, body) = revoke(&rs).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_client");
    assert_eq!(revoke(&es).await, (200, String::new()));

    let (status, e) = push(&app, id, &es, &[("request", &signed(&es, &object(&app, id, &[])))]).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request_object")),
        "{e}"
    );
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("request_object_signing_alg"),
        "{e}"
    );
    let (status, pushed) = push(&app, id, &es, &[("request", &signed(&rs, &object(&app, id, &[])))]).await;
    assert_eq!(status, 201, "{pushed}");

    let mut bad = metadata.clone();
    bad["token_endpoint_auth_signing_alg"] = json!("HS256");
    let (status, e) = register(&app, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_client_metadata");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("token_endpoint_auth_signing_alg: HS256 is not taken"),
        "{e}"
    );
    app.stop().await;
}

/// OIDC Core §6.2: a request object read from one of the client's `request_uris`
/// (compared without the fragment), checked against the SHA-256 hash a fragment names,
/// then taken as one sent by value; anything else is `invalid_request_uri`.
async fn request_objects_by_reference(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let es = client_key(SigningAlg::ES256, "es-ref").await;
    let published = Published::default();
    let base = key_host(published.clone()).await;
    let at = format!("{base}/jwks");
    let jwks = json!({"keys": [es.jwk]});
    let (client, _) = app
        .core
        .create_client(
            &ClientInput {
                name: "Requests by reference".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid profile".into(),
                jwks: Some(jwks.to_string()),
                request_uris: vec![format!("{at}#{}", b64(&[0u8; 32]))],
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let id = client.id.as_str().to_owned();
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["request_uri_parameter_supported"], true);
    assert_eq!(meta["require_request_uri_registration"], true);

    let object_jwt = signed(&es, &object(&app, &id, &[]));
    published.set(200, object_jwt.clone());
    // Read at the registered URL (its registered fragment is another content's: a
    // request names the one it sends); the parameters beside it are not read.
    let url = authorize_url(
        &app,
        &[
            ("client_id", id.as_str()),
            ("request_uri", &at),
            ("scope", "openid"),
            ("state", "outside-state"),
        ],
    );
    let back = match authorize_in_browser(&browser(), &app, &url, "alice", "allow").await {
        Step::LeftIssuer(u) => u,
        other => panic!("no redirect to the client: {other:?}"),
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("inside-state"));
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(published.hits(), 1);
    // With the hash of what is there: taken (to the login page).
    let hashed = format!("{at}#{}", b64(&portcullis_core::crypto::sha256(object_jwt.as_bytes())));
    let r = browser()
        .get(authorize_url(&app, &[("client_id", &id), ("request_uri", &hashed)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));

    // Refused, at the redirect URI beside it with the state beside it.
    let refused = async |request_uri: &str, extra: &[(&str, &str)], code: &str, why: &str| {
        let mut pairs = vec![("client_id", id.as_str()), ("request_uri", request_uri)];
        pairs.extend_from_slice(&BESIDE);
        pairs.extend_from_slice(extra);
        let r = browser().get(authorize_url(&app, &pairs)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{why}");
        let back = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT), "{why}: {back}");
        assert_eq!(param(&back, "error").as_deref(), Some(code), "{why}: {back}");
        assert_eq!(param(&back, "state").as_deref(), Some("outside-state"), "{back}");
        let description = param(&back, "error_description").unwrap_or_default();
        assert!(description.contains(why), "expected {why:?}: {description}");
        assert!(param(&back, "code").is_none());
    };
    let hits = published.hits();
    refused(
        &format!("{base}/moved"),
        &[],
        "invalid_request_uri",
        "not one of the client's request_uris",
    )
    .await;
    refused(
        &format!("{at}?x=1"),
        &[],
        "invalid_request_uri",
        "not one of the client's request_uris",
    )
    .await;
    assert_eq!(published.hits(), hits, "an unregistered URL is not read");
    refused(
        &at,
        &[("request", &object_jwt)],
        "invalid_request",
        "cannot both be sent",
    )
    .await;
    // Whatever went wrong once the URL is found registered, the answer is the same (the
    // log says why): nobody learns from it what a URL holds.
    const UNUSABLE: &str = "the request object at request_uri could not be used";
    let other_hash = format!("{at}#{}", b64(&portcullis_core::crypto::sha256(b"another object")));
    refused(&other_hash, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(404, String::new());
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(
        200,
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(object(&app, &id, &[]).to_string().as_bytes())
        ),
    );
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    published.set(
        200,
        signed(&es, &object(&app, &id, &[("pad", json!("x".repeat(20_000)))])),
    );
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    // What a URL with a fragment held is kept: its hash says it is the same.
    let hits = published.hits();
    for _ in 0..2 {
        let r = browser()
            .get(authorize_url(&app, &[("client_id", &id), ("request_uri", &hashed)]))
            .send()
            .await
            .unwrap();
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
    }
    assert_eq!(published.hits(), hits, "read once, before");
    let r = browser()
        .get(authorize_url(
            &app,
            &[("client_id", &id), ("request_uri", &at), ("request_uri", &at)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a repeated request_uri is shown, never read");

    // A client that takes only pushed requests costs no read; a client that registered
    // itself is read only at public addresses (loopback is not one).
    let mut pushed_only = app.core.get_client(&client.id).await.unwrap();
    pushed_only.require_pushed_authorization_requests = true;
    app.core.store.update_client(&pushed_only, &[]).await.unwrap();
    let hits = published.hits();
    refused(&at, &[], "invalid_request", "pushed authorization request endpoint").await;
    let mut self_registered = app.core.get_client(&client.id).await.unwrap();
    self_registered.require_pushed_authorization_requests = false;
    self_registered.self_registered = true;
    app.core.store.update_client(&self_registered, &[]).await.unwrap();
    refused(&at, &[], "invalid_request_uri", UNUSABLE).await;
    assert_eq!(published.hits(), hits);
    app.stop().await;
}

/// OIDC Registration §2: a client that registers itself may name `request_uris`: with
/// keys to sign what they hold, at names (not addresses) the server may read; echoed.
async fn request_uris_are_registered(backend: Backend) {
    let app = open_registration(backend).await;
    let es = client_key(SigningAlg::ES256, "es").await;
    let keyed = |uris: Value| {
        json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [es.jwk]},
            "request_uris": uris,
        })
    };
    let (status, reg) = register(&app, &keyed(json!(["https://rp.example/request.jwt"]))).await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["request_uris"], json!(["https://rp.example/request.jwt"]));
    // An operator's edit (which cannot name them) keeps them.
    let id = portcullis_protocol::ClientId::parse(reg["client_id"].as_str().unwrap()).unwrap();
    let before = app.core.get_client(&id).await.unwrap();
    app.core
        .update_client(
            &id,
            &ClientInput {
                name: "Renamed".into(),
                kind: Some(before.kind),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                jwks: before.jwks.clone(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        app.core.get_client(&id).await.unwrap().request_uris,
        ["https://rp.example/request.jwt"]
    );
    let nine: Vec<String> = (0..9).map(|i| format!("https://rp.example/r{i}.jwt")).collect();
    for (metadata, why) in [
        (keyed(json!(["http://127.0.0.1:8080/request.jwt"])), "request_uris: "),
        (keyed(json!(["https://rp.example/r.jwt#short"])), "base64url SHA-256"),
        (keyed(json!(["ftp://rp.example/r.jwt"])), "request_uris"),
        (keyed(json!(nine)), "at most 8"),
        (
            json!({"redirect_uris": [REDIRECT], "request_uris": ["https://rp.example/request.jwt"]}),
            "register jwks or jwks_uri",
        ),
    ] {
        let (status, e) = register(&app, &metadata).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{e}"
        );
        assert!(e["error_description"].as_str().unwrap().contains(why), "{why}: {e}");
    }
    app.stop().await;
}

/// `allow_unsigned_request_objects` (OIDC Core §6.1, for the OpenID conformance suite's
/// dynamic plan): an unsigned object (`alg` `none`, empty signature) is read like a plain
/// request; `iss` and `aud` may be left out but not be wrong; a client that must sign,
/// or registered an algorithm, still must. Discovery lists `none` then, and only then.
async fn unsigned_objects_when_allowed(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.allow_unsigned_request_objects = true;
    })
    .await;
    let es = client_key(SigningAlg::ES256, "es-1").await;
    let id = keyed_client(&app, &[&es], false).await;
    let unsigned = |claims: &Value, signature: &str| {
        format!(
            "{}.{}.{signature}",
            b64(br#"{"alg":"none"}"#),
            b64(claims.to_string().as_bytes())
        )
    };
    let bare = object(
        &app,
        &id,
        &[("iss", Value::Null), ("aud", Value::Null), ("exp", Value::Null)],
    );
    let next = send(&app, &id, &unsigned(&bare, ""), &BESIDE).await.unwrap();
    assert_eq!(next.path(), "/login", "{next}");
    for (jwt, why) in [
        (
            unsigned(&object(&app, &id, &[("iss", json!("someone-else"))]), ""),
            "iss must be the client_id",
        ),
        (
            unsigned(&object(&app, &id, &[("aud", json!("https://other.example"))]), ""),
            "aud must be this server's issuer",
        ),
        (unsigned(&bare, "c2ln"), "must have an empty signature"),
    ] {
        refused_with(&app, &id, &jwt, "invalid_request_object", why).await;
    }
    // A client that must sign its objects.
    let strict = client_with(&app, &[&es], false, true).await;
    let bare = object(&app, &strict, &[]);
    refused_with(
        &app,
        &strict,
        &unsigned(&bare, ""),
        "invalid_request_object",
        "must be signed",
    )
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    let algs = meta["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.contains(&json!("none")), "{algs:?}");
    app.stop().await;

    // Off (the default): refused as any object without a signature, and not listed.
    let app = portcullis_tests::spawn_app(backend).await;
    let id = keyed_client(&app, &[&es], false).await;
    let bare = object(&app, &id, &[]);
    refused_with(
        &app,
        &id,
        &unsigned(&bare, ""),
        "invalid_request_object",
        "must be signed with",
    )
    .await;
    let meta = app.get_json("/.well-known/openid-configuration").await;
    let algs = meta["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(!algs.contains(&json!("none")), "{algs:?}");
    app.stop().await;
}

/// OIDC Registration §2 lists `jwks` apart from the token endpoint's method: a client
/// that registers itself with a secret method and keys (as the OpenID conformance suite
/// does) authenticates with its secret and signs its request objects with its keys.
async fn secret_clients_sign_objects_with_registered_keys(backend: Backend) {
    let app = open_registration(backend).await;
    let rs = client_key(SigningAlg::RS256, "rs-1").await;
    let (status, registered) = register(
        &app,
        &json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
            "jwks": {"keys": [rs.jwk]},
            "request_object_signing_alg": "RS256",
        }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "client_secret_basic");
    let id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().expect("a secret");
    let next = send(&app, id, &signed(&rs, &object(&app, id, &[])), &BESIDE)
        .await
        .unwrap();
    assert_eq!(next.path(), "/login", "{next}");
    for (password, expected) in [(secret, 200), ("wrong", 401)] {
        let r = http()
            .post(app.url("/revoke"))
            .basic_auth(id, Some(password))
            .form(&[("token", "not-a-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{password}");
    }
    // An operator's edit keeps the secret and the keys.
    let client_id = portcullis_protocol::ClientId::parse(id).unwrap();
    let stored = app.core.get_client(&client_id).await.unwrap();
    let edited = app
        .core
        .update_client(
            &client_id,
            &ClientInput {
                name: "Edited".into(),
                kind: Some(ClientKind::Confidential),
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec!["authorization_code".into()],
                scopes: "openid".into(),
                jwks: stored.jwks.clone(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert!(edited.secret_hash.is_some() && edited.jwks.is_some());
    assert_eq!(edited.token_endpoint_auth_method(), "client_secret_basic");
    // A public client has no use for keys.
    let (status, body) = register(
        &app,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "jwks": {"keys": [rs.jwk]}}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );
    app.stop().await;
}

both_backends!(
    secret_clients_sign_objects_with_registered_keys,
    unsigned_objects_when_allowed,
    request_objects_by_reference,
    request_uris_are_registered,
    registered_algorithms_are_the_only_ones_taken,
    signed_requests_are_read_alone,
    bad_request_objects_are_refused,
    pushed_request_objects,
    an_object_is_not_an_assertion,
    published_keys_verify_objects,
    a_client_can_require_objects,
    the_server_can_require_objects,
    resources_in_objects,
);
