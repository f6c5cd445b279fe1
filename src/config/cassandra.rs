//! `[cassandra]`: contact points, the keyspace and its layout, timeouts, and the bounds
//! the rollup fold relies on (`rollup_settle` against the longest write).

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::lists::list_or_comma_separated;
use super::render::{bytes, duration};
use super::{ConfigError, first_failure};

/// How the Cassandra backend connects and lays out its data (used when
/// `store.backend = "cassandra"`, and by `volcanion migrate`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    /// Contact points, `host:port`; a TOML array or one comma-separated string (env).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Whether `serve` creates a missing keyspace (with the configured replication, saying
    /// so at warn level). `false` refuses to start instead: a typo in `keyspace` must not
    /// serve an empty store. `volcanion migrate` creates it either way.
    pub create_keyspace: bool,
    /// The keyspace's replication: set when it is created (`SimpleStrategy`, or
    /// `NetworkTopologyStrategy` in `local_datacenter`), compared at start when it exists.
    pub replication_factor: u32,
    pub consistency: CassandraConsistency,
    /// Prefer this datacenter's nodes (and `NetworkTopologyStrategy` when creating the keyspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_datacenter: Option<String>,
    /// Splits each (partner, day) and (subsystem, day) partition into this many buckets by
    /// a hash of the event id; readers fan out over all of them. Fixed for a keyspace's life:
    /// recorded in the keyspace on first start, and a different value is refused.
    pub partner_buckets: u32,
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Requests one batch write keeps in flight (claims and partition batches).
    pub write_concurrency: usize,
    /// Unlogged batches are split above this size (Cassandra refuses batches over 50 KiB).
    #[serde(with = "bytes")]
    pub max_batch_size: ByteSize,
    /// How long no write may touch a partner-hour before it is folded into rollups; longer
    /// than any write can take plus the instances' clock skew (`longest_write`, checked).
    #[serde(with = "duration")]
    pub rollup_settle: Duration,
    /// How often each instance looks for hours to fold.
    #[serde(with = "duration")]
    pub rollup_fold_interval: Duration,
}

/// Consistency of reads and writes (lightweight transactions use `LOCAL_SERIAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CassandraConsistency {
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalOne,
    LocalQuorum,
    EachQuorum,
}

/// Cassandra rejects batches over 50 KiB by default; stay clear of it.
const MAX_CASSANDRA_BATCH_SIZE: ByteSize = ByteSize::kib(48);
const MAX_PARTNER_BUCKETS: u32 = 1024;
/// Cassandra's own limit on keyspace names.
const MAX_KEYSPACE_NAME_CHARS: usize = 48;
/// The request rounds a write makes from its rollup touch on: the touch, then its rows
/// (sent concurrently, `write_concurrency` at a time). Each request, the driver's retries
/// included, ends within `request_timeout`: the scylla driver's timeout spans all of a
/// request's attempts (its default retry policy retries inside it).
const WRITE_ROUNDS_AFTER_TOUCH: u32 = 2;
/// What `rollup_settle` must leave beyond the longest write for the clocks of the
/// instances to differ (NTP keeps them within milliseconds; this allows a second).
pub const ROLLUP_CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(1);

impl CassandraConfig {
    /// The longest a write can take from its rollup touch until its last row is stored:
    /// a fold must not start before, or it would count the hour without those rows.
    pub fn longest_write(&self) -> Duration {
        self.request_timeout
            .saturating_mul(WRITE_ROUNDS_AFTER_TOUCH)
    }

    /// The shortest `rollup_settle` accepted: the longest write plus the clock margin.
    fn shortest_rollup_settle(&self) -> Duration {
        self.longest_write()
            .saturating_add(ROLLUP_CLOCK_SKEW_MARGIN)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid_node = self.nodes.iter().find(|node| !is_host_and_port(node));
        first_failure([
            (
                self.nodes.is_empty(),
                "cassandra.nodes must name at least one host:port, got none".to_string(),
            ),
            (
                invalid_node.is_some(),
                format!(
                    "cassandra.nodes entries must be host:port, got '{}'",
                    invalid_node.map(String::as_str).unwrap_or_default()
                ),
            ),
            (
                !is_keyspace_name(&self.keyspace),
                format!(
                    "cassandra.keyspace must be a letter then up to {} letters, digits or '_', got '{}'",
                    MAX_KEYSPACE_NAME_CHARS - 1,
                    self.keyspace
                ),
            ),
            (
                self.replication_factor == 0,
                "cassandra.replication_factor must be > 0, got 0".to_string(),
            ),
            (
                self.partner_buckets == 0 || self.partner_buckets > MAX_PARTNER_BUCKETS,
                format!(
                    "cassandra.partner_buckets must be in 1..={MAX_PARTNER_BUCKETS}, got {}",
                    self.partner_buckets
                ),
            ),
            (
                self.write_concurrency == 0,
                "cassandra.write_concurrency must be > 0, got 0".to_string(),
            ),
            (
                self.request_timeout.is_zero(),
                "cassandra.request_timeout must be > 0, got 0s".to_string(),
            ),
            (
                self.connect_timeout.is_zero(),
                "cassandra.connect_timeout must be > 0, got 0s".to_string(),
            ),
            (
                self.rollup_settle.is_zero() || self.rollup_fold_interval.is_zero(),
                "cassandra.rollup_settle and cassandra.rollup_fold_interval must be > 0"
                    .to_string(),
            ),
            (
                self.rollup_settle <= self.shortest_rollup_settle(),
                format!(
                    "cassandra.rollup_settle must be longer than the longest write plus {} of clock skew: \
                     got {}, and a write can take {} ({WRITE_ROUNDS_AFTER_TOUCH} rounds of cassandra.request_timeout {}), \
                     so set it above {} (or lower cassandra.request_timeout)",
                    humantime::format_duration(ROLLUP_CLOCK_SKEW_MARGIN),
                    humantime::format_duration(self.rollup_settle),
                    humantime::format_duration(self.longest_write()),
                    humantime::format_duration(self.request_timeout),
                    humantime::format_duration(self.shortest_rollup_settle()),
                ),
            ),
            (
                self.max_batch_size < ByteSize::kib(1)
                    || self.max_batch_size > MAX_CASSANDRA_BATCH_SIZE,
                format!(
                    "cassandra.max_batch_size must be in 1KiB..={MAX_CASSANDRA_BATCH_SIZE}, got {}",
                    self.max_batch_size
                ),
            ),
            (
                self.local_datacenter
                    .as_deref()
                    .is_some_and(|dc| dc.trim().is_empty() || dc.contains('\'')),
                "cassandra.local_datacenter must be a datacenter name, got a blank or quoted value"
                    .to_string(),
            ),
        ])
    }
}

fn is_host_and_port(node: &str) -> bool {
    node.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
    })
}

/// Keyspace names are substituted into CQL text, so only plain identifiers are allowed.
pub fn is_keyspace_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && name.len() <= MAX_KEYSPACE_NAME_CHARS
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::config::{Config, DEFAULT_TOML};

    #[test]
    fn cassandra_nodes_accept_a_comma_separated_string_or_a_list() {
        let from_text: CassandraConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("cassandra.nodes", "127.0.0.1:9042, 127.0.0.2:9042"))
            .extract_inner("cassandra")
            .unwrap();
        let from_list: CassandraConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("cassandra.nodes", ["127.0.0.1:9042", "127.0.0.2:9042"]))
            .extract_inner("cassandra")
            .unwrap();
        assert_eq!(from_text.nodes, ["127.0.0.1:9042", "127.0.0.2:9042"]);
        assert_eq!(from_list.nodes, from_text.nodes);
    }

    #[test]
    fn cassandra_defaults_match_the_contract() {
        let cassandra = Config::defaults().cassandra;
        assert_eq!(cassandra.keyspace, "volcanion");
        assert_eq!(cassandra.replication_factor, 1);
        assert_eq!(cassandra.partner_buckets, 1);
        assert_eq!(cassandra.consistency, CassandraConsistency::LocalQuorum);
    }

    #[test]
    fn cassandra_validation_names_the_key() {
        let mut config = Config::defaults();
        config.cassandra.keyspace = "bad-name;".to_string();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("cassandra.keyspace"), "{message}");
        let mut config = Config::defaults();
        config.cassandra.nodes = vec!["localhost".to_string()];
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("cassandra.nodes"), "{message}");
        let mut config = Config::defaults();
        config.cassandra.partner_buckets = 0;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("cassandra.partner_buckets"), "{message}");
    }

    #[test]
    fn a_missing_keyspace_is_created_by_default() {
        assert!(Config::defaults().cassandra.create_keyspace);
    }

    #[test]
    fn a_rollup_settle_within_the_longest_write_is_refused_naming_both() {
        let mut config = Config::defaults();
        config.cassandra.request_timeout = Duration::from_secs(5);
        config.cassandra.rollup_settle = Duration::from_secs(8);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("cassandra.rollup_settle"), "{message}");
        assert!(message.contains("got 8s"), "{message}");
        assert!(message.contains("a write can take 10s"), "{message}");
        assert!(
            message.contains("cassandra.request_timeout 5s"),
            "{message}"
        );
        assert!(message.contains("above 11s"), "{message}");
    }

    #[test]
    fn a_rollup_settle_exactly_at_the_bound_is_refused_and_just_past_it_accepted() {
        let mut config = Config::defaults();
        config.cassandra.request_timeout = Duration::from_secs(2);
        config.cassandra.rollup_settle = Duration::from_secs(5);
        assert!(config.validate().is_err());
        config.cassandra.rollup_settle = Duration::from_millis(5_001);
        config.validate().unwrap();
    }
}
