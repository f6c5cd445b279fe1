//! `[store]`: which backend holds the data, and the embedded store's place and cache.
//! Nothing to check beyond the types; `[cassandra]` has its own file.

use std::path::PathBuf;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::render::bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Embedded,
    Cassandra,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub data_dir: PathBuf,
    /// The embedded store's page cache in memory (the OS caches the file as well).
    #[serde(with = "bytes")]
    pub cache_size: ByteSize,
}
