//! Operator-facing start-up: a TLS configuration that cannot be loaded stops the server
//! before anything is written, the start banner names the right scheme, and the SQLite
//! database is private to its owner.

use portcullis_cli::Settings;
use portcullis_cli::app::{listener_url, serve_on, start_core};
use portcullis_cli::config::TlsFiles;
use portcullis_tests::{Backend, TEST_KEK, both_backends, fresh_database};
use tokio::net::TcpListener;

/// Starts a node with `tls` on a fresh database and expects it to fail naming `setting`;
/// then checks the database is still untouched: no operator was bootstrapped (whose
/// password would have been printed for a server that never ran).
async fn refused_before_writing(backend: Backend, tls: TlsFiles, setting: &str) -> String {
    let (url, guard) = fresh_database(backend).await;
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://127.0.0.1:{}", public.local_addr().unwrap().port());
    let mut settings = Settings::for_test(&issuer, &url, TEST_KEK);
    settings.tls = Some(tls);
    let err = match serve_on(&settings, public, admin).await {
        Ok(running) => {
            running.stop().await;
            panic!("started with a bad {setting}");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(err.starts_with(&format!("{setting}:")), "{err}");
    if let Some(dir) = &guard {
        assert!(
            !dir.path().join("portcullis.db").exists(),
            "the SQLite database was created before TLS was checked"
        );
    }
    settings.tls = None;
    let core = start_core(&settings).await.unwrap();
    assert!(
        core.bootstrap_admin().await.unwrap().is_some(),
        "an operator was bootstrapped by the start that failed"
    );
    core.audit.flush().await;
    drop(guard);
    err
}

async fn bad_tls_files_stop_the_start_before_anything_is_written(backend: Backend) {
    let dir = portcullis_tests::db::TempDirGuard::new("portcullis-tls-bad").unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let good_cert = dir.path().join("cert.pem");
    let other_key = dir.path().join("other-key.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&good_cert, cert.pem()).unwrap();
    std::fs::write(&other_key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    std::fs::write(&garbage, "not a PEM file\n").unwrap();

    let not_a_certificate = TlsFiles {
        cert: garbage.clone(),
        key: other_key.clone(),
    };
    refused_before_writing(backend, not_a_certificate, "tls_cert_file").await;
    let key_of_another_certificate = TlsFiles {
        cert: good_cert.clone(),
        key: other_key,
    };
    refused_before_writing(backend, key_of_another_certificate, "tls_key_file").await;
    // A key under a passphrase is named as such, not as "no key".
    let encrypted = dir.path().join("encrypted-key.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let passphrase_key = TlsFiles {
        cert: good_cert,
        key: encrypted,
    };
    let err = refused_before_writing(backend, passphrase_key, "tls_key_file").await;
    assert!(err.contains("is encrypted with a passphrase"), "{err}");
    assert!(!err.contains("no items found"), "{err}");
    // OpenSSL's older form says so in a header of its own.
    let traditional = dir.path().join("traditional-key.pem");
    std::fs::write(
        &traditional,
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = refused_before_writing(
        backend,
        TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: traditional,
        },
        "tls_key_file",
    )
    .await;
    assert!(err.contains("is encrypted with a passphrase"), "{err}");
}

both_backends!(bad_tls_files_stop_the_start_before_anything_is_written);

#[test]
fn the_banner_names_the_scheme_the_listener_speaks() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9091));
    assert_eq!(listener_url(addr, true), "https://127.0.0.1:9091");
    assert_eq!(listener_url(addr, false), "http://127.0.0.1:9091");
}

/// The SQLite database and its `-wal` and `-shm` files hold password hashes, secret
/// digests and personal data: readable by their owner only, like the generated KEK. A
/// file that already exists keeps the permissions its operator gave it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| format!("{:o}", std::fs::metadata(path).unwrap().permissions().mode() & 0o777);

    let (url, guard) = fresh_database(Backend::Sqlite).await;
    let dir = guard.unwrap();
    let settings = Settings::for_test("http://127.0.0.1:9090", &url, TEST_KEK);
    // Generates keys: a write, so the WAL and its index exist while the store is open.
    let core = start_core(&settings).await.unwrap();
    for name in ["portcullis.db", "portcullis.db-wal", "portcullis.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), "600", "{name}");
    }
    core.audit.flush().await;
    drop(core);

    let (url, guard) = fresh_database(Backend::Sqlite).await;
    let dir = guard.unwrap();
    let file = dir.path().join("portcullis.db");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let settings = Settings::for_test("http://127.0.0.1:9090", &url, TEST_KEK);
    let core = start_core(&settings).await.unwrap();
    assert_eq!(mode(&file), "640", "an existing file's permissions were changed");
    core.audit.flush().await;
}
