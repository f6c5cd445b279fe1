//! Per-request metrics and the access log line, labelled by route template (not raw path).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

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
    if status.is_server_error() {
        tracing::warn!(
            status = status.as_u16(),
            route,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request failed"
        );
    } else {
        tracing::debug!(
            status = status.as_u16(),
            route,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request served"
        );
    }
    response
}
