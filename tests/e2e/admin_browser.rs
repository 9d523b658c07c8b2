//! The admin pages in a real headless Chromium (issue 4), on both backends: an admin
//! signs in, registers a confidential client (correcting a redirect URI the page
//! rejects inline), copies its secret from the page, and that client completes an
//! authorization code flow; then the admin sees the user's session and grant and revokes
//! the grant, whose access token dies; and creates an API key that works on the API. An
//! auditor signs in too and is offered no change controls (the server's 403s are checked
//! in `admin_pages`).

use std::time::Duration;

use portcullis_core::model::AdminRole;
use portcullis_tests::{Backend, both_backends, spawn_app};

use crate::admin_support::{ADMIN_PASSWORD, operator};
use crate::browser_flow::Browser;
use crate::code_flow::{PASSWORD, REDIRECT, obtain_tokens};

async fn wait_for_text(b: &Browser, needle: &str) -> String {
    for _ in 0..100 {
        let html = b.source().await;
        if html.contains(needle) {
            return html;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the page never showed {needle:?}; it is at {}:\n{}",
        b.url().await,
        b.source().await
    );
}

async fn sign_in(b: &Browser, admin_url: &str, username: &str) {
    b.goto(&format!("{admin_url}/admin")).await;
    b.wait_for_path("/admin/login").await;
    b.type_into("#username", username).await;
    b.type_into("#password", ADMIN_PASSWORD).await;
    b.click("#signin").await;
    b.wait_for_path("/admin").await;
}

async fn admin_registers_a_client_that_signs_people_in(backend: Backend) {
    let app = spawn_app(backend).await;
    operator(&app, "root", AdminRole::Admin).await;
    operator(&app, "watcher", AdminRole::Auditor).await;
    let alice = app.user("alice", PASSWORD).await;

    let b = Browser::start().await;
    b.viewport(1280, 900).await;
    b.goto(&format!("{}/admin", app.admin_url)).await;
    b.wait_for_path("/admin/login").await;
    b.screenshot("admin-login").await;
    sign_in(&b, &app.admin_url, "root").await;
    wait_for_text(&b, "count-clients").await;
    b.screenshot("admin-dashboard").await;

    // Register: a redirect URI the server refuses first; the error is next to the field
    // and everything typed is still there.
    b.click("a[href='/admin/clients']").await;
    b.wait_for_path("/admin/clients").await;
    b.click("#new-client").await;
    b.wait_for_path("/admin/clients/new").await;
    b.type_into("#name", "Browser App").await;
    b.type_into("#redirect_uris", "http://rp.example/callback").await;
    b.type_into("#cors_origins", "https://rp.example").await;
    b.click("#save").await;
    let html = wait_for_text(&b, "redirect_uris-error").await;
    assert!(html.contains("value=\"Browser App\""));
    assert!(html.contains("https://rp.example</textarea>"));
    b.screenshot("admin-client-error").await;
    b.clear("#redirect_uris").await;
    b.type_into("#redirect_uris", REDIRECT).await;
    b.click("#save").await;
    wait_for_text(&b, "client-secret").await;
    b.screenshot("admin-client-secret").await;
    // What the operator copies from the page.
    let client_id = b.text("#client-id").await;
    let secret = b.text("#client-secret").await;
    assert_eq!(secret.len(), 43, "{secret:?}");

    // The client signs a person in with the copied secret.
    let tokens = obtain_tokens(&app, &client_id, &secret, "alice").await;
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(app.core.active_access_token(&at).is_some());

    // The admin sees alice's session and grant, and revokes the grant.
    b.click("#to-client").await;
    b.wait_for_path(&format!("/admin/clients/{client_id}")).await;
    b.screenshot("admin-client").await;
    b.goto(&format!("{}/admin/users?q=ali", app.admin_url)).await;
    b.click(&format!("a[href='/admin/users/{}']", alice.id)).await;
    let html = wait_for_text(&b, "grants-heading").await;
    assert!(html.contains("Browser App"), "the grant names the client");
    assert!(html.contains("127.0.0.1"), "the session shows where from");
    b.screenshot("admin-user").await;
    b.click(&format!(
        "form[action$='/grants/{}/revoke'] button",
        app.core.list_user_grants(alice.id).await.unwrap()[0].grant.id
    ))
    .await;
    wait_for_text(&b, "Grant revoked").await;
    assert!(
        app.core.active_access_token(&at).is_none(),
        "revoked in the UI, dead at once"
    );

    // Keys and the audit log, for the record.
    b.goto(&format!("{}/admin/keys", app.admin_url)).await;
    wait_for_text(&b, "key-active").await;
    b.screenshot("admin-keys").await;
    app.core.audit.flush().await;
    b.goto(&format!("{}/admin/audit", app.admin_url)).await;
    let html = wait_for_text(&b, "admin.client.created").await;
    assert!(html.contains("admin.grant.revoked") && html.contains(">root<"));
    b.screenshot("admin-audit").await;

    // An API key for scripts: shown once, and it works on the admin API.
    b.goto(&format!("{}/admin/api-keys", app.admin_url)).await;
    b.type_into("#name", "deploy script").await;
    b.type_into("#expires_in_days", "30").await;
    b.click("#create-key").await;
    wait_for_text(&b, "api-key-value").await;
    b.screenshot("admin-api-key-created").await;
    let key = b.text("#api-key-value").await;
    let (status, _) = crate::admin_support::Api::new(&app, &key).get("/clients").await;
    assert_eq!(status, 200);
    b.goto(&format!("{}/admin/api-keys", app.admin_url)).await;
    wait_for_text(&b, "deploy script").await;
    b.screenshot("admin-api-keys").await;

    // Sign out; the auditor signs in and is offered nothing that changes anything.
    b.click("#signout").await;
    b.wait_for_path("/admin/login").await;
    sign_in(&b, &app.admin_url, "watcher").await;
    b.goto(&format!("{}/admin/clients/{client_id}", app.admin_url)).await;
    let html = wait_for_text(&b, "client-details").await;
    for control in ["id=\"edit\"", "id=\"rotate-secret\"", "id=\"disable\"", "id=\"delete\""] {
        assert!(!html.contains(control), "an auditor is offered {control}");
    }
    b.screenshot("admin-auditor-client").await;
    b.goto(&format!("{}/admin/clients/new", app.admin_url)).await;
    let html = wait_for_text(&b, "Not allowed").await;
    assert!(html.contains("can look but not change"));
    b.quit().await;
    app.stop().await;
}

both_backends!(admin_registers_a_client_that_signs_people_in);
