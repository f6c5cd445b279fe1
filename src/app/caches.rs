//! The request path's caches of stored records, built once per instance, and the handler
//! that drops them when an invalidation (local or from another instance) names them.

use std::sync::Arc;

use crate::auth::KeyVerifier;
use crate::config::Config;
use crate::redis::{Invalidation, invalidation};
use crate::reports::Generations;
use crate::schemas::SchemaRegistry;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// The request path's caches of stored records, and what drops them on a change.
pub(super) struct Caches {
    pub directory: Arc<Directory>,
    pub schemas: Arc<SchemaRegistry>,
    pub verifier: Arc<KeyVerifier>,
    pub report_generations: Arc<Generations>,
}

impl Caches {
    pub fn new(config: &Config, store: &Arc<dyn Store>, metrics: &Arc<Metrics>) -> Caches {
        Caches {
            directory: Arc::new(Directory::new(
                Arc::clone(store),
                config.limits.directory_cache_ttl,
                Arc::clone(metrics),
            )),
            schemas: Arc::new(SchemaRegistry::new(
                Arc::clone(store),
                config.schemas.cache_ttl,
                Arc::clone(metrics),
            )),
            verifier: Arc::new(KeyVerifier::new(
                Arc::clone(store),
                &config.auth,
                Arc::clone(metrics),
            )),
            report_generations: Arc::new(Generations::default()),
        }
    }

    pub fn invalidation_handler(&self) -> invalidation::Handler {
        let (directory, verifier, schemas, reports) = (
            Arc::clone(&self.directory),
            Arc::clone(&self.verifier),
            Arc::clone(&self.schemas),
            Arc::clone(&self.report_generations),
        );
        Arc::new(move |change| match change {
            Invalidation::Identities => {
                directory.forget_all();
                verifier.forget_all();
            }
            Invalidation::Schemas => schemas.forget_all(),
            Invalidation::LateEvents(partner) => reports.bump(partner),
            Invalidation::AllReports => reports.bump_all(),
        })
    }
}
