//! The `portcullis` binary's library half: configuration, wiring and commands, so the
//! end-to-end tests can start the very same app in-process.

pub mod app;
pub mod commands;
pub mod config;
pub mod http_client;
pub mod initial_token_commands;
pub mod logging;
pub mod serve;
pub mod tls;
pub mod webhook_commands;
pub mod webhook_sender;

pub use config::Settings;
