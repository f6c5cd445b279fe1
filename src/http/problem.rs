//! The one place where failures become HTTP answers: any module's `ServiceError` becomes
//! an `ApiError`, rendered as RFC 9457 problem+json with the status its `ErrorKind` names.
//! 5xx bodies stay generic while the log gets the whole cause chain, and `Retry-After` is
//! decided here alone.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ErrorChain, ErrorKind, Failure, FieldError, ServiceError};
use crate::http::correlation;
use crate::ingest::Refused;
use crate::limits::RateLimitStatus;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// How soon to retry when the service is unavailable and the cause names no time.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
const GENERIC_INTERNAL_DETAIL: &str = "the server could not complete the request";

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    retry_after: Option<Duration>,
    rate_limit: Option<RateLimitStatus>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            rate_limit: None,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidRequest, detail)
    }

    /// A 400 naming one bad field, in `detail` and in `errors`.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::fields(vec![FieldError::new(field, message)])
    }

    /// A 400 naming every bad field, in `detail` and in `errors`.
    pub fn fields(errors: Vec<FieldError>) -> ApiError {
        crate::error::FieldErrors(errors).into()
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, detail)
    }

    /// A server-side failure: the client sees a generic message, the log sees `cause`.
    pub fn internal(cause: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %ErrorChain(cause), "request failed");
        ApiError::new(ErrorKind::Internal, GENERIC_INTERNAL_DETAIL)
    }

    /// Adds the `RateLimit-*` headers of the budget that refused the request.
    pub fn with_rate_limit(mut self, status: RateLimitStatus) -> ApiError {
        self.rate_limit = Some(status);
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.http_status_code())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// `Retry-After` for this answer: the cause's own hint, else a default for overload.
    fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited => self.retry_after,
            ErrorKind::Unavailable => Some(self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
            _ => None,
        }
    }
}

impl ApiError {
    fn of(error: &dyn ServiceError) -> ApiError {
        let kind = error.kind();
        if kind.is_server_side() {
            return ApiError::internal(error);
        }
        if kind == ErrorKind::Unavailable {
            tracing::debug!(error = %ErrorChain(error), "answered unavailable");
        }
        ApiError {
            kind,
            detail: error.client_detail(),
            errors: error.field_errors(),
            retry_after: error.retry_after(),
            rate_limit: None,
        }
    }
}

impl<E: ServiceError> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError::of(&error)
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> ApiError {
        ApiError::of(failure.as_service_error())
    }
}

/// An answer this floor decided (a body too large, too slow), carried through a use case
/// that reads the wire through a callback (an ingest body) and rendered unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.detail)]
pub struct Answered(pub ApiError);

impl ServiceError for Answered {
    fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    fn field_errors(&self) -> Vec<FieldError> {
        self.0.errors.clone()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        let error = ApiError::from(refused.failure);
        match refused.rate_limit {
            Some(status) => error.with_rate_limit(status),
            None => error,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.kind.slug(), self.detail)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ProblemBody {
            problem_type: format!("urn:volcanion:problem:{}", self.kind.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &self.detail,
            correlation_id: correlation::current(),
            errors: &self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(retry_after) = self.retry_after() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(whole_seconds_rounded_up(retry_after).max(1)),
            );
        }
        if let Some(rate_limit) = self.rate_limit {
            write_rate_limit_headers(&rate_limit, headers);
        }
        response
    }
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) for a budget's state.
pub fn write_rate_limit_headers(status: &RateLimitStatus, headers: &mut HeaderMap) {
    let pairs = [
        ("ratelimit-limit", status.limit.to_string()),
        ("ratelimit-remaining", status.remaining.to_string()),
        (
            "ratelimit-reset",
            whole_seconds_rounded_up(status.reset).to_string(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

fn whole_seconds_rounded_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds_rounded_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_rounded_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_rounded_up(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn field_error_names_the_field_in_detail_and_errors() {
        let error = ApiError::field("eventType", "must not be blank");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.errors,
            vec![FieldError::new("eventType", "must not be blank")]
        );
        assert!(error.detail.contains("eventType"));
    }

    #[test]
    fn unavailable_answers_always_say_when_to_retry() {
        let error = ApiError::new(ErrorKind::Unavailable, "down");
        assert_eq!(error.retry_after(), Some(DEFAULT_RETRY_AFTER));
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(
            ApiError::new(ErrorKind::Conflict, "taken")
                .retry_after()
                .is_none()
        );
    }
}
