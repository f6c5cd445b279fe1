//! `[store]`: which backend holds the data, the embedded store's place and cache, and
//! when it folds breakdown cells; `[cassandra]` has its own file.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::render::{bytes, duration};
use super::{ConfigError, first_failure};

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
    /// How long no write may touch a partner-hour before the embedded store recounts it
    /// into breakdown cells (until then reports read it raw). One process writes the
    /// file, so nothing else bounds it from below.
    #[serde(with = "duration")]
    pub breakdown_settle: Duration,
    /// How often the embedded store looks for hours (and ended days) to fold.
    #[serde(with = "duration")]
    pub breakdown_fold_interval: Duration,
    /// How often partners' events past their `retentionDays` are deleted, with what was
    /// counted from them (both stores; on Cassandra a day at a time).
    #[serde(with = "duration")]
    pub retention_sweep: Duration,
}

impl StoreConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.breakdown_settle.is_zero(),
                "store.breakdown_settle must be > 0, got 0s".to_string(),
            ),
            (
                self.breakdown_fold_interval.is_zero(),
                "store.breakdown_fold_interval must be > 0, got 0s".to_string(),
            ),
            (
                self.retention_sweep.is_zero(),
                "store.retention_sweep must be > 0, got 0s".to_string(),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_zero_breakdown_settle_or_fold_interval_is_refused_with_its_key() {
        let mut config = Config::defaults();
        config.store.breakdown_settle = std::time::Duration::ZERO;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("store.breakdown_settle"), "{message}");
        let mut config = Config::defaults();
        config.store.breakdown_fold_interval = std::time::Duration::ZERO;
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("store.breakdown_fold_interval"),
            "{message}"
        );
    }
}
