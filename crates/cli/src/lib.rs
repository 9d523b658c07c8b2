//! The `portcullis` binary's library half: configuration, wiring and commands, so the
//! end-to-end tests can start the very same app in-process.

/// `println!` for what a command prints: when the reader has gone (`portcullis client
/// list | head -1`), the command ends quietly, as other command-line tools do, instead of
/// panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

pub mod app;
pub mod commands;
pub mod config;
pub mod conn_limit;
pub mod http_client;
pub mod initial_token_commands;
pub mod logging;
pub mod output;
pub mod serve;
pub mod tls;
pub mod webhook_commands;
pub mod webhook_sender;

pub use config::Settings;
