use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    API_KEY_IDS, API_KEYS, API_KEYS_BY_PARTNER, EVENT_SCHEMAS, EVENT_TYPES, EmbeddedStore,
    PARTNER_CODES, PARTNERS, SUBSYSTEM_CODES, SUBSYSTEMS, Table, from_json, keys, storage_error,
    to_json,
};
use crate::model::{ApiKey, EventSchema, Partner, Subsystem};
use crate::store::{HasCode, MetadataStore, StoreError};

impl EmbeddedStore {
    async fn get_json<T>(&self, table: Table, key: Vec<u8>) -> Result<Option<T>, StoreError>
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
    async fn get_indexed<T>(
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
    async fn list_indexed<T>(
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

    async fn write<F>(&self, work: F) -> Result<(), StoreError>
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
trait CodedRecord: HasCode + Serialize + DeserializeOwned + Clone + Send + 'static {
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
enum Save {
    Insert,
    Update,
}

impl EmbeddedStore {
    /// Claims the record's code (releasing the one it had), then writes the record, in one
    /// transaction: a taken code changes nothing.
    async fn save_coded<R: CodedRecord>(&self, record: &R, save: Save) -> Result<(), StoreError> {
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
fn claim_unique(
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

fn put_record(
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

fn existing<T: DeserializeOwned>(
    transaction: &WriteTransaction,
    table: Table,
    id: Uuid,
) -> Result<T, StoreError> {
    let table = transaction.open_table(table).map_err(storage_error)?;
    let value = table.get(id.as_bytes().as_slice()).map_err(storage_error)?;
    let bytes = value.ok_or(StoreError::NotFound)?;
    from_json(bytes.value())
}

/// `partner | event type`, with the nil id for global structures.
fn schema_key(partner_id: Option<Uuid>, event_type: &str) -> Vec<u8> {
    keys::prefixed(partner_id.unwrap_or(Uuid::nil()), event_type.as_bytes())
}

fn subsystem_code_key(subsystem: &Subsystem) -> Vec<u8> {
    keys::prefixed(subsystem.partner_id, subsystem.code.as_str().as_bytes())
}

#[async_trait]
impl MetadataStore for EmbeddedStore {
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.save_coded(partner, Save::Insert).await
    }

    async fn update_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.save_coded(partner, Save::Update).await
    }

    async fn partner(&self, id: Uuid) -> Result<Option<Partner>, StoreError> {
        self.get_json(PARTNERS, id.as_bytes().to_vec()).await
    }

    async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError> {
        self.get_indexed(PARTNER_CODES, PARTNERS, code.as_bytes().to_vec())
            .await
    }

    async fn partners(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Partner>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(PARTNERS).map_err(storage_error)?;
            let start = after.map(|id| id.as_bytes().to_vec());
            let rows = match &start {
                Some(after) => table.range::<&[u8]>((
                    std::ops::Bound::Excluded(after.as_slice()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&[u8]>(..),
            }
            .map_err(storage_error)?;
            let mut partners = Vec::with_capacity(limit);
            for row in rows.take(limit) {
                let (_, value) = row.map_err(storage_error)?;
                partners.push(from_json(value.value())?);
            }
            Ok(partners)
        })
        .await
    }

    async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.save_coded(subsystem, Save::Insert).await
    }

    async fn update_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.save_coded(subsystem, Save::Update).await
    }

    async fn subsystem(&self, id: Uuid) -> Result<Option<Subsystem>, StoreError> {
        self.get_json(SUBSYSTEMS, id.as_bytes().to_vec()).await
    }

    async fn subsystem_by_code(
        &self,
        partner_id: Uuid,
        code: &str,
    ) -> Result<Option<Subsystem>, StoreError> {
        self.get_indexed(
            SUBSYSTEM_CODES,
            SUBSYSTEMS,
            keys::prefixed(partner_id, code.as_bytes()),
        )
        .await
    }

    async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, StoreError> {
        self.list_indexed(SUBSYSTEM_CODES, SUBSYSTEMS, partner_id)
            .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        let bytes = to_json(&key)?;
        self.write(move |transaction| {
            claim_unique(
                transaction,
                API_KEY_IDS,
                key.id,
                None,
                key.key_id.as_bytes(),
                || "API key id collision".to_string(),
            )?;
            let mut by_partner = transaction
                .open_table(API_KEYS_BY_PARTNER)
                .map_err(storage_error)?;
            let index_key = keys::prefixed(key.partner_id, key.id.as_bytes());
            by_partner
                .insert(index_key.as_slice(), key.id.as_bytes().as_slice())
                .map_err(storage_error)?;
            drop(by_partner);
            put_record(transaction, API_KEYS, key.id, &bytes)
        })
        .await
    }

    async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        let bytes = to_json(&key)?;
        self.write(move |transaction| {
            let _: ApiKey = existing(transaction, API_KEYS, key.id)?;
            put_record(transaction, API_KEYS, key.id, &bytes)
        })
        .await
    }

    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        self.get_json(API_KEYS, id.as_bytes().to_vec()).await
    }

    async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.get_indexed(API_KEY_IDS, API_KEYS, key_id.as_bytes().to_vec())
            .await
    }

    async fn api_keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        self.list_indexed(API_KEYS_BY_PARTNER, API_KEYS, partner_id)
            .await
    }

    async fn put_schema(&self, schema: &EventSchema) -> Result<(), StoreError> {
        let key = schema_key(schema.partner_id, &schema.event_type);
        let bytes = to_json(schema)?;
        self.write(move |transaction| {
            let mut table = transaction
                .open_table(EVENT_SCHEMAS)
                .map_err(storage_error)?;
            table
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<Option<EventSchema>, StoreError> {
        self.get_json(EVENT_SCHEMAS, schema_key(partner_id, event_type))
            .await
    }

    async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, StoreError> {
        let owner = partner_id.unwrap_or(Uuid::nil());
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction
                .open_table(EVENT_SCHEMAS)
                .map_err(storage_error)?;
            let mut schemas = Vec::new();
            for row in table
                .range::<&[u8]>(keys::borrowed(&keys::owner_range(owner)))
                .map_err(storage_error)?
            {
                let (_, value) = row.map_err(storage_error)?;
                schemas.push(from_json(value.value())?);
            }
            Ok(schemas)
        })
        .await
    }

    async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<bool, StoreError> {
        let key = schema_key(partner_id, event_type);
        self.blocking(move |database| {
            let transaction = database.begin_write().map_err(storage_error)?;
            let existed = {
                let mut table = transaction
                    .open_table(EVENT_SCHEMAS)
                    .map_err(storage_error)?;
                table
                    .remove(key.as_slice())
                    .map_err(storage_error)?
                    .is_some()
            };
            transaction.commit().map_err(storage_error)?;
            Ok(existed)
        })
        .await
    }

    async fn event_types(&self, partner_id: Uuid) -> Result<Vec<String>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction.open_table(EVENT_TYPES).map_err(storage_error)?;
            let mut types = Vec::new();
            for row in table
                .range::<&[u8]>(keys::borrowed(&keys::owner_range(partner_id)))
                .map_err(storage_error)?
            {
                let (key, _) = row.map_err(storage_error)?;
                let name = std::str::from_utf8(&key.value()[16..])
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                types.push(name.to_string());
            }
            Ok(types)
        })
        .await
    }

    async fn add_event_type(&self, partner_id: Uuid, event_type: &str) -> Result<(), StoreError> {
        let key = keys::prefixed(partner_id, event_type.as_bytes());
        self.write(move |transaction| {
            let mut table = transaction.open_table(EVENT_TYPES).map_err(storage_error)?;
            table
                .insert(key.as_slice(), [].as_slice())
                .map_err(storage_error)?;
            Ok(())
        })
        .await
    }
}
