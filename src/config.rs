//! Typed configuration: `config/default.toml`, then an optional `--config` file, then
//! `VOLCANION_<SECTION>__<KEY>` environment variables (plus the short aliases
//! `VOLCANION_LISTEN`, `VOLCANION_DATA_DIR` and `VOLCANION_ADMIN_TOKEN`).
//!
//! Every section denies unknown keys: a typo is an error naming the key as written and the
//! nearest valid one (`sources`), never a setting silently left at its default.
//! `Config::to_toml` prints the result back as TOML that loads again (`render`).

mod cidr;
mod redact;
mod render;
mod sources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use self::redact::redacted_url;
use self::render::{bytes, duration};
use self::sources::Environment;

pub use self::cidr::Cidr;

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
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body of a single-event request, after decompression.
    #[serde(with = "bytes")]
    pub max_request_size: ByteSize,
    /// Largest batch request body, after decompression.
    #[serde(with = "bytes")]
    pub max_batch_request_size: ByteSize,
    /// A connection that sends no complete request head within this (including an idle
    /// keep-alive connection between requests) is closed.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// The whole body of a request must arrive within this, or it is answered `408`.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// Connections open at once; lowered at start to fit the open-files limit.
    pub max_connections: usize,
    /// Request bodies held in memory at once, summed over all requests (after
    /// decompression); past it, new requests are answered `503`.
    #[serde(with = "bytes")]
    pub max_body_bytes_in_flight: ByteSize,
    /// At shutdown, how long requests in flight may take before their connections close.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request whose peer is in
    /// one of these blocks comes from the right-most forwarded address outside them.
    /// A TOML array, or one comma-separated string (env).
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
}

/// When ingestion answers 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acknowledge {
    /// Once the request's events are in the store (durable).
    Stored,
    /// Once they are in the in-memory queue: lost if the process dies before a writer
    /// stores them.
    Queued,
}

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

/// Accepts `["a:9042", "b:9042"]` as well as `"a:9042,b:9042"` (what an env var carries).
fn list_or_comma_separated<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Text(String),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect())
}

fn cidr_list<'de, D>(deserializer: D) -> Result<Vec<Cidr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    list_or_comma_separated(deserializer)?
        .iter()
        .map(|item| item.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// What a 202 promises: the events are stored, or only queued in memory.
    pub acknowledge: Acknowledge,
    /// How long a `stored` acknowledgement waits for the store before answering 503.
    #[serde(with = "duration")]
    pub ack_timeout: Duration,
    /// Events the in-memory queue holds before ingestion answers 503.
    pub queue_capacity: usize,
    /// Bytes the queued events may hold at most (they are freed once stored).
    #[serde(with = "bytes")]
    pub queue_max_bytes: ByteSize,
    pub writers: usize,
    /// Events per store write (a request's events are never split across writes).
    pub batch_size: usize,
    /// How long a writer waits for a batch to fill once its first event arrived.
    #[serde(with = "duration")]
    pub linger: Duration,
    pub max_batch_events: usize,
    #[serde(with = "bytes")]
    pub max_event_size: ByteSize,
    /// Event timestamps further ahead of the server clock are clamped to the receive time.
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
    /// Distinct event types a partner may send over its whole history; an event of a new
    /// type past it is refused (422 naming `eventType`), so one partner can't make its
    /// rollups (a row per type and hour) or report queries grow without bound.
    pub max_event_types_per_partner: usize,
    /// Upper bound on draining the queue at shutdown.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

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
    /// Reports computed at once by this instance (cached answers don't count).
    pub max_concurrent: usize,
    /// How long a report waits for one of those slots before it is answered 503.
    #[serde(with = "duration")]
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    /// How long the structure in force for an event type is cached on the ingest path
    /// (changes made through this instance count at once).
    #[serde(with = "duration")]
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `pretty` when stderr is a terminal, `json` otherwise.
    Auto,
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines, coloured on a terminal.
    Pretty,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A `tracing` filter directive, e.g. `info,volcanion=debug`.
    pub log_filter: String,
    /// One `info` line per request: method, route, status, duration, correlation id.
    pub access_log: bool,
    /// An OTLP/HTTP collector (`http://host:4318`, or the full `…/v1/traces` URL): traces
    /// are exported there when set. `OTEL_EXPORTER_OTLP_ENDPOINT` sets it too.
    pub otlp_endpoint: Option<String>,
    /// Where `/metrics` and the detailed `/health` are served instead of `http.listen`,
    /// so that partner ids, volumes and store errors reach only the monitoring network.
    pub metrics_listen: Option<SocketAddr>,
    /// `service.name` of the exported traces (`OTEL_SERVICE_NAME` sets it too).
    pub service_name: String,
    /// Finished spans waiting for export at most; more are dropped (and counted) rather
    /// than slow a request.
    pub trace_queue_size: usize,
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

    /// Rejects values that parse but cannot work, naming the key and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ingest = &self.ingest;
        let log_filter_error = tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter)
            .err()
            .map(|error| error.to_string());
        let redis_url_invalid =
            self.redis.url.as_ref().is_some_and(|url| {
                fred::types::config::Config::from_url(url.expose_secret()).is_err()
            });
        let checks = [
            (
                ingest.queue_capacity == 0,
                "ingest.queue_capacity must be > 0, got 0".to_string(),
            ),
            (
                ingest.writers == 0,
                "ingest.writers must be > 0, got 0".to_string(),
            ),
            (
                ingest.ack_timeout.is_zero(),
                "ingest.ack_timeout must be > 0, got 0s".to_string(),
            ),
            (
                ingest.batch_size == 0,
                "ingest.batch_size must be > 0, got 0".to_string(),
            ),
            (
                ingest.max_batch_events == 0 || ingest.max_batch_events > ingest.queue_capacity,
                format!(
                    "ingest.max_batch_events must be in 1..=queue_capacity ({}), got {}",
                    ingest.queue_capacity, ingest.max_batch_events
                ),
            ),
            (
                ingest.max_event_types_per_partner == 0,
                "ingest.max_event_types_per_partner must be > 0, got 0".to_string(),
            ),
            (
                self.auth.pbkdf2_iterations == 0,
                "auth.pbkdf2_iterations must be > 0, got 0".to_string(),
            ),
            (
                self.auth.max_failed_attempts_per_minute == 0,
                "auth.max_failed_attempts_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.auth.max_hashes_per_second == 0,
                "auth.max_hashes_per_second must be > 0, got 0".to_string(),
            ),
            (
                self.limits.default_rate_limit_per_minute == 0,
                "limits.default_rate_limit_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.limits.key_rate_limit_per_minute == 0,
                "limits.key_rate_limit_per_minute must be > 0, got 0".to_string(),
            ),
            (
                self.reports.max_raw_hours == 0 || self.reports.max_concurrent == 0,
                format!(
                    "reports.max_raw_hours and reports.max_concurrent must be > 0, got {} and {}",
                    self.reports.max_raw_hours, self.reports.max_concurrent
                ),
            ),
            (
                self.limits.max_nonces_per_partner == 0,
                "limits.max_nonces_per_partner must be > 0, got 0".to_string(),
            ),
            (
                self.redis.command_timeout.is_zero(),
                "redis.command_timeout must be > 0, got 0s".to_string(),
            ),
            (
                log_filter_error.is_some(),
                format!(
                    "telemetry.log_filter must be a tracing filter such as 'info,volcanion=debug', got '{}': {}",
                    self.telemetry.log_filter,
                    log_filter_error.unwrap_or_default()
                ),
            ),
            (
                redis_url_invalid,
                "redis.url must look like redis://[user:password@]host:port[/db]; the value is not shown (it may hold a password)".to_string(),
            ),
            (
                self.http.header_read_timeout.is_zero() || self.http.body_read_timeout.is_zero(),
                format!(
                    "http.header_read_timeout and http.body_read_timeout must be > 0, got {} and {}",
                    humantime::format_duration(self.http.header_read_timeout),
                    humantime::format_duration(self.http.body_read_timeout)
                ),
            ),
            (
                self.http.max_connections == 0,
                "http.max_connections must be > 0, got 0".to_string(),
            ),
            (
                self.http.max_body_bytes_in_flight < self.http.max_batch_request_size,
                format!(
                    "http.max_body_bytes_in_flight ({}) must be at least http.max_batch_request_size ({}), or the largest batch could never be read",
                    self.http.max_body_bytes_in_flight, self.http.max_batch_request_size
                ),
            ),
            (
                self.ingest.queue_max_bytes < self.http.max_batch_request_size,
                format!(
                    "ingest.queue_max_bytes ({}) must be at least http.max_batch_request_size ({}), or the largest batch could never be queued",
                    self.ingest.queue_max_bytes, self.http.max_batch_request_size
                ),
            ),
            (
                self.http.max_request_size > self.http.max_batch_request_size,
                format!(
                    "http.max_request_size ({}) must not exceed http.max_batch_request_size ({})",
                    self.http.max_request_size, self.http.max_batch_request_size
                ),
            ),
            (
                self.telemetry
                    .otlp_endpoint
                    .as_deref()
                    .is_some_and(|endpoint| !is_plain_http_url(endpoint)),
                format!(
                    "telemetry.otlp_endpoint must be an http:// URL such as http://127.0.0.1:4318 (TLS is not supported), got '{}'",
                    self.telemetry
                        .otlp_endpoint
                        .as_deref()
                        .map(redacted_url)
                        .unwrap_or_default()
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
            (
                self.telemetry.trace_queue_size == 0,
                "telemetry.trace_queue_size must be > 0, got 0".to_string(),
            ),
        ];
        match checks.into_iter().find(|(failed, _)| *failed) {
            Some((_, message)) => Err(ConfigError::Invalid(message)),
            None => self.cassandra.validate(),
        }
    }
}

/// An `http://host[:port][/path]` URL (the OTLP exporter speaks plain HTTP only).
fn is_plain_http_url(endpoint: &str) -> bool {
    endpoint
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && endpoint.parse::<hyper::Uri>().is_ok()
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

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid_node = self.nodes.iter().find(|node| !is_host_and_port(node));
        let checks = [
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
        ];
        match checks.into_iter().find(|(failed, _)| *failed) {
            Some((_, message)) => Err(ConfigError::Invalid(message)),
            None => Ok(()),
        }
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
    fn trusted_proxies_accept_a_comma_separated_string_or_a_list_and_name_a_bad_block() {
        let from_text: HttpConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", "10.0.0.0/8, 2001:db8::/32"))
            .extract_inner("http")
            .unwrap();
        let from_list: HttpConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", ["10.0.0.0/8", "2001:db8::/32"]))
            .extract_inner("http")
            .unwrap();
        assert_eq!(from_text.trusted_proxies, from_list.trusted_proxies);
        assert_eq!(from_text.trusted_proxies.len(), 2);
        assert!(Config::defaults().http.trusted_proxies.is_empty());
        let error = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", "10.0.0.0/40"))
            .extract_inner::<HttpConfig>("http")
            .unwrap_err()
            .to_string();
        assert!(error.contains("10.0.0.0/40"), "{error}");
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
