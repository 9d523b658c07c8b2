//! The `portcullis` binary's library half: configuration, wiring and commands, so the
//! end-to-end tests can start the very same app in-process.

pub mod app;
pub mod commands;
pub mod config;
pub mod logging;

pub use config::Settings;
