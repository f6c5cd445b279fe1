//! Logs, traces and metrics: logs through `tracing` (each request's lines carry its
//! correlation id via the request span), human-readable on a terminal and JSON lines
//! otherwise; the same spans exported as OpenTelemetry traces over OTLP when an endpoint
//! is configured (`traces`); and the Prometheus registry (`metrics`).

mod links;
mod metrics;
mod otlp_client;
mod traces;

pub use links::TraceLink;
pub use metrics::Metrics;
pub use traces::traces_url;

use std::io::IsTerminal;
use std::time::Duration;

use hyper::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig, redacted_url};

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What `init` installed; `shutdown` sends the spans still queued.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace export (bounded); call once the service has stopped,
    /// with the runtime passed to `init` still alive (the export runs on it).
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber: logs, and traces when `telemetry.otlp_endpoint` is
/// set (exported from `runtime`). Call once, from `main`. The filter was checked by
/// `Config::validate`.
pub fn init(config: &TelemetryConfig, runtime: Handle) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        anyhow::anyhow!(
            "invalid telemetry.log_filter '{}': {error}",
            config.log_filter
        )
    })?;
    let (tracer_provider, otel_layer) = match &config.otlp_endpoint {
        Some(endpoint) => {
            let (provider, tracer) = traces::provider(config, endpoint, runtime)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false);
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    let on_terminal = std::io::stderr().is_terminal();
    let json = match config.log_format {
        LogFormat::Auto => !on_terminal,
        LogFormat::Json => true,
        LogFormat::Pretty => false,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(on_terminal);
    let log_layer = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot install the log subscriber: {error}"))?;
    if let Some(endpoint) = &config.otlp_endpoint {
        // Scheme, host and port only: the URL may carry the collector's credentials.
        tracing::info!(
            endpoint = %redacted_url(endpoint),
            service_name = %config.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { tracer_provider })
}

/// Makes `span` a child of the caller's span when the request carries a W3C
/// `traceparent` (no effect without one, or when traces are not exported).
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Names the partner on the request span, once a credential has proven it.
pub fn record_partner(partner_id: uuid::Uuid) {
    tracing::Span::current().record("partner_id", tracing::field::display(partner_id));
}
