use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::Management;
use crate::error::{Failure, FieldErrors, Refusal};
use crate::model::{EventSchema, SchemaMode, check_event_type};
use crate::redis::Invalidation;
use crate::schemas::compile;

/// `PUT …/schemas/{eventType}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    /// A JSON Schema (2020-12) for the events' `properties`.
    #[schema(schema_with = crate::model::json_schema_document)]
    pub schema: Value,
    #[serde(default)]
    pub mode: SchemaMode,
}

/// A saved structure, and whether it is new (201) or replaced one (200).
pub struct SavedSchema {
    pub schema: EventSchema,
    pub created: bool,
}

impl Management {
    /// Global structure when `partner_id` is `None`, else the partner's (which must exist).
    pub async fn put_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: String,
        request: SchemaRequest,
    ) -> Result<SavedSchema, Failure> {
        self.existing_scope(partner_id).await?;
        check_event_type(&event_type).map_err(|message| FieldErrors::one("eventType", message))?;
        if let Err(reason) = compile(&request.schema, request.mode, 1) {
            return Err(FieldErrors::one(
                "schema",
                format!("is not a valid JSON Schema (2020-12): {reason}"),
            )
            .into());
        }
        let now = Utc::now();
        let previous = self.store.schema(partner_id, &event_type).await?;
        let schema = EventSchema {
            partner_id,
            event_type,
            schema: request.schema,
            mode: request.mode,
            version: previous.as_ref().map_or(1, |previous| previous.version + 1),
            created_at: previous
                .as_ref()
                .map_or(now, |previous| previous.created_at),
            updated_at: now,
        };
        self.store.put_schema(&schema).await?;
        self.invalidate(Invalidation::Schemas).await;
        let scope = partner_id.map_or_else(|| "global".to_string(), |id| id.to_string());
        tracing::info!(
            event_type = schema.event_type,
            scope,
            version = schema.version,
            "event structure saved"
        );
        Ok(SavedSchema {
            schema,
            created: previous.is_none(),
        })
    }

    pub async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<EventSchema, Failure> {
        self.existing_scope(partner_id).await?;
        let schema = self.store.schema(partner_id, event_type).await?;
        schema.ok_or_else(|| no_schema(event_type))
    }

    pub async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, Failure> {
        self.existing_scope(partner_id).await?;
        Ok(self.store.schemas(partner_id).await?)
    }

    pub async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<(), Failure> {
        self.existing_scope(partner_id).await?;
        if !self.store.delete_schema(partner_id, event_type).await? {
            return Err(no_schema(event_type));
        }
        self.invalidate(Invalidation::Schemas).await;
        Ok(())
    }

    /// A partner's structures need the partner; global ones need nothing.
    async fn existing_scope(&self, partner_id: Option<Uuid>) -> Result<(), Failure> {
        if let Some(partner_id) = partner_id {
            self.partner(partner_id).await?;
        }
        Ok(())
    }
}

fn no_schema(event_type: &str) -> Failure {
    Refusal::NotFound(format!("no event structure for '{event_type}'")).into()
}
