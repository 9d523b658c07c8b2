//! Integration tests of portcullis-resource against a fake issuer started in-process on
//! 127.0.0.1:0 (one test binary, to keep link time down).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod dpop;
mod dpop_off;
mod dpop_paths;
mod extract;
mod introspection;
mod jwks;
mod support;
