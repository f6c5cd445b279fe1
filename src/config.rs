//! Typed configuration: `config/default.toml`, then an optional `--config` file, then
//! `VOLCANION_<SECTION>__<KEY>` environment variables (plus the short aliases
//! `VOLCANION_LISTEN`, `VOLCANION_DATA_DIR` and `VOLCANION_ADMIN_TOKEN`).
//!
//! Each section is its own file with its own struct and `validate()` (`http`, `store`,
//! `cassandra`, `ingest`, `auth`, `limits`, `redis`, `reports`, `schemas`, `enrich`,
//! `telemetry`);
//! this file holds `Config`, loading, and the checks that span sections.
//!
//! Every section denies unknown keys: a typo is an error naming the key as written and the
//! nearest valid one (`sources`), never a setting silently left at its default.
//! `Config::to_toml` prints the result back as TOML that loads again (`render`).

mod auth;
mod cassandra;
mod cidr;
mod enrich;
mod http;
mod ingest;
mod limits;
mod lists;
mod redact;
mod redis;
mod render;
mod reports;
mod schemas;
mod sources;
mod store;
mod telemetry;

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use serde::{Deserialize, Serialize};

use self::sources::Environment;

pub use self::auth::AuthConfig;
pub use self::cassandra::{
    CassandraConfig, CassandraConsistency, ROLLUP_CLOCK_SKEW_MARGIN, is_keyspace_name,
};
pub use self::cidr::Cidr;
pub use self::enrich::EnrichConfig;
pub use self::http::HttpConfig;
pub use self::ingest::{Acknowledge, IngestConfig};
pub use self::limits::LimitsConfig;
pub use self::redact::redacted_url;
pub use self::redis::RedisConfig;
pub use self::reports::ReportsConfig;
pub use self::schemas::SchemasConfig;
pub use self::store::{StoreBackend, StoreConfig};
pub use self::telemetry::{LogFormat, TelemetryConfig};

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub cassandra: CassandraConfig,
    pub ingest: IngestConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub redis: RedisConfig,
    pub reports: ReportsConfig,
    pub schemas: SchemasConfig,
    pub enrich: EnrichConfig,
    pub telemetry: TelemetryConfig,
}

/// What is wrong with a configuration, in words that name the key as it was written.
/// Each message is complete on its own (no cause chain to print after it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key or `VOLCANION_…` variable that is no setting (a typo, usually).
    #[error("{0}")]
    UnknownKey(String),
    /// The `--config` file is missing or not TOML, or a value has the wrong type or form.
    #[error("{0}")]
    Unreadable(String),
    /// Values that parse but cannot work together or at all.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// OpenTelemetry's standard variables, as settings: over the files, under `VOLCANION_…`.
fn standard_otel_variables(variables: &[(String, String)]) -> Serialized<Dict> {
    let mut telemetry = Dict::new();
    for (name, key) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
        ("OTEL_SERVICE_NAME", "service_name"),
    ] {
        if let Some((_, value)) = variables
            .iter()
            .find(|(variable, value)| variable == name && !value.is_empty())
        {
            telemetry.insert(key.to_string(), value.clone().into());
        }
    }
    Serialized::default("telemetry", telemetry)
}

impl Config {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        // `vars()` would panic on a variable that is not UTF-8, even an unrelated one.
        let variables = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Config::load_from(file, variables)
    }

    /// Defaults, then `file` if given, then `variables` (those named `VOLCANION_…`).
    pub fn load_from(
        file: Option<&Path>,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Unreadable(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let variables: Vec<(String, String)> = variables.into_iter().collect();
        figment = figment.merge(standard_otel_variables(&variables));
        let environment = Environment::from_variables(variables);
        let config: Config = figment
            .merge(&environment)
            .extract()
            .map_err(|error| sources::explain(error, &environment))?;
        config.validate()?;
        Ok(config)
    }

    /// The compiled-in defaults alone (no file, no environment), e.g. for tests.
    pub fn defaults() -> Config {
        Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .expect("config/default.toml is valid")
    }

    /// Rejects values that parse but cannot work, naming the key and the value: each
    /// section's own checks, then those that span sections, then Cassandra's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ingest.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.reports.validate()?;
        self.enrich.validate()?;
        self.redis.validate()?;
        self.telemetry.validate()?;
        self.http.validate()?;
        self.store.validate()?;
        self.validate_across_sections()?;
        self.cassandra.validate()
    }

    /// Values that are fine alone but cannot work together.
    fn validate_across_sections(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.ingest.queue_max_bytes < self.http.max_batch_request_size,
                format!(
                    "ingest.queue_max_bytes ({}) must be at least http.max_batch_request_size ({}), or the largest batch could never be queued",
                    self.ingest.queue_max_bytes, self.http.max_batch_request_size
                ),
            ),
            (
                self.telemetry
                    .metrics_listen
                    .is_some_and(|address| address == self.http.listen && address.port() != 0),
                format!(
                    "telemetry.metrics_listen must differ from http.listen, got {} for both",
                    self.http.listen
                ),
            ),
        ])
    }
}

/// The message of the first check that failed, in the order listed, so that a
/// configuration with several mistakes is told the same one every time.
fn first_failure(checks: impl IntoIterator<Item = (bool, String)>) -> Result<(), ConfigError> {
    match checks.into_iter().find(|(failed, _)| *failed) {
        Some((_, message)) => Err(ConfigError::Invalid(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn compiled_in_defaults_are_valid() {
        let config = Config::defaults();
        config.validate().unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.store.data_dir, PathBuf::from("./data"));
        assert_eq!(config.store.backend, StoreBackend::Embedded);
    }

    #[test]
    fn a_log_filter_that_serve_would_refuse_is_refused_at_load() {
        let mut config = Config::defaults();
        config.telemetry.log_filter = "info,[broken".to_string();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("telemetry.log_filter"), "{message}");
    }

    #[test]
    fn validation_names_the_key_and_value() {
        let mut config = Config::defaults();
        config.ingest.writers = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("ingest.writers"), "{message}");
    }

    #[test]
    fn reports_without_a_compute_slot_are_refused_with_the_key() {
        let mut config = Config::defaults();
        config.reports.max_concurrent = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("reports.max_concurrent"), "{message}");
    }

    #[test]
    fn a_zero_hash_budget_is_refused_with_its_key() {
        let mut config = Config::defaults();
        config.auth.max_hashes_per_second = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("auth.max_hashes_per_second"), "{message}");
    }
}
