//! The ingest path's view of event structures: the partner's structure for an event
//! type, else the global one, compiled once per version and cached. Changes made on this
//! instance call `forget_all` and count at once; other instances see them within the
//! cache TTL (or at once through Redis invalidation).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use uuid::Uuid;

use crate::cache::ReadThrough;
use crate::model::{EventSchema, JsonObject, SchemaMode};
use crate::schemas::validation::{CompiledSchema, Violation, compile};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::tenants::unshare;

const MAX_CACHED: u64 = 50_000;

/// The outcome of checking one event's properties.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaCheck {
    /// No structure applies to this event type.
    Unchecked,
    Valid,
    Invalid {
        mode: SchemaMode,
        violations: Vec<Violation>,
    },
}

type CompiledKey = (Option<Uuid>, String, u32);

pub struct SchemaRegistry {
    store: Arc<dyn Store>,
    /// (partner, event type) → the structure in force, if any.
    effective: ReadThrough<(Uuid, String), Option<Arc<EventSchema>>>,
    compiled: Cache<CompiledKey, Arc<CompiledSchema>>,
}

impl SchemaRegistry {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, metrics: Arc<Metrics>) -> SchemaRegistry {
        SchemaRegistry {
            store,
            effective: ReadThrough::new("schema", MAX_CACHED, ttl, metrics),
            compiled: Cache::builder().max_capacity(MAX_CACHED).build(),
        }
    }

    pub async fn check(
        &self,
        partner_id: Uuid,
        event_type: &str,
        properties: &JsonObject,
    ) -> Result<SchemaCheck, StoreError> {
        let Some(schema) = self.effective_schema(partner_id, event_type).await? else {
            return Ok(SchemaCheck::Unchecked);
        };
        let Some(compiled) = self.compiled(&schema).await else {
            return Ok(SchemaCheck::Unchecked);
        };
        // Only events that have a structure pay for a parsed tree.
        let violations = compiled.violations(&properties.to_value());
        if violations.is_empty() {
            return Ok(SchemaCheck::Valid);
        }
        Ok(SchemaCheck::Invalid {
            mode: compiled.mode,
            violations,
        })
    }

    async fn effective_schema(
        &self,
        partner_id: Uuid,
        event_type: &str,
    ) -> Result<Option<Arc<EventSchema>>, StoreError> {
        let load = async {
            if let Some(own) = self.store.schema(Some(partner_id), event_type).await? {
                return Ok(Some(Arc::new(own)));
            }
            Ok(self.store.schema(None, event_type).await?.map(Arc::new))
        };
        self.effective
            .get_or_load((partner_id, event_type.to_string()), load)
            .await
            .map_err(unshare)
    }

    /// Compiled once per (scope, event type, version). A stored schema that no longer
    /// compiles (it was checked when saved) is logged and treated as absent.
    async fn compiled(&self, schema: &EventSchema) -> Option<Arc<CompiledSchema>> {
        let key = (schema.partner_id, schema.event_type.clone(), schema.version);
        let result = self
            .compiled
            .try_get_with(key, async {
                compile(&schema.schema, schema.mode, schema.version).map(Arc::new)
            })
            .await;
        match result {
            Ok(compiled) => Some(compiled),
            Err(reason) => {
                tracing::error!(event_type = schema.event_type, %reason, "stored event structure does not compile");
                None
            }
        }
    }

    pub fn forget_all(&self) {
        self.effective.forget_all();
    }
}
