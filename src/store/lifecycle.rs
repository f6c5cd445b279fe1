//! What the data lifecycle keeps in a store (API.md, "Data lifecycle"): erasure jobs with
//! their receipts, the audit log, and the erasure of one person's events from one day's
//! hours, recounting what was counted from them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::model::{AuditEntry, Erasure};
use crate::rollups::Hour;

/// What erasing some hours did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub events: u64,
    /// Hours that held erased events, recounted without them.
    pub hours: u64,
}

/// A page of the audit log, ascending by time.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub partner: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Start after this entry (its time and id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: usize,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Inserts or replaces an erasure's record.
    async fn put_erasure(&self, erasure: &Erasure) -> Result<(), StoreError>;
    async fn erasure(&self, partner: Uuid, id: Uuid) -> Result<Option<Erasure>, StoreError>;
    /// The partner's erasures, oldest first.
    async fn erasures(&self, partner: Uuid) -> Result<Vec<Erasure>, StoreError>;
    /// Every partner's erasures not done or failed yet: the jobs to run or resume.
    async fn unfinished_erasures(&self) -> Result<Vec<Erasure>, StoreError>;

    /// Deletes the events of `hours` (all in one UTC day) that `erasure` covers from every
    /// table, and recounts those hours (and their day) without them; what it did is added
    /// to the erasure's record (on the embedded store in the same transaction, so a crash
    /// never counts a deletion twice or not at all).
    async fn erase_hours(&self, erasure: &Erasure, hours: &[Hour]) -> Result<Erased, StoreError>;

    /// Deletes the partner's events before `cutoff` (on the embedded store whole hours,
    /// those ending at or before it; on Cassandra whole UTC days), with everything counted
    /// from them, in bounded steps; what it deleted.
    async fn sweep_expired(
        &self,
        partner: Uuid,
        cutoff: DateTime<Utc>,
    ) -> Result<Erased, StoreError>;

    /// Forgets the person's joins (the user's anonymous ids, or the anonymous id's join
    /// and conflicts), in the store and in what its writers remember.
    async fn forget_person(&self, erasure: &Erasure) -> Result<(), StoreError>;

    /// The users an anonymous id was seen with: its join's, then its conflicts'.
    async fn users_of_anonymous(
        &self,
        partner: Uuid,
        anonymous: String,
    ) -> Result<Vec<String>, StoreError>;

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}
