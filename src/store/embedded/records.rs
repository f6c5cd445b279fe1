//! The embedded store's record tables, whatever the record: JSON values by id, index
//! tables pointing at them (`get_indexed`, `list_indexed`), writes in one transaction, and
//! codes kept unique in their scope (`save_coded`, `claim_unique`). `metadata` implements
//! the metadata store with them.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    EmbeddedStore, PARTNER_CODES, PARTNERS, SUBSYSTEM_CODES, SUBSYSTEMS, Table, from_json, keys,
    storage_error, to_json,
};
use crate::model::{Partner, Subsystem};
use crate::store::{HasCode, StoreError};

impl EmbeddedStore {
    pub(super) async fn get_json<T>(
        &self,
        table: Table,
        key: Vec<u8>,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(table).map_err(storage_error)?;
            let value = table.get(key.as_slice()).map_err(storage_error)?;
            value.map(|bytes| from_json(bytes.value())).transpose()
        })
        .await
    }

    /// Follows an index row (`index[key] = id`) to the record it names.
    pub(super) async fn get_indexed<T>(
        &self,
        index: Table,
        records: Table,
        key: Vec<u8>,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let index = transaction.open_table(index).map_err(storage_error)?;
            let Some(id) = index.get(key.as_slice()).map_err(storage_error)? else {
                return Ok(None);
            };
            let records = transaction.open_table(records).map_err(storage_error)?;
            let value = records.get(id.value()).map_err(storage_error)?;
            value.map(|bytes| from_json(bytes.value())).transpose()
        })
        .await
    }

    /// Records whose ids are listed under `owner` in `index` (keys `owner | …`, values ids).
    pub(super) async fn list_indexed<T>(
        &self,
        index: Table,
        records: Table,
        owner: Uuid,
    ) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let index = transaction.open_table(index).map_err(storage_error)?;
            let records = transaction.open_table(records).map_err(storage_error)?;
            let mut items = Vec::new();
            for row in index
                .range::<&[u8]>(keys::borrowed(&keys::owner_range(owner)))
                .map_err(storage_error)?
            {
                let (_, id) = row.map_err(storage_error)?;
                if let Some(bytes) = records.get(id.value()).map_err(storage_error)? {
                    items.push(from_json(bytes.value())?);
                }
            }
            Ok(items)
        })
        .await
    }

    pub(super) async fn write<F>(&self, work: F) -> Result<(), StoreError>
    where
        F: FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        self.blocking(move |database| {
            let transaction = database.begin_write().map_err(storage_error)?;
            work(&transaction)?;
            transaction.commit().map_err(storage_error)
        })
        .await
    }
}

/// A record whose code is unique in its scope: partners (globally), subsystems (within
/// their partner). Both are saved the same way, see `save_coded`.
pub(super) trait CodedRecord:
    HasCode + Serialize + DeserializeOwned + Clone + Send + 'static
{
    const RECORDS: Table;
    const CODES: Table;
    fn id(&self) -> Uuid;
    /// The key of its row in `CODES`.
    fn code_key(&self) -> Vec<u8>;
}

impl CodedRecord for Partner {
    const RECORDS: Table = PARTNERS;
    const CODES: Table = PARTNER_CODES;
    fn id(&self) -> Uuid {
        self.id
    }
    fn code_key(&self) -> Vec<u8> {
        self.code.as_str().as_bytes().to_vec()
    }
}

impl CodedRecord for Subsystem {
    const RECORDS: Table = SUBSYSTEMS;
    const CODES: Table = SUBSYSTEM_CODES;
    fn id(&self) -> Uuid {
        self.id
    }
    fn code_key(&self) -> Vec<u8> {
        subsystem_code_key(self)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Save {
    Insert,
    Update,
}

impl EmbeddedStore {
    /// Claims the record's code (releasing the one it had), then writes the record, in one
    /// transaction: a taken code changes nothing.
    pub(super) async fn save_coded<R: CodedRecord>(
        &self,
        record: &R,
        save: Save,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        let bytes = to_json(&record)?;
        self.write(move |transaction| {
            let previous_key = match save {
                Save::Insert => None,
                Save::Update => {
                    Some(existing::<R>(transaction, R::RECORDS, record.id())?.code_key())
                }
            };
            claim_unique(
                transaction,
                R::CODES,
                record.id(),
                previous_key.as_deref(),
                &record.code_key(),
                || record.code_taken_message(),
            )?;
            put_record(transaction, R::RECORDS, record.id(), &bytes)
        })
        .await
    }
}

/// Points `index[new_key]` at `id`, failing if another record holds it, and drops `old_key`.
pub(super) fn claim_unique(
    transaction: &WriteTransaction,
    index: Table,
    id: Uuid,
    old_key: Option<&[u8]>,
    new_key: &[u8],
    conflict: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    let mut index = transaction.open_table(index).map_err(storage_error)?;
    if let Some(holder) = index.get(new_key).map_err(storage_error)?
        && holder.value() != id.as_bytes()
    {
        return Err(StoreError::Conflict(conflict()));
    }
    if let Some(old_key) = old_key.filter(|old| *old != new_key) {
        index.remove(old_key).map_err(storage_error)?;
    }
    index
        .insert(new_key, id.as_bytes().as_slice())
        .map_err(storage_error)?;
    Ok(())
}

pub(super) fn put_record(
    transaction: &WriteTransaction,
    table: Table,
    id: Uuid,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut table = transaction.open_table(table).map_err(storage_error)?;
    table
        .insert(id.as_bytes().as_slice(), bytes)
        .map_err(storage_error)?;
    Ok(())
}

pub(super) fn existing<T: DeserializeOwned>(
    transaction: &WriteTransaction,
    table: Table,
    id: Uuid,
) -> Result<T, StoreError> {
    let table = transaction.open_table(table).map_err(storage_error)?;
    let value = table.get(id.as_bytes().as_slice()).map_err(storage_error)?;
    let bytes = value.ok_or(StoreError::NotFound)?;
    from_json(bytes.value())
}

fn subsystem_code_key(subsystem: &Subsystem) -> Vec<u8> {
    keys::prefixed(subsystem.partner_id, subsystem.code.as_str().as_bytes())
}
