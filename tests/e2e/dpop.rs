//! DPoP (RFC 9449) on both backends: a token request with a proof gets an access token
//! bound to the proof's key (`cnf.jkt`, `token_type` `DPoP`), which `/userinfo` accepts
//! only with a proof signed by that key and `/introspect` reports as bound; a public
//! client's refresh tokens, and codes asked for with `dpop_jkt` or pushed with a proof,
//! are bound too. Every way a proof can be wrong is refused with `invalid_dpop_proof`
//! saying why, and no proof is accepted twice.

use jsonwebtoken::Algorithm;
use portcullis_protocol::SigningAlg;
use portcullis_tests::{Backend, TestApp, both_backends, browser, http};
use serde_json::{Value, json};
use time::OffsetDateTime;
use url::Url;

use crate::code_flow::{PASSWORD, REDIRECT, authorize_in_browser};
use crate::forms::{Step, param};
use crate::private_key_jwt::{ClientKey, client_key};

const VERIFIER: &str = "dpop-verifier-dpop-verifier-dpop-verifier-dpop-verifier";

fn b64(bytes: &[u8]) -> String {
    portcullis_core::crypto::b64url(bytes)
}

fn sha256_b64(s: &str) -> String {
    b64(&portcullis_core::crypto::sha256(s.as_bytes()))
}

/// RFC 7638 thumbprint of an EC or OKP key, computed here from the members, not by the
/// server's code.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let m = |k: &str| jwk[k].as_str().unwrap().to_owned();
    let canonical = match m("kty").as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            m("crv"),
            m("x"),
            m("y")
        ),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, m("crv"), m("x")),
        other => panic!("{other}"),
    };
    sha256_b64(&canonical)
}

/// `v` without its member `name`.
fn without(v: &mut Value, name: &str) {
    v.as_object_mut().unwrap().remove(name);
}

/// The public JWK of `key` as a proof carries it: no `kid`, no `alg` or `use` needed.
fn public(key: &ClientKey) -> Value {
    let mut jwk = key.jwk.clone();
    for member in ["kid", "alg", "use"] {
        without(&mut jwk, member);
    }
    jwk
}

/// A compact JWS of `header` and `claims`, signed by `key`.
pub(crate) fn jws(key: &ClientKey, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, key.alg).unwrap();
    format!("{message}.{signature}")
}

fn alg_name(key: &ClientKey) -> &'static str {
    match key.alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "RS256",
    }
}

/// The header and claims of a good proof by `key` for `method` `url`, bound to `token`
/// when there is one.
pub(crate) fn proof_parts(key: &ClientKey, method: &str, url: &str, token: Option<&str>) -> (Value, Value) {
    let header = json!({"typ": "dpop+jwt", "alg": alg_name(key), "jwk": public(key)});
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": OffsetDateTime::now_utc().unix_timestamp(),
    });
    if let Some(t) = token {
        claims["ath"] = json!(sha256_b64(t));
    }
    (header, claims)
}

pub(crate) fn proof(key: &ClientKey, method: &str, url: &str, token: Option<&str>) -> String {
    let (header, claims) = proof_parts(key, method, url, token);
    jws(key, &header, &claims)
}

/// POSTs `form` to `/token` with `proof` (if any), as `(id, secret)` with Basic or, with
/// no secret, as the public client `id`: the status, the `WWW-Authenticate` header and
/// the JSON body.
async fn token(
    app: &TestApp,
    (id, secret): (&str, Option<&str>),
    proofs: &[&str],
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = form.to_vec();
    let mut r = http().post(app.url("/token"));
    match secret {
        Some(s) => r = r.basic_auth(id, Some(s)),
        None => form.push(("client_id", id)),
    }
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    let r = r.form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The claims of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

/// `GET /userinfo` with `authorization` and the proofs: the status, the
/// `WWW-Authenticate` header and the body.
async fn userinfo(app: &TestApp, authorization: &str, proofs: &[&str]) -> (u16, String, Value) {
    let mut r = http().get(app.url("/userinfo")).header("Authorization", authorization);
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, r.json().await.unwrap_or(Value::Null))
}

fn assert_error(got: &(u16, Value), status: u16, error: &str, why: &str) {
    let (s, body) = got;
    assert_eq!((*s, body["error"].as_str()), (status, Some(error)), "{why}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(why), "expected {why:?}: {body}");
}

/// `client_credentials` with a proof: a bound token, reported as bound by introspection;
/// each way a proof can be wrong is refused, and a proof works once.
async fn proofs_bind_access_tokens(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let me = (client.id.as_str(), Some(secret.expose()));
    let key = client_key(SigningAlg::ES256, "k").await;
    let other = client_key(SigningAlg::ES256, "o").await;
    let token_url = app.url("/token");
    let cc = [("grant_type", "client_credentials")];

    let meta = app.get_json("/.well-known/openid-configuration").await;
    let algs = meta["dpop_signing_alg_values_supported"].as_array().unwrap();
    assert!(
        algs.contains(&json!("ES256")) && !algs.contains(&json!("HS256")),
        "{meta}"
    );

    // Bound: cnf.jkt is the key's thumbprint, token_type DPoP (also in introspection).
    // The htu is compared without its query and fragment.
    let good = proof(&key, "POST", &format!("{token_url}?x=1#f"), None);
    let (s, body) = token(&app, me, &[&good], &cc).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(payload(&access)["cnf"], json!({"jkt": thumbprint(&key.jwk)}));
    let r = http()
        .post(app.url("/introspect"))
        .basic_auth(me.0, me.1)
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "DPoP", "{info}");
    assert_eq!(info["cnf"]["jkt"], thumbprint(&key.jwk), "{info}");
    // The audit trail names the key.
    app.core.audit.flush().await;
    let issued = app.audit_events("token.issued").await;
    assert!(
        issued.iter().any(|e| e.detail["dpop_jkt"] == thumbprint(&key.jwk)),
        "{issued:?}"
    );
    // Once only, whichever client sends it.
    let replay = token(&app, me, &[&good], &cc).await;
    assert_error(&replay, 400, "invalid_dpop_proof", "used before");
    let (other_client, other_secret) = app.confidential_client(REDIRECT).await;
    let them = (other_client.id.as_str(), Some(other_secret.expose()));
    let fresh = proof(&key, "POST", &token_url, None);
    assert_eq!(token(&app, them, &[&fresh], &cc).await.0, 200);
    let replay = token(&app, me, &[&fresh], &cc).await;
    assert_error(&replay, 400, "invalid_dpop_proof", "used before");
    // Nonces are not asked for unless required.
    let r = http()
        .post(&token_url)
        .basic_auth(me.0, me.1)
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("dpop-nonce"));
    // Without a proof: a bearer token, as before.
    let (s, body) = token(&app, me, &[], &cc).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("Bearer")), "{body}");
    assert!(payload(body["access_token"].as_str().unwrap()).get("cnf").is_none());

    // Each way a proof can be wrong.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    type Change = Box<dyn Fn(&mut Value, &mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("typ must be dpop+jwt", Box::new(|h, _| h["typ"] = json!("JWT"))),
        ("typ must be dpop+jwt", Box::new(|h, _| without(h, "typ"))),
        ("needs jwk", Box::new(|h, _| without(h, "jwk"))),
        ("private or symmetric", Box::new(|h, _| h["jwk"]["d"] = json!("AAAA"))),
        ("must be signed with", Box::new(|h, _| h["alg"] = json!("HS256"))),
        ("must be signed with", Box::new(|h, _| h["alg"] = json!("none"))),
        ("crit", Box::new(|h, _| h["crit"] = json!(["exp"]))),
        ("htm must be POST", Box::new(|_, c| c["htm"] = json!("GET"))),
        (
            "htu must be",
            Box::new(|_, c| c["htu"] = json!("https://other.example/token")),
        ),
        ("htu must be", Box::new(|_, c| without(c, "htu"))),
        ("jti of 1 to 256", Box::new(|_, c| without(c, "jti"))),
        ("jti of 1 to 256", Box::new(|_, c| c["jti"] = json!("j".repeat(257)))),
        ("no iat", Box::new(|_, c| without(c, "iat"))),
        ("number of seconds", Box::new(|_, c| c["iat"] = json!("now"))),
        (
            "more than 5 minutes old",
            Box::new(move |_, c| c["iat"] = json!(now - 400)),
        ),
        ("in the future", Box::new(move |_, c| c["iat"] = json!(now + 120))),
    ];
    for (why, change) in &cases {
        let (mut header, mut claims) = proof_parts(&key, "POST", &token_url, None);
        change(&mut header, &mut claims);
        let got = token(&app, me, &[&jws(&key, &header, &claims)], &cc).await;
        assert_error(&got, 400, "invalid_dpop_proof", why);
    }
    // Signed by another key than the one it carries.
    let (mut header, claims) = proof_parts(&key, "POST", &token_url, None);
    header["jwk"] = public(&other);
    let got = token(&app, me, &[&jws(&key, &header, &claims)], &cc).await;
    assert_error(&got, 400, "invalid_dpop_proof", "does not verify");
    // An RSA key's alg with an EC key.
    let (mut header, claims) = proof_parts(&key, "POST", &token_url, None);
    header["alg"] = json!("RS256");
    let got = token(&app, me, &[&jws(&key, &header, &claims)], &cc).await;
    assert_error(&got, 400, "invalid_dpop_proof", "not one its jwk signs with");
    let got = token(&app, me, &["not a jwt"], &cc).await;
    assert_error(&got, 400, "invalid_dpop_proof", "not a signed JWT");
    // Two proofs.
    let (a, b) = (
        proof(&key, "POST", &token_url, None),
        proof(&key, "POST", &token_url, None),
    );
    let got = token(&app, me, &[&a, &b], &cc).await;
    assert_error(&got, 400, "invalid_dpop_proof", "one DPoP header");
    // A refused proof issued nothing and spent nothing: the same proof alone works.
    let (s, body) = token(&app, me, &[&a], &cc).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    // typ is a media type (RFC 7515 §4.1.9): any case, `application/` optional.
    for typ in ["application/dpop+jwt", "DPoP+JWT"] {
        let (mut header, claims) = proof_parts(&key, "POST", &token_url, None);
        header["typ"] = json!(typ);
        let (s, body) = token(&app, me, &[&jws(&key, &header, &claims)], &cc).await;
        assert_eq!(s, 200, "{typ}: {body}");
    }
    // Ed25519 keys too.
    let ed = client_key(SigningAlg::EdDSA, "ed").await;
    let (s, body) = token(&app, me, &[&proof(&ed, "POST", &token_url, None)], &cc).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        thumbprint(&ed.jwk)
    );
    app.stop().await;
}

/// The code of a browser sign-in to `auth` as alice.
async fn sign_in(app: &TestApp, auth: &Url) -> String {
    match authorize_in_browser(&browser(), app, auth, "alice", "allow").await {
        Step::LeftIssuer(u) => param(&u, "code").expect("a code"),
        other => panic!("no redirect back: {other:?}"),
    }
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> Url {
    let challenge = sha256_b64(VERIFIER);
    let mut u = Url::parse(&app.url("/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    u
}

fn exchange(code: &str) -> [(&str, &str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

/// A public client in a browser: a code asked for with `dpop_jkt` is redeemed only with a
/// proof of that key; the access token works at `/userinfo` only with the DPoP scheme
/// and a proof of its key for it; the refresh token only with a proof of the key.
async fn a_public_clients_tokens_are_bound(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let client = app.public_client(REDIRECT).await;
    let me = (client.id.as_str(), None);
    let key = client_key(SigningAlg::ES256, "k").await;
    let thief = client_key(SigningAlg::ES256, "t").await;
    let (token_url, userinfo_url) = (app.url("/token"), app.url("/userinfo"));

    // A malformed dpop_jkt goes back to the client as an error.
    let url = authorize_url(&app, me.0, &[("dpop_jkt", "not-a-thumbprint"), ("state", "s")]);
    let r = browser().get(url).send().await.unwrap();
    let to = Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&to, "error").as_deref(), Some("invalid_request"), "{to}");
    assert!(param(&to, "error_description").unwrap().contains("dpop_jkt"), "{to}");

    let jkt = thumbprint(&key.jwk);
    let code = sign_in(&app, &authorize_url(&app, me.0, &[("dpop_jkt", &jkt)])).await;
    // Not without a proof, not with another key's: and the code is still good after.
    let got = token(&app, me, &[], &exchange(&code)).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let got = token(&app, me, &[&proof(&thief, "POST", &token_url, None)], &exchange(&code)).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let (s, tokens) = token(&app, me, &[&proof(&key, "POST", &token_url, None)], &exchange(&code)).await;
    assert_eq!((s, tokens["token_type"].as_str()), (200, Some("DPoP")), "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(payload(&access)["cnf"]["jkt"], jkt);

    // /userinfo: the DPoP scheme with a proof of the key for this token.
    let dpop = format!("DPoP {access}");
    let (s, _, body) = userinfo(&app, &dpop, &[&proof(&key, "GET", &userinfo_url, Some(&access))]).await;
    assert_eq!((s, body["preferred_username"].as_str()), (200, Some("alice")), "{body}");
    // HEAD is routed as GET, and its proof names HEAD.
    let r = http()
        .head(&userinfo_url)
        .header("Authorization", &dpop)
        .header("DPoP", proof(&key, "HEAD", &userinfo_url, Some(&access)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // As a bearer token: refused, with a DPoP challenge beside the Bearer one (§7.1).
    let (s, challenge, body) = userinfo(&app, &format!("Bearer {access}"), &[]).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("DPoP-bound"),
        "{challenge}"
    );
    let r = http()
        .get(&userinfo_url)
        .header("Authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert!(
        challenges.len() == 2 && challenges[1].to_str().unwrap().starts_with("DPoP algs="),
        "{challenges:?}"
    );
    // The DPoP scheme without a proof, with a proof for another token (ath), by another
    // key, or for another method.
    let (s, challenge, body) = userinfo(&app, &dpop, &[]).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_dpop_proof")), "{body}");
    assert!(
        challenge.starts_with("DPoP algs=\"") && challenge.contains("ES256"),
        "{challenge}"
    );
    let (s, challenge, body) = userinfo(&app, &dpop, &[&proof(&key, "GET", &userinfo_url, Some("other"))]).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_dpop_proof")), "{body}");
    assert!(challenge.contains("ath"), "{challenge}");
    let (s, _, body) = userinfo(&app, &dpop, &[&proof(&thief, "GET", &userinfo_url, Some(&access))]).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    let (s, _, body) = userinfo(&app, &dpop, &[&proof(&key, "POST", &userinfo_url, Some(&access))]).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_dpop_proof")), "{body}");
    // A proof is good once.
    let once = proof(&key, "GET", &userinfo_url, Some(&access));
    assert_eq!(userinfo(&app, &dpop, &[&once]).await.0, 200);
    assert_eq!(userinfo(&app, &dpop, &[&once]).await.0, 401);

    // The refresh token: not without a proof, not with another key's; neither spends it.
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let got = token(&app, me, &[], &refresh_form).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let got = token(&app, me, &[&proof(&thief, "POST", &token_url, None)], &refresh_form).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let (s, body) = token(&app, me, &[&proof(&key, "POST", &token_url, None)], &refresh_form).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert_eq!(payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt);

    // A grant that began without a proof is bound by the first refresh with one (§5: a
    // public client's refresh tokens are bound to the key of the proof they came with).
    let code = sign_in(&app, &authorize_url(&app, me.0, &[])).await;
    let (s, tokens) = token(&app, me, &[], &exchange(&code)).await;
    assert_eq!((s, tokens["token_type"].as_str()), (200, Some("Bearer")), "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (s, body) = token(&app, me, &[&proof(&key, "POST", &token_url, None)], &refresh_form).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let got = token(&app, me, &[], &refresh_form).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let got = token(&app, me, &[&proof(&thief, "POST", &token_url, None)], &refresh_form).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let (s, body) = token(&app, me, &[&proof(&key, "POST", &token_url, None)], &refresh_form).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    app.stop().await;
}

/// A confidential client's refresh tokens are not bound (its authentication binds them
/// already, RFC 9449 §5): each refresh's access token is bound to that request's proof,
/// if any. A code pushed with a proof (RFC 9449 §10.1) is bound to its key.
async fn confidential_clients_and_pushed_requests(backend: Backend) {
    let app = portcullis_tests::spawn_app(backend).await;
    app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let me = (client.id.as_str(), Some(secret.expose()));
    let key = client_key(SigningAlg::ES256, "k").await;
    let thief = client_key(SigningAlg::ES256, "t").await;
    let (token_url, par_url) = (app.url("/token"), app.url("/par"));

    let push = |proofs: Vec<String>, extra: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut form: Vec<(&str, String)> = vec![
                ("response_type", "code".into()),
                ("redirect_uri", REDIRECT.into()),
                ("scope", "openid profile".into()),
                ("code_challenge", sha256_b64(VERIFIER)),
                ("code_challenge_method", "S256".into()),
            ];
            form.extend(extra);
            let mut r = http().post(app.url("/par")).basic_auth(me.0, me.1);
            for p in &proofs {
                r = r.header("DPoP", p);
            }
            let r = r.form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // dpop_jkt naming another key than the proof's.
    let got = push(
        vec![proof(&key, "POST", &par_url, None)],
        vec![("dpop_jkt", thumbprint(&thief.jwk))],
    )
    .await;
    assert_error(&got, 400, "invalid_dpop_proof", "dpop_jkt");
    let got = push(vec![proof(&key, "POST", &token_url, None)], vec![]).await;
    assert_error(&got, 400, "invalid_dpop_proof", "htu");
    let (s, pushed) = push(vec![proof(&key, "POST", &par_url, None)], vec![]).await;
    assert_eq!(s, 201, "{pushed}");
    let uri = pushed["request_uri"].as_str().unwrap();
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", me.0)
        .append_pair("request_uri", uri);
    let code = sign_in(&app, &auth).await;
    let got = token(&app, me, &[], &exchange(&code)).await;
    assert_error(&got, 400, "invalid_grant", "bound to a DPoP key");
    let (s, tokens) = token(&app, me, &[&proof(&key, "POST", &token_url, None)], &exchange(&code)).await;
    assert_eq!((s, tokens["token_type"].as_str()), (200, Some("DPoP")), "{tokens}");

    // Refreshes: without a proof a bearer token, with another key's a token bound to it.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (s, body) = token(
        &app,
        me,
        &[],
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("Bearer")), "{body}");
    let refresh = body["refresh_token"].as_str().unwrap();
    let (s, body) = token(
        &app,
        me,
        &[&proof(&thief, "POST", &token_url, None)],
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        thumbprint(&thief.jwk)
    );
    // A bearer token with the DPoP scheme is refused.
    let (s, tokens) = token(
        &app,
        me,
        &[],
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let bearer = tokens["access_token"].as_str().unwrap();
    let (s, _, body) = userinfo(
        &app,
        &format!("DPoP {bearer}"),
        &[&proof(&key, "GET", &app.url("/userinfo"), Some(bearer))],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    app.stop().await;
}

/// A client registered with `dpop_bound_access_tokens` (RFC 9449 §5.2; admin API, admin
/// page) gets no token without a proof; the setting can be turned off again.
async fn clients_can_be_required_to_use_dpop(backend: Backend) {
    use portcullis_core::model::AdminRole;

    use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, api_key, operator};
    let app = portcullis_tests::spawn_app(backend).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let (s, created) = api
        .post(
            "/clients",
            json!({"name": "Bound", "kind": "confidential", "grant_types": ["client_credentials"],
                   "scopes": "api:read", "dpop_bound_access_tokens": true}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{created}");
    assert_eq!(created["dpop_bound_access_tokens"], true, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let me = (id.as_str(), Some(secret.as_str()));
    let key = client_key(SigningAlg::ES256, "k").await;
    let cc = [("grant_type", "client_credentials")];
    let got = token(&app, me, &[], &cc).await;
    assert_error(&got, 400, "invalid_dpop_proof", "dpop_bound_access_tokens");
    let (s, body) = token(&app, me, &[&proof(&key, "POST", &app.url("/token"), None)], &cc).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    let (s, patched) = api
        .patch(&format!("/clients/{id}"), json!({"dpop_bound_access_tokens": false}))
        .await;
    assert_eq!(
        (s.as_u16(), &patched["dpop_bound_access_tokens"]),
        (200, &json!(false)),
        "{patched}"
    );
    let (s, body) = token(&app, me, &[], &cc).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("Bearer")), "{body}");

    // The admin page's checkbox.
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let csrf = p.csrf("/admin/clients/new").await;
    let (s, _, html) = p
        .post(
            "/admin/clients",
            &[
                ("csrf", csrf.as_str()),
                ("name", "Bound by page"),
                ("kind", "public"),
                ("redirect_uris", REDIRECT),
                ("grant_types", "authorization_code"),
                ("scopes", "openid"),
                ("dpop_bound_access_tokens", "on"),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{html}");
    let clients = app.core.list_clients(Some("Bound by page")).await.unwrap();
    assert!(clients[0].dpop_bound_access_tokens);
    let (_, page) = p.get(&format!("/admin/clients/{}", clients[0].id)).await;
    assert!(page.contains("DPoP required (bound access tokens)"), "{page}");
    let (_, form) = p.get(&format!("/admin/clients/{}/edit", clients[0].id)).await;
    assert!(form.contains(r#"id="dpop_bound_access_tokens" checked"#), "{form}");
    app.core.audit.flush().await;
    let events = app.audit_events("admin.client.updated").await;
    assert!(
        events
            .iter()
            .any(|e| e.detail.to_string().contains("dpop_bound_access_tokens")),
        "{events:?}"
    );
    app.stop().await;
}

/// With `require_dpop_nonce` (RFC 9449 §8), a proof without a recent nonce of this
/// server gets `use_dpop_nonce` and the nonce in `DPoP-Nonce`; with it, the request works.
/// Every answer of `/token`, `/par` and `/userinfo` carries a fresh nonce.
async fn nonces_when_required(backend: Backend) {
    let (url, guard) = portcullis_tests::fresh_database(backend).await;
    let app = portcullis_tests::spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.core.require_dpop_nonce = true;
    })
    .await;
    app.user("alice", PASSWORD).await;
    let (client, secret) = app.confidential_client(REDIRECT).await;
    let me = (client.id.as_str(), Some(secret.expose()));
    let key = client_key(SigningAlg::ES256, "k").await;
    let (token_url, userinfo_url) = (app.url("/token"), app.url("/userinfo"));
    let with_nonce = |method: &str, url: &str, token: Option<&str>, nonce: &str| {
        let (header, mut claims) = proof_parts(&key, method, url, token);
        claims["nonce"] = json!(nonce);
        jws(&key, &header, &claims)
    };
    // Asked for without a nonce: use_dpop_nonce, and one to use.
    let r = http()
        .post(&token_url)
        .basic_auth(me.0, me.1)
        .header("DPoP", proof(&key, "POST", &token_url, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");
    let cc = [("grant_type", "client_credentials")];
    let (s, body) = token(&app, me, &[&with_nonce("POST", &token_url, None, &nonce)], &cc).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    // Too old (ten minutes), not this server's, not a nonce.
    let stale = app.core.dpop_nonce_at(app.core.now() - time::Duration::minutes(10));
    let mut forged = nonce.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [stale.as_str(), forged.as_str(), "", "nonce"] {
        let got = token(&app, me, &[&with_nonce("POST", &token_url, None, bad)], &cc).await;
        assert_error(&got, 400, "use_dpop_nonce", "DPoP-Nonce");
    }

    // A private_key_jwt client asked for a nonce sends the same assertion again: the
    // nonce is asked for before the assertion is spent.
    let keyed = client_key(SigningAlg::ES256, "keyed").await;
    let input = portcullis_core::clients::ClientInput {
        name: "Keyed".into(),
        kind: Some(portcullis_core::model::ClientKind::Confidential),
        grant_types: vec!["client_credentials".into()],
        scopes: "api:read".into(),
        jwks: Some(json!({"keys": [keyed.jwk]}).to_string()),
        ..Default::default()
    };
    let (keyed_client, _) = app.core.create_client(&input, "test").await.unwrap();
    let assertion = crate::private_key_jwt::sign(
        &keyed,
        &crate::private_key_jwt::claims(keyed_client.id.as_str(), &app.issuer),
    );
    let send = |proof: String| {
        let assertion = assertion.clone();
        let token_url = token_url.clone();
        async move {
            let r = http()
                .post(&token_url)
                .header("DPoP", proof)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", crate::private_key_jwt::ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let got = send(proof(&key, "POST", &token_url, None)).await;
    assert_error(&got, 400, "use_dpop_nonce", "DPoP-Nonce");
    let (s, body) = send(with_nonce("POST", &token_url, None, &nonce)).await;
    assert_eq!((s, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");

    // /userinfo: a 401 with a DPoP challenge naming use_dpop_nonce, and the nonce.
    let code = sign_in(&app, &authorize_url(&app, me.0, &[])).await;
    let (s, tokens) = token(
        &app,
        me,
        &[&with_nonce("POST", &token_url, None, &nonce)],
        &exchange(&code),
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let dpop = format!("DPoP {access}");
    let r = http()
        .get(&userinfo_url)
        .header("Authorization", &dpop)
        .header("DPoP", proof(&key, "GET", &userinfo_url, Some(&access)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("dpop-nonce"));
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let (s, _, body) = userinfo(&app, &dpop, &[&with_nonce("GET", &userinfo_url, Some(&access), &nonce)]).await;
    assert_eq!((s, body["preferred_username"].as_str()), (200, Some("alice")), "{body}");
    app.stop().await;
}

both_backends!(
    nonces_when_required,
    clients_can_be_required_to_use_dpop,
    proofs_bind_access_tokens,
    a_public_clients_tokens_are_bound,
    confidential_clients_and_pushed_requests,
);
