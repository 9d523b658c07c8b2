//! Loading and validation: every setting from the file and the environment, and the
//! errors that name what is wrong.

use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_from(None, vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

#[test]
fn defaults_work_with_nothing_set() {
    let s = load(&[]).unwrap();
    assert_eq!(s.core.issuer, "http://localhost:9090");
    assert_eq!(s.public_addr.to_string(), "0.0.0.0:9090");
    assert_eq!(s.admin_addr.to_string(), "127.0.0.1:9091");
    assert!(s.database_url.starts_with("sqlite://./data/portcullis.db"));
    assert_eq!(s.kek, KekSource::Generated(PathBuf::from("./data/kek")));
}

#[test]
fn errors_name_the_setting_and_its_source() {
    let e = load(&[("PORTCULLIS_ISSUER", "https://id.example/?x=1")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: issuer (from PORTCULLIS_ISSUER): must not contain a query or fragment"
    );
    let e = load(&[("PORTCULLIS_ISSUER", "not a url")]).unwrap_err();
    assert_eq!(e.setting, "issuer");
    let e = load(&[("PORTCULLIS_ISSUER", "https://id.example/#frag")]).unwrap_err();
    assert_eq!(e.setting, "issuer");
    let e = load(&[("PORTCULLIS_PUBLIC_ADDR", "nowhere")]).unwrap_err();
    assert_eq!(e.setting, "public_addr");
    let e = load(&[("PORTCULLIS_ISUER", "https://id.example")]).unwrap_err();
    assert_eq!(e.setting, "PORTCULLIS_ISUER");
    let e = load(&[("PORTCULLIS_DATABASE_URL", "mysql://x")]).unwrap_err();
    assert_eq!(e.setting, "database_url");
    let e = load(&[("PORTCULLIS_DATABASE_URL", "postgres://localhost/x")]).unwrap_err();
    assert_eq!(e.setting, "kek");
    let e = load(&[("PORTCULLIS_KEK_FILE", "/nonexistent/kek")]).unwrap_err();
    assert_eq!(e.setting, "kek_file");
    let e = load(&[("PORTCULLIS_KEK", "tooshort")]).unwrap_err();
    assert_eq!(e.setting, "kek");
    let e = load(&[("PORTCULLIS_ACCESS_TOKEN_TTL", "ten")]).unwrap_err();
    assert_eq!(e.setting, "access_token_ttl");
    let e = load(&[("PORTCULLIS_ACCESS_TOKEN_TTL", "5")]).unwrap_err();
    assert_eq!(e.setting, "access_token_ttl");
    let e = load(&[("PORTCULLIS_LOG_FORMAT", "xml")]).unwrap_err();
    assert_eq!(e.setting, "log_format");
    let e = load(&[("PORTCULLIS_SIGNING_ALG", "HS256")]).unwrap_err();
    assert_eq!(e.setting, "signing_alg");
    for key in ["PORTCULLIS_HEADER_READ_TIMEOUT", "PORTCULLIS_REQUEST_TIMEOUT"] {
        let e = load(&[(key, "0")]).unwrap_err();
        assert_eq!(e.setting, key.trim_start_matches("PORTCULLIS_").to_ascii_lowercase());
    }
}

#[test]
fn previous_keks_from_the_environment() {
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    let s = load(&[("PORTCULLIS_PREVIOUS_KEKS", &format!("{a}, {b},"))]).unwrap();
    assert_eq!(s.previous_keks, [a.clone(), b]);
    assert!(load(&[]).unwrap().previous_keks.is_empty());
    let e = load(&[("PORTCULLIS_PREVIOUS_KEKS", &format!("{a},nope"))]).unwrap_err();
    assert_eq!(e.setting, "previous_keks");
    assert!(e.message.contains("entry 2"), "{}", e.message);
}

#[test]
fn previous_keks_from_files() {
    let dir = std::env::temp_dir().join(format!("portcullis-prev-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    let (fa, fb, bad) = (dir.join("a"), dir.join("b"), dir.join("bad"));
    std::fs::write(&fa, format!("{a}\n")).unwrap();
    std::fs::write(&fb, &b).unwrap();
    std::fs::write(&bad, "nope").unwrap();
    let files = format!("{},{}", fa.display(), fb.display());
    let s = load(&[
        ("PORTCULLIS_PREVIOUS_KEKS", &a),
        ("PORTCULLIS_PREVIOUS_KEK_FILES", &files),
    ])
    .unwrap();
    // Inline ones first, then each file's, its line end dropped.
    assert_eq!(s.previous_keks, [a.clone(), a, b]);
    let missing = dir.join("missing").display().to_string();
    for (files, says) in [
        (missing.as_str(), "cannot read"),
        (&*bad.display().to_string(), "invalid"),
    ] {
        let e = load(&[("PORTCULLIS_PREVIOUS_KEK_FILES", files)]).unwrap_err();
        assert_eq!(e.setting, "previous_kek_files");
        assert!(
            e.message.starts_with("entry 1 (") && e.message.contains(says),
            "{}",
            e.message
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn migrate_needs_no_kek_with_postgresql() {
    let vars = [("PORTCULLIS_DATABASE_URL", "postgres://localhost/x")];
    let owned = || vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    let s = Settings::load_from_needing(None, owned(), KekNeed::NotNeeded).unwrap();
    assert_eq!(s.kek, KekSource::Absent);
    // Every other command still needs it.
    let e = Settings::load_from_needing(None, owned(), KekNeed::Required).unwrap_err();
    assert_eq!(e.setting, "kek");
    // A key that is set is still checked, and SQLite keeps its generated default.
    let bad = [
        ("PORTCULLIS_DATABASE_URL", "postgres://localhost/x"),
        ("PORTCULLIS_KEK", "tooshort"),
    ];
    let e = Settings::load_from_needing(
        None,
        bad.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        KekNeed::NotNeeded,
    )
    .unwrap_err();
    assert_eq!(e.setting, "kek");
    let s = Settings::load_from_needing(None, std::iter::empty(), KekNeed::NotNeeded).unwrap();
    assert_eq!(s.kek, KekSource::Generated(PathBuf::from("./data/kek")));
    // A key file not there yet stops every command but `migrate`, which reads no key.
    let missing = [("PORTCULLIS_KEK_FILE", "/nonexistent/portcullis-kek")];
    let vars = || missing.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    let s = Settings::load_from_needing(None, vars(), KekNeed::NotNeeded).unwrap();
    assert_eq!(s.kek, KekSource::File(PathBuf::from("/nonexistent/portcullis-kek")));
    let e = Settings::load_from_needing(None, vars(), KekNeed::Required).unwrap_err();
    assert_eq!(e.setting, "kek_file");
}

#[test]
fn request_timeouts() {
    let s = load(&[]).unwrap();
    assert_eq!(s.timeouts.header_read, std::time::Duration::from_secs(20));
    assert_eq!(s.timeouts.request, std::time::Duration::from_secs(60));
    let s = load(&[
        ("PORTCULLIS_HEADER_READ_TIMEOUT", "5"),
        ("PORTCULLIS_REQUEST_TIMEOUT", "120"),
    ])
    .unwrap();
    assert_eq!(s.timeouts.header_read, std::time::Duration::from_secs(5));
    assert_eq!(s.timeouts.request, std::time::Duration::from_secs(120));
}

#[test]
fn connections_per_address() {
    assert_eq!(load(&[]).unwrap().max_connections_per_address, 1024);
    let s = load(&[("PORTCULLIS_MAX_CONNECTIONS_PER_ADDRESS", "16")]).unwrap();
    assert_eq!(s.max_connections_per_address, 16);
    for bad in ["0", "-1", "1000001"] {
        let e = load(&[("PORTCULLIS_MAX_CONNECTIONS_PER_ADDRESS", bad)]).unwrap_err();
        assert_eq!(e.setting, "max_connections_per_address", "{bad}");
    }
    let e = load(&[("PORTCULLIS_MAX_CONNECTIONS_PER_ADDRESS", "many")]).unwrap_err();
    assert!(e.to_string().contains("a whole number"), "{e}");
}

#[test]
fn file_errors() {
    let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let e = Settings::load_from(Some(&missing), Vec::new()).unwrap_err();
    assert_eq!(e.setting, "--config");
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "isuer = \"https://x.example\"\n").unwrap();
    let e = Settings::load_from(Some(&unknown), Vec::new()).unwrap_err();
    assert!(e.to_string().contains("unknown field `isuer`"), "{e}");
    let good = dir.join("good.toml");
    std::fs::write(&good, "issuer = \"https://id.example\"\naccess_token_ttl = 300\n").unwrap();
    let s = Settings::load_from(Some(&good), vec![("PORTCULLIS_ACCESS_TOKEN_TTL".into(), "120".into())]).unwrap();
    assert_eq!(s.core.issuer, "https://id.example");
    assert_eq!(s.core.access_token_ttl, time::Duration::seconds(120));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "issuer = \"https://id.example/?q\"\n").unwrap();
    let e = Settings::load_from(Some(&bad), Vec::new()).unwrap_err();
    assert!(e.to_string().contains("issuer (from "), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn require_pushed_authorization_requests() {
    assert!(!load(&[]).unwrap().core.require_pushed_authorization_requests);
    for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
        let s = load(&[("PORTCULLIS_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", value)]).unwrap();
        assert_eq!(s.core.require_pushed_authorization_requests, expected, "{value}");
    }
    let e = load(&[("PORTCULLIS_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", "yes")]).unwrap_err();
    assert_eq!(e.setting, "require_pushed_authorization_requests", "{e}");
}

#[test]
fn require_signed_request_object() {
    assert!(!load(&[]).unwrap().core.require_signed_request_object);
    let s = load(&[("PORTCULLIS_REQUIRE_SIGNED_REQUEST_OBJECT", "true")]).unwrap();
    assert!(s.core.require_signed_request_object);
    let e = load(&[("PORTCULLIS_REQUIRE_SIGNED_REQUEST_OBJECT", "yes")]).unwrap_err();
    assert_eq!(e.setting, "require_signed_request_object", "{e}");
}

/// A variable the server accepts is also read: none is taken and then dropped.
#[test]
fn every_setting_is_read_from_the_environment() {
    for key in ENV_KEYS {
        let mut raw = RawConfig::default();
        let var = format!("PORTCULLIS_{}", key.to_ascii_uppercase());
        raw.apply_env([(var.clone(), "1".to_owned())], &mut Origins::new())
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        assert!(raw.is_set(key), "{var} is accepted but not read");
    }
}

#[test]
fn device_authorization_settings() {
    let s = load(&[]).unwrap();
    assert_eq!(s.core.device_code_ttl, time::Duration::minutes(10));
    assert_eq!(s.core.device_poll_interval, 5);
    let s = load(&[
        ("PORTCULLIS_DEVICE_CODE_TTL", "900"),
        ("PORTCULLIS_DEVICE_POLL_INTERVAL", "10"),
    ])
    .unwrap();
    assert_eq!(s.core.device_code_ttl, time::Duration::seconds(900));
    assert_eq!(s.core.device_poll_interval, 10);
    for (key, bad) in [
        ("PORTCULLIS_DEVICE_CODE_TTL", "59"),
        ("PORTCULLIS_DEVICE_CODE_TTL", "1801"),
        ("PORTCULLIS_DEVICE_POLL_INTERVAL", "0"),
        ("PORTCULLIS_DEVICE_POLL_INTERVAL", "61"),
    ] {
        let e = load(&[(key, bad)]).unwrap_err();
        assert_eq!(e.setting, key.trim_start_matches("PORTCULLIS_").to_ascii_lowercase());
    }
}

#[test]
fn audit_retention_days() {
    assert_eq!(load(&[]).unwrap().core.audit_retention_days, 90);
    let s = load(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "30")]).unwrap();
    assert_eq!(s.core.audit_retention_days, 30);
    assert_eq!(
        load(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "0")])
            .unwrap()
            .core
            .audit_retention_days,
        0
    );
    let e = load(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "-1")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: audit_retention_days (from PORTCULLIS_AUDIT_RETENTION_DAYS): -1 is out of range \
         0..=36500 days (0 keeps audit events forever)"
    );
    let e = load(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "ninety")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: audit_retention_days (from PORTCULLIS_AUDIT_RETENTION_DAYS): \"ninety\" is not a \
         whole number of days"
    );
    // Each in its own unit: a count is no number of seconds.
    let e = load(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: lockout_threshold (from PORTCULLIS_LOCKOUT_THRESHOLD): \"x\" is not a whole number"
    );
    let e = load(&[("PORTCULLIS_CODE_TTL", "1m")]).unwrap_err();
    assert!(
        e.to_string().ends_with("\"1m\" is not a whole number of seconds"),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("retention.toml");
    std::fs::write(&file, "audit_retention_days = 365\n").unwrap();
    let s = Settings::load_from(Some(&file), Vec::new()).unwrap();
    assert_eq!(s.core.audit_retention_days, 365);
    // The environment wins over the file.
    let s = Settings::load_from(
        Some(&file),
        vec![("PORTCULLIS_AUDIT_RETENTION_DAYS".into(), "7".into())],
    )
    .unwrap();
    assert_eq!(s.core.audit_retention_days, 7);
    let negative = dir.join("negative.toml");
    std::fs::write(&negative, "audit_retention_days = -30\n").unwrap();
    let e = Settings::load_from(Some(&negative), Vec::new()).unwrap_err();
    assert_eq!(e.setting, "audit_retention_days");
    assert_eq!(e.source_note, format!(" (from {})", negative.display()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lockout_caps_left_at_their_defaults_follow_a_longer_first_wait() {
    let d = load(&[("PORTCULLIS_LOCKOUT_BASE_DELAY", "600")]).unwrap().core.defense;
    assert_eq!(d.lockout.base_delay, time::Duration::seconds(600));
    assert_eq!(d.lockout.max_delay, time::Duration::seconds(900));
    assert_eq!(d.lockout.account_max_delay, time::Duration::seconds(600));
    for (var, setting) in [
        ("PORTCULLIS_LOCKOUT_MAX_DELAY", "lockout_max_delay"),
        ("PORTCULLIS_LOCKOUT_ACCOUNT_MAX_DELAY", "lockout_account_max_delay"),
    ] {
        let e = load(&[("PORTCULLIS_LOCKOUT_BASE_DELAY", "600"), (var, "300")]).unwrap_err();
        assert_eq!(e.setting, setting, "{e}");
    }
}

#[test]
fn defense_settings() {
    let s = load(&[]).unwrap();
    assert!(s.core.defense.trusted_proxies.networks.is_empty());
    assert_eq!(s.core.defense.audit_queue_size, 4096);
    assert!(s.tls.is_none());
    let s = load(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ("PORTCULLIS_CLIENT_IP_HEADER", "forwarded"),
        ("PORTCULLIS_RATE_LIMIT_LOGIN", "5/min"),
        ("PORTCULLIS_RATE_LIMIT_INTROSPECT", "off"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "3"),
        ("PORTCULLIS_LOCKOUT_MAX_DELAY", "60"),
        ("PORTCULLIS_LOCKOUT_ACCOUNT_THRESHOLD", "50"),
        ("PORTCULLIS_LOCKOUT_ACCOUNT_MAX_DELAY", "120"),
        ("PORTCULLIS_AUDIT_QUEUE_SIZE", "10"),
        ("PORTCULLIS_WEBHOOK_MAX_ATTEMPTS", "3"),
        ("PORTCULLIS_INSECURE_ALLOW_HTTP_WEBHOOKS", "true"),
        ("PORTCULLIS_ADMIN_HOSTS", "Admin.Example.com, ops.example.org."),
        ("PORTCULLIS_ADMIN_IDLE_TIMEOUT", "600"),
    ])
    .unwrap();
    assert_eq!(s.core.admin_idle_timeout, time::Duration::minutes(10));
    let d = &s.core.defense;
    assert_eq!(d.admin_hosts, ["admin.example.com", "ops.example.org"]);
    assert_eq!(d.trusted_proxies.networks.len(), 2);
    assert_eq!(d.trusted_proxies.header, ForwardedHeader::Forwarded);
    assert_eq!(d.rate_limits.get(Bucket::LoginIp).unwrap().to_string(), "5/min");
    assert_eq!(d.rate_limits.get(Bucket::IntrospectIp), None);
    assert_eq!(d.lockout.threshold, 3);
    assert_eq!(d.lockout.max_delay, time::Duration::seconds(60));
    assert_eq!(d.lockout.account_threshold, 50);
    assert_eq!(d.lockout.account_max_delay, time::Duration::seconds(120));
    assert_eq!(d.audit_queue_size, 10);
    assert_eq!(d.webhooks.max_attempts, 3);
    assert!(d.webhooks.insecure_allow_http);
    for (var, value, setting) in [
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/33", "trusted_proxies"),
        ("PORTCULLIS_CLIENT_IP_HEADER", "x-real-ip", "client_ip_header"),
        ("PORTCULLIS_RATE_LIMIT_TOKEN_CLIENT", "0/min", "rate_limit_token_client"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "0", "lockout_threshold"),
        ("PORTCULLIS_LOCKOUT_ACCOUNT_THRESHOLD", "0", "lockout_account_threshold"),
        ("PORTCULLIS_LOCKOUT_BASE_DELAY", "0", "lockout_base_delay"),
        ("PORTCULLIS_AUDIT_QUEUE_SIZE", "0", "audit_queue_size"),
        ("PORTCULLIS_ADMIN_HOSTS", "admin.example.com:443", "admin_hosts"),
        ("PORTCULLIS_ADMIN_HOSTS", "https://admin.example.com", "admin_hosts"),
        ("PORTCULLIS_ADMIN_IDLE_TIMEOUT", "59", "admin_idle_timeout"),
        (
            "PORTCULLIS_INSECURE_ALLOW_HTTP_WEBHOOKS",
            "maybe",
            "insecure_allow_http_webhooks",
        ),
    ] {
        let e = load(&[(var, value)]).unwrap_err();
        assert_eq!(e.setting, setting, "{e}");
    }
    let e = load(&[
        ("PORTCULLIS_ISSUER", "https://id.example"),
        ("PORTCULLIS_TLS_CERT_FILE", "/nonexistent/cert.pem"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "tls_key_file");
    let e = load(&[
        ("PORTCULLIS_ISSUER", "https://id.example"),
        ("PORTCULLIS_TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("PORTCULLIS_TLS_KEY_FILE", "/nonexistent/key.pem"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "tls_cert_file");
}

#[test]
fn orchestrator_service_variables_are_ignored_but_typos_are_not() {
    // What Kubernetes puts into every pod of the namespace for a Service `portcullis`
    // with ports named `http` and `admin-api`, and Docker for a link of that name.
    let s = load(&[
        ("PORTCULLIS_SERVICE_HOST", "10.96.0.12"),
        ("PORTCULLIS_SERVICE_PORT", "9090"),
        ("PORTCULLIS_SERVICE_PORT_HTTP", "9090"),
        ("PORTCULLIS_SERVICE_PORT_ADMIN_API", "9091"),
        ("PORTCULLIS_PORT", "tcp://10.96.0.12:9090"),
        ("PORTCULLIS_PORT_9090_TCP", "tcp://10.96.0.12:9090"),
        ("PORTCULLIS_PORT_9090_TCP_ADDR", "10.96.0.12"),
        ("PORTCULLIS_PORT_9090_TCP_PORT", "9090"),
        ("PORTCULLIS_PORT_9090_TCP_PROTO", "tcp"),
        ("PORTCULLIS_PORT_53_UDP", "udp://10.96.0.12:53"),
        ("PORTCULLIS_PORT_9091_SCTP_ADDR", "10.96.0.12"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL", "120"),
    ])
    .unwrap();
    assert_eq!(s.core.access_token_ttl, time::Duration::seconds(120));
    for name in [
        "PORTCULLIS_PORTS",
        "PORTCULLIS_PORT_",
        "PORTCULLIS_PORT_9090",
        "PORTCULLIS_PORT_HTTP_TCP",
        "PORTCULLIS_PORT_9090_HTTP",
        "PORTCULLIS_PORT_9090_TCP_HOST",
        "PORTCULLIS_PORT_9090_TCP_ADDR_X",
        "PORTCULLIS_PORT_123456_TCP",
        "PORTCULLIS_SERVICE_HOSTNAME",
        "PORTCULLIS_SERVICE_PORT_",
        "PORTCULLIS_SERVICE_PORT_http",
        "PORTCULLIS_SERVICE",
        "PORTCULLIS_PUBLIC_PORT",
    ] {
        let e = load(&[(name, "9090")]).unwrap_err();
        assert_eq!(e.setting, name, "{e}");
        assert!(e.message.starts_with("unknown setting"), "{e}");
    }
    // A future setting named like a service link would be ignored from the environment.
    for key in ENV_KEYS {
        assert!(!is_service_link(&key.to_ascii_uppercase()), "{key}");
    }
}

#[cfg(unix)]
#[test]
fn utf8_vars_skips_foreign_non_utf8_and_names_our_own() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let os = |b: &[u8]| OsString::from_vec(b.to_vec());
    let vars = utf8_vars([
        (os(b"LANG"), os(b"C.UTF-8")),
        (os(b"LEGACY\xff"), os(b"x")),
        (os(b"LEGACY"), os(b"caf\xe9")),
        (os(b"PORTCULLIS_LOG_LEVEL"), os(b"debug")),
    ])
    .unwrap();
    assert_eq!(
        vars,
        [
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("PORTCULLIS_LOG_LEVEL".to_owned(), "debug".to_owned())
        ]
    );
    let e = utf8_vars([(os(b"PORTCULLIS_KEK"), os(b"\xff\xfe"))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: PORTCULLIS_KEK: the value is not valid UTF-8"
    );
    let e = utf8_vars([(os(b"DATABASE_URL"), os(b"postgres://\xff"))]).unwrap_err();
    assert_eq!(e.setting, "DATABASE_URL");
    let e = utf8_vars([(os(b"PORTCULLIS_ISSU\xc9R"), os(b"https://id.example"))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration: PORTCULLIS_ISSU\u{fffd}R: the variable's name is not valid UTF-8"
    );
}

/// Runs `Settings::load` on the real process environment, in a child process (this test
/// binary again) whose environment holds one non-UTF-8 variable: changing this process's
/// environment would need `unsafe` and race with the other tests.
#[cfg(unix)]
#[test]
fn load_survives_a_non_utf8_environment() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    const CHILD: &str = "PORTCULLIS_TEST_CHILD_LOAD";
    if std::env::var_os(CHILD).is_some() {
        match Settings::load(None) {
            Ok(_) => println!("child: loaded"),
            Err(e) => println!("child: {e}"),
        }
        return;
    }
    let dir = std::env::temp_dir();
    let run = |name: &[u8], value: &[u8]| -> String {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::load_survives_a_non_utf8_environment",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_clear()
            .env(CHILD, "1")
            .env(OsString::from_vec(name.to_vec()), OsString::from_vec(value.to_vec()))
            // No `portcullis.toml` is read from there.
            .current_dir(&dir)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let out = run(b"LEGACY_TOOL", b"caf\xe9");
    assert!(out.contains("child: loaded"), "{out}");
    let out = run(b"LEGACY_\xff", b"x");
    assert!(out.contains("child: loaded"), "{out}");
    let out = run(b"PORTCULLIS_KEK", b"\xff");
    assert!(
        out.contains("child: configuration: PORTCULLIS_KEK: the value is not valid UTF-8"),
        "{out}"
    );
}

#[test]
fn toml_errors_name_the_key_and_where_it_is() {
    let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("types.toml");
    let path = file.display();
    std::fs::write(&file, "issuer = \"https://id.example\"\naccess_token_ttl = \"600\"\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "configuration: access_token_ttl (from {path}, line 2, column 20): invalid type: string \"600\", \
             expected i64"
        )
    );
    std::fs::write(&file, "trusted_proxies = [\n  \"10.0.0.1\",\n  7,\n]\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(e.setting, "trusted_proxies", "{e}");
    assert!(e.source_note.contains("line 3, column 3"), "{e}");
    std::fs::write(&file, "insecure_allow_http_webhooks = \"yes\"\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(e.setting, "insecure_allow_http_webhooks", "{e}");
    // A syntax error: no key to name, but the line and column.
    std::fs::write(&file, "issuer = \"https://id.example\"\ncode_ttl = = 60\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(e.setting, path.to_string(), "{e}");
    assert!(e.source_note.starts_with(" (line 2, column "), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn issuer_is_refused_when_clients_or_cookies_would_see_it_wrong() {
    let tls = [
        ("PORTCULLIS_TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("PORTCULLIS_TLS_KEY_FILE", "/nonexistent/key.pem"),
    ];
    let e = load(&[("PORTCULLIS_ISSUER", "http://id.example"), tls[0], tls[1]]).unwrap_err();
    assert_eq!(e.setting, "issuer", "{e}");
    assert!(
        e.message.contains("https://") && e.message.contains("tls_cert_file"),
        "{e}"
    );
    for issuer in [
        "HTTPS://ID.EXAMPLE.COM",
        "Https://id.example.com",
        "https://Id.Example.com",
        "https://id.example.com:8443/".to_ascii_uppercase().as_str(),
    ] {
        let e = load(&[("PORTCULLIS_ISSUER", issuer)]).unwrap_err();
        assert_eq!(e.setting, "issuer", "{issuer}: {e}");
        assert!(e.message.contains("lower case"), "{e}");
    }
    for issuer in [
        "http://user:pw@id.example",
        "https://user@id.example",
        "https://:pw@id.example",
    ] {
        let e = load(&[("PORTCULLIS_ISSUER", issuer)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration: issuer (from PORTCULLIS_ISSUER): must not contain a user name or password"
        );
    }
    // Published as written: surrounding spaces would be in discovery and in every token
    // (and, leading, would turn Secure cookies off); a default port is written out.
    for (issuer, canonical) in [
        (" https://id.example.com", "https://id.example.com"),
        ("https://id.example.com ", "https://id.example.com"),
        ("https://id.example.com\t", "https://id.example.com"),
        ("https://id.example.com:443", "https://id.example.com"),
        ("http://localhost:80/", "http://localhost"),
    ] {
        let e = load(&[("PORTCULLIS_ISSUER", issuer)]).unwrap_err();
        assert_eq!(e.setting, "issuer", "{issuer:?}: {e}");
        assert!(e.message.contains(&format!("{canonical:?}")), "{e}");
    }
    let s = load(&[("PORTCULLIS_ISSUER", "https://id.example.com:8443")]).unwrap();
    assert_eq!(s.core.issuer, "https://id.example.com:8443");
    let s = load(&[("PORTCULLIS_ISSUER", "https://id.example.com/")]).unwrap();
    assert_eq!(s.core.issuer, "https://id.example.com");
}

#[test]
fn the_two_listeners_must_not_take_the_same_port() {
    for (public, admin) in [
        ("0.0.0.0:9090", "0.0.0.0:9090"),
        ("127.0.0.1:9091", "127.0.0.1:9091"),
        ("0.0.0.0:9091", "127.0.0.1:9091"),
        ("10.0.0.5:9000", "0.0.0.0:9000"),
        ("[::]:9000", "[::1]:9000"),
    ] {
        let e = load(&[("PORTCULLIS_PUBLIC_ADDR", public), ("PORTCULLIS_ADMIN_ADDR", admin)]).unwrap_err();
        assert_eq!(e.setting, "admin_addr", "{public} {admin}: {e}");
    }
    for (public, admin) in [
        ("0.0.0.0:9090", "127.0.0.1:9091"),
        ("10.0.0.5:9000", "127.0.0.1:9000"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        load(&[("PORTCULLIS_PUBLIC_ADDR", public), ("PORTCULLIS_ADMIN_ADDR", admin)]).unwrap();
    }
}

#[test]
fn registration_settings() {
    use portcullis_core::registration::RegistrationMode;
    let s = load(&[]).unwrap();
    assert_eq!(s.core.registration, RegistrationMode::Off);
    assert_eq!(s.core.registration_unused_client_days, 30);
    assert_eq!(
        s.core.registration_scopes.as_string(),
        "email offline_access openid profile"
    );
    let s = load(&[
        ("PORTCULLIS_REGISTRATION", "open"),
        ("PORTCULLIS_REGISTRATION_SCOPES", "openid notes:read"),
        ("PORTCULLIS_RATE_LIMIT_REGISTER", "5/h"),
        ("PORTCULLIS_REGISTRATION_UNUSED_CLIENT_DAYS", "0"),
        (
            "PORTCULLIS_REGISTRATION_RESOURCES",
            "https://mcp.example/mcp, https://api.example",
        ),
    ])
    .unwrap();
    assert_eq!(
        s.core.registration_resources,
        ["https://mcp.example/mcp", "https://api.example"]
    );
    assert_eq!(s.core.registration, RegistrationMode::Open);
    assert_eq!(s.core.registration_unused_client_days, 0);
    assert_eq!(s.core.registration_scopes.as_string(), "notes:read openid");
    assert!(
        s.core.outbound.allowed_networks.is_empty(),
        "public addresses only by default"
    );
    let allowing = load(&[(
        "PORTCULLIS_OUTBOUND_ALLOWED_NETWORKS",
        "10.20.0.0/16, fd00::/8,192.168.1.5",
    )])
    .unwrap();
    let nets: Vec<String> = allowing
        .core
        .outbound
        .allowed_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.20.0.0/16", "fd00::/8", "192.168.1.5/32"]);
    assert_eq!(
        s.core
            .defense
            .rate_limits
            .get(portcullis_core::throttle::Bucket::RegisterIp),
        portcullis_core::throttle::RateLimit::parse("5/h").unwrap()
    );
    assert_eq!(
        load(&[("PORTCULLIS_REGISTRATION", "token")]).unwrap().core.registration,
        RegistrationMode::Token
    );
    for (key, bad) in [
        ("PORTCULLIS_REGISTRATION", "anyone"),
        ("PORTCULLIS_REGISTRATION_SCOPES", "openid \"x\""),
        ("PORTCULLIS_RATE_LIMIT_REGISTER", "lots"),
        ("PORTCULLIS_REGISTRATION_RESOURCES", "http://mcp.example/mcp"),
        ("PORTCULLIS_REGISTRATION_UNUSED_CLIENT_DAYS", "-1"),
        ("PORTCULLIS_REGISTRATION_UNUSED_CLIENT_DAYS", "3651"),
        ("PORTCULLIS_OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/8, intranet"),
    ] {
        let e = load(&[(key, bad)]).unwrap_err();
        assert_eq!(
            e.setting,
            key.trim_start_matches("PORTCULLIS_").to_ascii_lowercase(),
            "{e}"
        );
    }
}

/// A bare word in `log_level` is a level; a mistyped one would otherwise be read as a
/// target and silence the server.
#[test]
fn log_levels_are_levels() {
    for good in [
        "info",
        "WARN",
        "debug,sqlx=warn",
        "portcullis_core=trace",
        "info,tower_http::trace=debug",
    ] {
        assert_eq!(load(&[("PORTCULLIS_LOG_LEVEL", good)]).unwrap().log_level, good);
    }
    for bad in ["debugg", "info,portcullis_core", "verbose"] {
        let e = load(&[("PORTCULLIS_LOG_LEVEL", bad)]).unwrap_err();
        assert_eq!(e.setting, "log_level", "{bad}");
        assert!(e.message.contains("is not a level"), "{bad}: {}", e.message);
    }
}

#[test]
fn empty_variables_are_refused_but_empty_lists_are_lists() {
    for name in [
        "PORTCULLIS_DATA_DIR",
        "PORTCULLIS_TLS_KEY_FILE",
        "PORTCULLIS_ISSUER",
        "PORTCULLIS_LOG_LEVEL",
    ] {
        let e = load(&[(name, "")]).unwrap_err();
        assert!(e.to_string().contains("is set but empty"), "{name}: {e}");
        assert!(e.to_string().contains(&format!("(from {name})")), "{name}: {e}");
    }
    let s = load(&[("PORTCULLIS_TRUSTED_PROXIES", "")]).unwrap();
    assert!(s.core.defense.trusted_proxies.networks.is_empty());
}

#[test]
fn registration_pkce_can_be_left_to_confidential_clients() {
    assert!(load(&[]).unwrap().core.registration_require_pkce);
    let s = load(&[("PORTCULLIS_REGISTRATION_REQUIRE_PKCE", "false")]).unwrap();
    assert!(!s.core.registration_require_pkce);
    let e = load(&[("PORTCULLIS_REGISTRATION_REQUIRE_PKCE", "sometimes")]).unwrap_err();
    assert_eq!(e.setting, "registration_require_pkce");
}

#[test]
fn empty_values_in_the_file_are_refused_too() {
    let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("empty.toml");
    std::fs::write(&file, "issuer = \"https://id.example\"\ndata_dir = \"\"\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(e.setting, "data_dir");
    assert!(e.to_string().contains("is set but empty"), "{e}");
    assert!(e.to_string().contains(&format!("(from {})", file.display())), "{e}");
    std::fs::write(&file, "issuer = \"https://id.example\"\nregistration_scopes = \"\"\n").unwrap();
    assert!(Settings::load_from(Some(&file), Vec::new()).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn self_registered_redirects_can_go_at_once() {
    assert!(load(&[]).unwrap().core.registration_confirm_redirects);
    let s = load(&[("PORTCULLIS_REGISTRATION_CONFIRM_REDIRECTS", "false")]).unwrap();
    assert!(!s.core.registration_confirm_redirects);
}

#[test]
fn unsigned_request_objects_are_opt_in() {
    assert!(!load(&[]).unwrap().core.allow_unsigned_request_objects);
    let s = load(&[("PORTCULLIS_ALLOW_UNSIGNED_REQUEST_OBJECTS", "true")]).unwrap();
    assert!(s.core.allow_unsigned_request_objects);
}
