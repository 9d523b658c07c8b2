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
pub(crate) async fn keyed_client(app: &TestApp, keys: &[&ClientKey], par_only: bool) -> String {
    client_with(app, keys, par_only, false).await
}

/// `keyed_client`, also requiring its requests to be signed if `signed_only`.
pub(crate) async fn client_with(app: &TestApp, keys: &[&ClientKey], par_only: bool, signed_only: bool) -> String {
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
pub(crate) fn object(app: &TestApp, client_id: &str, change: &[(&str, Value)]) -> Value {
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
pub(crate) fn signed(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("oauth-authz-req+jwt".into());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

pub(crate) fn b64(v: &[u8]) -> String {
    portcullis_core::crypto::b64url(v)
}

pub(crate) fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> Url {
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    u
}

pub(crate) fn param(url: &Url, name: &str) -> Option<String> {
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
pub(crate) async fn send(
    app: &TestApp,
    client_id: &str,
    request: &str,
    extra: &[(&str, &str)],
) -> Result<Url, (u16, String)> {
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
pub(crate) const BESIDE: [(&str, &str); 2] = [("redirect_uri", REDIRECT), ("state", "outside-state")];

/// The request object is refused with `code`, sent to the redirect URI beside it with
/// the state beside it, its description containing `why`.
pub(crate) async fn refused_with(app: &TestApp, client_id: &str, request: &str, code: &str, why: &str) {
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

both_backends!(
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
