//! e2e
mod store_contract;
