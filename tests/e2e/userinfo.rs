//! UserInfo's errors on both backends (OIDC Core §5.3, RFC 6750 §2–3): where the token may
//! come from (the header, a form body; never the query string), each refusal's status and
//! challenge, and what counts as no credentials at all.

use portcullis_tests::{Backend, both_backends, http, spawn_app};
use serde_json::Value;

use crate::code_flow::alice_signed_in;
use crate::token_endpoint::post_form;

async fn userinfo_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, sec, tokens) = alice_signed_in(&app).await;
    let access = tokens["access_token"].as_str().unwrap();

    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["email"], "alice@example.com");

    // A body past the size limit is a bad request in each endpoint's own error format.
    let huge = format!("access_token={access}&pad={}", "a".repeat(3 << 20));
    let r = http()
        .post(app.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_request"),
        "{challenge}"
    );
    for path in ["/token", "/revoke", "/introspect"] {
        let r = http()
            .post(app.url(path))
            .basic_auth(&id, Some(&sec))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"], "invalid_request", "{path}");
        assert_eq!(b["error_description"], "the request body is too large", "{path}");
    }

    // RFC 6750 §2.2: in a form-encoded POST body, the token works as in the header.
    let r = http()
        .post(app.url("/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["email"], "alice@example.com");
    // Never in the query string (GET or POST), never in two places, never repeated, and
    // in the body only when it is form-encoded.
    let refused = [
        http().get(app.url(&format!("/userinfo?access_token={access}"))),
        http().post(app.url(&format!("/userinfo?access_token={access}"))),
        http()
            .post(app.url("/userinfo"))
            .bearer_auth(access)
            .form(&[("access_token", access)]),
        http()
            .post(app.url("/userinfo"))
            .form(&[("access_token", access), ("access_token", access)]),
        http()
            .post(app.url("/userinfo"))
            .header("content-type", "text/plain")
            .body(format!("access_token={access}")),
        // A form that is not UTF-8 is malformed, not "no token".
        http()
            .post(app.url("/userinfo"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body([format!("access_token={access}&x=").as_bytes(), &[0xff]].concat()),
        // Held to the token endpoint's form rules: a percent-encoded byte that is not
        // UTF-8, a charset that reads ASCII otherwise, a compressed body.
        http()
            .post(app.url("/userinfo"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={access}&x=caf%E9")),
        http()
            .post(app.url("/userinfo"))
            .header("content-type", "application/x-www-form-urlencoded; charset=UTF-7")
            .body(format!("access_token={access}")),
        http()
            .post(app.url("/userinfo"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-encoding", "gzip")
            .body(format!("access_token={access}")),
    ];
    for request in refused {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
    }
    // An access_token without a value is no token (RFC 6749 §3.2: omitted): no credentials,
    // a bare challenge (RFC 6750 §3.1); beside the header's token it is no second one.
    let r = http()
        .post(app.url("/userinfo"))
        .form(&[("access_token", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.headers()["www-authenticate"].to_str().unwrap().contains("error="));
    let r = http()
        .post(app.url("/userinfo"))
        .bearer_auth(access)
        .form(&[("access_token", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A form without the token is not looked at: the header's token counts.
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", "x=caf%E9"),
        ("application/x-www-form-urlencoded; charset=utf-16", ""),
    ] {
        let r = http()
            .post(app.url("/userinfo"))
            .bearer_auth(access)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{content_type}: {body}");
    }
    // A label that extends ASCII, with an ASCII body, reads the same.
    let r = http()
        .post(app.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded; charset=ISO-8859-1")
        .body(format!("access_token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another kind of body that is not UTF-8 is not looked at: the header's token counts.
    let r = http()
        .post(app.url("/userinfo"))
        .bearer_auth(access)
        .header("content-type", "application/octet-stream")
        .body(vec![0xffu8, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A bad token in the body is an invalid token, as in the header.
    let r = http()
        .post(app.url("/userinfo"))
        .form(&[("access_token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // No token: 401 with a Bearer challenge; bad token: invalid_token.
    let r = http().get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // A token without openid: insufficient_scope.
    let (_, _, cc) = post_form(
        &app,
        "/token",
        Some((&id, &sec)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let r = http()
        .get(app.url("/userinfo"))
        .bearer_auth(cc["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#) && challenge.ends_with(r#", scope="openid""#),
        "{challenge}"
    );
    app.stop().await;
}

both_backends!(userinfo_errors,);
