//! Management use-cases (admin token): partners, subsystems, API keys and event
//! structures. Each change is checked by its module's rules, written to the store, and
//! then the caches it affects are dropped, here at once and on every other instance
//! through the invalidation bus. HTTP handlers (and any future CLI) call these in one line.
//! `rollups` holds the operator's rebuild and verify of report rollups.

mod keys;
mod partners;
pub mod rollups;
mod schemas;
mod subsystems;

use std::sync::Arc;

use uuid::Uuid;

pub use keys::IssuedKey;
pub use schemas::{SavedSchema, SchemaRequest};

use crate::error::{Failure, Refusal};
use crate::redis::{Invalidation, InvalidationBus};
use crate::store::Store;

pub struct Management {
    store: Arc<dyn Store>,
    invalidations: InvalidationBus,
    pbkdf2_iterations: u32,
}

impl Management {
    pub fn new(
        store: Arc<dyn Store>,
        invalidations: InvalidationBus,
        pbkdf2_iterations: u32,
    ) -> Management {
        Management {
            store,
            invalidations,
            pbkdf2_iterations,
        }
    }

    /// After a change: drop the affected caches here at once and on every other instance.
    async fn invalidate(&self, change: Invalidation) {
        self.invalidations.publish(change).await;
    }
}

/// `record`, or a 404 naming what was looked for.
fn found<T>(record: Option<T>, what: &str, id: Uuid) -> Result<T, Failure> {
    record.ok_or_else(|| Refusal::NotFound(format!("no {what} with id '{id}'")).into())
}
