//! `[limits]`: rate limits, the replay window and its nonce memory, and how long the
//! ingest path trusts its cached partner and subsystem lookups.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::render::duration;
use super::{ConfigError, first_failure};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Used for partners without their own `rateLimitPerMinute`.
    pub default_rate_limit_per_minute: u32,
    /// Events per minute any single API key may send.
    pub key_rate_limit_per_minute: u32,
    /// How far `X-Request-Timestamp` may be from the server clock; nonces are kept twice as long.
    #[serde(with = "duration")]
    pub replay_window: Duration,
    /// Nonces remembered per partner in process (without Redis, or while it is down);
    /// past it a partner's oldest nonces give way to its own new ones, never another's.
    pub max_nonces_per_partner: u64,
    /// How long partner and subsystem lookups are cached on the ingest path.
    #[serde(with = "duration")]
    pub directory_cache_ttl: Duration,
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.default_rate_limit_per_minute == 0,
                "limits.default_rate_limit_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.key_rate_limit_per_minute == 0,
                "limits.key_rate_limit_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.max_nonces_per_partner == 0,
                "limits.max_nonces_per_partner must be > 0, got 0".to_string(),
            ),
        ])
    }
}
