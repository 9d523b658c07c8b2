//! Column conversions: the shared ones live in `portcullis_core::store_codec`.

pub(crate) use portcullis_core::store_codec::*;
