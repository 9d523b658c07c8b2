//! `tracing` output: human-readable by default, JSON with `log_format = "json"`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber; `RUST_LOG` overrides the configured level.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(&settings.log_level)));
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The configured `log_level`, with tower-sessions' warning about a cookie whose session
/// is not in the store left out: here that is ordinary (a session ended by a password
/// change, by the person on another device, by an operator or at its maximum age, while
/// its browser still holds the cookie), and such a request simply gets a new session.
/// PostgreSQL's notices below warnings are left out too: at every start the migrator's
/// `CREATE TABLE IF NOT EXISTS` says its table "already exists, skipping". A `log_level`
/// that names tower-sessions or sqlx itself is taken as written for it.
fn directives(log_level: &str) -> String {
    let mut directives = log_level.to_owned();
    if !log_level.contains("tower_sessions") {
        directives.push_str(",tower_sessions_core::session=error");
    }
    if !log_level.contains("sqlx") {
        directives.push_str(",sqlx::postgres::notice=warn");
    }
    directives
}

/// Whether human-format logs are coloured: only on a terminal, where someone reads them.
/// Escape codes in a file or in journald are noise that breaks `grep` and log shippers.
/// `NO_COLOR` set to anything but the empty string turns colour off (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::{colour, directives};

    #[test]
    fn the_ended_session_warning_is_left_out_unless_asked_for() {
        assert_eq!(
            directives("info"),
            "info,tower_sessions_core::session=error,sqlx::postgres::notice=warn"
        );
        assert_eq!(
            directives("warn,tower_sessions=debug"),
            "warn,tower_sessions=debug,sqlx::postgres::notice=warn"
        );
        assert_eq!(
            directives("info,sqlx=debug"),
            "info,sqlx=debug,tower_sessions_core::session=error"
        );
        for level in ["info", "debug", "portcullis=trace"] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(directives(level)).is_ok(),
                "{level}"
            );
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, Some(OsStr::new("1"))));
        // no-color.org: an empty NO_COLOR does not count.
        assert!(colour(true, Some(OsStr::new(""))));
    }
}
