//! OpenTelemetry traces over OTLP/HTTP (protobuf). Spans leave through the SDK's batch
//! processor, on its own thread: a request only ever pushes a finished span into a
//! bounded queue. When the queue is full (the collector is slow or down) the span is
//! dropped and counted, as are the spans of an export that failed: tracing must never
//! slow or fail a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use tokio::runtime::Handle;

use crate::config::{TelemetryConfig, redacted_url};
use crate::telemetry::metrics::spans_dropped;
use crate::telemetry::otlp_client::OtlpHttpClient;

/// How long one export may take, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a failed export: few, so a collector that is down costs the export thread
/// seconds, not minutes (the queue meanwhile drops and counts).
const EXPORT_RETRIES: usize = 2;

/// The OTLP/HTTP traces URL for an endpoint as operators write it: a base URL gets
/// `/v1/traces` appended (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read), a full one is kept.
pub fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// A tracer provider exporting to `endpoint`, and the tracer our spans go to.
pub fn provider(
    config: &TelemetryConfig,
    endpoint: &str,
    runtime: Handle,
) -> anyhow::Result<(SdkTracerProvider, SdkTracer)> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .with_retry_policy(RetryPolicy::default().with_max_retries(EXPORT_RETRIES))
        .with_http_client(OtlpHttpClient::new(runtime, EXPORT_TIMEOUT))
        .build()
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot build the OTLP exporter for {}: {error}",
                redacted_url(endpoint)
            )
        })?;
    let queued = Arc::new(AtomicUsize::new(0));
    let batch = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        queued: Arc::clone(&queued),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            // Never reached: `BoundedQueue` drops (and counts) first.
            .with_max_queue_size(config.trace_queue_size + 1)
            .build(),
    )
    .build();
    let processor = BoundedQueue {
        inner: batch,
        queued,
        capacity: config.trace_queue_size,
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("volcanion");
    Ok((provider, tracer))
}

/// Admits a finished span only while fewer than `capacity` wait for export, counting the
/// rest as dropped (the SDK's own queue drops silently).
#[derive(Debug)]
struct BoundedQueue {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for BoundedQueue {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.capacity).then_some(queued + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            spans_dropped().with_label_values(&["queue_full"]).inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Gives queue room back as spans leave for export, and counts the spans of failed exports.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        self.queued.fetch_sub(count, Ordering::AcqRel);
        let outcome = self.inner.export(batch).await;
        if outcome.is_err() {
            spans_dropped()
                .with_label_values(&["export_failed"])
                .inc_by(count as u64);
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_the_traces_path_to_a_base_endpoint_only() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
