//! The `portcullis` binary itself, run as an operator runs it: what a process-level
//! test alone can see (signals, whether stderr is a terminal).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A `portcullis serve` child on ports 0 with its own data directory, its stderr read
/// line by line.
struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    seen: Vec<String>,
    dir: PathBuf,
}

impl Server {
    /// Starts the server and waits until it logs that it is serving.
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("portcullis-binary-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("portcullis.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\npublic_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\nlog_level = \"info\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A pipe, as under systemd or with `2>file`: not a terminal.
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            seen: Vec::new(),
            dir,
        };
        server.wait_for_line("portcullis is serving", Duration::from_secs(120));
        server
    }

    fn wait_for_line(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no log line with {needle:?}; stderr so far:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, then reads the rest of its stderr.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit; stderr:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The pipe closed with the process: this ends.
        self.seen.extend(self.lines.iter());
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A data directory of its own and a configuration file naming it: both paths.
fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("portcullis.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n", dir.display())).unwrap();
    (dir, config)
}

/// `portcullis --config CONFIG ARGS…` with nothing on standard input: what it did.
fn portcullis(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn human_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let mut server = Server::start();
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let logs = server.seen.join("\n");
    assert!(logs.contains("INFO"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape codes in redirected logs:\n{logs:?}"
    );
}

#[test]
fn sighup_stops_the_server_gracefully() {
    let mut server = Server::start();
    server.signal("HUP");
    let status = server.wait(Duration::from_secs(60));
    let logs = server.seen.join("\n");
    // Killed by the signal's default action, the process has no exit code.
    assert!(status.success(), "{status:?}; stderr:\n{logs}");
    assert!(
        logs.contains("signal=\"SIGHUP\"") || logs.contains("signal=SIGHUP"),
        "{logs}"
    );
    // Logged after the audit queue was flushed.
    assert!(logs.lines().any(|l| l.ends_with("stopped")), "{logs}");
}

/// A request still open at SIGTERM may run until `request_timeout` (60 s); a second
/// signal ends it at once, and the queued audit events are still written.
#[test]
fn a_second_signal_ends_the_requests_still_open() {
    use std::io::Write;
    let mut server = Server::start();
    let serving = server
        .seen
        .iter()
        .find(|l| l.contains("portcullis is serving"))
        .unwrap()
        .clone();
    let public = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("public="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    // A token request whose body never finishes arriving.
    let mut slow = std::net::TcpStream::connect(&public).unwrap();
    slow.write_all(
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    server.wait_for_line("shutting down", Duration::from_secs(10));
    // Still waiting for the request.
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.child.try_wait().unwrap().is_none(), "{}", server.seen.join("\n"));
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(10));
    let logs = server.seen.join("\n");
    assert!(status.success(), "{status:?}; stderr:\n{logs}");
    assert!(logs.contains("second signal"), "{logs}");
    assert!(logs.lines().any(|l| l.ends_with("stopped")), "{logs}");
    drop(slow);
}

/// A key-encryption key file other users may read is warned about, as the SQLite database
/// is (found by an operator review): with it and a copy of the database, the signing keys
/// can be read. One readable by its owner only is not. And a listing with no database
/// creates none.
#[cfg(unix)]
#[test]
fn listings_need_a_database_and_a_shared_kek_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("portcullis-kek-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let kek = dir.join("kek");
    std::fs::write(&kek, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").unwrap();
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\nkek_file = \"{}\"\n", dir.display(), kek.display()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    // A listing where there is no database yet (run from the wrong directory, say) says
    // so and creates none (found by an operator review).
    let out = run(&["client", "list"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("there is no database at"), "{err}");
    assert!(!dir.join("portcullis.db").exists(), "a listing created the database");
    assert!(run(&["migrate"]).status.success());
    let list = || {
        let out = run(&["client", "list"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(mode)).unwrap();
        let logs = list();
        assert_eq!(logs.contains("accessible to other users"), warned, "{mode:o}: {logs}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the commands print for people: a retired key's end of publication as a date, and
/// a note on an initial access token made while registration does not take them.
#[test]
fn command_output_is_readable() {
    let (dir, config) = scratch("output");
    let run = |args: &[&str]| {
        let out = portcullis(&config, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["migrate"]);
    run(&["keys", "rotate", "--force"]);
    let listed = run(&["keys", "list"]);
    let retired = listed.lines().find(|l| l.starts_with("retired")).expect(&listed);
    let until = retired.split("published until ").nth(1).expect(retired);
    assert!(
        time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339).is_ok(),
        "{retired}"
    );
    assert!(!until.contains('.'), "to the second: {retired}");
    assert!(listed.lines().all(|l| !l.ends_with(' ')), "{listed:?}");
    let made = run(&["initial-token", "create", "--name", "Early"]);
    assert!(
        made.contains("note: registration is off in this configuration"),
        "{made}"
    );
    assert_eq!(run(&["webhook", "deliveries"]).trim(), "no deliveries yet");
    assert_eq!(run(&["webhook", "list"]).trim(), "no webhooks");
    // `client show` prints what `client create` took.
    let created = run(&[
        "client",
        "create",
        "--name",
        "Web",
        "--redirect-uri",
        "https://app.example/cb",
        "--post-logout-redirect-uri",
        "https://app.example/bye",
        "--cors-origin",
        "https://app.example",
        "--resource",
        "https://api.example/notes",
    ]);
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .expect(&created)
        .trim();
    let shown = run(&["client", "show", id]);
    for line in [
        "post_logout_redirect_uris: https://app.example/bye",
        "cors_origins:  https://app.example",
        "resources:     https://api.example/notes",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedded default's key-encryption key file: a listing on a database with no keys
/// yet writes none; a database holding sealed keys without its file (restored apart from
/// it) is refused by name, and no stray key is written where the real one must go back.
#[test]
fn a_missing_generated_kek_is_never_replaced_for_a_database_that_needs_it() {
    let (dir, config) = scratch("genkek");
    let run = |args: &[&str]| portcullis(&config, args);
    let kek = dir.join("kek");
    assert!(run(&["migrate"]).status.success());
    let out = run(&["client", "list"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!kek.exists(), "a listing wrote a key-encryption key");
    // A command that writes makes the keys, and the file with them.
    let out = run(&["keys", "list"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&[
        "client",
        "create",
        "--name",
        "Batch",
        "--grant-type",
        "client_credentials",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(kek.exists());
    let kept = std::fs::read(&kek).unwrap();
    std::fs::remove_file(&kek).unwrap();
    for args in [&["client", "list"][..], &["client", "create", "--name", "Other"][..]] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("is missing, but the database holds keys sealed with it: restore that file (kept apart"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("  "), "one space between words: {err}");
        assert!(!kek.exists(), "{args:?} wrote a new key-encryption key");
    }
    std::fs::write(&kek, kept).unwrap();
    let out = run(&["client", "list"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8(out.stdout).unwrap().contains("Batch"));
    // A reader that has gone (`| head -0`): the listing ends quietly, as a program stopped
    // by SIGPIPE, rather than panicking.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(&config)
        .args(["client", "list"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `user create` reads the password from standard input and takes the profile claims as
/// flags; `user list --json` shows them.
#[test]
fn a_user_is_created_with_their_names() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("portcullis-user-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("portcullis.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n", dir.display())).unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        c.arg("--config").arg(&config).args(args).env_remove("RUST_LOG");
        c
    };
    let create = |args: &[&str]| {
        let mut child = command(&[&["user", "create"][..], args].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a long passphrase\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    assert!(command(&["migrate"]).status().unwrap().success());
    let out = create(&[
        "alice",
        "--given-name",
        "Alice",
        "--family-name",
        "Liddell",
        "--name",
        "Alice Liddell",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&created["given_name"], &created["family_name"]),
        (&serde_json::json!("Alice"), &serde_json::json!("Liddell"))
    );
    let out = command(&["user", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&list[0]["given_name"], &list[0]["family_name"], &list[0]["name"]),
        (
            &serde_json::json!("Alice"),
            &serde_json::json!("Liddell"),
            &serde_json::json!("Alice Liddell")
        ),
        "{list}"
    );
    // A name with a control character is refused, naming its field; no user is made.
    let out = create(&["bob", "--family-name", "a\u{7}b"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("family_name"), "{err}");
    let out = command(&["user", "list", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `client create --jwks-uri` prints how the client authenticates and where its keys are,
/// and no secret (there is none); `--json` and `client show` say the same.
#[test]
fn a_client_with_a_jwks_uri_is_printed_without_a_secret() {
    let (dir, config) = scratch("jwks-uri");
    let run = |args: &[&str]| {
        let out = portcullis(&config, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    const URI: &str = "https://keys.example/jwks.json";
    let create = [
        "client",
        "create",
        "--grant-type",
        "client_credentials",
        "--jwks-uri",
        URI,
    ];
    run(&["migrate"]);
    let printed = run(&[&create[..], &["--name", "Published"]].concat());
    assert!(
        printed.contains("auth method:   private_key_jwt\n") && printed.contains(&format!("jwks_uri:      {URI}\n")),
        "{printed}"
    );
    assert!(!printed.contains("secret"), "{printed}");
    let created: serde_json::Value =
        serde_json::from_str(&run(&[&create[..], &["--name", "Published json", "--json"]].concat())).unwrap();
    assert_eq!(
        (
            &created["jwks_uri"],
            &created["client_secret"],
            &created["token_endpoint_auth_method"]
        ),
        (
            &serde_json::json!(URI),
            &serde_json::Value::Null,
            &serde_json::json!("private_key_jwt")
        ),
        "{created}"
    );
    let id = created["client_id"].as_str().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&run(&["client", "show", id, "--json"])).unwrap();
    assert_eq!(shown["jwks_uri"], URI, "{shown}");
    assert!(run(&["client", "show", id]).contains(&format!("jwks_uri:      {URI}\n")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `client create --backchannel-logout-uri` prints the URL, `--json` has it (null when
/// not given) and `client show` prints it only when set.
#[test]
fn a_client_with_a_backchannel_logout_uri_is_printed_with_it() {
    let (dir, config) = scratch("backchannel");
    let run = |args: &[&str]| {
        let out = portcullis(&config, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    const URI: &str = "https://app.example/backchannel-logout";
    let line = format!("backchannel_logout_uri: {URI}\n");
    let create = ["client", "create", "--redirect-uri", "https://app.example/cb"];
    run(&["migrate"]);
    let printed = run(&[&create[..], &["--name", "Told", "--backchannel-logout-uri", URI]].concat());
    assert!(printed.contains(&line), "{printed}");
    let created: serde_json::Value = serde_json::from_str(&run(&[
        &create[..],
        &["--name", "Told json", "--backchannel-logout-uri", URI, "--json"],
    ]
    .concat()))
    .unwrap();
    assert_eq!(created["backchannel_logout_uri"], URI, "{created}");
    assert_eq!(created["self_registered"], false, "{created}");
    let id = created["client_id"].as_str().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&run(&["client", "show", id, "--json"])).unwrap();
    assert_eq!(shown["backchannel_logout_uri"], URI, "{shown}");
    assert!(run(&["client", "show", id]).contains(&line));

    let untold: serde_json::Value =
        serde_json::from_str(&run(&[&create[..], &["--name", "Untold", "--json"]].concat())).unwrap();
    assert_eq!(untold["backchannel_logout_uri"], serde_json::Value::Null, "{untold}");
    let id = untold["client_id"].as_str().unwrap();
    let printed = run(&["client", "show", id]);
    assert!(!printed.contains("backchannel_logout_uri"), "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}
