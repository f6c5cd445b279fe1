use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::body::BodyGuard;
use crate::ingest::{Admission, Ingestor, Submission};
use crate::lifecycle::{AuditLog, Erasures};
use crate::manage::Management;
use crate::redis::Redis;
use crate::reports::ReportService;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// Everything handlers share: the use-cases they call. It owns the ingest queue's sender
/// (in `ingestor`), so dropping the router (at shutdown) is what closes the queue and
/// lets the writers drain.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub authenticator: Authenticator,
    pub admission: Admission,
    pub ingestor: Ingestor,
    pub management: Management,
    pub erasures: Erasures,
    pub audit: AuditLog,
    pub reports: Arc<ReportService>,
    /// The in-flight budget and deadline every ingest body is read under.
    pub bodies: BodyGuard,
    pub redis: Option<Arc<Redis>>,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins, so readiness fails before the listener closes.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    /// The ingest use case, over this instance's services.
    pub fn submission(&self) -> Submission<'_> {
        Submission {
            authenticator: &self.authenticator,
            admission: &self.admission,
            ingestor: &self.ingestor,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
