//! Partner and subsystem lookups for the request path, cached briefly in memory.
//! Management changes on this instance call `forget_all`, so they count at once here.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use uuid::Uuid;

use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::tenants::{Partner, Subsystem};

const MAX_ENTRIES: u64 = 50_000;

pub struct Directory {
    store: Arc<dyn Store>,
    partners: Cache<Uuid, Option<Arc<Partner>>>,
    subsystems: Cache<Uuid, Option<Arc<Subsystem>>>,
    subsystem_codes: Cache<(Uuid, String), Option<Arc<Subsystem>>>,
    metrics: Arc<Metrics>,
}

fn cache<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(ttl)
        .build()
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, metrics: Arc<Metrics>) -> Directory {
        Directory {
            store,
            partners: cache(ttl),
            subsystems: cache(ttl),
            subsystem_codes: cache(ttl),
            metrics,
        }
    }

    pub async fn partner(&self, id: Uuid) -> Result<Option<Arc<Partner>>, StoreError> {
        let entry = self
            .partners
            .entry(id)
            .or_try_insert_with(async {
                Ok::<_, StoreError>(self.store.partner(id).await?.map(Arc::new))
            })
            .await
            .map_err(unshare)?;
        self.metrics
            .record_cache_lookup("partner", !entry.is_fresh());
        Ok(entry.into_value())
    }

    pub async fn subsystem(&self, id: Uuid) -> Result<Option<Arc<Subsystem>>, StoreError> {
        let entry = self
            .subsystems
            .entry(id)
            .or_try_insert_with(async {
                Ok::<_, StoreError>(self.store.subsystem(id).await?.map(Arc::new))
            })
            .await
            .map_err(unshare)?;
        self.metrics
            .record_cache_lookup("subsystem", !entry.is_fresh());
        Ok(entry.into_value())
    }

    /// A subsystem of `partner_id` named by its id or its code.
    pub async fn subsystem_of(
        &self,
        partner_id: Uuid,
        reference: &str,
    ) -> Result<Option<Arc<Subsystem>>, StoreError> {
        if let Ok(id) = Uuid::parse_str(reference) {
            let found = self.subsystem(id).await?;
            return Ok(found.filter(|subsystem| subsystem.partner_id == partner_id));
        }
        let key = (partner_id, reference.to_string());
        let entry = self
            .subsystem_codes
            .entry(key)
            .or_try_insert_with(async {
                Ok::<_, StoreError>(
                    self.store
                        .subsystem_by_code(partner_id, reference)
                        .await?
                        .map(Arc::new),
                )
            })
            .await
            .map_err(unshare)?;
        self.metrics
            .record_cache_lookup("subsystem", !entry.is_fresh());
        Ok(entry.into_value())
    }

    pub fn forget_all(&self) {
        self.partners.invalidate_all();
        self.subsystems.invalidate_all();
        self.subsystem_codes.invalidate_all();
    }
}

fn unshare(error: Arc<StoreError>) -> StoreError {
    StoreError::Unavailable(error.to_string())
}
