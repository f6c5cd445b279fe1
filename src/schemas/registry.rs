//! The ingest path's view of event structures: the partner's structure for an event
//! type, else the global one, compiled once per version and cached. Changes made on this
//! instance call `forget_all` and count at once; other instances see them within the
//! cache TTL (or at once through Redis invalidation).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::Value;
use uuid::Uuid;

use crate::schemas::validation::{CompiledSchema, Violation, compile};
use crate::schemas::{EventSchema, SchemaMode};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

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
    effective: Cache<(Uuid, String), Option<Arc<EventSchema>>>,
    compiled: Cache<CompiledKey, Arc<CompiledSchema>>,
    metrics: Arc<Metrics>,
}

impl SchemaRegistry {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, metrics: Arc<Metrics>) -> SchemaRegistry {
        SchemaRegistry {
            store,
            effective: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(ttl)
                .build(),
            compiled: Cache::builder().max_capacity(MAX_CACHED).build(),
            metrics,
        }
    }

    pub async fn check(
        &self,
        partner_id: Uuid,
        event_type: &str,
        properties: &Value,
    ) -> Result<SchemaCheck, StoreError> {
        let Some(schema) = self.effective_schema(partner_id, event_type).await? else {
            return Ok(SchemaCheck::Unchecked);
        };
        let Some(compiled) = self.compiled(&schema).await else {
            return Ok(SchemaCheck::Unchecked);
        };
        let violations = compiled.violations(properties);
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
        let entry = self
            .effective
            .entry((partner_id, event_type.to_string()))
            .or_try_insert_with(async {
                if let Some(own) = self.store.schema(Some(partner_id), event_type).await? {
                    return Ok::<_, StoreError>(Some(Arc::new(own)));
                }
                Ok(self.store.schema(None, event_type).await?.map(Arc::new))
            })
            .await
            .map_err(|shared| StoreError::Unavailable(shared.to_string()))?;
        self.metrics
            .record_cache_lookup("schema", !entry.is_fresh());
        Ok(entry.into_value())
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
        self.effective.invalidate_all();
    }
}
