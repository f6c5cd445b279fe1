//! Event structure management (admin token): global structures under `/schemas`, and
//! partner structures under `/partners/{id}/schemas`, which win over the global ones.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::extract::{Admin, json_body};
use crate::http::partners::existing_partner;
use crate::http::state::AppState;
use crate::ingest::event::check_event_type;
use crate::redis::Invalidation;
use crate::schemas::{EventSchema, SchemaMode, compile};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    schema: Value,
    #[serde(default)]
    mode: SchemaMode,
}

#[derive(Serialize)]
pub struct SchemaList {
    items: Vec<EventSchema>,
}

fn checked_event_type(event_type: &str) -> Result<(), ApiError> {
    check_event_type(event_type).map_err(|message| ApiError::field("eventType", message))
}

async fn put(
    state: &AppState,
    partner_id: Option<Uuid>,
    event_type: String,
    request: SchemaRequest,
) -> Result<Response, ApiError> {
    checked_event_type(&event_type)?;
    if let Err(reason) = compile(&request.schema, request.mode, 1) {
        return Err(ApiError::field(
            "schema",
            format!("is not a valid JSON Schema (2020-12): {reason}"),
        ));
    }
    let now = Utc::now();
    let previous = state.store.schema(partner_id, &event_type).await?;
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
    state.store.put_schema(&schema).await?;
    state.invalidate(Invalidation::Schemas).await;
    tracing::info!(
        event_type = schema.event_type,
        partner_id = partner_id.map(tracing::field::display),
        version = schema.version,
        "event structure saved"
    );
    let status = if previous.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(schema)).into_response())
}

async fn get(
    state: &AppState,
    partner_id: Option<Uuid>,
    event_type: &str,
) -> Result<Json<EventSchema>, ApiError> {
    let schema = state.store.schema(partner_id, event_type).await?;
    schema
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no event structure for '{event_type}'")))
}

async fn delete(
    state: &AppState,
    partner_id: Option<Uuid>,
    event_type: &str,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_schema(partner_id, event_type).await? {
        return Err(ApiError::not_found(format!(
            "no event structure for '{event_type}'"
        )));
    }
    state.invalidate(Invalidation::Schemas).await;
    Ok(StatusCode::NO_CONTENT)
}

fn request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<SchemaRequest, ApiError> {
    json_body(headers, body)
}

pub async fn put_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    put(&state, None, event_type, request(&headers, body)?).await
}

pub async fn get_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
) -> Result<Json<EventSchema>, ApiError> {
    get(&state, None, &event_type).await
}

pub async fn delete_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&state, None, &event_type).await
}

pub async fn list_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<SchemaList>, ApiError> {
    Ok(Json(SchemaList {
        items: state.store.schemas(None).await?,
    }))
}

pub async fn put_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = request(&headers, body)?;
    let partner = existing_partner(&state, &partner_id).await?;
    put(&state, Some(partner.id), event_type, request).await
}

pub async fn get_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
) -> Result<Json<EventSchema>, ApiError> {
    let partner = existing_partner(&state, &partner_id).await?;
    get(&state, Some(partner.id), &event_type).await
}

pub async fn delete_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let partner = existing_partner(&state, &partner_id).await?;
    delete(&state, Some(partner.id), &event_type).await
}

pub async fn list_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<SchemaList>, ApiError> {
    let partner = existing_partner(&state, &partner_id).await?;
    Ok(Json(SchemaList {
        items: state.store.schemas(Some(partner.id)).await?,
    }))
}
