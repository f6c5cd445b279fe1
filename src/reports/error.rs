//! What a report can fail with, and how each failure reads to a client: a range that can
//! never be answered (400), or one to retry shortly (503), or the store's error.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::store::StoreError;

/// How soon to retry when the hours to read raw wait on the rollup fold.
const UNFOLDED_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    #[error("the range needs more than {0} buckets; use a wider interval or a shorter range")]
    TooManyBuckets(usize),
    /// The buckets' edges cut more hours than a report may read raw: this range and
    /// interval in this time zone can never be answered (a 400).
    #[error(
        "these buckets cut {hours} UTC hours, each read from raw events (rollups hold whole \
         UTC hours), more than the {max} allowed; use interval=day or a shorter range"
    )]
    TooManyRawHours { hours: usize, max: usize },
    /// Too many hours are not in rollups yet: the fold will catch up (a 503).
    #[error("{hours} hours of this range are not in rollups yet; retry shortly")]
    Unfolded { hours: usize },
    /// A parameter the partner's data can't answer (an unknown dimension): a 400 naming it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A breakdown whose filters have no rollup cells would read more raw events than
    /// allowed (a 400: a shorter range or a filter with cells answers it).
    #[error(
        "these filters are answered from raw events, and this range holds more than {max}; \
         use a shorter range or one filter on eventType, subsystem, country or deviceType"
    )]
    TooManyRawEvents { max: u64 },
    /// Every compute slot stayed taken (a 503).
    #[error("too many reports are being computed; retry shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
}

impl ReportError {
    /// The same 400 naming `field` instead (a filter checked under another parameter's
    /// name); any other error as it is.
    pub fn naming(self, field: &'static str) -> ReportError {
        match self {
            ReportError::Invalid { message, .. } => ReportError::Invalid { field, message },
            other => other,
        }
    }
}

impl From<StoreError> for ReportError {
    fn from(error: StoreError) -> ReportError {
        ReportError::Store(Arc::new(error))
    }
}

impl ServiceError for ReportError {
    fn kind(&self) -> ErrorKind {
        match self {
            ReportError::TooManyBuckets(_)
            | ReportError::TooManyRawHours { .. }
            | ReportError::Invalid { .. }
            | ReportError::TooManyRawEvents { .. } => ErrorKind::InvalidRequest,
            ReportError::Unfolded { .. } | ReportError::Busy => ErrorKind::Unavailable,
            ReportError::Store(error) => error.kind(),
        }
    }

    fn client_detail(&self) -> String {
        match self {
            ReportError::TooManyBuckets(_) | ReportError::TooManyRawHours { .. } => {
                format!("interval: {self}")
            }
            ReportError::TooManyRawEvents { .. } => format!("where: {self}"),
            ReportError::Store(error) => error.client_detail(),
            _ => self.to_string(),
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ReportError::TooManyBuckets(_) | ReportError::TooManyRawHours { .. } => {
                vec![FieldError::new("interval", self.to_string())]
            }
            ReportError::Invalid { field, message } => {
                vec![FieldError::new(*field, message.clone())]
            }
            ReportError::TooManyRawEvents { .. } => {
                vec![FieldError::new("where", self.to_string())]
            }
            ReportError::Store(error) => error.field_errors(),
            _ => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ReportError::Unfolded { .. } => Some(UNFOLDED_RETRY_AFTER),
            _ => None,
        }
    }
}
