//! Prometheus metrics. One registry per application instance (not a global), so several
//! instances in one test process don't share counters. Labels stay low-cardinality:
//! partner and subsystem ids, never user ids.
//!
//! Every counter is exported from the start: plain counters at 0, and labelled ones at 0
//! for each label value known in advance (`KNOWN_*`), so a dashboard's `rate()` has a
//! series before the first increment. On Linux the registry also carries the standard
//! `process_*` metrics (CPU, memory, open file descriptors, start time).

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

pub const HTTP_REQUESTS: &str = "http_server_requests_total";
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";
pub const EVENTS_INGESTED: &str = "volcanion_events_ingested_total";
pub const EVENTS_REJECTED: &str = "volcanion_events_rejected_total";
pub const EVENTS_STORED: &str = "volcanion_events_stored_total";
pub const EVENTS_DUPLICATE: &str = "volcanion_events_duplicate_total";
pub const VALIDATION_FAILURES: &str = "volcanion_events_validation_failures_total";
pub const QUEUE_DEPTH: &str = "volcanion_ingest_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "volcanion_ingest_queue_oldest_age_seconds";
pub const QUEUE_FULL: &str = "volcanion_ingest_queue_full_total";
pub const ACK_WAIT: &str = "volcanion_ingest_ack_wait_seconds";
pub const INGEST_UNCONFIRMED: &str = "volcanion_ingest_unconfirmed_total";
pub const BATCH_WRITE_DURATION: &str = "volcanion_batch_write_duration_seconds";
pub const BATCH_SIZE: &str = "volcanion_batch_size";
pub const CACHE_HITS: &str = "volcanion_cache_hits_total";
pub const CACHE_MISSES: &str = "volcanion_cache_misses_total";
pub const RATE_LIMITED: &str = "volcanion_rate_limited_total";
pub const STORE_ERRORS: &str = "volcanion_store_errors_total";
pub const REDIS_FALLBACKS: &str = "volcanion_redis_fallbacks_total";
pub const AUTH_HASHES: &str = "volcanion_auth_hashes_total";
pub const ROLLUP_HOURS_FOLDED: &str = "volcanion_rollup_hours_folded_total";
pub const ROLLUP_HOURS_WAITING: &str = "volcanion_rollup_hours_waiting";
pub const SPANS_DROPPED: &str = "volcanion_trace_spans_dropped_total";

/// The caches that report hits and misses (`cache::ReadThrough`).
pub const KNOWN_CACHES: [&str; 5] = ["api_key", "partner", "subsystem", "schema", "report"];
/// `LimitScope::label` values.
pub const KNOWN_RATE_LIMIT_SCOPES: [&str; 2] = ["key", "partner"];
/// The store operations that count their failures.
pub const KNOWN_STORE_OPERATIONS: [&str; 2] = ["write_events", "settle_rollups"];
/// The operations `Redis::call` is asked for.
pub const KNOWN_REDIS_OPERATIONS: [&str; 6] = [
    "ping",
    "rate_limit",
    "replay_guard",
    "publish",
    "cache_get",
    "cache_set",
];

/// `reason` values of `volcanion_trace_spans_dropped_total`.
const KNOWN_SPAN_DROP_REASONS: [&str; 2] = ["queue_full", "export_failed"];

/// Spans lost on their way to the collector. Process-wide, unlike the rest: the tracer
/// provider is installed once per process, before any application instance exists.
pub(crate) fn spans_dropped() -> &'static IntCounterVec {
    static SPANS: LazyLock<IntCounterVec> = LazyLock::new(|| {
        let metric = IntCounterVec::new(
            Opts::new(
                SPANS_DROPPED,
                "Trace spans not delivered to the OTLP collector (export queue full, or export failed)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in KNOWN_SPAN_DROP_REASONS {
            metric.with_label_values(&[reason]);
        }
        metric
    });
    &SPANS
}

/// Registers `metric` and hands it back (the names are constants, so each is unique).
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// `reason` values of `volcanion_events_rejected_total` (see `ingest::Rejection::reason`).
const KNOWN_REJECTION_REASONS: [&str; 4] = ["invalid", "forbidden", "schema", "store"];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub events_ingested: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub events_stored: IntCounter,
    pub events_suppressed: IntCounter,
    pub events_expired: IntCounter,
    pub events_duplicate: IntCounter,
    pub validation_failures: IntCounterVec,
    pub queue_depth: IntGauge,
    pub queue_oldest_age: Gauge,
    pub queue_full: IntCounter,
    pub ack_wait: Histogram,
    pub ingest_unconfirmed: IntCounter,
    pub batch_write_duration: Histogram,
    pub batch_size: Histogram,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub redis_fallbacks: IntCounterVec,
    pub auth_hashes: IntCounter,
    pub rollup_hours_folded: IntCounter,
    pub rollup_hours_waiting: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registered(&registry, metric)
        };
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registered(&registry, metric)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registered(&registry, metric)
        };
        let http_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(HTTP_DURATION, "HTTP request latency").buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["method", "route"],
            )
            .expect("valid metric"),
        );
        let queue_depth = registered(
            &registry,
            IntGauge::new(QUEUE_DEPTH, "Events waiting in the ingest queue").expect("valid metric"),
        );
        let rollup_hours_waiting = registered(
            &registry,
            IntGauge::new(
                ROLLUP_HOURS_WAITING,
                "Partner-hours written to and not yet folded into rollups (reports read them raw)",
            )
            .expect("valid metric"),
        );

        registered(&registry, spans_dropped().clone());

        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");

        let queue_oldest_age = registered(
            &registry,
            Gauge::new(
                QUEUE_OLDEST_AGE,
                "Age of the oldest request whose events are queued and not yet stored (0: none)",
            )
            .expect("valid metric"),
        );

        let metrics = Metrics {
            http_requests: counter_vec(
                HTTP_REQUESTS,
                "HTTP requests served",
                &["method", "route", "status"],
            ),
            http_duration,
            events_ingested: counter_vec(
                EVENTS_INGESTED,
                "Events accepted (202) into the queue",
                &["partner", "subsystem"],
            ),
            events_rejected: counter_vec(
                EVENTS_REJECTED,
                "Events refused at ingestion",
                &["reason"],
            ),
            events_stored: counter(EVENTS_STORED, "Events written to the store"),
            events_expired: counter(
                "volcanion_events_expired_total",
                "Events deleted by the retention sweep, past their partner's retentionDays",
            ),
            events_suppressed: counter(
                "volcanion_events_suppressed_total",
                "Events accepted and dropped: their person's erasure asked to suppress them",
            ),
            auth_hashes: counter(
                AUTH_HASHES,
                "PBKDF2 runs checking presented API keys (unknown key ids included)",
            ),
            events_duplicate: counter(
                EVENTS_DUPLICATE,
                "Events skipped as duplicates of a stored event id",
            ),
            validation_failures: counter_vec(
                VALIDATION_FAILURES,
                "Events failing their event structure",
                &["partner"],
            ),
            queue_depth,
            queue_oldest_age,
            queue_full: counter(
                QUEUE_FULL,
                "Requests refused because the ingest queue was full",
            ),
            ack_wait: histogram(
                ACK_WAIT,
                "Time from queueing a request's events to their being stored (durable 202s)",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            ),
            ingest_unconfirmed: counter(
                INGEST_UNCONFIRMED,
                "Requests answered 503 because their events were not stored within ingest.ack_timeout",
            ),
            batch_write_duration: histogram(
                BATCH_WRITE_DURATION,
                "Time to write one batch to the store",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            batch_size: histogram(
                BATCH_SIZE,
                "Events per store batch",
                vec![
                    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                ],
            ),
            cache_hits: counter_vec(
                CACHE_HITS,
                "Cache lookups answered from the cache",
                &["cache"],
            ),
            cache_misses: counter_vec(
                CACHE_MISSES,
                "Cache lookups that had to compute",
                &["cache"],
            ),
            rate_limited: counter_vec(RATE_LIMITED, "Requests refused by a rate limit", &["scope"]),
            store_errors: counter_vec(STORE_ERRORS, "Failed store operations", &["operation"]),
            redis_fallbacks: counter_vec(
                REDIS_FALLBACKS,
                "Redis calls that failed or timed out and were answered locally",
                &["operation"],
            ),
            rollup_hours_folded: counter(
                ROLLUP_HOURS_FOLDED,
                "Partner-hours recounted into rollups once no write touched them for cassandra.rollup_settle",
            ),
            rollup_hours_waiting,
            registry,
        };
        metrics.start_known_series_at_zero();
        metrics
    }

    fn start_known_series_at_zero(&self) {
        for cache in KNOWN_CACHES {
            self.cache_hits.with_label_values(&[cache]);
            self.cache_misses.with_label_values(&[cache]);
        }
        for scope in KNOWN_RATE_LIMIT_SCOPES {
            self.rate_limited.with_label_values(&[scope]);
        }
        for operation in KNOWN_STORE_OPERATIONS {
            self.store_errors.with_label_values(&[operation]);
        }
        for operation in KNOWN_REDIS_OPERATIONS {
            self.redis_fallbacks.with_label_values(&[operation]);
        }
        for reason in KNOWN_REJECTION_REASONS {
            self.events_rejected.with_label_values(&[reason]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_counters_with_labels() {
        let metrics = Metrics::new();
        metrics
            .events_ingested
            .with_label_values(&["p1", "s1"])
            .inc_by(3);
        metrics.cache_hits.with_label_values(&["api_key"]).inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"volcanion_events_ingested_total{partner="p1",subsystem="s1"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"volcanion_cache_hits_total{cache="api_key"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn every_counter_is_exported_at_zero_before_its_first_increment() {
        let text = Metrics::new().render();
        for line in [
            "volcanion_events_stored_total 0",
            "volcanion_events_duplicate_total 0",
            "volcanion_ingest_queue_full_total 0",
            r#"volcanion_cache_misses_total{cache="report"} 0"#,
            r#"volcanion_rate_limited_total{scope="partner"} 0"#,
            r#"volcanion_store_errors_total{operation="write_events"} 0"#,
            r#"volcanion_redis_fallbacks_total{operation="rate_limit"} 0"#,
        ] {
            assert!(
                text.lines().any(|rendered| rendered == line),
                "{line} in:\n{text}"
            );
        }
    }

    /// Every metric the Grafana dashboard in `deploy/` queries is one we export.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let metrics = Metrics::new();
        // Labelled families appear once they have a series.
        metrics
            .http_requests
            .with_label_values(&["GET", "/health", "200"]);
        metrics
            .http_duration
            .with_label_values(&["GET", "/health"])
            .observe(0.001);
        metrics.events_ingested.with_label_values(&["p", "s"]);
        metrics.validation_failures.with_label_values(&["p"]);
        let exported = metrics.render();
        let dashboard = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/dashboards/volcanion.json"
        ))
        .unwrap();
        let mut queried = 0;
        for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let is_metric = ["volcanion_", "http_server_", "process_"]
                .iter()
                .any(|prefix| word.starts_with(prefix));
            if !is_metric {
                continue;
            }
            queried += 1;
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word);
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {word}, which is not exported"
            );
        }
        assert!(queried > 20, "{queried} metric references");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exported() {
        let text = Metrics::new().render();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in:\n{text}");
        }
    }
}
