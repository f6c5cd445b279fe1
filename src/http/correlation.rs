//! `X-Correlation-ID`: taken from the request when it is sane, generated otherwise, echoed
//! on every response, recorded on the request's span and available to error bodies.
//!
//! The request span is what logs and traces share: named by route template (never the raw
//! path, which may hold a write key), with the status and, once authenticated, the partner.
//! A W3C `traceparent` from the client makes it part of the client's trace.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

pub const HEADER: &str = "x-correlation-id";
const MAX_LENGTH: usize = 128;

tokio::task_local! {
    static CORRELATION_ID: String;
}

/// The correlation id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CORRELATION_ID.try_with(Clone::clone).ok()
}

fn acceptable(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LENGTH
        && value.bytes().all(|byte| byte.is_ascii_graphic())
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let correlation_id = request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| acceptable(value))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(CorrelationId(correlation_id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        correlation_id = %correlation_id,
        method = %request.method(),
        route,
        http.response.status_code = tracing::field::Empty,
        partner_id = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    let header = HeaderValue::from_str(&correlation_id).expect("validated as visible ASCII");
    let mut response = CORRELATION_ID
        .scope(correlation_id, next.run(request).instrument(span.clone()))
        .await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    response.headers_mut().insert(HEADER, header);
    response
}

/// The request's correlation id, for handlers (`Extension<CorrelationId>`).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_128_chars() {
        assert!(acceptable("req-123_ABC"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}
