//! Why events were not taken: one event refused by the pipeline (`Rejection`, a 4xx for
//! that event, counted by reason), or a request's accepted events not acknowledged
//! (`NotStored`, a 503 the client retries).

use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::ingest::event_types::TypeRefused;
use crate::ingest::queue::{EnqueueError, Unconfirmed};
use crate::schemas::Violation;
use crate::store::StoreError;

/// Why one event was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the event is invalid")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("the properties do not match the event structure for '{event_type}'")]
    SchemaRejected {
        event_type: String,
        violations: Vec<Violation>,
    },
    #[error(
        "this partner has sent {limit} distinct event types, the most it may \
         (ingest.max_event_types_per_partner); events of its existing types are accepted"
    )]
    TooManyEventTypes { limit: usize },
    #[error("cannot resolve the subsystem: {0}")]
    Store(#[from] StoreError),
}

impl From<TypeRefused> for Rejection {
    fn from(refused: TypeRefused) -> Rejection {
        match refused {
            TypeRefused::TooMany { limit } => Rejection::TooManyEventTypes { limit },
            TypeRefused::Store(error) => Rejection::Store(error),
        }
    }
}

impl Rejection {
    /// The `reason` label of `volcanion_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::Forbidden(_) => "forbidden",
            Rejection::SchemaRejected { .. } => "schema",
            Rejection::TooManyEventTypes { .. } => "event_types",
            Rejection::Store(_) => "store",
        }
    }
}

impl ServiceError for Rejection {
    fn kind(&self) -> ErrorKind {
        match self {
            Rejection::Invalid(_) => ErrorKind::InvalidRequest,
            Rejection::Forbidden(_) => ErrorKind::Forbidden,
            Rejection::SchemaRejected { .. } | Rejection::TooManyEventTypes { .. } => {
                ErrorKind::Unprocessable
            }
            Rejection::Store(error) => error.kind(),
        }
    }

    fn client_detail(&self) -> String {
        match self {
            Rejection::Invalid(errors) => crate::error::FieldErrors(errors.clone()).to_string(),
            Rejection::Store(error) => error.client_detail(),
            other => other.to_string(),
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Rejection::Invalid(errors) => errors.clone(),
            Rejection::SchemaRejected { violations, .. } => violations
                .iter()
                .map(|violation| {
                    FieldError::new(
                        format!("properties{}", violation.pointer.trim_end_matches('/')),
                        violation.message.clone(),
                    )
                })
                .collect(),
            Rejection::TooManyEventTypes { limit } => vec![FieldError::new(
                "eventType",
                format!(
                    "is a new event type, and this partner already has {limit}, the most it may \
                     (ingest.max_event_types_per_partner)"
                ),
            )],
            Rejection::Forbidden(_) | Rejection::Store(_) => Vec::new(),
        }
    }
}

/// Why a request's accepted events were not acknowledged (503: the client retries).
#[derive(Debug, thiserror::Error)]
pub enum NotStored {
    #[error(transparent)]
    Queue(#[from] EnqueueError),
    #[error("the store is failing writes")]
    StoreFailing,
    #[error(transparent)]
    Unconfirmed(#[from] Unconfirmed),
}

impl ServiceError for NotStored {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }

    fn client_detail(&self) -> String {
        match self {
            NotStored::Queue(EnqueueError::Full) => {
                "the ingest queue is full; retry shortly".to_string()
            }
            NotStored::Queue(EnqueueError::Closed) => "the service is shutting down".to_string(),
            NotStored::StoreFailing => {
                "the store is not taking writes at the moment; nothing was accepted; retry shortly"
                    .to_string()
            }
            NotStored::Unconfirmed(reason) => format!(
                "{reason}; they may still be stored, so retry with the same eventId to have them stored once"
            ),
        }
    }
}
