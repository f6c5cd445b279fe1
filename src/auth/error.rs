use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, ServiceError};
use crate::store::StoreError;

/// Why a caller was not let in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("credentials are required: send an API key in X-API-Key or Authorization: Bearer")]
    Missing,
    #[error("{0}")]
    Rejected(&'static str),
    #[error("too many API key attempts; try again after Retry-After")]
    TooManyAttempts { retry_after: Duration },
    #[error("cannot check credentials: {0}")]
    Unavailable(#[source] Arc<StoreError>),
    /// Genuine credentials that may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> AuthError {
        AuthError::Unavailable(Arc::new(error))
    }
}

impl ServiceError for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Missing | AuthError::Rejected(_) => ErrorKind::Unauthenticated,
            AuthError::TooManyAttempts { .. } => ErrorKind::RateLimited,
            // Corrupt stored data is our failure (500), not a reason to retry.
            AuthError::Unavailable(error) if error.kind() == ErrorKind::Internal => {
                ErrorKind::Internal
            }
            AuthError::Unavailable(_) => ErrorKind::Unavailable,
            AuthError::Forbidden(_) => ErrorKind::Forbidden,
        }
    }

    fn client_detail(&self) -> String {
        match self {
            AuthError::Unavailable(_) => "credentials cannot be checked right now".to_string(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::TooManyAttempts { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}
