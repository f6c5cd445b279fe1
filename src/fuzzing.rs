//! Plain-bytes entry points to every decoder a client can reach, for the fuzz targets in
//! `fuzz/` and the corpus replay test (`tests/fuzz_corpus.rs`). Each lives beside what it
//! fuzzes (`ingest::format::fuzz`, `http::fuzz`, `store::fuzz`); this is only their one
//! public door. Not an API: hidden from the docs, and nothing in the service calls it.

pub use crate::http::fuzz::{events_query, gzip_body, gzip_body_limit};
pub use crate::ingest::format::fuzz::{batch, legacy, native_event, segment};
pub use crate::store::fuzz::{
    CASSANDRA_BUCKETS, CURSOR_FROM_SECONDS, CURSOR_OWNER, CURSOR_TO_SECONDS, CursorAcceptance,
    store_cursor,
};
