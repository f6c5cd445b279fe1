//! Per-request metrics and the access log line, labelled by route template (not raw path).
//!
//! Every label a client can influence is bounded, since each new value is a series kept
//! for the life of the process: the method is one of the standard ones or `other`, the
//! route is the matched template or `unmatched`, the status one we answered.
//!
//! One line per request at `info` (`telemetry.access_log`, on by default), or at `warn` for
//! a server error. A `503` is overload or a store outage answered as designed, counted in
//! the metrics and logged like any other answer: a load test must not flood the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
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
    let served = Served {
        method,
        route,
        status: response.status(),
        elapsed: started.elapsed(),
        correlation_id,
    };
    served.record(&state);
    response
}

/// One answered request, as the metrics and the access log see it.
struct Served {
    method: Method,
    route: String,
    status: StatusCode,
    elapsed: Duration,
    correlation_id: String,
}

impl Served {
    fn record(&self, state: &AppState) {
        let method_label = method_label(&self.method);
        let (route, status, metrics) = (self.route.as_str(), self.status, &state.metrics);
        metrics
            .http_requests
            .with_label_values(&[method_label, route, status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method_label, route])
            .observe(self.elapsed.as_secs_f64());
        // Whole microseconds, so the field reads 0.257, not 0.25684999999999997.
        let duration_ms = self.elapsed.as_micros() as f64 / 1e3;
        let (method, correlation_id) = (self.method.as_str(), self.correlation_id.as_str());
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(
                method,
                route,
                status = status.as_u16(),
                duration_ms,
                correlation_id,
                "request failed"
            );
        } else if state.config.telemetry.access_log {
            tracing::info!(
                method,
                route,
                status = status.as_u16(),
                duration_ms,
                correlation_id,
                "request"
            );
        }
    }
}

/// The metric label of a request method: a client may send any token as its method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
