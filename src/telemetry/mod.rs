//! Logs and metrics: JSON logs through `tracing` (each request's lines carry its
//! correlation id via the request span), and the Prometheus registry.

mod metrics;

pub use metrics::Metrics;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global log subscriber; call once, from `main`.
pub fn init_logging(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        anyhow::anyhow!(
            "invalid telemetry.log_filter '{}': {error}",
            config.log_filter
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))
}
