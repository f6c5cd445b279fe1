//! `[auth]`: the admin token, key hashing and its caches, and the budgets that keep
//! wrong keys from costing the instance its CPU.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::render::duration;
use super::{ConfigError, first_failure};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Unset: a random token is generated into `<data_dir>/admin-token` at start.
    /// Secret: `to_toml` leaves it out.
    #[serde(skip_serializing)]
    pub admin_token: Option<SecretString>,
    pub pbkdf2_iterations: u32,
    /// How long a key's verdict is trusted before its stored record is read again. A key
    /// proven genuine is not hashed again for the longer of this and 12 hours.
    #[serde(with = "duration")]
    pub key_cache_ttl: Duration,
    #[serde(with = "duration")]
    pub negative_cache_ttl: Duration,
    /// Key verifications that may fail per client address (IPv6: per /64) per minute;
    /// past it that address's wrong keys get 429 until the minute ends, while genuine
    /// keys (which pass their pre-check) are still accepted. Keys without a pre-check
    /// (made before it existed) are charged before hashing and refunded when genuine, so
    /// they can be refused too. Requests whose address is unknown share one budget.
    pub max_failed_attempts_per_minute: u32,
    /// PBKDF2 runs per second for the whole instance (the burst is the same), for secrets
    /// that passed a pre-check, and as many again for keys without one; past it keys not
    /// yet proven genuine get 429. Keys proven genuine are not hashed again for hours.
    pub max_hashes_per_second: u32,
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.pbkdf2_iterations == 0,
                "auth.pbkdf2_iterations must be > 0, got 0".to_string(),
            ),
            (
                self.max_failed_attempts_per_minute == 0,
                "auth.max_failed_attempts_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.max_hashes_per_second == 0,
                "auth.max_hashes_per_second must be > 0, got 0".to_string(),
            ),
        ])
    }
}
