//! `[enrich]`: what ingestion derives from each event (page, referrer, campaign, browser,
//! OS, device, bot, country): the optional GeoIP database and the user-agent cache's bounds.
//! The database file itself is opened (and refused if missing or not an mmdb) when the
//! enricher is built at start, not here: validation reads no files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, first_failure};

/// Longest user agent accepted as a cache key; real browsers' stay under ~300 bytes.
const MAX_USER_AGENT_LENGTH_LIMIT: usize = 4096;
/// Longest value kept for a page, referrer host or UTM field.
const MAX_VALUE_LENGTH_LIMIT: usize = 2048;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// A MaxMind-format country (or city) database (GeoLite2, DB-IP lite, ip-location-db),
    /// read into memory once at start. Unset: events carry no country.
    pub geoip_db: Option<PathBuf>,
    /// Distinct user agents whose parse is kept in memory.
    pub user_agent_cache_entries: u64,
    /// Bytes of a user agent that are parsed and cached; longer ones are cut at this
    /// length, so the cache holds at most entries × this many bytes of keys.
    pub max_user_agent_length: usize,
    /// Bytes kept of a page path, referrer host or UTM value (cut at a character
    /// boundary), so one odd URL can't make a breakdown value of any size.
    pub max_value_length: usize,
}

impl EnrichConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.geoip_db
                    .as_ref()
                    .is_some_and(|path| path.as_os_str().is_empty()),
                "enrich.geoip_db must name a file when set, got an empty path".to_string(),
            ),
            (
                self.user_agent_cache_entries == 0,
                "enrich.user_agent_cache_entries must be > 0, got 0".to_string(),
            ),
            (
                !(16..=MAX_USER_AGENT_LENGTH_LIMIT).contains(&self.max_user_agent_length),
                format!(
                    "enrich.max_user_agent_length must be in 16..={MAX_USER_AGENT_LENGTH_LIMIT}, got {}",
                    self.max_user_agent_length
                ),
            ),
            (
                !(16..=MAX_VALUE_LENGTH_LIMIT).contains(&self.max_value_length),
                format!(
                    "enrich.max_value_length must be in 16..={MAX_VALUE_LENGTH_LIMIT}, got {}",
                    self.max_value_length
                ),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn message(change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::defaults();
        change(&mut config);
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_key_and_value() {
        let cache = message(|config| config.enrich.user_agent_cache_entries = 0);
        assert!(cache.contains("enrich.user_agent_cache_entries"), "{cache}");
        let agent = message(|config| config.enrich.max_user_agent_length = 100_000);
        assert!(
            agent.contains("enrich.max_user_agent_length") && agent.contains("100000"),
            "{agent}"
        );
        let value = message(|config| config.enrich.max_value_length = 0);
        assert!(value.contains("enrich.max_value_length"), "{value}");
        let path = message(|config| config.enrich.geoip_db = Some("".into()));
        assert!(path.contains("enrich.geoip_db"), "{path}");
    }

    #[test]
    fn no_geoip_database_is_the_default() {
        assert_eq!(Config::defaults().enrich.geoip_db, None);
    }
}
