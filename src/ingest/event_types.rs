//! The bound on distinct event types per partner (`ingest.max_event_types_per_partner`).
//! Every type adds rows to the rollups of each hour it is sent in and to every report over
//! them, so one partner sending an unbounded stream of made-up types would make its
//! rollups, and the folds and reports every partner shares, grow without end. Amplitude
//! and Mixpanel cap event names per project the same way.
//!
//! The types a partner has sent are kept in the store (`MetadataStore::event_types`), so
//! the bound holds across restarts and instances, and cached here per partner: a known
//! type costs a hash lookup. A type not in the cache re-reads the partner's types from
//! the store before it is admitted and recorded, one at a time per partner in this
//! process; two instances admitting different new types at the same moment can overshoot
//! the bound by at most one type each. A partner at the bound is refused from the cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// Partners whose types are cached; a partner not seen for `IDLE` is dropped and read again.
const CACHED_PARTNERS: u64 = 100_000;
const IDLE: Duration = Duration::from_secs(3_600);

/// Why an event's type was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum TypeRefused {
    #[error("the partner already has {limit} distinct event types")]
    TooMany { limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct EventTypes {
    store: Arc<dyn Store>,
    limit: usize,
    known: moka::future::Cache<Uuid, Arc<RwLock<HashSet<String>>>>,
}

impl EventTypes {
    pub fn new(store: Arc<dyn Store>, limit: usize) -> EventTypes {
        EventTypes {
            store,
            limit,
            known: moka::future::Cache::builder()
                .max_capacity(CACHED_PARTNERS)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// Admits `event_type` for `partner`: a type it has sent before, or a new one while it
    /// has fewer than the bound (recorded before this returns).
    pub async fn admit(&self, partner: Uuid, event_type: &str) -> Result<(), TypeRefused> {
        let types = self
            .known
            .try_get_with(partner, async {
                let stored = self.store.event_types(partner).await?;
                Ok::<_, StoreError>(Arc::new(RwLock::new(stored.into_iter().collect())))
            })
            .await
            .map_err(|error: Arc<StoreError>| StoreError::clone(&error))?;
        {
            let known = types.read().await;
            if known.contains(event_type) {
                return Ok(());
            }
            if known.len() >= self.limit {
                return Err(TypeRefused::TooMany { limit: self.limit });
            }
        }
        let mut known = types.write().await;
        if known.contains(event_type) {
            return Ok(());
        }
        // Another instance may have recorded types since this cache was filled.
        known.extend(self.store.event_types(partner).await?);
        if known.contains(event_type) {
            return Ok(());
        }
        if known.len() >= self.limit {
            return Err(TypeRefused::TooMany { limit: self.limit });
        }
        self.store.add_event_type(partner, event_type).await?;
        known.insert(event_type.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn known_types_pass_and_new_ones_stop_at_the_bound_across_instances() {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let partner = Uuid::now_v7();
        let first = EventTypes::new(Arc::clone(&store), 3);
        let second = EventTypes::new(Arc::clone(&store), 3);
        first.admit(partner, "a").await.unwrap();
        first.admit(partner, "a").await.unwrap();
        second.admit(partner, "b").await.unwrap();
        // `first` cached {a}; it reads `b` from the store before admitting `c`.
        first.admit(partner, "c").await.unwrap();
        assert!(matches!(
            first.admit(partner, "d").await,
            Err(TypeRefused::TooMany { limit: 3 })
        ));
        assert!(matches!(
            second.admit(partner, "d").await,
            Err(TypeRefused::TooMany { .. })
        ));
        second.admit(partner, "c").await.unwrap();
        EventTypes::new(Arc::clone(&store), 3)
            .admit(Uuid::now_v7(), "d")
            .await
            .expect("another partner has its own bound");
        let mut stored = store.event_types(partner).await.unwrap();
        stored.sort();
        assert_eq!(stored, ["a", "b", "c"]);
    }
}
