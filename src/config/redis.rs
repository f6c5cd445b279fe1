//! `[redis]`: the optional shared Redis that lets instances share limits, nonces, caches
//! and invalidations.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::render::duration;
use super::{ConfigError, first_failure};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Unset: limits, nonces and cache invalidation stay in process (one instance).
    /// Secret (it may carry a password): `to_toml` leaves it out.
    #[serde(skip_serializing)]
    pub url: Option<SecretString>,
    /// Prefix of every key and channel, so deployments can share a Redis.
    pub key_prefix: String,
    /// Upper bound on every Redis call; past it the local fallback answers.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
}

impl RedisConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url_invalid = self
            .url
            .as_ref()
            .is_some_and(|url| fred::types::config::Config::from_url(url.expose_secret()).is_err());
        first_failure([
            (
                self.command_timeout.is_zero(),
                "redis.command_timeout must be > 0, got 0s".to_string(),
            ),
            (
                url_invalid,
                "redis.url must look like redis://[user:password@]host:port[/db]; the value is not shown (it may hold a password)".to_string(),
            ),
        ])
    }
}
