//! The metadata store over the embedded record tables (`records`): partners and
//! subsystems with their unique codes, API keys by id and by partner, event structures,
//! and each partner's event types.

use async_trait::async_trait;
use redb::ReadableDatabase;
use uuid::Uuid;

use super::records::{Save, claim_unique, existing, put_record};
use super::{
    API_KEY_IDS, API_KEYS, API_KEYS_BY_PARTNER, EVENT_SCHEMAS, EVENT_TYPES, EmbeddedStore,
    PARTNER_CODES, PARTNERS, SUBSYSTEM_CODES, SUBSYSTEMS, from_json, keys, storage_error, to_json,
};
use crate::model::{ApiKey, EventSchema, Partner, Subsystem};
use crate::store::{MetadataStore, StoreError};

/// `partner | event type`, with the nil id for global structures.
fn schema_key(partner_id: Option<Uuid>, event_type: &str) -> Vec<u8> {
    keys::prefixed(partner_id.unwrap_or(Uuid::nil()), event_type.as_bytes())
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
