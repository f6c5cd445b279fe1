//! The audit log: what the use cases record (who erased, exported or changed the
//! retention of which partner's data) and the admin reads back, a page at a time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{AuditAction, AuditEntry};
use crate::store::{AuditQuery, Store, StoreError};

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
}

/// One page of the log, and where the next starts (`None`: the last page).
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next: Option<(DateTime<Utc>, Uuid)>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>) -> AuditLog {
        AuditLog { store }
    }

    /// Writes an entry, before the action it records takes effect: an action the log
    /// cannot show is not taken.
    pub async fn record(
        &self,
        partner: Uuid,
        action: AuditAction,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry::new(partner, action, actor, details);
        self.store.append_audit(&entry).await
    }

    pub async fn page(&self, query: AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = query.limit;
        let items = self.store.audit(&query).await?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|last| (last.at, last.id)))
            .flatten();
        Ok(AuditPage { items, next })
    }
}
