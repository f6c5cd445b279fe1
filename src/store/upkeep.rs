//! Store upkeep: the background task that folds settled hours into rollups, for stores
//! whose writes leave that to later (Cassandra's counts, both stores' breakdown cells). Every instance runs one; folds are
//! idempotent, so two folding the same hour only repeat work.

use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::telemetry::Metrics;

/// Starts folding every `store.settle_interval()`, if the store wants it.
pub fn spawn_settler(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Option<JoinHandle<()>> {
    let interval = store.settle_interval()?;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.settle_rollups(Utc::now()).await {
                Ok(outcome) => {
                    metrics.rollup_hours_folded.inc_by(outcome.folded as u64);
                    metrics.rollup_hours_waiting.set(outcome.waiting as i64);
                    // Each failure was logged where it happened; the round went on.
                    metrics
                        .store_errors
                        .with_label_values(&["fold_rollup_hour"])
                        .inc_by(outcome.failed as u64);
                }
                Err(error) => {
                    metrics
                        .store_errors
                        .with_label_values(&["settle_rollups"])
                        .inc();
                    tracing::warn!(%error, "folding rollups failed; retrying next round");
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn the_embedded_store_gets_a_settler_for_its_breakdown_cells() {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let settler = spawn_settler(store, Arc::new(Metrics::new())).expect("a settler");
        settler.abort();
    }
}
