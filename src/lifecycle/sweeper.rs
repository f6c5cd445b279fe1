//! The retention sweeper: every `store.retention_sweep`, each partner with `retentionDays`
//! has its events past it deleted, with what was counted from them
//! (`LifecycleStore::sweep_expired`), and its cached reports dropped everywhere. Every
//! instance runs one; a sweep is idempotent, so two only repeat work. A partner's
//! changed retention applies from the next round.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::redis::{Invalidation, InvalidationBus};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Partners read per page while looking for those with a retention.
const PARTNERS_PER_PAGE: usize = 500;

pub struct Sweeper {
    pub store: Arc<dyn Store>,
    pub invalidations: InvalidationBus,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
}

pub fn spawn_sweeper(sweeper: Sweeper) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(sweeper.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = sweeper.sweep_all().await {
                sweeper
                    .metrics
                    .store_errors
                    .with_label_values(&["retention_sweep"])
                    .inc();
                tracing::warn!(%error, "the retention sweep failed; retrying next round");
            }
        }
    })
}

impl Sweeper {
    /// One round over every partner with a retention.
    pub async fn sweep_all(&self) -> Result<u64, StoreError> {
        let mut after = None;
        let mut deleted = 0;
        loop {
            let page = self.store.partners(after, PARTNERS_PER_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(deleted);
            };
            after = Some(last.id);
            for partner in &page {
                let Some(days) = partner.retention_days else {
                    continue;
                };
                let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
                let swept = self.store.sweep_expired(partner.id, cutoff).await?;
                if swept.events > 0 {
                    self.metrics.events_expired.inc_by(swept.events);
                    self.invalidations
                        .publish(Invalidation::LateEvents(partner.id))
                        .await;
                    tracing::info!(partner_id = %partner.id, events = swept.events, hours = swept.hours, "expired events deleted");
                }
                deleted += swept.events;
            }
        }
    }
}
