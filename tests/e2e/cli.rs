//! The `portcullis` commands, run in-process exactly as the binary runs them: good input
//! works, bad input fails with one clear line naming what is wrong.

use clap::Parser;
use portcullis_cli::Settings;
use portcullis_cli::commands::{Cli, run};
use portcullis_tests::{Backend, TEST_KEK, both_backends, fresh_database};

pub(crate) async fn portcullis(config: &std::path::Path, args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["portcullis", "--config", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    run(cli).await.map_err(|e| format!("{e:#}"))
}

async fn commands_and_their_errors(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();

    portcullis(&config, &["migrate"]).await.unwrap();
    portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "https://app.example/cb",
            "--resource",
            "https://api.example/notes",
            "--require-par",
            "--json",
        ],
    )
    .await
    .unwrap();
    portcullis(&config, &["client", "list"]).await.unwrap();
    // The next key was made by the first start just now: too new to sign unless forced
    // (that nothing changes is checked through the admin API and on the store).
    let err = portcullis(&config, &["keys", "rotate"]).await.unwrap_err();
    assert!(err.starts_with("--force is needed: the next RS256 key"), "{err}");
    portcullis(&config, &["keys", "rotate", "--force"]).await.unwrap();
    portcullis(&config, &["keys", "list", "--json"]).await.unwrap();

    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("redirect_uris: http://evil.example/cb"), "{err}");
    let err = portcullis(&config, &["client", "create", "--name", "Bad", "--kind", "secret"])
        .await
        .unwrap_err();
    assert!(err.starts_with("--kind"), "{err}");
    // A client with keys (private_key_jwt): registered from a file, given no secret; a
    // file that cannot be read, or keys that cannot be used, are refused.
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    let keyed = [
        "client",
        "create",
        "--name",
        "Keyed",
        "--grant-type",
        "client_credentials",
        "--jwks-file",
    ];
    // It also requires DPoP (RFC 9449 §5.2 dpop_bound_access_tokens) and request objects
    // it signs with those keys (RFC 9101 §10.5 require_signed_request_object).
    portcullis(
        &config,
        &[
            &keyed[..],
            &[
                jwks.to_str().unwrap(),
                "--require-dpop",
                "--require-signed-request-object",
            ],
        ]
        .concat(),
    )
    .await
    .unwrap();
    // Without keys to sign with, a client cannot require signed request objects.
    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Unsigned",
            "--redirect-uri",
            "https://app.example/cb",
            "--require-signed-request-object",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("require_signed_request_object:") && err.contains("jwks or jwks_uri"),
        "{err}"
    );
    let err = portcullis(&config, &[&keyed[..], &["/no/such/file"]].concat())
        .await
        .unwrap_err();
    assert!(err.starts_with("--jwks-file: cannot read /no/such/file"), "{err}");
    std::fs::write(&jwks, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    let err = portcullis(&config, &[&keyed[..], &[jwks.to_str().unwrap()]].concat())
        .await
        .unwrap_err();
    assert!(err.starts_with("jwks: key 1"), "{err}");
    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "",
            "--redirect-uri",
            "https://a.example/cb",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("name:"), "{err}");
    let err = portcullis(&config, &["client", "show", "does-not-exist"])
        .await
        .unwrap_err();
    assert_eq!(err, "client not found");
    let err = portcullis(&config, &["client", "delete", "does-not-exist"])
        .await
        .unwrap_err();
    assert_eq!(err, "client not found");
    let err = portcullis(&config, &["keys", "rotate", "--alg", "HS256"])
        .await
        .unwrap_err();
    assert!(err.starts_with("--alg"), "{err}");
    // Only the algorithms in use have keys to rotate (RS256 here).
    let err = portcullis(&config, &["keys", "rotate", "--alg", "ES256"])
        .await
        .unwrap_err();
    assert!(err.starts_with("alg:") && err.contains("not in use"), "{err}");
    let err = portcullis(&config, &["keys", "withdraw", "--kid", "nope"])
        .await
        .unwrap_err();
    assert_eq!(err, "signing key not found");
    let err = portcullis(&config, &["keys", "retire", "--alg", "RS256"])
        .await
        .unwrap_err();
    assert!(err.starts_with("alg:") && err.contains("is in use"), "{err}");
    let err = portcullis(&config, &["user", "disable", "ghost"]).await.unwrap_err();
    assert_eq!(err, "user not found");
    let err = portcullis(&config, &["user", "delete", "ghost"]).await.unwrap_err();
    assert_eq!(err, "user not found");
    portcullis(&config, &["admin", "list", "--json"]).await.unwrap();
    for args in [
        &["admin", "set-role", "ghost", "--role", "auditor"][..],
        &["admin", "delete", "ghost"][..],
        // Said before any password is asked for.
        &["admin", "set-password", "ghost"][..],
    ] {
        assert_eq!(portcullis(&config, args).await.unwrap_err(), "admin not found");
    }
    let err = portcullis(&config, &["admin", "set-role", "ghost", "--role", "root"])
        .await
        .unwrap_err();
    assert!(err.starts_with("--role"), "{err}");
    let err = portcullis(&config, &["admin", "create", "ops", "--role", "root"])
        .await
        .unwrap_err();
    assert!(err.starts_with("--role"), "{err}");
    // clap refuses a password on the command line: there is no such flag.
    let err = portcullis(&config, &["user", "create", "alice", "--password", "hunter22"])
        .await
        .unwrap_err();
    assert!(err.contains("--password"), "{err}");

    // PKCE is required unless the operator lets a confidential client leave it out.
    portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Legacy",
            "--redirect-uri",
            "https://legacy.example/cb",
            "--no-require-pkce",
        ],
    )
    .await
    .unwrap();
    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Spa",
            "--kind",
            "public",
            "--redirect-uri",
            "https://spa.example/cb",
            "--no-require-pkce",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("--no-require-pkce"), "{err}");
    // An ID token algorithm the server has no keys for (signing_alg is RS256 here).
    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Es",
            "--redirect-uri",
            "https://es.example/cb",
            "--id-token-alg",
            "ES256",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("id_token_signed_response_alg: this server signs with RS256 only"),
        "{err}"
    );
    let app = portcullis_tests::spawn_app_on(&url, None).await;
    let pkce: Vec<_> = app
        .core
        .list_clients(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.require_pkce))
        .collect();
    assert!(pkce.contains(&("Web".into(), true)), "{pkce:?}");
    assert!(pkce.contains(&("Legacy".into(), false)), "{pkce:?}");
    assert!(
        !pkce.iter().any(|(n, _)| n == "Spa" || n == "Es" || n == "Unsigned"),
        "{pkce:?}"
    );
    let keyed: Vec<_> = app
        .core
        .list_clients(Some("Keyed"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.token_endpoint_auth_method(),
                c.secret_hash.is_none(),
                c.dpop_bound_access_tokens,
                c.require_signed_request_object,
            )
        })
        .collect();
    assert_eq!(
        keyed,
        [("private_key_jwt", true, true, true)],
        "one keyed client, without a secret, requiring DPoP and signed request objects"
    );
    let web = &app.core.list_clients(Some("Web")).await.unwrap()[0];
    assert!(pkce.len() > 1 && !web.dpop_bound_access_tokens);
    assert_eq!(web.resources, ["https://api.example/notes"]);
    assert!(web.require_pushed_authorization_requests && !web.require_signed_request_object);
    app.stop().await;

    // Bad configuration: one line naming the setting.
    std::fs::write(&config, "issuer = \"https://id.example/?q=1\"\n").unwrap();
    let err = portcullis(&config, &["migrate"]).await.unwrap_err();
    assert!(err.contains("issuer") && err.contains("query or fragment"), "{err}");
    std::fs::write(&config, "issuer = \"https://id.example\"\nbogus = 1\n").unwrap();
    let err = portcullis(&config, &["migrate"]).await.unwrap_err();
    assert!(err.contains("unknown field `bogus`"), "{err}");
    let err = portcullis(&dir.path().join("missing.toml"), &["migrate"])
        .await
        .unwrap_err();
    assert!(err.contains("--config") && err.contains("cannot read"), "{err}");
    drop(guard);
}

/// Listing writes nothing: on a migrated database without signing keys, the read-only
/// commands leave it without (`serve` and the commands that write create them).
async fn read_only_commands_write_nothing(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    for args in [
        &["keys", "list"][..],
        &["keys", "list", "--json"][..],
        &["client", "list"][..],
        &["user", "list", "--json"][..],
        &["admin", "list"][..],
        &["webhook", "list"][..],
        &["webhook", "deliveries"][..],
    ] {
        portcullis(&config, args).await.unwrap();
    }
    let err = portcullis(&config, &["client", "show", "nobody"]).await.unwrap_err();
    assert_eq!(err, "client not found");
    let settings = Settings::for_test("http://localhost:9090", &url, TEST_KEK);
    let store = portcullis_cli::app::open_store(&settings).await.unwrap();
    assert!(
        store.list_keys().await.unwrap().is_empty(),
        "a read-only command generated signing keys"
    );
    assert!(
        store.list_server_secrets().await.unwrap().is_empty(),
        "a read-only command made the pairwise subject key"
    );
    // A command that writes still makes sure keys exist.
    portcullis(&config, &["user", "disable", "ghost"]).await.unwrap_err();
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
    assert_eq!(store.list_server_secrets().await.unwrap().len(), 1);
    // Ids are base64url: one may start with `-` and is still an id, not a flag.
    for args in [
        &["client", "show", "-AG3SoJgLHTG9uqzuxdMww", "--json"][..],
        &["client", "rotate-secret", "-AG3SoJgLHTG9uqzuxdMww"][..],
        &["client", "delete", "-AG3SoJgLHTG9uqzuxdMww"][..],
    ] {
        let err = portcullis(&config, args).await.unwrap_err();
        assert_eq!(err, "client not found", "{args:?}");
    }
    let err = portcullis(&config, &["keys", "withdraw", "--kid", "-NoSuchKid"])
        .await
        .unwrap_err();
    assert!(!err.contains("unexpected argument"), "{err}");
    drop(guard);
}

/// Replacing the key-encryption key: with the new key as `kek` and the old one in
/// `previous_keks`, everything stays readable; `kek rewrap` encrypts it all again with
/// the new key, after which the old one is needed no more and opens nothing.
async fn the_kek_is_replaced_without_losing_a_key(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    let old = TEST_KEK;
    let new = portcullis_core::crypto::Kek::generate().unwrap().to_text();
    let with = |kek: &str, previous: &[&str]| {
        let list: Vec<String> = previous.iter().map(|k| format!("{k:?}")).collect();
        std::fs::write(
            &config,
            format!(
                "database_url = \"{url}\"\nkek = \"{kek}\"\nprevious_keks = [{}]\n",
                list.join(", ")
            ),
        )
        .unwrap();
    };
    with(old, &[]);
    portcullis(&config, &["migrate"]).await.unwrap();
    portcullis(&config, &["keys", "list"]).await.unwrap();
    portcullis(
        &config,
        &["webhook", "create", "--url", "https://hooks.example/in", "--event", "*"],
    )
    .await
    .unwrap();
    portcullis(&config, &["keys", "rotate", "--force"]).await.unwrap();

    // The new key alone opens nothing yet, and says so plainly.
    with(&new, &[]);
    let err = portcullis(&config, &["keys", "list"]).await.unwrap_err();
    assert!(err.contains("kek: the "), "{err}");
    assert!(
        err.contains("signing key")
            && err.contains(": cannot decrypt a stored secret: it was sealed with another key-encryption key"),
        "{err}"
    );
    assert!(!err.contains("unexpected") && !err.contains('?'), "{err}");
    // Listing the current key as a previous one, or a malformed one, is refused.
    with(&new, &[&new]);
    let err = portcullis(&config, &["keys", "list"]).await.unwrap_err();
    assert!(err.starts_with("previous_keks: holds the current"), "{err}");
    with(&new, &["short"]);
    let err = portcullis(&config, &["keys", "list"]).await.unwrap_err();
    assert!(err.contains("previous_keks") && err.contains("entry 1"), "{err}");

    // With the old key as a previous one, all is readable; rewrap seals it anew.
    with(&new, &[old]);
    portcullis(&config, &["keys", "list"]).await.unwrap();
    portcullis(&config, &["kek", "rewrap"]).await.unwrap();
    with(&new, &[]);
    portcullis(&config, &["keys", "list"]).await.unwrap();
    // Without previous_keks nothing is being replaced: refused (a forgotten swap of the
    // configuration must not report success).
    let err = portcullis(&config, &["kek", "rewrap"]).await.unwrap_err();
    assert!(err.starts_with("previous_keks: is empty"), "{err}");
    // Everything now opens with the new key alone: a rewrap finds nothing to do.
    let unrelated = portcullis_core::crypto::Kek::generate().unwrap().to_text();
    let core = start(&url, &new, &[&unrelated]).await;
    let done = core.rewrap_sealed("test").await.unwrap();
    assert_eq!(
        (done.keys, done.webhooks, done.server_secrets),
        (0, 0, 0),
        "every key, the webhook secret and the pairwise key open with the new key"
    );
    // And the old key alone no longer opens them.
    with(old, &[]);
    let err = portcullis(&config, &["keys", "list"]).await.unwrap_err();
    assert!(err.contains("cannot decrypt"), "{err}");
    drop(guard);
}

/// The core on `url` with `kek` and `previous` keys, as a node configured so would run.
pub(crate) async fn start(url: &str, kek: &str, previous: &[&str]) -> std::sync::Arc<portcullis_core::Portcullis> {
    let settings = Settings {
        previous_keks: previous.iter().map(|k| (*k).to_owned()).collect(),
        ..Settings::for_test("http://localhost:9090", url, kek)
    };
    portcullis_cli::app::start_core(&settings).await.unwrap()
}

/// A node still running with the old key as its kek during the replacement keeps
/// sealing with it: a rewrap run afterwards picks up what it wrote, it cannot promote a
/// next key it cannot decrypt, and a node with the new key alone refuses to start on a
/// next key it cannot decrypt (instead of failing at the next rotation).
async fn a_node_left_on_the_old_kek_is_caught(backend: Backend) {
    use portcullis_core::crypto::Kek;
    let (url, guard) = fresh_database(backend).await;
    let (old, new) = (Kek::generate().unwrap().to_text(), Kek::generate().unwrap().to_text());
    let stale = start(&url, &old, &[]).await;
    let replacing = start(&url, &new, &[&old]).await;
    stale.rotate_signing_keys(None, true, "test").await.unwrap();
    let done = replacing.rewrap_sealed("test").await.unwrap();
    // The stale node started first: it made the pairwise subject key, with its kek.
    assert_eq!((done.keys, done.webhooks, done.server_secrets), (3, 0, 1));

    // After the rewrap the stale node still writes with the old key…
    stale
        .create_webhook("https://hooks.example/in", &["*".to_owned()], "test")
        .await
        .unwrap();
    // …but cannot promote the next key, which its key no longer opens.
    let before = replacing.store.list_keys().await.unwrap();
    let err = stale.rotate_signing_keys(None, true, "test").await.unwrap_err();
    assert!(err.to_string().contains("cannot be used"), "{err}");
    assert_eq!(replacing.store.list_keys().await.unwrap(), before, "nothing rotated");
    // A second rewrap seals what it wrote; then the new key alone opens everything.
    let done = replacing.rewrap_sealed("test").await.unwrap();
    assert_eq!((done.keys, done.webhooks, done.server_secrets), (0, 1, 0));
    let done = start(&url, &new, &[&Kek::generate().unwrap().to_text()])
        .await
        .rewrap_sealed("test")
        .await
        .unwrap();
    assert_eq!((done.keys, done.webhooks, done.server_secrets), (0, 0, 0));

    // A next key sealed with a key this node lacks stops its start.
    let next = before
        .iter()
        .find(|k| k.state == portcullis_core::model::KeyState::Next)
        .unwrap();
    let plain = Kek::parse(&new)
        .unwrap()
        .open(&next.private_key_encrypted, next.kid.as_bytes())
        .unwrap();
    let by_old = Kek::parse(&old).unwrap().seal(&plain, next.kid.as_bytes()).unwrap();
    replacing.store.reseal_key(&next.kid, &by_old).await.unwrap();
    let settings = Settings::for_test("http://localhost:9090", &url, &new);
    let err = portcullis_cli::app::start_core(&settings).await.unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("next signing key {}", next.kid)),
        "{err:#}"
    );
    drop(guard);
}

/// `client create --jwks-uri`: the client authenticates with the keys it publishes there
/// (`private_key_jwt`) and gets no secret; `client show` reads it back. A URL core
/// refuses, a public client, and keys given both ways are refused, naming what is wrong.
async fn a_client_with_a_jwks_uri_gets_no_secret(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    const URI: &str = "https://keys.example/jwks.json";
    let create = |name: &'static str, more: &'static [&'static str]| {
        let config = config.clone();
        async move {
            let args = [
                &["client", "create", "--name", name, "--grant-type", "client_credentials"][..],
                more,
            ]
            .concat();
            portcullis(&config, &args).await
        }
    };
    create("Published", &["--jwks-uri", URI]).await.unwrap();
    create(
        "Published json",
        &["--jwks-uri", "http://127.0.0.1:8080/jwks", "--json"],
    )
    .await
    .unwrap();

    for (more, starts) in [
        (&["--jwks-uri", "http://keys.example/jwks.json"][..], "jwks_uri:"),
        (&["--jwks-uri", "https://keys.example/jwks.json#k1"][..], "jwks_uri:"),
        (&["--jwks-uri", "keys.example/jwks.json"][..], "jwks_uri:"),
    ] {
        let err = create("Refused", more).await.unwrap_err();
        assert!(err.starts_with(starts), "{more:?}: {err}");
    }
    let err = portcullis(
        &config,
        &[
            "client",
            "create",
            "--name",
            "Spa",
            "--kind",
            "public",
            "--redirect-uri",
            "https://spa.example/cb",
            "--grant-type",
            "authorization_code",
            "--jwks-uri",
            URI,
        ],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("jwks_uri:") && err.contains("public client"), "{err}");
    // Keys from a file and from a URL: one or the other (said before the file is read).
    let err = create("Both", &["--jwks-file", "/no/such/file", "--jwks-uri", URI])
        .await
        .unwrap_err();
    assert!(
        err.contains("--jwks-uri") && err.contains("cannot be used with"),
        "{err}"
    );

    let app = portcullis_tests::spawn_app_on(&url, None).await;
    let clients = app.core.list_clients(Some("Published")).await.unwrap();
    let mut got: Vec<_> = clients
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.jwks_uri.as_deref(),
                c.token_endpoint_auth_method(),
                c.secret_hash.is_none(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Published", Some(URI), "private_key_jwt", true),
            (
                "Published json",
                Some("http://127.0.0.1:8080/jwks"),
                "private_key_jwt",
                true
            ),
        ]
    );
    assert_eq!(app.core.list_clients(None).await.unwrap().len(), 2, "nothing else made");
    app.stop().await;
    let id = clients[0].id.as_str();
    portcullis(&config, &["client", "show", id]).await.unwrap();
    portcullis(&config, &["client", "show", id, "--json"]).await.unwrap();
    drop(guard);
}

/// `client create --backchannel-logout-uri`: the client is stored with the URL it is sent
/// logout tokens at, as typed (http on a loopback host too); `client show` reads it back.
/// A URL core refuses fails with core's message for the field, and nothing is made.
async fn a_client_is_created_with_a_backchannel_logout_uri(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    const URI: &str = "https://app.example/backchannel-logout";
    let create = |name: &str, more: &[&str]| {
        let config = config.clone();
        let args: Vec<String> = [
            "client",
            "create",
            "--name",
            name,
            "--redirect-uri",
            "https://app.example/cb",
        ]
        .iter()
        .chain(more)
        .map(|a| (*a).to_owned())
        .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            portcullis(&config, &args).await
        }
    };
    create("Told", &["--backchannel-logout-uri", URI]).await.unwrap();
    create(
        "Told json",
        &["--backchannel-logout-uri", "http://127.0.0.1:8080/logout", "--json"],
    )
    .await
    .unwrap();
    create("Untold", &[]).await.unwrap();

    for (uri, says) in [
        (
            "http://app.example/logout",
            "must be an https URL (http only on a loopback host)",
        ),
        ("https://app.example/logout#now", "must not have a fragment"),
        ("app.example/logout", "app.example/logout"),
    ] {
        let err = create("Refused", &["--backchannel-logout-uri", uri]).await.unwrap_err();
        assert!(
            err.starts_with("backchannel_logout_uri:") && err.contains(says),
            "{uri}: {err}"
        );
    }

    let app = portcullis_tests::spawn_app_on(&url, None).await;
    let clients = app.core.list_clients(None).await.unwrap();
    let mut got: Vec<_> = clients
        .iter()
        .map(|c| (c.name.as_str(), c.backchannel_logout_uri.as_deref()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Told", Some(URI)),
            ("Told json", Some("http://127.0.0.1:8080/logout")),
            ("Untold", None),
        ],
        "nothing else made"
    );
    app.stop().await;
    for c in &clients {
        let id = c.id.as_str();
        portcullis(&config, &["client", "show", id]).await.unwrap();
        portcullis(&config, &["client", "show", id, "--json"]).await.unwrap();
    }
    drop(guard);
}

/// `client create --pairwise`, with or without `--sector-identifier`; the sector alone
/// is refused.
async fn a_client_is_created_with_pairwise_identifiers(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    let create = |name: &str, more: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--name",
            name,
            "--redirect-uri",
            "https://app.example/cb",
        ];
        args.extend_from_slice(more);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let config = config.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            portcullis(&config, &args).await
        }
    };
    create("Host", &["--pairwise"]).await.unwrap();
    create("Named", &["--pairwise", "--sector-identifier", "example.com", "--json"])
        .await
        .unwrap();
    create("Public", &[]).await.unwrap();
    let err = create("Sector alone", &["--sector-identifier", "example.com"])
        .await
        .unwrap_err();
    assert!(err.contains("--pairwise"), "{err}");
    let err = create("Bad", &["--pairwise", "--sector-identifier", "https://example.com"])
        .await
        .unwrap_err();
    assert!(err.starts_with("sector_identifier:"), "{err}");
    let app = portcullis_tests::spawn_app_on(&url, None).await;
    let clients = app.core.list_clients(None).await.unwrap();
    let mut got: Vec<_> = clients
        .iter()
        .map(|c| (c.name.as_str(), c.pairwise_sector.as_deref()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Host", Some("app.example")),
            ("Named", Some("example.com")),
            ("Public", None)
        ]
    );
    app.stop().await;
    for c in &clients {
        portcullis(&config, &["client", "show", c.id.as_str()]).await.unwrap();
    }
    drop(guard);
}

/// `initial-token create|list|revoke`; bad input named; list and read-only commands
/// make nothing.
async fn initial_tokens_are_handed_out_and_revoked(backend: Backend) {
    let (url, guard) = fresh_database(backend).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    portcullis(&config, &["initial-token", "list"]).await.unwrap();
    portcullis(
        &config,
        &[
            "initial-token",
            "create",
            "--name",
            "CI",
            "--days",
            "3",
            "--uses",
            "2",
            "--json",
        ],
    )
    .await
    .unwrap();
    portcullis(&config, &["initial-token", "create", "--name", "Open-ended"])
        .await
        .unwrap();
    for (args, says) in [
        (
            &["initial-token", "create", "--name", "x", "--days", "400"][..],
            "days:",
        ),
        (&["initial-token", "create", "--name", "x", "--days", "0"][..], "days:"),
        (&["initial-token", "create", "--name", "x", "--uses", "0"][..], "uses:"),
        (&["initial-token", "create", "--name", " "][..], "name:"),
    ] {
        let err = portcullis(&config, args).await.unwrap_err();
        assert!(err.starts_with(says), "{args:?}: {err}");
    }
    let settings = Settings::for_test("http://localhost:9090", &url, TEST_KEK);
    let store = portcullis_cli::app::open_store(&settings).await.unwrap();
    let tokens = store.list_initial_access_tokens().await.unwrap();
    let mut got: Vec<_> = tokens.iter().map(|t| (t.name.as_str(), t.uses_left)).collect();
    got.sort();
    assert_eq!(got, [("CI", Some(2)), ("Open-ended", None)]);
    let ci = tokens.iter().find(|t| t.name == "CI").unwrap();
    assert_eq!(ci.expires_at - ci.created_at, time::Duration::days(3));
    let id = ci.id.to_string();
    portcullis(&config, &["initial-token", "revoke", &id]).await.unwrap();
    portcullis(&config, &["initial-token", "list", "--json"]).await.unwrap();
    let ci = store
        .get_initial_access_token_by_hash(&ci.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(ci.revoked_at.is_some());
    let err = portcullis(&config, &["initial-token", "revoke", &uuid::Uuid::new_v4().to_string()])
        .await
        .unwrap_err();
    assert_eq!(err, "initial access token not found");
    drop(guard);
}

both_backends!(
    commands_and_their_errors,
    initial_tokens_are_handed_out_and_revoked,
    a_client_is_created_with_pairwise_identifiers,
    a_client_is_created_with_a_backchannel_logout_uri,
    a_client_with_a_jwks_uri_gets_no_secret,
    read_only_commands_write_nothing,
    the_kek_is_replaced_without_losing_a_key,
    a_node_left_on_the_old_kek_is_caught
);

/// `migrate` needs no key-encryption key on PostgreSQL (it touches the schema only); the
/// other commands still refuse to start without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_runs_without_a_kek_on_postgres() {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-cli").unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\n")).unwrap();
    portcullis(&config, &["migrate"]).await.unwrap();
    for args in [&["client", "list"][..], &["keys", "rotate"][..], &["serve"][..]] {
        let err = portcullis(&config, args).await.unwrap_err();
        assert!(err.contains("kek") && err.contains("PostgreSQL"), "{args:?}: {err}");
    }
    // The schema is there: with a key, the commands run.
    std::fs::write(&config, format!("database_url = \"{url}\"\nkek = \"{TEST_KEK}\"\n")).unwrap();
    portcullis(&config, &["client", "list"]).await.unwrap();
}
