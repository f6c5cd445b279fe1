//! From a sender's event to a queued `Event`: field rules, subsystem resolution against
//! the sender's key, the event structure check, then the bounded queue. Every wire format
//! (native, batch, legacy, and any added later) translates into an `EventDraft` and comes through here.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::KeyHolder;
use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::ingest::event::{EventDraft, EventFields, effective_timestamp, parse_event};
use crate::ingest::queue::{EnqueueError, IngestQueue};
use crate::model::{Event, SchemaMode, Subsystem};
use crate::schemas::{SchemaCheck, SchemaRegistry, Violation};
use crate::store::StoreError;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// Who sent a request's events, and when and under which correlation id it arrived.
pub struct Origin<'a> {
    pub sender: &'a KeyHolder,
    pub correlation_id: &'a str,
    pub received_at: DateTime<Utc>,
}

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
    #[error("cannot resolve the subsystem: {0}")]
    Store(#[from] StoreError),
}

impl Rejection {
    /// The `reason` label of `volcanion_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::Forbidden(_) => "forbidden",
            Rejection::SchemaRejected { .. } => "schema",
            Rejection::Store(_) => "store",
        }
    }
}

impl ServiceError for Rejection {
    fn kind(&self) -> ErrorKind {
        match self {
            Rejection::Invalid(_) => ErrorKind::InvalidRequest,
            Rejection::Forbidden(_) => ErrorKind::Forbidden,
            Rejection::SchemaRejected { .. } => ErrorKind::Unprocessable,
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
            Rejection::Forbidden(_) | Rejection::Store(_) => Vec::new(),
        }
    }
}

impl ServiceError for EnqueueError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }

    fn client_detail(&self) -> String {
        match self {
            EnqueueError::Full => "the ingest queue is full; retry shortly".to_string(),
            EnqueueError::Closed => "the service is shutting down".to_string(),
        }
    }
}

pub struct Ingestor {
    directory: Arc<Directory>,
    schemas: Arc<SchemaRegistry>,
    queue: IngestQueue,
    metrics: Arc<Metrics>,
    max_clock_skew: chrono::Duration,
}

impl Ingestor {
    pub fn new(
        directory: Arc<Directory>,
        schemas: Arc<SchemaRegistry>,
        queue: IngestQueue,
        metrics: Arc<Metrics>,
        max_clock_skew: std::time::Duration,
    ) -> Ingestor {
        Ingestor {
            directory,
            schemas,
            queue,
            metrics,
            max_clock_skew: chrono::Duration::from_std(max_clock_skew)
                .unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Validates one native-format event object and turns it into the event to store.
    pub async fn prepare(
        &self,
        origin: &Origin<'_>,
        fields: &EventFields<'_>,
    ) -> Result<Event, Rejection> {
        match parse_event(fields) {
            Ok(draft) => self.prepare_draft(origin, draft).await,
            Err(errors) => Err(self.rejected(Rejection::Invalid(errors))),
        }
    }

    /// Turns a translated event (any wire format) into the event to store.
    pub async fn prepare_draft(
        &self,
        origin: &Origin<'_>,
        draft: EventDraft,
    ) -> Result<Event, Rejection> {
        self.checked(origin, draft)
            .await
            .map_err(|rejection| self.rejected(rejection))
    }

    fn rejected(&self, rejection: Rejection) -> Rejection {
        self.metrics
            .events_rejected
            .with_label_values(&[rejection.reason()])
            .inc();
        rejection
    }

    async fn checked(&self, origin: &Origin<'_>, draft: EventDraft) -> Result<Event, Rejection> {
        let partner = &origin.sender.partner;
        let subsystem = self
            .resolve_subsystem(origin.sender, draft.subsystem.as_deref())
            .await?;
        let check = self
            .schemas
            .check(partner.id, &draft.event_type, &draft.properties)
            .await?;
        let validation_errors = match check {
            SchemaCheck::Unchecked | SchemaCheck::Valid => Vec::new(),
            SchemaCheck::Invalid {
                mode: SchemaMode::Reject,
                violations,
            } => {
                return Err(Rejection::SchemaRejected {
                    event_type: draft.event_type,
                    violations,
                });
            }
            SchemaCheck::Invalid {
                mode: SchemaMode::Flag,
                violations,
            } => {
                self.metrics
                    .validation_failures
                    .with_label_values(&[&partner.id.to_string()])
                    .inc();
                violations.iter().map(Violation::to_string).collect()
            }
        };
        Ok(Event {
            client_event_id: draft.event_id.is_some(),
            event_id: draft.event_id.unwrap_or_else(|| Uuid::now_v7().to_string()),
            partner_id: partner.id,
            subsystem_id: subsystem.id,
            event_type: draft.event_type,
            timestamp: effective_timestamp(
                draft.timestamp,
                origin.received_at,
                self.max_clock_skew,
            ),
            received_at: origin.received_at,
            user_id: draft.user_id,
            anonymous_id: draft.anonymous_id,
            properties: draft.properties,
            context: draft.context,
            is_valid: validation_errors.is_empty(),
            validation_errors,
            correlation_id: origin.correlation_id.to_string(),
        })
    }

    async fn resolve_subsystem(
        &self,
        sender: &KeyHolder,
        reference: Option<&str>,
    ) -> Result<Arc<Subsystem>, Rejection> {
        let pinned = sender.key.subsystem_id;
        let found = match (reference, pinned) {
            (Some(reference), _) => {
                self.directory
                    .subsystem_of(sender.partner.id, reference)
                    .await?
            }
            (None, Some(pinned)) => self.directory.subsystem(pinned).await?,
            (None, None) => {
                return Err(Rejection::Invalid(vec![FieldError::new(
                    "subsystem",
                    "is required (a subsystem code or id), unless the API key is pinned to a subsystem",
                )]));
            }
        };
        let Some(subsystem) = found else {
            return Err(Rejection::Invalid(vec![FieldError::new(
                "subsystem",
                format!(
                    "no subsystem '{}' exists for this partner",
                    reference.unwrap_or_default()
                ),
            )]));
        };
        if pinned.is_some_and(|pinned| pinned != subsystem.id) {
            return Err(Rejection::Forbidden(
                "this API key may only send events for the subsystem it is pinned to".to_string(),
            ));
        }
        if !subsystem.is_active() {
            return Err(Rejection::Forbidden(format!(
                "subsystem '{}' is inactive",
                subsystem.code.as_str()
            )));
        }
        Ok(subsystem)
    }

    /// Queues the events of one request together; on success they will be stored.
    pub fn enqueue(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        let mut per_subsystem: HashMap<(Uuid, Uuid), u64> = HashMap::new();
        for event in &events {
            *per_subsystem
                .entry((event.partner_id, event.subsystem_id))
                .or_default() += 1;
        }
        match self.queue.try_enqueue(events) {
            Ok(()) => {
                for ((partner, subsystem), count) in per_subsystem {
                    self.metrics
                        .events_ingested
                        .with_label_values(&[&partner.to_string(), &subsystem.to_string()])
                        .inc_by(count);
                }
                Ok(())
            }
            Err(error) => {
                self.metrics.queue_full.inc();
                Err(error)
            }
        }
    }

    pub fn queue(&self) -> &IngestQueue {
        &self.queue
    }
}
