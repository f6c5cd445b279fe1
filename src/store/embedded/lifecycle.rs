//! The data lifecycle in the embedded store (`store::LifecycleStore`):
//! - `erasures`: `partner | erasure id` → the erasure's record (JSON); few, so the
//!   unfinished ones are found by a walk over all of them;
//! - `audit_log`: `micros | entry id` → the entry (JSON), in time order.
//!
//! Erasing is `erase`, forgetting joins `forget`.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::{
    AUDIT_LOG, ERASURES, EmbeddedStore, erase, forget, from_json, keys, storage_error, sweep,
    to_json,
};
use crate::model::{AuditEntry, Erasure};
use crate::rollups::Hour;
use crate::store::{AuditQuery, Erased, LifecycleStore, StoreError};

fn erasure_key(partner: Uuid, id: Uuid) -> Vec<u8> {
    keys::prefixed(partner, id.as_bytes())
}

fn audit_key(at: chrono::DateTime<chrono::Utc>, id: Uuid) -> Vec<u8> {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    let mut key = micros.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// Adds `erased` to the stored record of `erasure`, in the transaction that erased it.
pub(super) fn add_progress(
    transaction: &WriteTransaction,
    erasure: &Erasure,
    erased: Erased,
) -> Result<(), StoreError> {
    let mut table = transaction.open_table(ERASURES).map_err(storage_error)?;
    let key = erasure_key(erasure.partner_id, erasure.id);
    let stored = match table.get(key.as_slice()).map_err(storage_error)? {
        Some(bytes) => Some(from_json::<Erasure>(bytes.value())?),
        None => None,
    };
    let mut record = stored.unwrap_or_else(|| erasure.clone());
    record.events_deleted += erased.events;
    record.hours_recounted += erased.hours;
    table
        .insert(key.as_slice(), to_json(&record)?.as_slice())
        .map_err(storage_error)?;
    Ok(())
}

#[async_trait]
impl LifecycleStore for EmbeddedStore {
    async fn put_erasure(&self, erasure: &Erasure) -> Result<(), StoreError> {
        let (key, value) = (
            erasure_key(erasure.partner_id, erasure.id),
            to_json(erasure)?,
        );
        self.write(move |transaction| {
            let mut table = transaction.open_table(ERASURES).map_err(storage_error)?;
            table
                .insert(key.as_slice(), value.as_slice())
                .map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    async fn erasure(&self, partner: Uuid, id: Uuid) -> Result<Option<Erasure>, StoreError> {
        self.get_json(ERASURES, erasure_key(partner, id)).await
    }

    async fn erasures(&self, partner: Uuid) -> Result<Vec<Erasure>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(ERASURES).map_err(storage_error)?;
            let range = keys::owner_range(partner);
            let mut found = Vec::new();
            for row in table
                .range::<&[u8]>(keys::borrowed(&range))
                .map_err(storage_error)?
            {
                found.push(from_json(row.map_err(storage_error)?.1.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn unfinished_erasures(&self) -> Result<Vec<Erasure>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(ERASURES).map_err(storage_error)?;
            let mut found = Vec::new();
            for row in table.iter().map_err(storage_error)? {
                let erasure: Erasure = from_json(row.map_err(storage_error)?.1.value())?;
                if !erasure.status.is_finished() {
                    found.push(erasure);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn erase_hours(&self, erasure: &Erasure, hours: &[Hour]) -> Result<Erased, StoreError> {
        let (erasure, hours) = (erasure.clone(), hours.to_vec());
        self.blocking(move |database| {
            let doomed = erase::Doomed::Covered(&erasure);
            erase::erase_hours(database, erasure.partner_id, &hours, doomed)
        })
        .await
    }

    async fn sweep_expired(
        &self,
        partner: Uuid,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<Erased, StoreError> {
        self.blocking(move |database| sweep::sweep(database, partner, cutoff))
            .await
    }

    async fn forget_person(&self, erasure: &Erasure) -> Result<(), StoreError> {
        let (erasure, remembered) = (erasure.clone(), std::sync::Arc::clone(&self.remembered));
        self.write(move |transaction| forget::forget_person(transaction, &remembered, &erasure))
            .await
    }

    async fn users_of_anonymous(
        &self,
        partner: Uuid,
        anonymous: String,
    ) -> Result<Vec<String>, StoreError> {
        self.blocking(move |database| forget::users_of_anonymous(database, partner, &anonymous))
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let (key, value) = (audit_key(entry.at, entry.id), to_json(entry)?);
        self.write(move |transaction| {
            let mut table = transaction.open_table(AUDIT_LOG).map_err(storage_error)?;
            table
                .insert(key.as_slice(), value.as_slice())
                .map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let query = query.clone();
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(AUDIT_LOG).map_err(storage_error)?;
            let start = match query.after {
                Some((at, id)) => std::ops::Bound::Excluded(audit_key(at, id)),
                None => std::ops::Bound::Included(audit_key(query.from, Uuid::nil())),
            };
            let end = std::ops::Bound::Excluded(audit_key(query.to, Uuid::nil()));
            let mut found = Vec::new();
            for row in table
                .range::<&[u8]>(keys::borrowed(&(start, end)))
                .map_err(storage_error)?
            {
                let entry: AuditEntry = from_json(row.map_err(storage_error)?.1.value())?;
                if query
                    .partner
                    .is_none_or(|partner| partner == entry.partner_id)
                {
                    found.push(entry);
                    if found.len() == query.limit {
                        break;
                    }
                }
            }
            Ok(found)
        })
        .await
    }
}
