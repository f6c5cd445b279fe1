//! From a caller's JSON event to a queued `StoredEvent`: field rules, subsystem
//! resolution against the caller's key, then the bounded queue. Every endpoint flavour
//! (native, batch, legacy) goes through here.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::ApiKey;
use crate::error::FieldError;
use crate::ingest::event::{EventDraft, effective_timestamp, parse_event};
use crate::ingest::queue::{EnqueueError, IngestQueue};
use crate::schemas::{SchemaCheck, SchemaMode, SchemaRegistry, Violation};
use crate::store::{StoreError, StoredEvent};
use crate::telemetry::Metrics;
use crate::tenants::{Directory, Partner, Subsystem};

/// Who sends, as established by authentication.
pub struct Caller<'a> {
    pub key: &'a ApiKey,
    pub partner: &'a Partner,
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

    /// Validates one native-format event object and turns it into the row to store.
    pub async fn prepare(
        &self,
        caller: &Caller<'_>,
        object: &Map<String, Value>,
    ) -> Result<StoredEvent, Rejection> {
        let draft = parse_event(object).map_err(Rejection::Invalid)?;
        self.prepare_draft(caller, draft).await
    }

    pub async fn prepare_draft(
        &self,
        caller: &Caller<'_>,
        draft: EventDraft,
    ) -> Result<StoredEvent, Rejection> {
        let subsystem = self
            .resolve_subsystem(caller, draft.subsystem.as_deref())
            .await?;
        let check = self
            .schemas
            .check(caller.partner.id, &draft.event_type, &draft.properties)
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
                    .with_label_values(&[&caller.partner.id.to_string()])
                    .inc();
                violations.iter().map(Violation::to_string).collect()
            }
        };
        Ok(StoredEvent {
            client_event_id: draft.event_id.is_some(),
            event_id: draft.event_id.unwrap_or_else(|| Uuid::now_v7().to_string()),
            partner_id: caller.partner.id,
            subsystem_id: subsystem.id,
            event_type: draft.event_type,
            timestamp: effective_timestamp(
                draft.timestamp,
                caller.received_at,
                self.max_clock_skew,
            ),
            received_at: caller.received_at,
            user_id: draft.user_id,
            anonymous_id: draft.anonymous_id,
            properties: draft.properties,
            context: draft.context,
            is_valid: validation_errors.is_empty(),
            validation_errors,
            correlation_id: caller.correlation_id.to_string(),
        })
    }

    async fn resolve_subsystem(
        &self,
        caller: &Caller<'_>,
        reference: Option<&str>,
    ) -> Result<Arc<Subsystem>, Rejection> {
        let pinned = caller.key.subsystem_id;
        let found = match (reference, pinned) {
            (Some(reference), _) => {
                self.directory
                    .subsystem_of(caller.partner.id, reference)
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
    pub fn enqueue(&self, events: Vec<StoredEvent>) -> Result<(), EnqueueError> {
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
