//! The ground floor of error handling: the closed set of `ErrorKind`s a failure can be,
//! the per-field problems a client is told about, and the `ServiceError` trait through
//! which every module's error names its own kind. Rendering (problem+json, status codes,
//! `Retry-After`) is `http::problem`'s job; nothing here knows about HTTP or storage.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The HTTP status code this kind is answered with.
    pub fn http_status_code(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// The stable name used in problem types (`urn:volcanion:problem:<slug>`).
    pub fn slug(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not-found",
            ErrorKind::MethodNotAllowed => "method-not-allowed",
            ErrorKind::RequestTimeout => "request-timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload-too-large",
            ErrorKind::UnsupportedMediaType => "unsupported-media-type",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Server-side failures: their details go to the log, not to the client.
    pub fn is_server_side(self) -> bool {
        matches!(self, ErrorKind::Internal)
    }
}

/// A module's error, as the one error mapping (`http::problem`) sees it.
pub trait ServiceError: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;

    /// What the client is told; the log always gets the whole error chain.
    fn client_detail(&self) -> String {
        self.to_string()
    }

    /// The fields at fault, when the client can fix them.
    fn field_errors(&self) -> Vec<FieldError> {
        Vec::new()
    }

    /// When retrying can succeed (rate limits, overload), how soon.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// One problem with one field of a request (or of one event in a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Every bad field of one request, reported together (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn one(field: &str, message: impl Into<String>) -> FieldErrors {
        FieldErrors(vec![FieldError::new(field, message)])
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

impl ServiceError for FieldErrors {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidRequest
    }

    fn field_errors(&self) -> Vec<FieldError> {
        self.0.clone()
    }
}

/// A request refused for a reason the client can act on, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

impl ServiceError for Refusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Refusal::Forbidden(_) => ErrorKind::Forbidden,
            Refusal::NotFound(_) => ErrorKind::NotFound,
            Refusal::Conflict(_) => ErrorKind::Conflict,
        }
    }
}

/// A failure of our own (a task that panicked, a broken invariant): a 500 for the client,
/// the whole story for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InternalError(pub String);

impl ServiceError for InternalError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Any module's `ServiceError`, type-erased: what a use-case that can fail in several
/// layers (rules, store, cache) returns. `?` turns every `ServiceError` into one.
#[derive(Debug)]
pub struct Failure(Box<dyn ServiceError>);

impl Failure {
    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    pub fn as_service_error(&self) -> &dyn ServiceError {
        self.0.as_ref()
    }
}

impl<E: ServiceError> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(Box::new(error))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
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
    fn field_errors_name_every_field_in_their_message() {
        let errors = FieldErrors(vec![
            FieldError::new("eventType", "must not be blank"),
            FieldError::new("userId", "is required"),
        ]);
        assert_eq!(
            errors.to_string(),
            "eventType: must not be blank; userId: is required"
        );
        assert_eq!(errors.kind().http_status_code(), 400);
        assert_eq!(errors.field_errors().len(), 2);
    }

    #[test]
    fn a_failure_keeps_the_kind_of_what_failed() {
        let failure: Failure = Refusal::NotFound("no partner".into()).into();
        assert_eq!(failure.kind(), ErrorKind::NotFound);
        assert_eq!(failure.to_string(), "no partner");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the batch")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_show_every_cause() {
        let outer = Outer(std::io::Error::other("disk full"));
        assert_eq!(
            ErrorChain(&outer).to_string(),
            "cannot write the batch: disk full"
        );
    }
}
