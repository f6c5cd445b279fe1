use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What happens to an event whose `properties` break its structure.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// Store it with `isValid: false` and its errors (tracking data is never lost).
    #[default]
    Flag,
    /// Refuse it: 422 for a single event, a per-event error in a batch.
    Reject,
}

/// The OpenAPI schema of a JSON Schema document: an object, or `true`/`false`.
pub fn json_schema_document() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Boolean]))
        .description(Some("A JSON Schema (2020-12) for the events' `properties`"))
        .into()
}

/// An event structure: a JSON Schema for the `properties` of one event type, global
/// (`partner_id` none) or for one partner, which wins over the global one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSchema {
    pub partner_id: Option<Uuid>,
    pub event_type: String,
    /// A JSON Schema (2020-12) for the events' `properties`.
    #[schema(schema_with = json_schema_document)]
    pub schema: Value,
    pub mode: SchemaMode,
    /// Starts at 1 and grows with every change (validators are cached by content).
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
