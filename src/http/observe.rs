//! Per-request metrics and the access log line, labelled by route template (not raw path).
//!
//! One line per request at `info` (`telemetry.access_log`, on by default), or at `warn` for
//! a server error. A `503` is overload or a store outage answered as designed, counted in
//! the metrics and logged like any other answer: a load test must not flood the log.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::http::correlation::CorrelationId;
use crate::http::state::AppState;

pub async fn middleware(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let correlation_id = request
        .extensions()
        .get::<CorrelationId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let metrics = &state.metrics;
    metrics
        .http_requests
        .with_label_values(&[method.as_str(), &route, status.as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method.as_str(), &route])
        .observe(elapsed.as_secs_f64());
    // Whole microseconds, so the field reads 0.257, not 0.25684999999999997.
    let duration_ms = elapsed.as_micros() as f64 / 1e3;
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(
            method = method.as_str(),
            route,
            status = status.as_u16(),
            duration_ms,
            correlation_id,
            "request failed"
        );
    } else if state.config.telemetry.access_log {
        tracing::info!(
            method = method.as_str(),
            route,
            status = status.as_u16(),
            duration_ms,
            correlation_id,
            "request"
        );
    }
    response
}
