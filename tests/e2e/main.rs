//! End-to-end tests: the real app on port 0 against a fresh database, on SQLite and on
//! PostgreSQL, driven by real clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod admin_api;
mod admin_api_input;
mod admin_api_keys;
mod admin_api_users;
mod admin_browser;
mod admin_client_pages;
mod admin_pages;
mod admin_sessions;
mod admin_support;
mod admin_users;
mod backchannel;
mod browser_flow;
mod cli;
mod code_flow;
mod config_ops;
mod conformance;
mod conformance_review;
mod conformance_sessions;
mod defense;
mod device;
mod dpop;
mod forms;
mod foundation;
mod frontchannel;
mod id_token_algs;
mod initial_tokens;
mod jwks_uri;
mod jwt_introspection;
mod malformed_input;
mod multinode;
mod pairwise;
mod par;
mod private_key_jwt;
mod prompts;
mod refresh;
mod registration;
mod registration_mcp;
mod registration_policy;
mod request_object;
mod request_uri;
mod resource;
mod resource_indicators;
mod store_contract;
mod token_endpoint;
mod token_exchange;
mod userinfo;
