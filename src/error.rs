//! The one place where failures become HTTP answers: `ErrorKind` picks the status,
//! `ApiError` renders RFC 9457 problem+json. 5xx bodies stay generic; the log gets the cause.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::correlation;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not-found",
            ErrorKind::MethodNotAllowed => "method-not-allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload-too-large",
            ErrorKind::UnsupportedMediaType => "unsupported-media-type",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// One problem with one field of a request (or of one event in a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The state of a rate limit, sent as `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub limit: u32,
    pub remaining: u32,
    pub reset: Duration,
}

impl RateLimitStatus {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            (
                "ratelimit-reset",
                whole_seconds_rounded_up(self.reset).to_string(),
            ),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

fn whole_seconds_rounded_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<Duration>,
    pub rate_limit: Option<RateLimitStatus>,
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

    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::fields(vec![FieldError::new(field, message)])
    }

    /// A 400 naming every bad field, in `detail` and in `errors`.
    pub fn fields(errors: Vec<FieldError>) -> ApiError {
        let detail = errors
            .iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::invalid(detail).with_errors(errors)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Forbidden, detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Unauthenticated, detail)
    }

    /// A server-side failure: the client sees a generic message, the log sees `cause`.
    pub fn internal(cause: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %ErrorChain(cause), "request failed");
        ApiError::new(
            ErrorKind::Internal,
            "the server could not complete the request",
        )
    }

    pub fn unavailable(detail: impl Into<String>, retry_after: Duration) -> ApiError {
        let mut error = ApiError::new(ErrorKind::Unavailable, detail);
        error.retry_after = Some(retry_after);
        error
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> ApiError {
        self.errors = errors;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.kind.slug(), self.detail)
    }
}

impl std::error::Error for ApiError {}

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

pub const PROBLEM_JSON: &str = "application/problem+json";

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
        if let Some(retry_after) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(whole_seconds_rounded_up(retry_after).max(1)),
            );
        }
        if let Some(rate_limit) = self.rate_limit {
            rate_limit.write_headers(headers);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Conflict(detail) => ApiError::new(ErrorKind::Conflict, detail),
            StoreError::NotFound => ApiError::not_found("no such resource"),
            StoreError::InvalidCursor => ApiError::field(
                "cursor",
                "is not a cursor of this query; start again without it",
            ),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "store unavailable");
                ApiError::unavailable(
                    "the store is unavailable; retry shortly",
                    Duration::from_secs(1),
                )
            }
            StoreError::Corrupt(_) => ApiError::internal(&error),
        }
    }
}

/// Displays an error with all its sources, for logs.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(formatter, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
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
}
