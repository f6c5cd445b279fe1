//! Partner and subsystem lookups for the request path, cached briefly in memory.
//! Management changes call `forget_all` (here at once, elsewhere through Redis).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::suppressed::Suppressed;
use crate::cache::ReadThrough;
use crate::model::{Partner, Subsystem};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

const MAX_ENTRIES: u64 = 50_000;

pub struct Directory {
    store: Arc<dyn Store>,
    partners: ReadThrough<Uuid, Option<Arc<Partner>>>,
    subsystems: ReadThrough<Uuid, Option<Arc<Subsystem>>>,
    subsystem_codes: ReadThrough<(Uuid, String), Option<Arc<Subsystem>>>,
    /// Each partner's suppressed people (from its erasures), dropped with the rest.
    suppressions: ReadThrough<Uuid, Arc<Suppressed>>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, metrics: Arc<Metrics>) -> Directory {
        Directory {
            store,
            partners: ReadThrough::new("partner", MAX_ENTRIES, ttl, Arc::clone(&metrics)),
            subsystems: ReadThrough::new("subsystem", MAX_ENTRIES, ttl, Arc::clone(&metrics)),
            subsystem_codes: ReadThrough::new("subsystem", MAX_ENTRIES, ttl, Arc::clone(&metrics)),
            suppressions: ReadThrough::new("suppressions", MAX_ENTRIES, ttl, metrics),
        }
    }

    pub async fn partner(&self, id: Uuid) -> Result<Option<Arc<Partner>>, StoreError> {
        self.partners
            .get_or_load(id, || async move {
                Ok(self.store.partner(id).await?.map(Arc::new))
            })
            .await
            .map_err(unshare)
    }

    pub async fn subsystem(&self, id: Uuid) -> Result<Option<Arc<Subsystem>>, StoreError> {
        self.subsystems
            .get_or_load(id, || async move {
                Ok(self.store.subsystem(id).await?.map(Arc::new))
            })
            .await
            .map_err(unshare)
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
        let load = || async move {
            let found = self.store.subsystem_by_code(partner_id, reference).await?;
            Ok(found.map(Arc::new))
        };
        self.subsystem_codes
            .get_or_load((partner_id, reference.to_string()), load)
            .await
            .map_err(unshare)
    }

    /// The people whose new events `partner`'s erasures asked to drop.
    pub async fn suppressed(&self, partner: Uuid) -> Result<Arc<Suppressed>, StoreError> {
        self.suppressions
            .get_or_load(partner, || async move {
                let erasures = self.store.erasures(partner).await?;
                Ok(Arc::new(Suppressed::of(&erasures)))
            })
            .await
            .map_err(unshare)
    }

    pub fn forget_all(&self) {
        self.suppressions.forget_all();
        self.partners.forget_all();
        self.subsystems.forget_all();
        self.subsystem_codes.forget_all();
    }
}

/// A load failure shared by every waiter of a single-flight lookup, as it was.
pub fn unshare(error: Arc<StoreError>) -> StoreError {
    StoreError::clone(&error)
}
