//! The configured store, either backend, with a test's hooks before some calls (a store
//! outage as the request path meets it, a report held in progress) and every other call
//! passed through. One delegating wrapper, so a new store method is one line here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use volcanion::model::{ApiKey, AuditEntry, Erasure, Event, EventSchema, Partner, Subsystem};
use volcanion::people::Joins;
use volcanion::rollups::{
    BreakdownDifference, BreakdownQuery, BreakdownRead, Hour, RollupDifference, RollupQuery,
    RollupRead, SettleOutcome,
};
use volcanion::store::{
    AuditQuery, BreakdownStore, EnrichStored, Erased, EventPage, EventQuery, EventStore,
    ExportPage, ExportQuery, LifecycleStore, MetadataStore, PeopleStore, RollupStore, Store,
    StoreError, WriteOutcome,
};

/// What a test does before the calls it cares about; the defaults do nothing.
#[async_trait]
pub trait StoreHooks: Send + Sync {
    /// Before `ping` and event-structure lookups (what a request meets first).
    async fn before_lookup(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Before a report's rollup read.
    async fn before_rollup_read(&self) {}
}

pub struct HookedStore {
    inner: Arc<dyn Store>,
    hooks: Arc<dyn StoreHooks>,
}

impl HookedStore {
    pub fn wrap(inner: Arc<dyn Store>, hooks: Arc<dyn StoreHooks>) -> Arc<dyn Store> {
        Arc::new(HookedStore { inner, hooks })
    }
}

#[async_trait]
impl EventStore for HookedStore {
    async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError> {
        self.inner.write_events(events).await
    }
    async fn write_batch(&self, events: Arc<[Event]>) -> Result<WriteOutcome, StoreError> {
        self.inner.write_batch(events).await
    }
    async fn query_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        self.inner.query_events(query).await
    }
    async fn export_page(&self, query: &ExportQuery) -> Result<ExportPage, StoreError> {
        self.inner.export_page(query).await
    }
    async fn backfill_enrichment(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
        enrich: &EnrichStored<'_>,
    ) -> Result<u64, StoreError> {
        self.inner
            .backfill_enrichment(partner, from, to, enrich)
            .await
    }
}

#[async_trait]
impl MetadataStore for HookedStore {
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.inner.insert_partner(partner).await
    }
    async fn update_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.inner.update_partner(partner).await
    }
    async fn partner(&self, id: Uuid) -> Result<Option<Partner>, StoreError> {
        self.inner.partner(id).await
    }
    async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError> {
        self.inner.partner_by_code(code).await
    }
    async fn partners(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Partner>, StoreError> {
        self.inner.partners(after, limit).await
    }
    async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.inner.insert_subsystem(subsystem).await
    }
    async fn update_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.inner.update_subsystem(subsystem).await
    }
    async fn subsystem(&self, id: Uuid) -> Result<Option<Subsystem>, StoreError> {
        self.inner.subsystem(id).await
    }
    async fn subsystem_by_code(
        &self,
        partner_id: Uuid,
        code: &str,
    ) -> Result<Option<Subsystem>, StoreError> {
        self.inner.subsystem_by_code(partner_id, code).await
    }
    async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, StoreError> {
        self.inner.subsystems(partner_id).await
    }
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.inner.insert_api_key(key).await
    }
    async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.inner.update_api_key(key).await
    }
    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(id).await
    }
    async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key_by_key_id(key_id).await
    }
    async fn api_keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.api_keys(partner_id).await
    }
    async fn put_schema(&self, schema: &EventSchema) -> Result<(), StoreError> {
        self.inner.put_schema(schema).await
    }
    async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<Option<EventSchema>, StoreError> {
        self.hooks.before_lookup().await?;
        self.inner.schema(partner_id, event_type).await
    }
    async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, StoreError> {
        self.inner.schemas(partner_id).await
    }
    async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<bool, StoreError> {
        self.inner.delete_schema(partner_id, event_type).await
    }
    async fn event_types(&self, partner_id: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.event_types(partner_id).await
    }
    async fn add_event_type(&self, partner_id: Uuid, event_type: &str) -> Result<(), StoreError> {
        self.inner.add_event_type(partner_id, event_type).await
    }
}

#[async_trait]
impl RollupStore for HookedStore {
    async fn hourly_rollups(&self, query: &RollupQuery) -> Result<RollupRead, StoreError> {
        self.hooks.before_rollup_read().await;
        self.inner.hourly_rollups(query).await
    }
    async fn rebuild_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<u64, StoreError> {
        self.inner.rebuild_rollups(partner, from, to).await
    }
    async fn verify_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<RollupDifference>, StoreError> {
        self.inner.verify_rollups(partner, from, to).await
    }
    fn settle_interval(&self) -> Option<Duration> {
        self.inner.settle_interval()
    }
    async fn settle_rollups(&self, now: DateTime<Utc>) -> Result<SettleOutcome, StoreError> {
        self.inner.settle_rollups(now).await
    }
}

#[async_trait]
impl BreakdownStore for HookedStore {
    async fn breakdown_cells(&self, query: &BreakdownQuery) -> Result<BreakdownRead, StoreError> {
        self.hooks.before_rollup_read().await;
        self.inner.breakdown_cells(query).await
    }
    async fn verify_breakdowns(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<BreakdownDifference>, StoreError> {
        self.inner.verify_breakdowns(partner, from, to).await
    }
}

#[async_trait]
impl PeopleStore for HookedStore {
    async fn joins_among(
        &self,
        partner: Uuid,
        anonymous_ids: Vec<String>,
    ) -> Result<Joins, StoreError> {
        self.inner.joins_among(partner, anonymous_ids).await
    }

    async fn anonymous_ids_of(
        &self,
        partner: Uuid,
        user: String,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.anonymous_ids_of(partner, user).await
    }

    async fn first_event_day(
        &self,
        partner: Uuid,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.first_event_day(partner).await
    }

    async fn recount_pending_since(
        &self,
        partner: Uuid,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.recount_pending_since(partner).await
    }
}

#[async_trait]
impl LifecycleStore for HookedStore {
    async fn put_erasure(&self, erasure: &Erasure) -> Result<(), StoreError> {
        self.inner.put_erasure(erasure).await
    }
    async fn erasure(&self, partner: Uuid, id: Uuid) -> Result<Option<Erasure>, StoreError> {
        self.inner.erasure(partner, id).await
    }
    async fn erasures(&self, partner: Uuid) -> Result<Vec<Erasure>, StoreError> {
        self.inner.erasures(partner).await
    }
    async fn unfinished_erasures(&self) -> Result<Vec<Erasure>, StoreError> {
        self.inner.unfinished_erasures().await
    }
    async fn erase_hours(&self, erasure: &Erasure, hours: &[Hour]) -> Result<Erased, StoreError> {
        self.inner.erase_hours(erasure, hours).await
    }
    async fn sweep_expired(
        &self,
        partner: Uuid,
        cutoff: DateTime<Utc>,
    ) -> Result<Erased, StoreError> {
        self.inner.sweep_expired(partner, cutoff).await
    }
    async fn forget_person(&self, erasure: &Erasure) -> Result<(), StoreError> {
        self.inner.forget_person(erasure).await
    }
    async fn users_of_anonymous(
        &self,
        partner: Uuid,
        anonymous: String,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.users_of_anonymous(partner, anonymous).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.append_audit(entry).await
    }
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(query).await
    }
}

#[async_trait]
impl Store for HookedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.hooks.before_lookup().await?;
        self.inner.ping().await
    }
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}
