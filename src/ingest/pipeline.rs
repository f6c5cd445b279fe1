//! From a sender's event to a stored `Event`: field rules, subsystem resolution against
//! the sender's key, the event structure check, then the bounded queue and, when the 202
//! promises durability (the default), the wait until a writer has stored the request's
//! events. Every wire format (native, batch, legacy, and any added later) translates into
//! an `EventDraft` and comes through here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::KeyHolder;
use crate::config::Acknowledge;
use crate::enrich::{EnrichInput, Enricher};
use crate::error::FieldError;
use crate::ingest::event_types::EventTypes;
use crate::ingest::format::EventDraft;
use crate::ingest::queue::{EnqueueError, IngestQueue};
use crate::ingest::rejection::{NotStored, Rejection};
use crate::model::{Event, SchemaMode, Subsystem};
use crate::schemas::{SchemaCheck, SchemaRegistry, Violation};
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// Who sent a request's events, from where and with what, and when and under which
/// correlation id it arrived.
pub struct Origin<'a> {
    pub sender: &'a KeyHolder,
    pub correlation_id: &'a str,
    pub received_at: DateTime<Utc>,
    /// The request's `User-Agent`, for events whose `context` names none.
    pub user_agent: Option<&'a str>,
    /// The client's address (behind trusted proxies), for events whose `context` has no `ip`.
    pub client: Option<IpAddr>,
}

/// What the 202 waits for, and how long at most.
#[derive(Debug, Clone, Copy)]
pub struct AckPolicy {
    pub acknowledge: Acknowledge,
    pub timeout: Duration,
}

/// What turns a draft into an event: the cached directory (subsystems), the event
/// structures, the enrichment and the bound on event types.
pub struct Preparation {
    pub directory: Arc<Directory>,
    pub schemas: Arc<SchemaRegistry>,
    pub enricher: Arc<Enricher>,
    pub event_types: EventTypes,
}

pub struct Ingestor {
    directory: Arc<Directory>,
    schemas: Arc<SchemaRegistry>,
    enricher: Arc<Enricher>,
    event_types: EventTypes,
    queue: IngestQueue,
    ack: AckPolicy,
    metrics: Arc<Metrics>,
    max_clock_skew: chrono::Duration,
}

impl Ingestor {
    pub fn new(
        preparation: Preparation,
        queue: IngestQueue,
        ack: AckPolicy,
        metrics: Arc<Metrics>,
        max_clock_skew: Duration,
    ) -> Ingestor {
        let Preparation {
            directory,
            schemas,
            enricher,
            event_types,
        } = preparation;
        Ingestor {
            directory,
            schemas,
            enricher,
            event_types,
            queue,
            ack,
            metrics,
            max_clock_skew: chrono::Duration::from_std(max_clock_skew)
                .unwrap_or(chrono::Duration::MAX),
        }
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
        let enrichment = self.enricher.enrich(&EnrichInput {
            context: &draft.context,
            properties: &draft.properties,
            request_user_agent: origin.user_agent,
            client_address: origin.client,
            own_hosts: &partner.own_hosts,
        });
        // The client's address is personal data: kept only where the partner opted in
        // (its country is in the enrichment).
        let context = match partner.store_client_ip {
            true => draft.context,
            false => draft.context.without_field("ip").unwrap_or(draft.context),
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
            context,
            is_valid: validation_errors.is_empty(),
            validation_errors,
            correlation_id: origin.correlation_id.to_string(),
            enrichment: Some(enrichment),
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
    pub async fn accept(&self, mut events: Vec<Event>) -> Result<(), NotStored> {
        self.drop_suppressed(&mut events).await?;
        if events.is_empty() {
            return Ok(());
        }
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

    /// Drops the events of people an erasure asked to suppress: they are answered as
    /// accepted, and counted. Without the list (the store down), nothing is accepted.
    async fn drop_suppressed(&self, events: &mut Vec<Event>) -> Result<(), NotStored> {
        let Some(partner) = events.first().map(|event| event.partner_id) else {
            return Ok(());
        };
        let suppressed = self.directory.suppressed(partner).await.map_err(|error| {
            tracing::warn!(%error, "cannot read the suppressed people; refusing the request");
            NotStored::StoreFailing
        })?;
        if !suppressed.is_empty() {
            let before = events.len();
            events.retain(|event| !suppressed.covers(event));
            let dropped = (before - events.len()) as u64;
            self.metrics.events_suppressed.inc_by(dropped);
        }
        Ok(())
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

/// The event time to store: the client's, unless it is further ahead of `received_at`
/// than the allowed skew, in which case the receive time wins (the event is kept).
pub fn effective_timestamp(
    claimed: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    max_skew: chrono::Duration,
) -> DateTime<Utc> {
    match claimed {
        Some(claimed) if claimed <= received_at + max_skew => claimed,
        _ => received_at,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::ingest::queue;
    use crate::model::test_support::{sample_ingest_key, sample_partner, sample_subsystem};
    use crate::model::{JsonObject, Partner};
    use crate::store::Store;
    use crate::store::embedded::EmbeddedStore;

    struct Setup {
        _dir: tempfile::TempDir,
        ingestor: Ingestor,
        _writers_end: queue::QueueReceiver,
        partner: Arc<Partner>,
        web: Subsystem,
        app: Subsystem,
        metrics: Arc<Metrics>,
    }

    async fn setup() -> Setup {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let partner = sample_partner();
        store.insert_partner(&partner).await.unwrap();
        let (web, app) = (
            sample_subsystem(partner.id, "web"),
            sample_subsystem(partner.id, "app"),
        );
        for subsystem in [&web, &app] {
            store.insert_subsystem(subsystem).await.unwrap();
        }
        let metrics = Arc::new(Metrics::new());
        let ttl = Duration::from_secs(60);
        let (queue, receiver) = queue::bounded(100, 1 << 20);
        let preparation = Preparation {
            directory: Arc::new(Directory::new(
                Arc::clone(&store),
                ttl,
                Arc::clone(&metrics),
            )),
            schemas: Arc::new(SchemaRegistry::new(
                Arc::clone(&store),
                ttl,
                Arc::clone(&metrics),
            )),
            enricher: Arc::new(
                Enricher::new(&Config::defaults().enrich, Arc::clone(&metrics)).unwrap(),
            ),
            event_types: EventTypes::new(Arc::clone(&store), 10),
        };
        let ingestor = Ingestor::new(
            preparation,
            queue,
            AckPolicy {
                acknowledge: Acknowledge::Queued,
                timeout: Duration::from_secs(1),
            },
            Arc::clone(&metrics),
            Duration::from_secs(600),
        );
        Setup {
            _dir: dir,
            ingestor,
            _writers_end: receiver,
            partner: Arc::new(partner),
            web,
            app,
            metrics,
        }
    }

    impl Setup {
        fn sender(&self, pinned: Option<&Subsystem>) -> KeyHolder {
            KeyHolder {
                key: Arc::new(sample_ingest_key(self.partner.id, pinned.map(|s| s.id))),
                partner: Arc::clone(&self.partner),
            }
        }

        async fn prepare(&self, sender: &KeyHolder, draft: EventDraft) -> Result<Event, Rejection> {
            let origin = Origin {
                sender,
                correlation_id: "c1",
                received_at: Utc::now(),
                user_agent: Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"),
                client: None,
            };
            self.ingestor.prepare_draft(&origin, draft).await
        }
    }

    fn draft(subsystem: Option<&str>) -> EventDraft {
        EventDraft {
            event_id: None,
            event_type: "page_view".into(),
            timestamp: None,
            user_id: Some("u1".into()),
            anonymous_id: None,
            subsystem: subsystem.map(str::to_string),
            properties: JsonObject::empty(),
            context: JsonObject::empty(),
        }
    }

    #[tokio::test]
    async fn a_key_pinned_to_one_subsystem_may_not_send_for_another() {
        let setup = setup().await;
        let pinned = setup.sender(Some(&setup.web));
        let refused = setup.prepare(&pinned, draft(Some("app"))).await;
        assert!(
            matches!(refused, Err(Rejection::Forbidden(_))),
            "{refused:?}"
        );
        let event = setup.prepare(&pinned, draft(Some("web"))).await.unwrap();
        assert_eq!(event.subsystem_id, setup.web.id);
    }

    #[tokio::test]
    async fn without_a_subsystem_only_a_pinned_key_can_send() {
        let setup = setup().await;
        let refused = setup.prepare(&setup.sender(None), draft(None)).await;
        let Err(Rejection::Invalid(errors)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(errors[0].field, "subsystem");
        let pinned = setup.sender(Some(&setup.app));
        let event = setup.prepare(&pinned, draft(None)).await.unwrap();
        assert_eq!(event.subsystem_id, setup.app.id);
        let unknown = setup
            .prepare(&setup.sender(None), draft(Some("nope")))
            .await;
        assert!(matches!(unknown, Err(Rejection::Invalid(_))), "{unknown:?}");
        assert_eq!(
            setup
                .metrics
                .events_rejected
                .with_label_values(&["invalid"])
                .get(),
            2
        );
    }

    #[tokio::test]
    async fn an_event_without_an_id_gets_a_server_made_one_and_keeps_the_receive_time() {
        let setup = setup().await;
        let mut sent = draft(Some("web"));
        sent.timestamp = Some(Utc::now() + chrono::Duration::days(1));
        let event = setup.prepare(&setup.sender(None), sent).await.unwrap();
        let id = Uuid::parse_str(&event.event_id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert!(!event.client_event_id);
        assert_eq!(event.timestamp, event.received_at, "a clock a day ahead");
        assert!(event.is_valid);
        assert_eq!(event.correlation_id, "c1");
        let enrichment = event.enrichment.expect("every new event is enriched");
        assert_eq!(
            enrichment.os.as_deref(),
            Some("iOS"),
            "from the request's agent"
        );
    }

    #[tokio::test]
    async fn accepted_events_are_queued_together() {
        let setup = setup().await;
        let sender = setup.sender(None);
        let first = setup.prepare(&sender, draft(Some("web"))).await.unwrap();
        let second = setup.prepare(&sender, draft(Some("app"))).await.unwrap();
        setup.ingestor.accept(vec![first, second]).await.unwrap();
        assert_eq!(setup.ingestor.queue().depth(), 2);
    }

    #[test]
    fn future_timestamps_beyond_the_skew_are_clamped_to_receive_time() {
        let now = Utc::now();
        let skew = chrono::Duration::minutes(10);
        let slightly_ahead = now + chrono::Duration::minutes(5);
        assert_eq!(
            effective_timestamp(Some(slightly_ahead), now, skew),
            slightly_ahead
        );
        assert_eq!(
            effective_timestamp(Some(now + chrono::Duration::days(1)), now, skew),
            now
        );
        assert_eq!(effective_timestamp(None, now, skew), now);
    }
}
