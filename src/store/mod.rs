//! Storage traits over the records of `model`. Two implementations share one contract:
//! `embedded` (on-disk, for a single node) and, in production, Cassandra; each has its own
//! row encoding. Nothing here depends on the layers above.

pub mod cassandra;
pub mod embedded;
mod export;
pub(crate) mod fuzz;
mod lifecycle;
pub mod upkeep;

pub use export::{ExportPage, ExportPosition, ExportQuery, order as export_order};
pub use lifecycle::{AuditQuery, Erased, LifecycleStore};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::model::{ApiKey, Enrichment, Event, EventSchema, Partner, Subsystem};
use crate::people::Joins;
use crate::rollups::{
    BreakdownDifference, BreakdownQuery, BreakdownRead, Hour, RollupDifference, RollupQuery,
    RollupRead, SettleOutcome,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("the cursor is not valid for this query")]
    InvalidCursor,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store does not fit the configuration (start-up refuses it).
    #[error("the store does not match the configuration: {0}")]
    Misconfigured(String),
}

impl ServiceError for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::NotFound => ErrorKind::NotFound,
            StoreError::InvalidCursor => ErrorKind::InvalidRequest,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) | StoreError::Misconfigured(_) => ErrorKind::Internal,
        }
    }

    fn client_detail(&self) -> String {
        match self {
            StoreError::NotFound => "no such resource".to_string(),
            StoreError::InvalidCursor => format!("cursor: {INVALID_CURSOR}"),
            StoreError::Unavailable(_) => "the store is unavailable; retry shortly".to_string(),
            other => other.to_string(),
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            StoreError::InvalidCursor => vec![FieldError::new("cursor", INVALID_CURSOR)],
            _ => Vec::new(),
        }
    }
}

/// The conflict message when a partner's or subsystem's code is already taken.
pub trait HasCode {
    fn code_taken_message(&self) -> String;
}

impl HasCode for Partner {
    fn code_taken_message(&self) -> String {
        format!("partner code '{}' is already taken", self.code.as_str())
    }
}

impl HasCode for Subsystem {
    fn code_taken_message(&self) -> String {
        format!(
            "subsystem code '{}' is already taken for this partner",
            self.code.as_str()
        )
    }
}

const INVALID_CURSOR: &str = "is not a cursor of this query; start again without it";

/// Which logical events table a query reads: by partner or by subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventScope {
    Partner(Uuid),
    Subsystem(Uuid),
}

/// Filters applied to the rows of the scoped time range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub user_id: Option<String>,
    pub is_valid: Option<bool>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_fields(&event.event_type, event.user_id.as_deref(), event.is_valid)
    }

    /// The same test on the fields alone, for a store that checks them before it builds
    /// (and parses the payload of) an event.
    pub fn matches_fields(&self, event_type: &str, user_id: Option<&str>, is_valid: bool) -> bool {
        self.event_type
            .as_deref()
            .is_none_or(|wanted| wanted == event_type)
            && self
                .user_id
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == user_id)
            && self.is_valid.is_none_or(|wanted| wanted == is_valid)
    }
}

/// Events of one scope with `from <= timestamp < to`, newest first.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub scope: EventScope,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub filter: EventFilter,
    pub limit: usize,
    /// Opaque position from a previous page of the same query.
    pub cursor: Option<Vec<u8>>,
    /// Whether `properties` and `context` are wanted; aggregations leave them out (they
    /// come back empty), so a page of large events costs no more than a page of small ones.
    pub with_payload: bool,
}

#[derive(Debug, Clone)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Present when more rows may follow; pass it back as `cursor`.
    pub next_cursor: Option<Vec<u8>>,
}

/// What a batch write did: duplicates (same partner and event id) are stored once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub inserted: usize,
    pub duplicates: usize,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Idempotent: writing an event again (same partner and event id) changes nothing.
    async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError>;
    /// The same, for a writer's batch: a store that writes on another thread takes the
    /// events without copying them.
    async fn write_batch(&self, events: Arc<[Event]>) -> Result<WriteOutcome, StoreError> {
        self.write_events(&events).await
    }
    async fn query_events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;
    /// One page of an export: events ascending by (timestamp, event id) after a position
    /// (`export`).
    async fn export_page(&self, query: &ExportQuery) -> Result<ExportPage, StoreError>;
    /// Stores `enrich(event)` as the enrichment of each of the partner's events in hours
    /// `from..to` stored without one (before enrichment existed), in both of its tables;
    /// the number of events enriched. `rollups rebuild` runs it before recounting.
    async fn backfill_enrichment(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
        enrich: &EnrichStored<'_>,
    ) -> Result<u64, StoreError>;
}

/// What derives an enrichment from what a stored event carries (`enrich::Enricher`, which
/// the store may not name).
pub type EnrichStored<'a> = dyn Fn(&Event) -> Enrichment + Send + Sync + 'a;

#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// `Conflict` when the code is taken.
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError>;
    /// `Conflict` when a changed code is taken.
    async fn update_partner(&self, partner: &Partner) -> Result<(), StoreError>;
    async fn partner(&self, id: Uuid) -> Result<Option<Partner>, StoreError>;
    async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError>;
    /// Ordered by id (creation time); `after` is the last id of the previous page.
    async fn partners(&self, after: Option<Uuid>, limit: usize)
    -> Result<Vec<Partner>, StoreError>;

    /// `Conflict` when the code is taken within the partner.
    async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError>;
    async fn update_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError>;
    async fn subsystem(&self, id: Uuid) -> Result<Option<Subsystem>, StoreError>;
    async fn subsystem_by_code(
        &self,
        partner_id: Uuid,
        code: &str,
    ) -> Result<Option<Subsystem>, StoreError>;
    async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, StoreError>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError>;
    async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn api_keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, StoreError>;

    /// Insert or replace the structure for (`partner_id`, `event_type`); `None` is global.
    async fn put_schema(&self, schema: &EventSchema) -> Result<(), StoreError>;
    async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<Option<EventSchema>, StoreError>;
    /// The global structures (`None`) or one partner's, ordered by event type.
    async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, StoreError>;
    /// Whether there was one to delete.
    async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<bool, StoreError>;

    /// The distinct event types a partner has sent (what `ingest.max_event_types_per_partner`
    /// bounds), in no particular order.
    async fn event_types(&self, partner_id: Uuid) -> Result<Vec<String>, StoreError>;
    /// Records that the partner has sent `event_type`; idempotent.
    async fn add_event_type(&self, partner_id: Uuid, event_type: &str) -> Result<(), StoreError>;
}

/// The rollups a store keeps in the same write as the events they count.
#[async_trait]
pub trait RollupStore: Send + Sync {
    /// The whole hours `query.from..query.to` that have events, oldest first, and those
    /// the rollups don't cover yet.
    async fn hourly_rollups(&self, query: &RollupQuery) -> Result<RollupRead, StoreError>;

    /// Replaces a partner's rollups of hours `from..to` (counts, sketches and breakdown
    /// cells, and those of the UTC days they complete) with a recount of its raw events;
    /// the number of events recounted.
    async fn rebuild_rollups(&self, partner: Uuid, from: Hour, to: Hour)
    -> Result<u64, StoreError>;

    /// The hours `from..to` whose stored counts differ from a recount of the raw events.
    async fn verify_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<RollupDifference>, StoreError>;

    /// How often `settle_rollups` should run; `None` when the store's writes keep its
    /// rollups themselves.
    fn settle_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Folds the hours no write has touched for a while into rollups (as of `now`).
    async fn settle_rollups(&self, _now: DateTime<Utc>) -> Result<SettleOutcome, StoreError> {
        Ok(SettleOutcome::default())
    }
}

/// Breakdown cells (docs/BREAKDOWNS.md): folded from the stored events of an hour once no
/// write has touched it for a while (by the same `settle_rollups` rounds), and of a UTC
/// day once its hours are all folded; rebuilt and verified with the count rollups.
#[async_trait]
pub trait BreakdownStore: Send + Sync {
    /// The stored tables of one cell over `query.from..query.to`, and the hours of it not
    /// folded yet (written to since their fold, or never folded).
    async fn breakdown_cells(&self, query: &BreakdownQuery) -> Result<BreakdownRead, StoreError>;

    /// The cells of a partner's hours `from..to` (and of the UTC days wholly inside) that a
    /// recount of the stored events contradicts; hours not folded yet are left out.
    async fn verify_breakdowns(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<BreakdownDifference>, StoreError>;
}

/// People's joins (`people`): each anonymous id seen with a user id is joined to the first
/// one, recorded with the event that asks for it (a later different pairing is recorded
/// apart, never merged).
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// The joins of those of `anonymous_ids` that have one.
    async fn joins_among(
        &self,
        partner: Uuid,
        anonymous_ids: Vec<String>,
    ) -> Result<Joins, StoreError>;

    /// The anonymous ids joined to `user`, in id order.
    async fn anonymous_ids_of(
        &self,
        partner: Uuid,
        user: String,
    ) -> Result<Vec<String>, StoreError>;

    /// The start of the UTC day of the partner's earliest stored event (`None`: none):
    /// where a retention report looks for first start events.
    async fn first_event_day(&self, partner: Uuid) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// When the earliest join still to be folded into the partner's unique-user counts was
    /// recorded (`None`: they count people as joined now). Reports' `dataAsOf` is no later.
    async fn recount_pending_since(
        &self,
        partner: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
}

#[async_trait]
pub trait Store:
    EventStore + MetadataStore + RollupStore + BreakdownStore + PeopleStore + LifecycleStore
{
    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    fn backend_name(&self) -> &'static str;
}
