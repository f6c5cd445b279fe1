//! `[reports]`: how long reports are cached, how much one may cover and read, and how
//! many are computed at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::render::duration;
use super::{ConfigError, first_failure};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// How long a report whose range reaches into the current hour is cached (in memory,
    /// and in Redis for other instances).
    #[serde(with = "duration")]
    pub cache_ttl: Duration,
    /// How long a report over a range that ended before the current hour is cached (in
    /// memory; late events for the partner's past hours drop it at once).
    #[serde(with = "duration")]
    pub settled_cache_ttl: Duration,
    /// Widest `from..to` a report may cover.
    #[serde(with = "duration")]
    pub max_range: Duration,
    pub max_buckets: usize,
    /// Most UTC hours one report may read from raw events (the hours its ends or bucket
    /// edges cut, and on Cassandra those not folded into rollups yet); past it, a report
    /// whose buckets cut too many hours is a 400 and one waiting on the fold a 503.
    pub max_raw_hours: usize,
    /// Most raw events a report reads when its `where=` filters have no rollup cells
    /// (docs/BREAKDOWNS.md: two filters at once, a filter on `page`, a property…); past it
    /// the report is a 400 asking for a shorter range or a filter with cells.
    pub max_raw_events: u64,
    /// The longest gap within one visit (API.md, "Sessions"). UTC days are folded with the
    /// default 30 minutes; another gap is counted from people's postings at report time
    /// (slower, and at most `max_raw_events` of them).
    #[serde(with = "duration")]
    pub session_gap: Duration,
    /// Reports computed at once by this instance (cached answers don't count).
    pub max_concurrent: usize,
    /// How long a report waits for one of those slots before it is answered 503.
    #[serde(with = "duration")]
    pub max_wait: Duration,
}

impl ReportsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.max_raw_hours == 0 || self.max_concurrent == 0,
                format!(
                    "reports.max_raw_hours and reports.max_concurrent must be > 0, got {} and {}",
                    self.max_raw_hours, self.max_concurrent
                ),
            ),
            (
                self.max_raw_events == 0,
                "reports.max_raw_events must be > 0".to_string(),
            ),
            (
                self.session_gap < Duration::from_secs(60)
                    || self.session_gap > Duration::from_secs(86_400),
                format!(
                    "reports.session_gap must be from 1m to 24h, got {:?}",
                    self.session_gap
                ),
            ),
        ])
    }
}
