//! Links from a batch write's span to the spans of the requests whose events it carries:
//! one write serves many requests, so it can be the child of none of them.

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Debug, Clone)]
pub struct TraceLink(SpanContext);

impl TraceLink {
    /// The span being entered now, if it is traced (nothing when no exporter is set up).
    pub fn current() -> Option<TraceLink> {
        let context = tracing::Span::current().context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(TraceLink(span_context))
    }

    pub fn attach_to(&self, span: &tracing::Span) {
        span.add_link(self.0.clone());
    }
}
