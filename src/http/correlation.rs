//! `X-Correlation-ID`: taken from the request when it is sane, generated otherwise, echoed
//! on every response, recorded on the request's log span and available to error bodies.

use axum::extract::Request;
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
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let header = HeaderValue::from_str(&correlation_id).expect("validated as visible ASCII");
    let mut response = CORRELATION_ID
        .scope(correlation_id, next.run(request).instrument(span))
        .await;
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
