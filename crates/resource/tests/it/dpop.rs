//! DPoP (RFC 9449) through the axum extractors, driven with `oneshot`: a DPoP-bound token
//! with a good proof passes; every way a proof or its use can be wrong is refused with the
//! RFC 9449 §7.1 challenge; bearer behaviour stays as it was.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_resource::dpop::PROOF_ALGORITHMS;
use portcullis_resource::{
    AuthError, Clock as _, IntrospectionValidator, InvalidDpopProof, InvalidToken, JwksValidator, ScopeRequirement,
    Scoped, Validator, VerifiedClaims,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::jwks::Setup;
use crate::support::{CLIENT_ID, CLIENT_SECRET, FakeIssuer, Key, b64, sign_hs256, token_shaped, unix, unsigned};

pub const BASE: &str = "https://api.example.com";
pub const REALM: &str = "notes-api";

pub struct NotesRead;
impl ScopeRequirement for NotesRead {
    const SCOPES: &'static [&'static str] = &["notes:read"];
}

struct NotesAdmin;
impl ScopeRequirement for NotesAdmin {
    const SCOPES: &'static [&'static str] = &["notes:admin"];
}

pub async fn notes_get(caller: Scoped<NotesRead>) -> Json<Value> {
    Json(json!({"sub": caller.subject, "jkt": caller.dpop_jkt}))
}

async fn admin(_caller: Scoped<NotesAdmin>) -> &'static str {
    "admin"
}

pub fn app(validator: impl Into<Validator>) -> Router {
    Router::new()
        .route("/notes", get(notes_get).post(notes_get))
        .route("/admin", get(admin))
        .with_state(validator.into())
}

/// RFC 7638 SHA-256 thumbprint of a test key, computed here from its JWK's required members
/// in lexicographic order.
pub fn thumbprint(key: &Key) -> String {
    let jwk = key.jwk();
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.unwrap(),
            jwk.x.unwrap(),
            jwk.y.unwrap()
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.unwrap(),
            jwk.x.unwrap()
        ),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, jwk.e.unwrap(), jwk.n.unwrap()),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// RFC 9449 §4.2 `ath`.
fn ath(token: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// A client holding a DPoP key, making proofs at the test clock's time.
pub struct Client {
    pub key: Key,
    pub now: i64,
    next_jti: std::cell::Cell<u32>,
}

impl Client {
    pub fn new(key: Key, now: i64) -> Self {
        Self {
            key,
            now,
            next_jti: std::cell::Cell::new(0),
        }
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.key.alg(), "jwk": serde_json::to_value(self.key.jwk()).unwrap()})
    }

    /// Good claims for `method url` with `token`, with a fresh `jti`.
    fn claims(&self, method: &str, url: &str, token: &str) -> Value {
        let jti = self.next_jti.get() + 1;
        self.next_jti.set(jti);
        json!({"jti": format!("jti-{jti}"), "htm": method, "htu": url, "iat": self.now, "ath": ath(token)})
    }

    pub fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.key
            .sign_with_header(&self.header(), &self.claims(method, url, token))
    }

    pub fn proof_with(
        &self,
        method: &str,
        url: &str,
        token: &str,
        change: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let (mut header, mut claims) = (self.header(), self.claims(method, url, token));
        change(&mut header, &mut claims);
        self.key.sign_with_header(&header, &claims)
    }
}

/// The JWKS setup of `jwks.rs` plus a validator for the same issuer with DPoP on, and a
/// client with an EC key.
pub struct DpopSetup {
    pub s: Setup,
    pub validator: JwksValidator,
    pub client: Client,
}

impl DpopSetup {
    pub async fn new() -> Self {
        Self::with_client_key(Key::ec("client")).await
    }

    async fn with_client_key(key: Key) -> Self {
        let s = Setup::new().await;
        let validator = dpop_validator(&s, |b| b).await;
        let client = Client::new(key, unix(s.clock.now()));
        Self { s, validator, client }
    }

    /// An access token bound to the client's key.
    pub fn bound_token(&self) -> String {
        self.bound_token_with(|_| {})
    }

    pub fn bound_token_with(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut c = self.s.claims();
        c["cnf"] = json!({"jkt": thumbprint(&self.client.key)});
        change(&mut c);
        self.s.key.sign(&c)
    }
}

pub async fn dpop_validator(
    s: &Setup,
    configure: impl FnOnce(portcullis_resource::JwksValidatorBuilder) -> portcullis_resource::JwksValidatorBuilder,
) -> JwksValidator {
    let builder = JwksValidator::builder(&s.issuer.url)
        .audience(REALM)
        .clock(s.clock.clone())
        .dpop_base_url(BASE);
    configure(builder).build().await.unwrap()
}

pub struct Answer {
    pub status: StatusCode,
    pub challenges: Vec<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// The one challenge, which must be a `DPoP` one naming the algorithms and `error`.
    pub fn dpop_error(&self) -> (String, String) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{}", self.body);
        assert_eq!(self.challenges.len(), 1, "{:?}", self.challenges);
        let challenge = &self.challenges[0];
        let prefix = format!(r#"DPoP realm="{REALM}", error=""#);
        let suffix = format!(r#"", algs="{PROOF_ALGORITHMS}""#);
        assert!(challenge.starts_with(&prefix), "{challenge}");
        assert!(challenge.ends_with(&suffix), "{challenge}");
        let inner = &challenge[prefix.len()..challenge.len() - suffix.len()];
        let (code, description) = inner.split_once(r#"", error_description=""#).unwrap();
        assert_eq!(self.json()["error"], code);
        assert_eq!(self.json()["error_description"], description);
        (code.to_owned(), description.to_owned())
    }
}

pub async fn send(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let challenges = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        challenges,
        retry_after,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `GET /notes` with the DPoP scheme, `token` and `proof`.
pub async fn dpop_get(app: &Router, token: &str, proof: &str) -> Answer {
    let auth = format!("DPoP {token}");
    send(app, "GET", "/notes", &[("authorization", &auth), ("dpop", proof)]).await
}

pub fn proof_error(description: InvalidDpopProof) -> (String, String) {
    ("invalid_dpop_proof".into(), description.description().into())
}

pub fn token_error(description: InvalidToken) -> (String, String) {
    ("invalid_token".into(), description.description().into())
}

#[tokio::test]
async fn good_proof_accepted_once() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let token = d.bound_token();
    let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
    let a = dpop_get(&app, &token, &proof).await;
    assert_eq!(a.status, StatusCode::OK, "{} {:?}", a.body, a.challenges);
    assert_eq!(a.json(), json!({"sub": "alice", "jkt": thumbprint(&d.client.key)}));
    // RFC 9449 §11.1: the same proof again is a replay.
    let again = dpop_get(&app, &token, &proof).await;
    assert_eq!(again.dpop_error(), proof_error(InvalidDpopProof::Replayed));
    // A new proof for the same token is fine; so is the scheme in another case (RFC 7235).
    let fresh = d.client.proof("GET", "https://api.example.com/notes", &token);
    let a = send(
        &app,
        "GET",
        "/notes",
        &[("authorization", &format!("dpop {token}")), ("dpop", &fresh)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Another method.
    let post = d.client.proof("POST", "https://api.example.com/notes", &token);
    let auth = format!("DPoP {token}");
    let a = send(&app, "POST", "/notes", &[("authorization", &auth), ("dpop", &post)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(d.validator.dpop_base_url(), Some(BASE));
}

#[tokio::test]
async fn every_key_type_works() {
    for key in [Key::ec("c"), Key::ed("c"), Key::rsa("c")] {
        let alg = key.alg();
        let d = DpopSetup::with_client_key(key).await;
        let token = d.bound_token();
        let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
        let a = dpop_get(&app(d.validator.clone()), &token, &proof).await;
        assert_eq!(a.status, StatusCode::OK, "{alg}: {}", a.body);
    }
}

/// RFC 9449 §4.3 step 9: the query and fragment are ignored, the URL is normalised.
#[tokio::test]
async fn htu_ignores_query_and_fragment() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    for (uri, htu) in [
        ("/notes?page=2", "https://api.example.com/notes"),
        ("/notes", "https://api.example.com/notes?page=2"),
        ("/notes?x=1", "https://api.example.com/notes#frag"),
        ("/notes", "HTTPS://API.EXAMPLE.COM:443/notes"),
    ] {
        let proof = d.client.proof("GET", htu, &token);
        let a = send(&app, "GET", uri, &[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!(a.status, StatusCode::OK, "{uri} {htu}: {}", a.body);
    }
}

/// Each check of RFC 9449 §4.3 that a proof can fail: `401` with
/// `DPoP error="invalid_dpop_proof"` and the reason.
#[tokio::test]
async fn bad_proofs_refused_with_invalid_dpop_proof() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let token = d.bound_token();
    let url = "https://api.example.com/notes";
    let now = d.client.now;
    let c = &d.client;
    let hs256 = {
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"secret")}});
        sign_hs256(&header, &c.claims("GET", url, &token), b"secret")
    };
    let mut private_jwk = c.header();
    private_jwk["jwk"]["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let cases: Vec<(&str, String, InvalidDpopProof)> = vec![
        (
            "wrong typ",
            c.proof_with("GET", url, &token, |h, _| h["typ"] = json!("JWT")),
            InvalidDpopProof::WrongType,
        ),
        (
            "alg none",
            unsigned(
                &json!({"typ": "dpop+jwt", "alg": "none", "jwk": c.header()["jwk"]}),
                &c.claims("GET", url, &token),
            ),
            InvalidDpopProof::UnsupportedAlgorithm,
        ),
        ("HS256", hs256, InvalidDpopProof::UnsupportedAlgorithm),
        (
            "private key in jwk",
            c.key.sign_with_header(&private_jwk, &c.claims("GET", url, &token)),
            InvalidDpopProof::InvalidKey,
        ),
        (
            "signed by another key",
            Key::ec("other").sign_with_header(&c.header(), &c.claims("GET", url, &token)),
            InvalidDpopProof::BadSignature,
        ),
        ("wrong htm", c.proof("POST", url, &token), InvalidDpopProof::WrongMethod),
        (
            "wrong htu path",
            c.proof("GET", "https://api.example.com/admin", &token),
            InvalidDpopProof::WrongUrl,
        ),
        (
            "wrong htu host",
            c.proof("GET", "https://other.example.com/notes", &token),
            InvalidDpopProof::WrongUrl,
        ),
        (
            "iat too old",
            c.proof_with("GET", url, &token, |_, cl| cl["iat"] = json!(now - 301)),
            InvalidDpopProof::Expired,
        ),
        (
            "iat in the future",
            c.proof_with("GET", url, &token, |_, cl| cl["iat"] = json!(now + 61)),
            InvalidDpopProof::NotYetValid,
        ),
        (
            "missing ath",
            c.proof_with("GET", url, &token, |_, cl| {
                cl.as_object_mut().unwrap().remove("ath");
            }),
            InvalidDpopProof::MissingClaim,
        ),
        (
            "ath of another token",
            c.proof("GET", url, &d.s.token()),
            InvalidDpopProof::AccessTokenHashMismatch,
        ),
        (
            "crit",
            c.proof_with("GET", url, &token, |h, _| h["crit"] = json!(["x"])),
            InvalidDpopProof::CriticalHeader,
        ),
        ("not a JWT", "not-a-jwt".into(), InvalidDpopProof::Malformed),
    ];
    for (what, proof, want) in cases {
        let a = dpop_get(&app, &token, &proof).await;
        assert_eq!(a.dpop_error(), proof_error(want), "{what}");
    }
    // Nothing was used up: a good proof still passes.
    let a = dpop_get(&app, &token, &c.proof("GET", url, &token)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// RFC 9449 §4.3 step 1 and §7.1: one `DPoP` header, no fewer, no more.
#[tokio::test]
async fn dpop_header_count() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    let url = "https://api.example.com/notes";
    let (p1, p2) = (d.client.proof("GET", url, &token), d.client.proof("GET", url, &token));
    let two = send(
        &app,
        "GET",
        "/notes",
        &[("authorization", &auth), ("dpop", &p1), ("dpop", &p2)],
    )
    .await;
    assert_eq!(two.dpop_error(), proof_error(InvalidDpopProof::Multiple));
    let none = send(&app, "GET", "/notes", &[("authorization", &auth)]).await;
    assert_eq!(none.dpop_error(), proof_error(InvalidDpopProof::Missing));
    let empty = send(&app, "GET", "/notes", &[("authorization", &auth), ("dpop", "")]).await;
    assert_eq!(empty.dpop_error(), proof_error(InvalidDpopProof::Missing));
    // Neither proof was used: one of them alone passes.
    assert_eq!(dpop_get(&app, &token, &p1).await.status, StatusCode::OK);
    // A malformed DPoP token is a bad request, answered in the DPoP scheme.
    let a = send(&app, "GET", "/notes", &[("authorization", "DPoP a\"b"), ("dpop", &p2)]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.challenges[0].starts_with(r#"DPoP realm="notes-api", error="invalid_request""#),
        "{:?}",
        a.challenges
    );
}

/// RFC 9449 §4.3 step 12 (and its §7.1 example): a proof by another key than the one the
/// token is bound to is a token problem, `invalid_token`.
#[tokio::test]
async fn key_mismatch_is_invalid_token() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let token = d.bound_token();
    let thief = Client::new(Key::ec("thief"), d.client.now);
    let proof = thief.proof("GET", "https://api.example.com/notes", &token);
    let a = dpop_get(&app, &token, &proof).await;
    assert_eq!(a.dpop_error(), token_error(InvalidToken::DpopKeyMismatch));
    // An invalid token with a good proof is answered in the DPoP scheme too.
    let expired = d.bound_token_with(|c| c["exp"] = json!(0));
    let proof = d.client.proof("GET", "https://api.example.com/notes", &expired);
    assert_eq!(
        dpop_get(&app, &expired, &proof).await.dpop_error(),
        token_error(InvalidToken::Expired)
    );
}

/// RFC 9449 §7.2: a bound token is not a bearer token; and an unbound one does not go with
/// the DPoP scheme.
#[tokio::test]
async fn schemes_and_bindings_must_agree() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let bound = d.bound_token();
    let url = "https://api.example.com/notes";
    // Bound token as Bearer, with or without a proof alongside.
    let proof = d.client.proof("GET", url, &bound);
    for headers in [vec![], vec![("dpop", proof.as_str())]] {
        let auth = format!("Bearer {bound}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend(headers);
        let a = send(&app, "GET", "/notes", &all).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenges,
            [
                format!(
                    r#"Bearer realm="notes-api", error="invalid_token", error_description="{}""#,
                    InvalidToken::DpopBoundAsBearer.description()
                ),
                format!(r#"DPoP realm="notes-api", algs="{PROOF_ALGORITHMS}""#),
            ]
        );
    }
    assert!(matches!(
        Validator::from(d.validator.clone()).validate(&bound).await,
        Err(AuthError::InvalidToken(InvalidToken::DpopBoundAsBearer))
    ));
    // Unbound token as DPoP, with a proof that is good in every other way.
    let unbound = d.s.token();
    let proof = d.client.proof("GET", url, &unbound);
    assert_eq!(
        dpop_get(&app, &unbound, &proof).await.dpop_error(),
        token_error(InvalidToken::NotDpopBound)
    );
}

/// Bearer behaviour stays as it was: an unbound token as Bearer passes, and a `DPoP` header
/// alongside is ignored (RFC 9449 allows that; it proves nothing about a bearer token).
#[tokio::test]
async fn bearer_requests_unchanged() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    let bearer = format!("Bearer {}", d.s.token());
    for extra in [vec![], vec![("dpop", "garbage")], vec![("dpop", "a"), ("dpop", "b")]] {
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend(extra);
        let a = send(&app, "GET", "/notes", &headers).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.json()["jkt"], Value::Null);
    }
}

/// RFC 9449 §7.1: with DPoP on, a request without credentials learns both schemes; with
/// it off, only Bearer, as before.
#[tokio::test]
async fn no_credentials_offers_both_schemes() {
    let d = DpopSetup::new().await;
    for auth in [None, Some("Basic YWxpY2U6c2VjcmV0")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let a = send(&app(d.validator.clone()), "GET", "/notes", &headers).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenges,
            [
                r#"Bearer realm="notes-api""#.to_owned(),
                format!(r#"DPoP realm="notes-api", algs="{PROOF_ALGORITHMS}""#)
            ]
        );
        let off = send(&app(d.s.validator.clone()), "GET", "/notes", &headers).await;
        assert_eq!(off.challenges, [r#"Bearer realm="notes-api""#]);
    }
}

/// A token with a `cnf` that is not an object, or whose `jkt` is not a thumbprint, is
/// malformed in either scheme. A `cnf` of `null` is no `cnf`: the token is a bearer token,
/// as it was before DPoP support and as it is with DPoP off.
#[tokio::test]
async fn malformed_cnf_is_an_invalid_token() {
    let d = DpopSetup::new().await;
    let app = app(d.validator.clone());
    for cnf in [json!("jkt"), json!({"jkt": 42}), json!({"jkt": "short"}), json!({})] {
        let token = d.bound_token_with(|c| c["cnf"] = cnf.clone());
        let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
        assert_eq!(
            dpop_get(&app, &token, &proof).await.dpop_error(),
            token_error(InvalidToken::Malformed),
            "{cnf}"
        );
        let a = send(&app, "GET", "/notes", &[("authorization", &format!("Bearer {token}"))]).await;
        assert!(a.challenges[0].contains(r#"error="invalid_token""#), "{cnf}");
    }
    let null = d.bound_token_with(|c| c["cnf"] = json!(null));
    let a = send(&app, "GET", "/notes", &[("authorization", &format!("Bearer {null}"))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let proof = d.client.proof("GET", "https://api.example.com/notes", &null);
    assert_eq!(
        dpop_get(&app, &null, &proof).await.dpop_error(),
        token_error(InvalidToken::NotDpopBound)
    );
}

/// A layer and two extractors with the same validator check the proof once: checking it
/// again would find it used.
#[tokio::test]
async fn one_proof_serves_every_extractor_of_a_request() {
    async fn gate(_claims: VerifiedClaims, request: Request<Body>, next: Next) -> Response {
        next.run(request).await
    }
    async fn both(read: Scoped<NotesRead>, again: VerifiedClaims) -> String {
        assert_eq!(read.dpop_jkt, again.dpop_jkt);
        read.subject.clone()
    }
    let d = DpopSetup::new().await;
    let validator = Validator::from(d.validator.clone());
    let app = Router::new()
        .route("/notes", get(both))
        .with_state(validator.clone())
        .layer(middleware::from_fn_with_state(validator, gate));
    let token = d.bound_token();
    let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
    let a = dpop_get(&app, &token, &proof).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "alice"));
}

/// In a nested router the path the handler sees has lost its prefix; the proof is checked
/// against the URL the client called (axum's `OriginalUri`).
#[tokio::test]
async fn nested_routers_check_the_original_url() {
    let d = DpopSetup::new().await;
    let app = Router::new().nest("/api", app(d.validator.clone()));
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    let good = d.client.proof("GET", "https://api.example.com/api/notes", &token);
    let a = send(&app, "GET", "/api/notes", &[("authorization", &auth), ("dpop", &good)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let stripped = d.client.proof("GET", "https://api.example.com/notes", &token);
    let a = send(
        &app,
        "GET",
        "/api/notes",
        &[("authorization", &auth), ("dpop", &stripped)],
    )
    .await;
    assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongUrl));
}

/// A DPoP request lacking a scope gets its `403` in the DPoP scheme.
#[tokio::test]
async fn insufficient_scope_in_the_dpop_scheme() {
    let d = DpopSetup::new().await;
    let token = d.bound_token();
    let proof = d.client.proof("GET", "https://api.example.com/admin", &token);
    let auth = format!("DPoP {token}");
    let a = send(
        &app(d.validator.clone()),
        "GET",
        "/admin",
        &[("authorization", &auth), ("dpop", &proof)],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenges,
        [format!(
            r#"DPoP realm="notes-api", error="insufficient_scope", error_description="the token lacks a scope this request needs", scope="notes:admin", algs="{PROOF_ALGORITHMS}""#
        )]
    );
}

/// A full replay cache refuses new proofs with `503` and `Retry-After` rather than forget a
/// live one.
#[tokio::test]
async fn full_replay_cache_is_503() {
    let d = DpopSetup::new().await;
    let validator = dpop_validator(&d.s, |b| {
        b.dpop_replay_cache_max_entries(1)
            .dpop_proof_window(Duration::from_secs(30), Duration::from_secs(5))
    })
    .await;
    let app = app(validator);
    let token = d.bound_token();
    let url = "https://api.example.com/notes";
    assert_eq!(
        dpop_get(&app, &token, &d.client.proof("GET", url, &token)).await.status,
        StatusCode::OK
    );
    // Another client: the cache has no room for it.
    let other = Client::new(Key::ed("other"), d.client.now);
    let other_token = d.s.key.sign(&{
        let mut c = d.s.claims();
        c["cnf"] = json!({"jkt": thumbprint(&other.key)});
        c
    });
    let a = dpop_get(&app, &other_token, &other.proof("GET", url, &other_token)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.challenges.is_empty());
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    // The first proof is forgotten 30 s + 1 s + the 60 s margin after its `iat`.
    assert_eq!(a.retry_after.as_deref(), Some("91"));
    d.s.clock.advance(Duration::from_secs(91));
    let fresh = d
        .client
        .proof_with("GET", url, &token, |_, c| c["iat"] = json!(unix(d.s.clock.now())));
    assert_eq!(dpop_get(&app, &token, &fresh).await.status, StatusCode::OK);
}

/// One key over its share of the replay cache gets `429` with `Retry-After` (and
/// `slow_down`, as the authorization server says it), and only that key: another client is
/// served.
#[tokio::test]
async fn one_key_over_its_quota_is_429() {
    let d = DpopSetup::new().await;
    let validator = dpop_validator(&d.s, |b| b.dpop_replay_cache_max_entries_per_key(2)).await;
    let app = app(validator);
    let token = d.bound_token();
    let url = "https://api.example.com/notes";
    for _ in 0..2 {
        let a = dpop_get(&app, &token, &d.client.proof("GET", url, &token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let a = dpop_get(&app, &token, &d.client.proof("GET", url, &token)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.challenges.is_empty());
    assert_eq!(a.json()["error"], "slow_down");
    // 300 s + 1 s + the 60 s margin.
    assert_eq!(a.retry_after.as_deref(), Some("361"));
    let other = Client::new(Key::ed("other"), d.client.now);
    let other_token = d.s.key.sign(&{
        let mut c = d.s.claims();
        c["cnf"] = json!({"jkt": thumbprint(&other.key)});
        c
    });
    let a = dpop_get(&app, &other_token, &other.proof("GET", url, &other_token)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// A middleware that calls `Validator::authenticate` and a handler that extracts the claims
/// check a DPoP proof once: the result is recorded where the extractor looks. (It was not,
/// and the extractor saw the proof as a replay: every DPoP request failed.)
#[tokio::test]
async fn authenticate_in_a_middleware_then_an_extractor() {
    async fn gate(
        axum::extract::State(v): axum::extract::State<Validator>,
        request: Request<Body>,
        next: Next,
    ) -> Response {
        let (mut parts, body) = request.into_parts();
        if let Err(rejection) = v.authenticate(&mut parts).await {
            return axum::response::IntoResponse::into_response(rejection);
        }
        next.run(Request::from_parts(parts, body)).await
    }
    let d = DpopSetup::new().await;
    let validator = Validator::from(d.validator.clone());
    let app = Router::new()
        .route("/notes", get(notes_get))
        .with_state(validator.clone())
        .layer(middleware::from_fn_with_state(validator, gate));
    let bearer = send(
        &app,
        "GET",
        "/notes",
        &[("authorization", &format!("Bearer {}", d.s.token()))],
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK);
    let token = d.bound_token();
    let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
    let a = dpop_get(&app, &token, &proof).await;
    assert_eq!(a.status, StatusCode::OK, "{} {:?}", a.body, a.challenges);
    assert_eq!(a.json(), json!({"sub": "alice", "jkt": thumbprint(&d.client.key)}));
    // The middleware refuses what it should: the same proof again.
    let again = dpop_get(&app, &token, &proof).await;
    assert_eq!(again.dpop_error(), proof_error(InvalidDpopProof::Replayed));
}

/// `claims.require_scope(…)?` in a handler answers a DPoP request in the DPoP scheme, with
/// `algs` (no realm: the handler's error does not know it), and a Bearer one as before.
#[tokio::test]
async fn require_scope_in_a_handler_answers_in_the_request_scheme() {
    async fn post(claims: VerifiedClaims) -> Result<&'static str, AuthError> {
        claims.require_scope("notes:write")?;
        Ok("saved")
    }
    let d = DpopSetup::new().await;
    let app = Router::new()
        .route("/notes", axum::routing::post(post))
        .with_state(Validator::from(d.validator.clone()));
    let token = d.bound_token();
    let proof = d.client.proof("POST", "https://api.example.com/notes", &token);
    let a = send(
        &app,
        "POST",
        "/notes",
        &[("authorization", &format!("DPoP {token}")), ("dpop", &proof)],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenges,
        [format!(
            r#"DPoP error="insufficient_scope", error_description="the token lacks a scope this request needs", scope="notes:write", algs="{PROOF_ALGORITHMS}""#
        )]
    );
    let a = send(
        &app,
        "POST",
        "/notes",
        &[("authorization", &format!("Bearer {}", d.s.token()))],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenges,
        [
            r#"Bearer error="insufficient_scope", error_description="the token lacks a scope this request needs", scope="notes:write""#
        ]
    );
}

#[tokio::test]
async fn builder_refuses_bad_dpop_settings() {
    let s = Setup::new().await;
    for (base, window) in [
        ("http://api.example.com", None),
        ("https://api.example.com/?q", None),
        (BASE, Some((Duration::from_secs(7200), Duration::ZERO))),
    ] {
        let mut builder = JwksValidator::builder(&s.issuer.url)
            .audience(REALM)
            .dpop_base_url(base);
        if let Some((age, future)) = window {
            builder = builder.dpop_proof_window(age, future);
        }
        assert!(matches!(builder.build().await, Err(AuthError::Config(_))), "{base}");
    }
}

/// Introspection mode: an answer with `cnf.jkt` and `token_type` `DPoP` (RFC 9449 §6.2) is a
/// bound token, taken with a proof only; a bad proof costs no call.
#[tokio::test]
async fn introspection_with_dpop() {
    let issuer = FakeIssuer::start(&[]).await;
    let clock = std::sync::Arc::new(portcullis_resource::FixedClock::starting_now());
    let now = unix(clock.now());
    let validator = IntrospectionValidator::builder(&issuer.url, CLIENT_ID, CLIENT_SECRET)
        .audience(REALM)
        .clock(clock.clone())
        .dpop_base_url(BASE)
        .build()
        .await
        .unwrap();
    let app = app(validator.clone());
    let client = Client::new(Key::ed("client"), now);
    let jkt = thumbprint(&client.key);
    let answer = |token: &str, cnf: Value, token_type: &str| {
        issuer.answer_json(
            token,
            json!({
                "active": true, "scope": "notes:read", "client_id": "cli", "sub": "bob",
                "exp": now + 60, "aud": REALM, "iss": issuer.url, "token_type": token_type, "cnf": cnf,
            }),
        );
    };
    let bound = token_shaped(&issuer.url, "bound", clock.now());
    answer(&bound, json!({"jkt": jkt}), "DPoP");
    let url = "https://api.example.com/notes";

    let a = dpop_get(&app, &bound, &client.proof("GET", url, &bound)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json(), json!({"sub": "bob", "jkt": jkt}));
    assert_eq!(issuer.introspection_hits(), 1);
    // A bad proof is refused before any call (this token is cached, so use another).
    let other = token_shaped(&issuer.url, "other", clock.now());
    answer(&other, json!({"jkt": jkt}), "DPoP");
    let a = dpop_get(&app, &other, &client.proof("DELETE", url, &other)).await;
    assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongMethod));
    assert_eq!(issuer.introspection_hits(), 1);
    // As a bearer token it is refused, even with its answer cached.
    let a = send(&app, "GET", "/notes", &[("authorization", &format!("Bearer {bound}"))]).await;
    assert!(a.challenges[0].contains(InvalidToken::DpopBoundAsBearer.description()));
    assert!(matches!(
        validator.validate(&bound).await,
        Err(AuthError::InvalidToken(InvalidToken::DpopBoundAsBearer))
    ));
    // A `cnf.jkt` binds whatever `token_type` says.
    let labelled_bearer = token_shaped(&issuer.url, "labelled", clock.now());
    answer(&labelled_bearer, json!({"jkt": jkt}), "Bearer");
    let a = send(
        &app,
        "GET",
        "/notes",
        &[("authorization", &format!("Bearer {labelled_bearer}"))],
    )
    .await;
    assert!(a.challenges[0].contains(InvalidToken::DpopBoundAsBearer.description()));
    let a = dpop_get(&app, &labelled_bearer, &client.proof("GET", url, &labelled_bearer)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // A malformed `cnf` refuses the token.
    let broken = token_shaped(&issuer.url, "broken", clock.now());
    answer(&broken, json!(["not", "an", "object"]), "DPoP");
    let a = dpop_get(&app, &broken, &client.proof("GET", url, &broken)).await;
    assert_eq!(a.dpop_error(), token_error(InvalidToken::Malformed));
    // Another client's key.
    let thief = Client::new(Key::ec("thief"), now);
    let a = dpop_get(&app, &bound, &thief.proof("GET", url, &bound)).await;
    assert_eq!(a.dpop_error(), token_error(InvalidToken::DpopKeyMismatch));
}
