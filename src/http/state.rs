use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::{AdminToken, KeyVerifier};
use crate::config::Config;
use crate::ingest::Ingestor;
use crate::limits::RateLimiter;
use crate::reports::ReportService;
use crate::schemas::SchemaRegistry;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// Everything handlers share. It owns the ingest queue's sender, so dropping the router
/// (at shutdown) is what closes the queue and lets the writers drain.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub verifier: KeyVerifier,
    pub admin_token: AdminToken,
    pub ingestor: Ingestor,
    pub rate_limiter: RateLimiter,
    pub reports: ReportService,
    pub schemas: Arc<SchemaRegistry>,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins, so readiness fails before the listener closes.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// After any change to partners, subsystems or keys: stop trusting cached lookups.
    pub fn forget_cached_identities(&self) {
        self.directory.forget_all();
        self.verifier.forget_all();
    }
}
