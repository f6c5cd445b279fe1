//! Logs and metrics: logs through `tracing` (each request's lines carry its correlation id
//! via the request span), human-readable on a terminal and JSON lines otherwise, and the
//! Prometheus registry.

mod metrics;

pub use metrics::Metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global log subscriber; call once, from `main`. The filter was checked by
/// `Config::validate`.
pub fn init_logging(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        anyhow::anyhow!(
            "invalid telemetry.log_filter '{}': {error}",
            config.log_filter
        )
    })?;
    let on_terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(on_terminal);
    let json = match config.log_format {
        LogFormat::Auto => !on_terminal,
        LogFormat::Json => true,
        LogFormat::Pretty => false,
    };
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))
}
