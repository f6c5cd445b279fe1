//! `[schemas]`: how long the ingest path trusts its cached event structures. Nothing to
//! check beyond the type.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::render::duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    /// How long the structure in force for an event type is cached on the ingest path
    /// (changes made through this instance count at once).
    #[serde(with = "duration")]
    pub cache_ttl: Duration,
}
