//! Portcullis's use cases and the ports they need: repository traits, the clock, key
//! management, token minting, password and secret hashing. No HTTP, no SQL.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod authorize;
pub mod backchannel;
pub mod client_assertion;
pub mod client_cache;
pub mod clients;
pub mod clock;
pub mod crypto;
pub mod defense;
pub mod device;
pub mod dpop;
pub mod error;
pub mod grants;
pub mod initial_tokens;
pub mod jws;
pub mod jwt;
pub mod keys;
pub mod lockout;
pub mod logout;
pub mod model;
pub mod net;
pub mod par;
pub mod params;
pub mod password;
pub mod registration;
pub mod remote_jwks;
pub mod repo;
pub mod request_object;
pub mod revocation;
pub mod service;
pub mod signing_pool;
pub mod store_codec;
pub mod subject;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod verified_tokens;
pub mod webhooks;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, Result};
pub use repo::{Store, StoreError, StoreResult};
pub use service::{CoreSettings, Portcullis};
