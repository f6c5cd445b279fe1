//! Partners, subsystems, API keys and event structures. Records are stored whole as JSON
//! (`record`); uniqueness of codes and key ids is claimed with lightweight transactions,
//! and listings read small index partitions, then the records they name.

use std::future::Future;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::CassandraStore;
use crate::model::{ApiKey, EventSchema, Partner, Subsystem};
use crate::store::{HasCode, MetadataStore, StoreError};

/// Record reads a listing keeps in flight.
const LISTING_CONCURRENCY: usize = 16;

impl CassandraStore {
    /// The JSON `record` of the single row `statement` selects, decoded.
    async fn record<T: DeserializeOwned>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<T>, StoreError> {
        let rows: Vec<(String,)> = self.select(statement, values).await?;
        rows.into_iter()
            .next()
            .map(|(json,)| from_json(&json))
            .transpose()
    }

    /// The records of `ids`, in the order given, skipping ids whose record is gone.
    async fn records_of<T: DeserializeOwned + Send>(
        &self,
        statement: &PreparedStatement,
        ids: Vec<Uuid>,
    ) -> Result<Vec<T>, StoreError> {
        let records: Vec<Option<T>> = futures::stream::iter(ids)
            .map(|id| self.record(statement, (id,)))
            .buffered(LISTING_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// Points a unique index row at `id`. `Ok` if it is free or already ours (a retry).
    async fn claim_unique(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        holder_column: &str,
        id: Uuid,
        conflict: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        let outcome = self.transaction(statement, values).await?;
        if outcome.applied || outcome.existing_uuid(holder_column) == Some(id) {
            Ok(())
        } else {
            Err(StoreError::Conflict(conflict()))
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// Saves a record under a possibly changed unique code: claim the new code first (a
/// taken code changes nothing), write the record, then release the old code.
async fn recode<T>(
    code_changed: bool,
    claim: impl Future<Output = Result<(), StoreError>>,
    write: impl Future<Output = Result<(), StoreError>>,
    release: impl Future<Output = Result<T, StoreError>>,
) -> Result<(), StoreError> {
    if code_changed {
        claim.await?;
    }
    write.await?;
    if code_changed {
        release.await?;
    }
    Ok(())
}

#[async_trait]
impl MetadataStore for CassandraStore {
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        let code = partner.code.as_str();
        let record = to_json(partner)?;
        self.claim_unique(
            &self.statements.claim_partner_code,
            (code, partner.id),
            "partner_id",
            partner.id,
            || partner.code_taken_message(),
        )
        .await?;
        self.execute(&self.statements.insert_partner, (partner.id, code, &record))
            .await?;
        self.execute(&self.statements.insert_partner_id, (partner.id,))
            .await
    }

    async fn update_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        let previous = self
            .partner(partner.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (code, old_code) = (partner.code.as_str(), previous.code.as_str());
        let record = to_json(partner)?;
        let statements = &self.statements;
        recode(
            code != old_code,
            self.claim_unique(
                &statements.claim_partner_code,
                (code, partner.id),
                "partner_id",
                partner.id,
                || partner.code_taken_message(),
            ),
            self.execute(&statements.insert_partner, (partner.id, code, &record)),
            self.transaction(&statements.release_partner_code, (old_code, partner.id)),
        )
        .await?;
        self.retention_days.invalidate(&partner.id).await;
        Ok(())
    }

    async fn partner(&self, id: Uuid) -> Result<Option<Partner>, StoreError> {
        self.record(&self.statements.select_partner, (id,)).await
    }

    async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .select(&self.statements.select_partner_id_by_code, (code,))
            .await?;
        match ids.first() {
            Some((id,)) => self.partner(*id).await,
            None => Ok(None),
        }
    }

    async fn partners(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Partner>, StoreError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<(Uuid,)> = self
            .select(
                &self.statements.list_partner_ids,
                (after.unwrap_or(Uuid::nil()), limit),
            )
            .await?;
        let ids = ids.into_iter().map(|(id,)| id).collect();
        self.records_of(&self.statements.select_partner, ids).await
    }

    async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        let code = subsystem.code.as_str();
        self.claim_unique(
            &self.statements.claim_subsystem_code,
            (subsystem.partner_id, code, subsystem.id),
            "subsystem_id",
            subsystem.id,
            || subsystem.code_taken_message(),
        )
        .await?;
        let record = to_json(subsystem)?;
        self.execute(
            &self.statements.insert_subsystem,
            (subsystem.id, subsystem.partner_id, code, &record),
        )
        .await
    }

    async fn update_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        let previous = self
            .subsystem(subsystem.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (id, partner_id) = (subsystem.id, subsystem.partner_id);
        let (code, old_code) = (subsystem.code.as_str(), previous.code.as_str());
        let record = to_json(subsystem)?;
        let statements = &self.statements;
        recode(
            code != old_code,
            self.claim_unique(
                &statements.claim_subsystem_code,
                (partner_id, code, id),
                "subsystem_id",
                id,
                || subsystem.code_taken_message(),
            ),
            self.execute(
                &statements.insert_subsystem,
                (id, partner_id, code, &record),
            ),
            self.transaction(
                &statements.release_subsystem_code,
                (partner_id, old_code, id),
            ),
        )
        .await
    }

    async fn subsystem(&self, id: Uuid) -> Result<Option<Subsystem>, StoreError> {
        self.record(&self.statements.select_subsystem, (id,)).await
    }

    async fn subsystem_by_code(
        &self,
        partner_id: Uuid,
        code: &str,
    ) -> Result<Option<Subsystem>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .select(
                &self.statements.select_subsystem_id_by_code,
                (partner_id, code),
            )
            .await?;
        match ids.first() {
            Some((id,)) => self.subsystem(*id).await,
            None => Ok(None),
        }
    }

    async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .select(&self.statements.list_subsystem_ids, (partner_id,))
            .await?;
        let ids = ids.into_iter().map(|(id,)| id).collect();
        self.records_of(&self.statements.select_subsystem, ids)
            .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.claim_unique(
            &self.statements.claim_api_key_id,
            (key.key_id.as_str(), key.id),
            "api_key_id",
            key.id,
            || "API key id collision".to_string(),
        )
        .await?;
        let record = to_json(key)?;
        self.execute(
            &self.statements.insert_api_key,
            (key.id, key.partner_id, key.key_id.as_str(), &record),
        )
        .await?;
        self.execute(
            &self.statements.insert_api_key_by_partner,
            (key.partner_id, key.id),
        )
        .await
    }

    async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        if self.api_key(key.id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let record = to_json(key)?;
        self.execute(
            &self.statements.insert_api_key,
            (key.id, key.partner_id, key.key_id.as_str(), &record),
        )
        .await
    }

    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        self.record(&self.statements.select_api_key, (id,)).await
    }

    async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .select(&self.statements.select_api_key_by_key_id, (key_id,))
            .await?;
        match ids.first() {
            Some((id,)) => self.api_key(*id).await,
            None => Ok(None),
        }
    }

    async fn api_keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .select(&self.statements.list_api_key_ids, (partner_id,))
            .await?;
        let ids = ids.into_iter().map(|(id,)| id).collect();
        self.records_of(&self.statements.select_api_key, ids).await
    }

    async fn put_schema(&self, schema: &EventSchema) -> Result<(), StoreError> {
        let record = to_json(schema)?;
        self.execute(
            &self.statements.insert_schema,
            (
                schema.partner_id.unwrap_or(Uuid::nil()),
                schema.event_type.as_str(),
                &record,
            ),
        )
        .await
    }

    async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<Option<EventSchema>, StoreError> {
        self.record(
            &self.statements.select_schema,
            (partner_id.unwrap_or(Uuid::nil()), event_type),
        )
        .await
    }

    async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, StoreError> {
        let records: Vec<(String,)> = self
            .select(
                &self.statements.list_schemas,
                (partner_id.unwrap_or(Uuid::nil()),),
            )
            .await?;
        records.iter().map(|(json,)| from_json(json)).collect()
    }

    async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<bool, StoreError> {
        let outcome = self
            .transaction(
                &self.statements.delete_schema,
                (partner_id.unwrap_or(Uuid::nil()), event_type),
            )
            .await?;
        Ok(outcome.applied)
    }

    async fn event_types(&self, partner_id: Uuid) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self
            .select(&self.statements.select_event_types, (partner_id,))
            .await?;
        Ok(rows.into_iter().map(|(event_type,)| event_type).collect())
    }

    async fn add_event_type(&self, partner_id: Uuid, event_type: &str) -> Result<(), StoreError> {
        self.execute(&self.statements.insert_event_type, (partner_id, event_type))
            .await
    }
}
