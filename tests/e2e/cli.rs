//! The `portcullis` commands, run in-process exactly as the binary runs them: good input
//! works, bad input fails with one clear line naming what is wrong.

use clap::Parser;
use portcullis_cli::Settings;
use portcullis_cli::commands::{Cli, run};
use portcullis_tests::{Backend, TEST_KEK, both_backends, fresh_database};

async fn portcullis(config: &std::path::Path, args: &[&str]) -> Result<(), String> {
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
    let err = portcullis(&config, &["keys", "retire", "--alg", "RS256"])
        .await
        .unwrap_err();
    assert!(err.starts_with("alg:") && err.contains("is in use"), "{err}");
    let err = portcullis(&config, &["user", "disable", "ghost"]).await.unwrap_err();
    assert_eq!(err, "user not found");
    portcullis(&config, &["admin", "list", "--json"]).await.unwrap();
    for args in [
        &["admin", "set-role", "ghost", "--role", "auditor"][..],
        &["admin", "delete", "ghost"][..],
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
    assert!(!pkce.iter().any(|(n, _)| n == "Spa" || n == "Es"), "{pkce:?}");
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
    // A command that writes still makes sure keys exist.
    portcullis(&config, &["user", "disable", "ghost"]).await.unwrap_err();
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
    drop(guard);
}

both_backends!(commands_and_their_errors, read_only_commands_write_nothing);

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
