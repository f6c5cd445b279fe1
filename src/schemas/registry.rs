//! The ingest path's view of event structures: the partner's structure for an event
//! type, else the global one, compiled once and cached. Changes made on this instance
//! call `forget_all` and count at once; other instances see them within the cache TTL
//! (or at once through Redis invalidation). Compiled validators are cached under a digest
//! of what was compiled, never under a name or version that a delete and re-create
//! could give to a different structure, and idle ones are dropped.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::cache::ReadThrough;
use crate::model::{EventSchema, JsonObject, SchemaMode};
use crate::schemas::validation::{CompiledSchema, Violation, compile};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::tenants::unshare;

const MAX_CACHED: u64 = 50_000;
/// Compiled validators kept; each is a few KB to a few hundred KB.
const MAX_COMPILED: u64 = 10_000;
/// A validator no event has used this long is dropped (and compiled again if needed).
const COMPILED_IDLE: Duration = Duration::from_secs(60 * 60);

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

/// SHA-256 of everything `compile` is given: mode, version and the schema's JSON.
type CompiledKey = [u8; 32];

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
            compiled: Cache::builder()
                .max_capacity(MAX_COMPILED)
                .time_to_idle(COMPILED_IDLE)
                .build(),
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
        let load = || async move {
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

    /// Compiled once per distinct content. A stored schema that no longer compiles (it
    /// was checked when saved) is logged and treated as absent.
    async fn compiled(&self, schema: &EventSchema) -> Option<Arc<CompiledSchema>> {
        let key = compiled_key(schema);
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

/// Two structures share a key only if they compile to the same validator.
fn compiled_key(schema: &EventSchema) -> CompiledKey {
    let mode = match schema.mode {
        SchemaMode::Flag => "flag",
        SchemaMode::Reject => "reject",
    };
    let mut digest = Sha256::new();
    digest.update(mode.as_bytes());
    digest.update([0]);
    digest.update(schema.version.to_be_bytes());
    digest.update(schema.schema.to_string().as_bytes());
    digest.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use chrono::Utc;
    use serde_json::json;

    fn global(schema: serde_json::Value, mode: SchemaMode, version: u32) -> EventSchema {
        EventSchema {
            partner_id: None,
            event_type: "purchase".to_string(),
            schema,
            mode,
            version,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_compiled_key_changes_with_content_mode_and_version_only() {
        let minimum = json!({"properties": {"amount": {"minimum": 0}}});
        let maximum = json!({"properties": {"amount": {"maximum": 0}}});
        let base = compiled_key(&global(minimum.clone(), SchemaMode::Flag, 1));
        assert_eq!(
            base,
            compiled_key(&global(minimum.clone(), SchemaMode::Flag, 1))
        );
        assert_ne!(base, compiled_key(&global(maximum, SchemaMode::Flag, 1)));
        assert_ne!(
            base,
            compiled_key(&global(minimum.clone(), SchemaMode::Reject, 1))
        );
        assert_ne!(base, compiled_key(&global(minimum, SchemaMode::Flag, 2)));
    }

    #[tokio::test]
    async fn a_structure_deleted_and_created_again_is_checked_as_the_new_one() {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let registry = SchemaRegistry::new(
            Arc::clone(&store),
            Duration::from_secs(60),
            Arc::new(Metrics::new()),
        );
        let negative = JsonObject::parse(r#"{"amount": -3}"#.to_string()).unwrap();
        let at_least_zero = json!({"properties": {"amount": {"minimum": 0}}});
        store
            .put_schema(&global(at_least_zero, SchemaMode::Flag, 1))
            .await
            .unwrap();
        let partner = Uuid::now_v7();
        let first = registry
            .check(partner, "purchase", &negative)
            .await
            .unwrap();
        assert!(matches!(first, SchemaCheck::Invalid { .. }));

        store.delete_schema(None, "purchase").await.unwrap();
        let at_most_zero = json!({"properties": {"amount": {"maximum": 0}}});
        store
            .put_schema(&global(at_most_zero, SchemaMode::Flag, 1))
            .await
            .unwrap();
        registry.forget_all();
        let second = registry
            .check(partner, "purchase", &negative)
            .await
            .unwrap();
        assert_eq!(second, SchemaCheck::Valid);
    }
}
