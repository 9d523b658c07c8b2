//! The admin pages' client forms without a browser engine (issue 4), on both backends:
//! registering and editing clients with their keys, logout URIs, pairwise identifiers and
//! signed request objects, errors shown next to the field with the typed input kept, stale
//! edits and forms sent again refused, rotated secrets never shown again, the paged list.

use portcullis_core::model::AdminRole;
use portcullis_protocol::Secret;
use portcullis_tests::{Backend, both_backends, spawn_app};

use crate::admin_pages::text_of;
use crate::admin_support::{ADMIN_PASSWORD, Api, Pages, api_key, csrf, operator};
use crate::code_flow::REDIRECT;

/// A rejected client form comes back with the error next to its field and everything
/// typed still there; a valid one shows the secret once.
async fn client_form_keeps_input_and_shows_errors_inline(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let token = p.csrf("/admin/clients/new").await;
    let typed = [
        ("csrf", token.as_str()),
        ("name", "Keep <me>"),
        ("kind", "confidential"),
        ("redirect_uris", "https://ok.example/cb\r\nhttp://evil.example/cb"),
        ("post_logout_redirect_uris", "https://ok.example/bye"),
        ("grant_types", "authorization_code"),
        ("grant_types", "client_credentials"),
        ("scopes", "openid api:write"),
        ("first_party", "on"),
        ("access_token_ttl", "900"),
        ("refresh_token_ttl", ""),
        ("cors_origins", "https://ok.example"),
        ("logo_uri", "https://ok.example/logo.png"),
        ("policy_uri", "https://ok.example/policy"),
    ];
    let (s, _, html) = p.post("/admin/clients", &typed).await;
    assert_eq!(s, 422, "{html}");
    assert!(
        text_of(&html, "redirect_uris-error").contains("http://evil.example/cb"),
        "{html}"
    );
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"redirect_uris-hint redirect_uris-error\"")
            || html.contains("redirect_uris-error")
    );
    assert!(html.contains("id=\"form-error\""));
    for kept in [
        "value=\"Keep &#60;me&#62;\"",
        "https://ok.example/cb\r\nhttp://evil.example/cb",
        "value=\"openid api:write\"",
        "value=\"900\"",
        "value=\"https://ok.example/logo.png\"",
        "value=\"https://ok.example/policy\"",
        "https://ok.example/bye",
        "id=\"first_party\" checked",
        "id=\"grant-client_credentials\" checked",
        "id=\"kind-confidential\" checked",
    ] {
        assert!(
            html.contains(kept) || html.contains(&kept.replace("&#60;", "&lt;").replace("&#62;", "&gt;")),
            "lost {kept}:\n{html}"
        );
    }
    assert!(
        !html.contains("id=\"grant-refresh_token\" checked"),
        "unchecked stays unchecked"
    );
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    // A field only the page parses, and one core rejects, each named.
    let mut bad_ttl = typed.to_vec();
    bad_ttl.retain(|(k, _)| *k != "redirect_uris" && *k != "access_token_ttl");
    bad_ttl.push(("redirect_uris", "https://ok.example/cb"));
    bad_ttl.push(("access_token_ttl", "ten minutes"));
    let (s, _, html) = p.post("/admin/clients", &bad_ttl).await;
    assert_eq!(s, 422);
    assert!(html.contains("id=\"access_token_ttl-error\""), "{html}");
    assert!(html.contains("value=\"ten minutes\""));
    let mut fragment = bad_ttl.clone();
    fragment.retain(|(k, _)| *k != "redirect_uris" && *k != "access_token_ttl");
    fragment.push(("redirect_uris", "https://ok.example/cb#top"));
    let (s, _, html) = p.post("/admin/clients", &fragment).await;
    assert_eq!(s, 422);
    assert!(html.contains("id=\"redirect_uris-error\""), "{html}");

    // Fixed: registered, the secret shown once on the response page only.
    let mut good = fragment.clone();
    good.retain(|(k, _)| *k != "redirect_uris");
    good.push(("redirect_uris", "https://ok.example/cb"));
    let (s, loc, html) = p.post("/admin/clients", &good).await;
    assert_eq!(s, 200, "{html}");
    assert!(loc.is_none(), "not a redirect: the secret is never in a URL");
    let id = text_of(&html, "client-id");
    let secret = text_of(&html, "client-secret");
    assert_eq!(secret.len(), 43);
    let (_, detail) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(!detail.contains(&secret), "the secret is not shown again");
    let client = app
        .core
        .get_client(&portcullis_protocol::ClientId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(client.name, "Keep <me>");
    assert!(client.first_party);
    assert_eq!(client.access_token_ttl, None);
    assert_eq!(client.cors_origins, ["https://ok.example"]);
    assert!(
        app.core
            .authenticate_client(&id, Some(&Secret::new(secret.clone())), None)
            .await
            .is_ok()
    );

    // Edit: the form is prefilled; an error keeps the edit; saving redirects back.
    let (s, edit) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert_eq!(s, 200);
    assert!(
        edit.contains("value=\"Keep &#60;me&#62;\"") || edit.contains("value=\"Keep &lt;me&gt;\""),
        "{edit}"
    );
    let token = csrf(&edit);
    let (s, _, html) = p
        .post(
            &format!("/admin/clients/{id}"),
            &[
                ("csrf", &token),
                ("name", "Renamed"),
                ("redirect_uris", "ftp://x.example/cb"),
                ("grant_types", "authorization_code"),
                ("scopes", "openid"),
            ],
        )
        .await;
    assert_eq!(s, 422);
    assert!(html.contains("value=\"Renamed\"") && html.contains("ftp://x.example/cb"));
    let (s, loc, _) = p
        .post(
            &format!("/admin/clients/{id}"),
            &[
                ("csrf", &token),
                ("name", "Renamed"),
                ("redirect_uris", "https://ok.example/cb"),
                ("grant_types", "authorization_code"),
                ("scopes", "openid"),
                ("require_pkce", "on"),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), loc), (303, Some(format!("/admin/clients/{id}"))));
    let (_, detail) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(detail.contains("Saved Renamed."), "a notice after saving");

    // Rotate: a new secret on the response page; the old one stops working.
    let (s, _, html) = p
        .post(&format!("/admin/clients/{id}/rotate-secret"), &[("csrf", &token)])
        .await;
    assert_eq!(s, 200);
    let rotated = text_of(&html, "client-secret");
    assert_ne!(rotated, secret);
    assert!(
        app.core
            .authenticate_client(&id, Some(&Secret::new(secret)), None)
            .await
            .is_err()
    );
    assert!(
        app.core
            .authenticate_client(&id, Some(&Secret::new(rotated)), None)
            .await
            .is_ok()
    );

    // Users: a rejected form keeps what was typed but never the password.
    let (s, _, html) = p
        .post(
            "/admin/users",
            &[
                ("csrf", &token),
                ("username", "bob"),
                ("email", "not-an-email"),
                ("name", "Bob B"),
                ("password", "a fine passphrase"),
            ],
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        html.contains("id=\"email-error\"")
            && html.contains("value=\"not-an-email\"")
            && html.contains("value=\"Bob B\"")
    );
    assert!(!html.contains("a fine passphrase"));
    let (s, _, html) = p
        .post(
            "/admin/users",
            &[("csrf", &token), ("username", "root-user"), ("password", "short")],
        )
        .await;
    assert_eq!(s, 422);
    assert!(html.contains("id=\"password-error\""));
    app.stop().await;
}

/// An edit form opened before someone else changed the client cannot silently undo that
/// change, even within the same second; the same holds for an API `PUT` that says which
/// revision it read.
async fn a_stale_client_edit_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let (client, _) = app.confidential_client("https://a.example/cb").await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let edit = format!("/admin/clients/{}/edit", client.id);
    let (_, html) = p.get(&edit).await;
    let marker = r#"name="revision" value=""#;
    let at = html
        .find(marker)
        .map(|i| i + marker.len())
        .expect("the form carries the revision");
    let read = html[at..].split('"').next().unwrap().to_owned();
    assert_eq!(read, "0");
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let body = |uri: &str, revision: Option<i64>| {
        let mut b = serde_json::json!({
            "name": "Web",
            "redirect_uris": [uri],
            "grant_types": ["authorization_code"],
            "scopes": "openid",
        });
        if let Some(r) = revision {
            b["revision"] = r.into();
        }
        b
    };
    let path = format!("/clients/{}", client.id);
    let (s, v) = api.put(&path, body("https://b.example/cb", None)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 1);

    let form = [
        ("csrf", csrf(&html)),
        ("revision", read),
        ("name", "Web renamed".into()),
        ("redirect_uris", "https://a.example/cb".into()),
        ("grant_types", "authorization_code".into()),
        ("scopes", "openid".into()),
        ("require_pkce", "on".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, _, html) = p.post(&format!("/admin/clients/{}", client.id), &form).await;
    assert_eq!(s, 422, "{html}");
    assert!(html.contains("changed by someone else"), "{html}");
    let (_, v) = api.get(&path).await;
    assert_eq!(v["redirect_uris"], serde_json::json!(["https://b.example/cb"]), "kept");
    assert_eq!((v["name"].as_str(), v["revision"].as_i64()), (Some("Web"), Some(1)));

    // The API: a PUT naming the revision read before a change is refused, one naming the
    // current revision goes through; no waiting between them.
    let (s, v) = api.put(&path, body("https://c.example/cb", Some(1))).await;
    assert_eq!((s.as_u16(), v["revision"].as_i64()), (200, Some(2)), "{v}");
    let stale = api.put(&path, body("https://d.example/cb", Some(1))).await;
    crate::admin_support::assert_field(&stale, "revision");
    let (_, v) = api.get(&path).await;
    assert_eq!(v["redirect_uris"], serde_json::json!(["https://c.example/cb"]));
    assert_eq!(v["revision"], 2);

    // The `updated_at` of earlier versions still works (to the second): the current one
    // passes, one from before the last change does not.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let read_at = v["updated_at"].as_str().unwrap().to_owned();
    let mut b = body("https://e.example/cb", None);
    b["updated_at"] = read_at.clone().into();
    let (s, v) = api.put(&path, b.clone()).await;
    assert_eq!((s.as_u16(), v["revision"].as_i64()), (200, Some(3)), "{v}");
    b["redirect_uris"] = serde_json::json!(["https://f.example/cb"]);
    crate::admin_support::assert_field(&api.put(&path, b).await, "updated_at");
    let (_, v) = api.get(&path).await;
    assert_eq!(v["redirect_uris"], serde_json::json!(["https://e.example/cb"]));
    app.stop().await;
}

/// A secret rotation is never undone by an edit or a disable running at the same time:
/// each write names the revision it read, so one that read the old secret is refused
/// (an edit) or done again on the new state (a disable).
async fn a_rotated_secret_is_never_brought_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, original) = app.confidential_client("https://a.example/cb").await;
    let core = &app.core;
    let input = portcullis_core::clients::ClientInput {
        name: "Edited".into(),
        redirect_uris: vec!["https://a.example/cb".into()],
        grant_types: vec!["authorization_code".into(), "client_credentials".into()],
        scopes: "openid api:read".into(),
        ..Default::default()
    };
    let mut secrets = vec![original];
    let mut edits = (0, 0);
    for round in 0..12 {
        let (rotated, edited, toggled) = tokio::join!(
            core.rotate_client_secret(&client.id, "test"),
            core.update_client(&client.id, &input, "test"),
            core.set_client_disabled(&client.id, round % 2 == 0, "test"),
        );
        secrets.push(rotated.expect("a rotation applies to the client as it is now"));
        toggled.expect("so does a disable");
        match edited {
            Ok(_) => edits.0 += 1,
            Err(e) => {
                assert!(e.to_string().contains("changed by someone else"), "{e}");
                edits.1 += 1;
            }
        }
    }
    core.set_client_disabled(&client.id, false, "test").await.unwrap();
    let (newest, older) = secrets.split_last().unwrap();
    let (s, v) = app.client_credentials(client.id.as_str(), newest.expose()).await;
    assert_eq!(s, 200, "the newest secret works: {v} (edits ok/refused: {edits:?})");
    for old in older {
        let (s, _) = app.client_credentials(client.id.as_str(), old.expose()).await;
        assert_eq!(s, 401, "an older secret stays dead (edits ok/refused: {edits:?})");
    }
    let stored = core.get_client(&client.id).await.unwrap();
    assert_eq!(stored.revision, 12 * 2 + i64::from(edits.0) + 1);

    // Many at once on one node: each is done (they take turns), none answers busy.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (core, id) = (app.core.clone(), client.id.clone());
        tasks.spawn(async move {
            if i % 3 == 0 {
                core.rotate_client_secret(&id, "test").await.map(|_| ())
            } else {
                core.set_client_disabled(&id, i % 3 == 1, "test").await.map(|_| ())
            }
        });
    }
    for done in tasks.join_all().await {
        done.expect("every write is done");
    }
    let after = core.get_client(&client.id).await.unwrap();
    assert_eq!(after.revision, stored.revision + 12);
    app.stop().await;
}

/// A client at the API's limits (50 redirect URIs of 2,000 characters) can be edited on
/// its form: the form is larger than the pages' other forms may be.
async fn a_client_at_the_limits_can_be_edited_on_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let api = Api::new(&app, &api_key(&app, AdminRole::Admin).await.1);
    let uris: Vec<String> = (0..50)
        .map(|i| {
            let base = format!("https://rp.example/{i:02}/");
            format!("{base}{}", "p".repeat(2000 - base.len()))
        })
        .collect();
    let (s, v) = api
        .post(
            "/clients",
            serde_json::json!({"name": "Wide", "kind": "confidential", "redirect_uris": uris,
                "grant_types": ["authorization_code"], "scopes": "openid"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, html) = p.get(&format!("/admin/clients/{id}/edit")).await;
    let joined = uris.join("\n");
    let form = [
        ("csrf", csrf(&html)),
        ("revision", "0".into()),
        ("name", "Wide renamed".into()),
        ("redirect_uris", joined),
        ("grant_types", "authorization_code".into()),
        ("scopes", "openid".into()),
        ("require_pkce", "on".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, _, html) = p.post(&format!("/admin/clients/{id}"), &form).await;
    assert_eq!(s, 303, "{html}");
    let (_, v) = api.get(&format!("/clients/{id}")).await;
    assert_eq!(v["name"], "Wide renamed");
    assert_eq!(v["redirect_uris"], serde_json::json!(uris));
    app.stop().await;
}

/// A client registered on the form with the URL where it publishes its keys
/// (`jwks_uri`): a refused value comes back next to its field, kept; a good one gives no
/// secret, and the client's page says it authenticates with `private_key_jwt` and where
/// its keys are read from. The edit form shows it, changes it and removes it.
async fn a_client_is_registered_with_a_jwks_uri_on_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, new) = p.get("/admin/clients/new").await;
    assert!(
        new.contains(r#"<label for="jwks_uri">Public keys URL (jwks_uri)</label>"#)
            && new.contains("again (at most every 10 s) when an assertion does not verify with the keys known"),
        "{new}"
    );
    let token = csrf(&new);
    let form = |kind: &str, jwks: &str, jwks_uri: &str| {
        vec![
            ("csrf", token.clone()),
            ("name", "Published keys".to_owned()),
            ("kind", kind.to_owned()),
            ("redirect_uris", REDIRECT.to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("scopes", "openid profile".to_owned()),
            ("require_pkce", "on".to_owned()),
            ("jwks", jwks.to_owned()),
            ("jwks_uri", jwks_uri.to_owned()),
        ]
    };
    let send = |path: String, f: Vec<(&'static str, String)>| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post(&path, &f).await
        }
    };
    const URI: &str = "https://keys.example/jwks.json";
    let jwk =
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    for (kind, jwks, uri, why) in [
        ("confidential", "", "http://keys.example/jwks.json", "https"),
        ("confidential", "", "https://keys.example/jwks.json#k1", "fragment"),
        ("confidential", jwk, URI, "not both"),
        ("public", "", URI, "public client"),
    ] {
        let (s, _, html) = send("/admin/clients".into(), form(kind, jwks, uri)).await;
        assert_eq!(s, 422, "{uri}: {html}");
        assert!(text_of(&html, "jwks_uri-error").contains(why), "{why}: {html}");
        assert!(
            html.contains(r##"<a href="#jwks_uri">Public keys URL (jwks_uri)</a>"##),
            "the summary names the field: {html}"
        );
        assert!(
            html.contains(&format!(r#"value="{uri}""#)) && html.contains(r#"jwks_uri-error" aria-invalid="true""#),
            "kept and marked: {html}"
        );
    }
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    // Registered: no secret; its page says how it authenticates and offers no rotation.
    let (s, _, html) = send("/admin/clients".into(), form("confidential", "", URI)).await;
    assert_eq!(s, 200, "{html}");
    assert!(!html.contains(r#"id="client-secret""#), "{html}");
    assert_eq!(text_of(&html, "client-jwks-uri"), URI);
    let id = text_of(&html, "client-id");
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(
        page.contains(&format!("private_key_jwt (keys read from {URI})")) && !page.contains(r#"id="rotate-secret""#),
        "{page}"
    );
    let client_id = portcullis_protocol::ClientId::parse(&id).unwrap();
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(
        (client.jwks_uri.as_deref(), client.secret_hash.is_none()),
        (Some(URI), true)
    );

    // The edit form shows it; saving changes it, and an empty field removes it.
    let (_, edit) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert!(
        edit.contains(&format!(r#"name="jwks_uri" type="text" inputmode="url" value="{URI}""#)),
        "{edit}"
    );
    // (The kind the form sends is ignored: it is fixed at registration.)
    let edited = |uri: &str| form("confidential", "", uri);
    let (s, loc, html) = send(format!("/admin/clients/{id}"), edited("http://127.0.0.1:8080/jwks")).await;
    assert_eq!((s.as_u16(), loc), (303, Some(format!("/admin/clients/{id}"))), "{html}");
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(client.jwks_uri.as_deref(), Some("http://127.0.0.1:8080/jwks"));
    let (s, _, html) = send(format!("/admin/clients/{id}"), edited("")).await;
    assert_eq!(s, 303, "{html}");
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!((client.jwks_uri.as_deref(), client.has_keys()), (None, false));
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(
        page.contains("none yet: rotate the secret to issue one") && page.contains(r#"id="rotate-secret""#),
        "{page}"
    );
    app.stop().await;
}

/// "Require signed request objects" (RFC 9101 §10.5) on the client form: without keys the
/// form comes back with the error beside the box, kept ticked; with keys the client has the
/// setting, its page says so and its edit form keeps it, and unticking it clears it.
async fn a_client_requires_signed_request_objects_on_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, new) = p.get("/admin/clients/new").await;
    assert!(
        new.contains(r#"name="require_signed_request_object" id="require_signed_request_object">"#)
            && new.contains("Require signed request objects <span class=\"hint\">— RFC 9101: the app must send")
            && new.contains("needs keys (private_key_jwt)"),
        "{new}"
    );
    let token = csrf(&new);
    let form = |jwks_uri: &str, required: bool| {
        let mut f = vec![
            ("csrf", token.clone()),
            ("name", "Signed only".to_owned()),
            ("kind", "confidential".to_owned()),
            ("redirect_uris", REDIRECT.to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("scopes", "openid profile".to_owned()),
            ("require_pkce", "on".to_owned()),
            ("jwks_uri", jwks_uri.to_owned()),
        ];
        if required {
            f.push(("require_signed_request_object", "on".to_owned()));
        }
        f
    };
    let send = |path: String, f: Vec<(&'static str, String)>| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post(&path, &f).await
        }
    };
    let refused = |html: &str| {
        assert!(
            text_of(html, "require_signed_request_object-error").contains("jwks or jwks_uri")
                && html.contains(r##"<a href="#require_signed_request_object">Require signed request objects</a>"##)
                && html.contains(
                    r#"id="require_signed_request_object" checked aria-invalid="true" aria-describedby="require_signed_request_object-error">"#
                ),
            "{html}"
        );
    };

    // No keys: refused, nothing registered.
    let (s, _, html) = send("/admin/clients".into(), form("", true)).await;
    assert_eq!(s, 422, "{html}");
    refused(&html);
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    // With keys: registered with the setting, shown on its page and its edit form.
    const URI: &str = "https://keys.example/jwks.json";
    let (s, _, html) = send("/admin/clients".into(), form(URI, true)).await;
    assert_eq!(s, 200, "{html}");
    let id = text_of(&html, "client-id");
    let client_id = portcullis_protocol::ClientId::parse(&id).unwrap();
    assert!(
        app.core
            .get_client(&client_id)
            .await
            .unwrap()
            .require_signed_request_object
    );
    let shown = |page: &str| {
        let at = page
            .find("<dt>Signed request objects required</dt>")
            .unwrap_or_else(|| panic!("{page}"));
        page[at..].split("</dd>").next().unwrap().to_owned()
    };
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(shown(&page).contains(r#"<span class="value">yes</span>"#), "{page}");
    let (_, edit) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert!(
        edit.contains(r#"id="require_signed_request_object" checked>"#),
        "{edit}"
    );

    // Editing: unticked clears it; ticked again without the keys is refused on the edit form.
    let (s, loc, html) = send(format!("/admin/clients/{id}"), form(URI, false)).await;
    assert_eq!((s.as_u16(), loc), (303, Some(format!("/admin/clients/{id}"))), "{html}");
    assert!(
        !app.core
            .get_client(&client_id)
            .await
            .unwrap()
            .require_signed_request_object
    );
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(shown(&page).contains(r#"<span class="value">no</span>"#), "{page}");
    let (s, _, html) = send(format!("/admin/clients/{id}"), form("", true)).await;
    assert_eq!(s, 422, "{html}");
    refused(&html);
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(
        (client.require_signed_request_object, client.jwks_uri.as_deref()),
        (false, Some(URI)),
        "unchanged"
    );
    let (s, _, html) = send(format!("/admin/clients/{id}"), form(URI, true)).await;
    assert_eq!(s, 303, "{html}");
    assert!(
        app.core
            .get_client(&client_id)
            .await
            .unwrap()
            .require_signed_request_object
    );
    app.stop().await;
}

/// A client registered on the form with the URL it is sent logout tokens at
/// (`backchannel_logout_uri`): the field is on the form with its hint; a refused value
/// comes back next to it, kept and marked, and nothing is registered; a good one is
/// stored and shown on the client's page. The edit form shows it, changes it and
/// removes it.
async fn a_client_is_registered_with_a_backchannel_logout_uri_on_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, new) = p.get("/admin/clients/new").await;
    assert!(
        new.contains(r#"<label for="backchannel_logout_uri">Back-channel logout URL</label>"#)
            && new.contains(
                "OpenID Connect Back-Channel Logout: the app is sent a logout token here when someone it signed \
                 in signs out"
            ),
        "{new}"
    );
    let token = csrf(&new);
    let form = |uri: &str| {
        vec![
            ("csrf", token.clone()),
            ("name", "Told of sign-outs".to_owned()),
            ("kind", "confidential".to_owned()),
            ("redirect_uris", REDIRECT.to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("scopes", "openid profile".to_owned()),
            ("require_pkce", "on".to_owned()),
            ("backchannel_logout_uri", uri.to_owned()),
        ]
    };
    let send = |path: String, f: Vec<(&'static str, String)>| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post(&path, &f).await
        }
    };
    const URI: &str = "https://app.example/backchannel-logout";
    for (uri, why) in [
        ("http://app.example/logout", "https"),
        ("https://app.example/logout#now", "fragment"),
        ("app.example/logout", "app.example/logout"),
    ] {
        let (s, _, html) = send("/admin/clients".into(), form(uri)).await;
        assert_eq!(s, 422, "{uri}: {html}");
        assert!(
            text_of(&html, "backchannel_logout_uri-error").contains(why),
            "{why}: {html}"
        );
        assert!(
            html.contains(r##"<a href="#backchannel_logout_uri">Back-channel logout URL</a>"##),
            "the summary names the field: {html}"
        );
        assert!(
            html.contains(&format!(r#"value="{uri}""#))
                && html.contains(r#"backchannel_logout_uri-error" aria-invalid="true""#),
            "kept and marked: {html}"
        );
    }
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    // Registered; its page shows the URL.
    let (s, _, html) = send("/admin/clients".into(), form(&format!(" {URI} "))).await;
    assert_eq!(s, 200, "{html}");
    let id = text_of(&html, "client-id");
    let client_id = portcullis_protocol::ClientId::parse(&id).unwrap();
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(client.backchannel_logout_uri.as_deref(), Some(URI));
    let shown = |page: &str| {
        let at = page
            .find("<dt>Back-channel logout URL</dt>")
            .unwrap_or_else(|| panic!("not on the client's page: {page}"));
        page[at..].split("</dd>").next().unwrap().to_owned()
    };
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(
        shown(&page).contains(&format!(r#"<span class="value">{URI}</span>"#)),
        "{page}"
    );

    // The edit form shows it; saving changes it, a refused value is shown beside the
    // field and changes nothing, and an empty field removes it.
    let (_, edit) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert!(
        edit.contains(&format!(
            r#"name="backchannel_logout_uri" type="text" inputmode="url" value="{URI}""#
        )),
        "{edit}"
    );
    let (s, loc, html) = send(format!("/admin/clients/{id}"), form("http://127.0.0.1:8080/logout")).await;
    assert_eq!((s.as_u16(), loc), (303, Some(format!("/admin/clients/{id}"))), "{html}");
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(
        client.backchannel_logout_uri.as_deref(),
        Some("http://127.0.0.1:8080/logout")
    );
    let (s, _, html) = send(format!("/admin/clients/{id}"), form("http://app.example/logout")).await;
    assert_eq!(s, 422, "{html}");
    assert!(
        text_of(&html, "backchannel_logout_uri-error").contains("https"),
        "{html}"
    );
    let (s, _, html) = send(format!("/admin/clients/{id}"), form("")).await;
    assert_eq!(s, 303, "{html}");
    let client = app.core.get_client(&client_id).await.unwrap();
    assert_eq!(client.backchannel_logout_uri, None);
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(shown(&page).contains(r#"<span class="muted">none</span>"#), "{page}");
    app.stop().await;
}

/// Pairwise subject identifiers on the client form: chosen with the radio, the sector
/// taken from the redirect URIs when left empty and shown on the client's page; a bad
/// sector comes back beside its field; the edit form shows what is set, and switching
/// back to public drops the sector.
async fn a_client_is_given_pairwise_identifiers_on_its_form(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let (_, new) = p.get("/admin/clients/new").await;
    assert!(
        new.contains(r#"id="subject_type-public" checked"#) && new.contains(r#"<label for="sector_identifier">"#),
        "{new}"
    );
    let token = csrf(&new);
    let form = |subject_type: &str, sector: &str| {
        vec![
            ("csrf", token.clone()),
            ("name", "Pairwise".to_owned()),
            ("kind", "confidential".to_owned()),
            ("redirect_uris", REDIRECT.to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("scopes", "openid".to_owned()),
            ("require_pkce", "on".to_owned()),
            ("subject_type", subject_type.to_owned()),
            ("sector_identifier", sector.to_owned()),
        ]
    };
    let send = |path: String, f: Vec<(&'static str, String)>| {
        let p = &p;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.post(&path, &f).await
        }
    };
    let (s, _, html) = send("/admin/clients".into(), form("pairwise", "https://rp.example")).await;
    assert_eq!(s, 422, "{html}");
    assert!(
        text_of(&html, "sector_identifier-error").contains("host name"),
        "{html}"
    );
    assert!(html.contains(r#"value="https://rp.example""#), "kept: {html}");
    assert!(app.core.list_clients(None).await.unwrap().is_empty());

    let (s, _, html) = send("/admin/clients".into(), form("pairwise", "")).await;
    assert_eq!(s, 200, "{html}");
    let id = text_of(&html, "client-id");
    let client_id = portcullis_protocol::ClientId::parse(&id).unwrap();
    assert_eq!(
        app.core
            .get_client(&client_id)
            .await
            .unwrap()
            .pairwise_sector
            .as_deref(),
        Some("rp.example")
    );
    let (_, page) = p.get(&format!("/admin/clients/{id}")).await;
    assert!(page.contains("pairwise, sector rp.example"), "{page}");
    let (_, edit) = p.get(&format!("/admin/clients/{id}/edit")).await;
    assert!(
        edit.contains(r#"id="subject_type-pairwise" checked"#)
            && edit.contains(r#"name="sector_identifier" type="text" value="rp.example""#),
        "{edit}"
    );
    let (s, _, html) = send(format!("/admin/clients/{id}"), form("public", "rp.example")).await;
    assert_eq!(s, 303, "{html}");
    assert_eq!(app.core.get_client(&client_id).await.unwrap().pairwise_sector, None);
    app.stop().await;
}

/// The client list shows 50 at a time, with links to the next and previous pages that
/// keep the search; a short list has no pager.
async fn the_client_list_is_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Auditor).await;
    for i in 0..55 {
        app.core
            .create_client(
                &portcullis_core::clients::ClientInput {
                    name: format!("App {i:02}"),
                    kind: Some(portcullis_core::model::ClientKind::Confidential),
                    grant_types: vec!["client_credentials".into()],
                    scopes: "api:read".into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
    }
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let rows = |html: &str| html.matches("<a href=\"/admin/clients/").count();
    let (_, first) = p.get("/admin/clients").await;
    assert_eq!(rows(&first), 50, "{first}");
    assert!(first.contains("App 00") && first.contains("App 49") && !first.contains("App 50"));
    assert!(
        first.contains("Showing 1–50") && !first.contains("id=\"prev-page\""),
        "{first}"
    );
    assert!(
        first.contains(r#"<a href="/admin/clients?offset=50" rel="next" id="next-page">"#),
        "{first}"
    );
    let (_, second) = p.get("/admin/clients?offset=50").await;
    assert_eq!(rows(&second), 5);
    assert!(
        second.contains("App 54") && second.contains("Showing 51–55"),
        "{second}"
    );
    assert!(
        second.contains(r#"<a href="/admin/clients" rel="prev" id="prev-page">"#)
            && !second.contains("id=\"next-page\"")
    );
    let (_, past) = p.get("/admin/clients?offset=500").await;
    assert!(past.contains("No clients on this page"), "{past}");
    // A search keeps to its results, and short results have no pager.
    let (_, found) = p.get("/admin/clients?q=app+5").await;
    assert_eq!(rows(&found), 5, "{found}");
    assert!(!found.contains("class=\"pager\""), "{found}");
    let (_, users) = p.get("/admin/users").await;
    assert!(!users.contains("class=\"pager\""), "{users}");
    app.stop().await;
}

/// A form that creates something shown once (a client and its secret, an API key, a
/// registration token) sent again (a reload of its answer, Back and send) creates
/// nothing more: the operator is sent to the list, told why (UI review: each reload made
/// another live credential nobody kept).
async fn a_creating_form_sent_again_creates_nothing_more(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    let p = Pages::sign_in(&app, "root", ADMIN_PASSWORD).await;
    let once_of = |html: &str| {
        let marker = r#"name="once" value=""#;
        let start = html.find(marker).unwrap_or_else(|| panic!("no once in {html}")) + marker.len();
        html[start..].split('"').next().unwrap().to_owned()
    };
    for (page, form, fields) in [
        (
            "/admin/clients/new",
            "/admin/clients",
            vec![
                ("name", "Once App"),
                ("kind", "confidential"),
                ("redirect_uris", REDIRECT),
                ("grant_types", "authorization_code"),
                ("scopes", "openid"),
            ],
        ),
        (
            "/admin/api-keys",
            "/admin/api-keys",
            vec![("name", "once"), ("role", "auditor")],
        ),
        ("/admin/initial-tokens", "/admin/initial-tokens", vec![("name", "once")]),
    ] {
        let (status, html) = p.get(page).await;
        assert_eq!(status, 200, "{page}: {html}");
        let (token, once) = (csrf(&html), once_of(&html));
        let mut sent = fields.clone();
        sent.extend([("csrf", token.as_str()), ("once", once.as_str())]);
        let (s, _, html) = p.post(form, &sent).await;
        assert_eq!(s, 200, "{form}: {html}");
        let (s, location, _) = p.post(form, &sent).await;
        assert_eq!((s.as_u16(), location.as_deref()), (303, Some(form)), "{form}");
        let (_, list) = p.get(form).await;
        assert!(list.contains("was sent again"), "{form}: {list}");
        // A new form (a new marker) creates again.
        let (_, html) = p.get(page).await;
        assert_ne!(once_of(&html), once, "{page}");
    }
    // Rotating a secret, sent again: not rotated again, the secret shown still works.
    let client = app.core.list_clients(Some("Once App")).await.unwrap().remove(0);
    let page = format!("/admin/clients/{}", client.id.as_str());
    let (_, html) = p.get(&page).await;
    let sent = [("csrf", csrf(&html)), ("once", once_of(&html))];
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rotate = format!("{page}/rotate-secret");
    let (s, _, html) = p.post(&rotate, &sent).await;
    assert_eq!(s, 200, "{html}");
    let secret = text_of(&html, "client-secret");
    let (s, location, _) = p.post(&rotate, &sent).await;
    assert_eq!((s.as_u16(), location.as_deref()), (303, Some(page.as_str())));
    assert_eq!(
        app.client_credentials(client.id.as_str(), &secret).await.0,
        400,
        "authenticates (no grant)"
    );
    assert_eq!(app.core.list_clients(Some("Once App")).await.unwrap().len(), 1);
    assert_eq!(app.core.list_api_keys().await.unwrap().len(), 1);
    assert_eq!(app.core.list_initial_access_tokens().await.unwrap().len(), 1);
    app.stop().await;
}

both_backends!(
    a_creating_form_sent_again_creates_nothing_more,
    a_client_is_registered_with_a_backchannel_logout_uri_on_its_form,
    the_client_list_is_paged,
    a_client_is_given_pairwise_identifiers_on_its_form,
    a_client_requires_signed_request_objects_on_its_form,
    a_client_is_registered_with_a_jwks_uri_on_its_form,
    a_client_at_the_limits_can_be_edited_on_its_form,
    a_stale_client_edit_is_refused,
    a_rotated_secret_is_never_brought_back,
    client_form_keeps_input_and_shows_errors_inline,
);
