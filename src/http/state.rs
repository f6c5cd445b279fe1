use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::{AdminToken, KeyVerifier};
use crate::config::Config;
use crate::ingest::Ingestor;
use crate::limits::{RateLimits, ReplayGuard};
use crate::redis::{Invalidation, InvalidationBus, Redis};
use crate::reports::ReportService;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// Everything handlers share. It owns the ingest queue's sender, so dropping the router
/// (at shutdown) is what closes the queue and lets the writers drain.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub verifier: Arc<KeyVerifier>,
    pub admin_token: AdminToken,
    pub ingestor: Ingestor,
    pub rate_limits: RateLimits,
    pub replay_guard: ReplayGuard,
    pub invalidations: InvalidationBus,
    pub redis: Option<Arc<Redis>>,
    pub reports: ReportService,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins, so readiness fails before the listener closes.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// After a change: drop the affected caches here at once and on every other instance.
    pub async fn invalidate(&self, change: Invalidation) {
        self.invalidations.publish(change).await;
    }
}
