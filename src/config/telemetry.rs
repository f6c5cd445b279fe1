//! `[telemetry]`: logs, the trace exporter, and where `/metrics` is served.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::redact::redacted_url;
use super::{ConfigError, first_failure};

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

impl TelemetryConfig {
    /// The section's own checks; that `metrics_listen` differs from `http.listen` is
    /// checked with the other sections (`Config::validate`).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let log_filter_error = tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .err()
            .map(|error| error.to_string());
        first_failure([
            (
                log_filter_error.is_some(),
                format!(
                    "telemetry.log_filter must be a tracing filter such as 'info,volcanion=debug', got '{}': {}",
                    self.log_filter,
                    log_filter_error.unwrap_or_default()
                ),
            ),
            (
                self.otlp_endpoint
                    .as_deref()
                    .is_some_and(|endpoint| !is_plain_http_url(endpoint)),
                format!(
                    "telemetry.otlp_endpoint must be an http:// URL such as http://127.0.0.1:4318 (TLS is not supported), got '{}'",
                    self.otlp_endpoint
                        .as_deref()
                        .map(redacted_url)
                        .unwrap_or_default()
                ),
            ),
            (
                self.trace_queue_size == 0,
                "telemetry.trace_queue_size must be > 0, got 0".to_string(),
            ),
        ])
    }
}

/// An `http://host[:port][/path]` URL (the OTLP exporter speaks plain HTTP only).
fn is_plain_http_url(endpoint: &str) -> bool {
    endpoint
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && endpoint.parse::<hyper::Uri>().is_ok()
}
