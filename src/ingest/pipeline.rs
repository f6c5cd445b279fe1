//! From a sender's event to a stored `Event`: field rules, subsystem resolution against
//! the sender's key, the event structure check, then the bounded queue and, when the 202
//! promises durability (the default), the wait until a writer has stored the request's
//! events. Every wire format (native, batch, legacy, and any added later) translates into
//! an `EventDraft` and comes through here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::KeyHolder;
use crate::config::Acknowledge;
use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::ingest::event::{EventDraft, EventFields, effective_timestamp, parse_event};
use crate::ingest::event_types::{EventTypes, TypeRefused};
use crate::ingest::queue::{EnqueueError, IngestQueue, Unconfirmed};
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

/// What the 202 waits for, and how long at most.
#[derive(Debug, Clone, Copy)]
pub struct AckPolicy {
    pub acknowledge: Acknowledge,
    pub timeout: Duration,
}

pub struct Ingestor {
    directory: Arc<Directory>,
    schemas: Arc<SchemaRegistry>,
    event_types: EventTypes,
    queue: IngestQueue,
    ack: AckPolicy,
    metrics: Arc<Metrics>,
    max_clock_skew: chrono::Duration,
}

impl Ingestor {
    pub fn new(
        directory: Arc<Directory>,
        schemas: Arc<SchemaRegistry>,
        event_types: EventTypes,
        queue: IngestQueue,
        ack: AckPolicy,
        metrics: Arc<Metrics>,
        max_clock_skew: Duration,
    ) -> Ingestor {
        Ingestor {
            directory,
            schemas,
            event_types,
            queue,
            ack,
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
        self.prepare_translated(origin, parse_event(fields)).await
    }

    /// Turns the outcome of a format's translation (a draft, or the fields at fault) into
    /// the event to store; refusals are counted alike whichever format they came in.
    pub async fn prepare_translated(
        &self,
        origin: &Origin<'_>,
        translated: Result<EventDraft, Vec<FieldError>>,
    ) -> Result<Event, Rejection> {
        match translated {
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
        // Before the structure check, which may read the store for a type it hasn't seen.
        self.event_types
            .admit(partner.id, &draft.event_type)
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

    /// Hands one request's events to the writers, all together or none. Returns once they
    /// are stored (`Acknowledge::Stored`, the default) or queued (`Acknowledge::Queued`).
    pub async fn accept(&self, events: Vec<Event>) -> Result<(), NotStored> {
        let per_subsystem = count_per_subsystem(&events);
        // Covers the wait for the durable append too, when the 202 waits for it.
        let span = tracing::info_span!(
            "enqueue",
            events = events.len(),
            acknowledge = match self.ack.acknowledge {
                Acknowledge::Stored => "stored",
                Acknowledge::Queued => "queued",
            }
        );
        let outcome = async {
            match self.ack.acknowledge {
                Acknowledge::Queued => self.queue.try_enqueue(events).map_err(NotStored::from),
                Acknowledge::Stored => self.store(events).await,
            }
        }
        .instrument(span)
        .await;
        match &outcome {
            Ok(()) => {
                for ((partner, subsystem), count) in per_subsystem {
                    self.metrics
                        .events_ingested
                        .with_label_values(&[&partner.to_string(), &subsystem.to_string()])
                        .inc_by(count);
                }
            }
            Err(NotStored::Queue(EnqueueError::Full)) => self.metrics.queue_full.inc(),
            Err(NotStored::Unconfirmed(_)) => self.metrics.ingest_unconfirmed.inc(),
            Err(_) => {}
        }
        outcome
    }

    /// Refuses a request up front (before it is charged) while durable acknowledgement
    /// could only make it wait out the timeout: the last store write failed.
    pub fn check_store_writable(&self) -> Result<(), NotStored> {
        match self.ack.acknowledge {
            Acknowledge::Stored if self.queue.write_failing() => Err(NotStored::StoreFailing),
            _ => Ok(()),
        }
    }

    async fn store(&self, events: Vec<Event>) -> Result<(), NotStored> {
        self.check_store_writable()?;
        let started = tokio::time::Instant::now();
        let receipt = self.queue.try_enqueue_with_receipt(events)?;
        receipt.stored_within(self.ack.timeout).await?;
        self.metrics
            .ack_wait
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    pub fn queue(&self) -> &IngestQueue {
        &self.queue
    }
}

fn count_per_subsystem(events: &[Event]) -> HashMap<(Uuid, Uuid), u64> {
    let mut per_subsystem = HashMap::new();
    for event in events {
        *per_subsystem
            .entry((event.partner_id, event.subsystem_id))
            .or_default() += 1;
    }
    per_subsystem
}
