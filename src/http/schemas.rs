//! Event structure management (admin token): global structures under `/schemas`, and
//! partner structures under `/partners/{id}/schemas`, which win over the global ones.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use uuid::Uuid;

use crate::http::extract::{Admin, json_body, path_id};
use crate::http::problem::ApiError;
use crate::http::respond::Items;
use crate::http::state::AppState;
use crate::manage::{SavedSchema, SchemaRequest};
use crate::model::EventSchema;

fn partner(raw_id: &str) -> Result<Option<Uuid>, ApiError> {
    path_id(raw_id, "partner").map(Some)
}

fn saved(saved: SavedSchema) -> Response {
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(saved.schema)).into_response()
}

#[utoipa::path(put, path = "/api/v1/schemas/{event_type}", tag = "schemas", params(("event_type" = String, Path, description = "The event type the structure applies to")),
    request_body = SchemaRequest, responses((status = 200, description = "Replaced", body = EventSchema),
              (status = 201, description = "Created", body = EventSchema)),
    security(("bearer" = [])))]
pub async fn put_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(&headers, body)?;
    Ok(saved(
        state
            .management
            .put_schema(None, event_type, request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/schemas/{event_type}", tag = "schemas", params(("event_type" = String, Path, description = "The event type the structure applies to")),
    responses((status = 200, description = "The global structure", body = EventSchema)),
    security(("bearer" = [])))]
pub async fn get_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
) -> Result<Json<EventSchema>, ApiError> {
    Ok(Json(state.management.schema(None, &event_type).await?))
}

#[utoipa::path(delete, path = "/api/v1/schemas/{event_type}", tag = "schemas", params(("event_type" = String, Path, description = "The event type the structure applies to")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = [])))]
pub async fn delete_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(event_type): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.management.delete_schema(None, &event_type).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas",
    responses((status = 200, description = "The global structures", body = Items<EventSchema>)),
    security(("bearer" = [])))]
pub async fn list_global(
    State(state): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<Items<EventSchema>>, ApiError> {
    Ok(Items::json(state.management.schemas(None).await?))
}

#[utoipa::path(put, path = "/api/v1/partners/{id}/schemas/{event_type}", tag = "schemas", params(("id" = Uuid, Path, description = "The partner's id"), ("event_type" = String, Path, description = "The event type the structure applies to")),
    request_body = SchemaRequest, responses((status = 200, description = "Replaced", body = EventSchema),
              (status = 201, description = "Created", body = EventSchema)),
    security(("bearer" = [])))]
pub async fn put_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(&headers, body)?;
    let partner_id = partner(&partner_id)?;
    Ok(saved(
        state
            .management
            .put_schema(partner_id, event_type, request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/schemas/{event_type}", tag = "schemas", params(("id" = Uuid, Path, description = "The partner's id"), ("event_type" = String, Path, description = "The event type the structure applies to")),
    responses((status = 200, description = "The partner's structure", body = EventSchema)),
    security(("bearer" = [])))]
pub async fn get_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
) -> Result<Json<EventSchema>, ApiError> {
    let partner_id = partner(&partner_id)?;
    Ok(Json(
        state.management.schema(partner_id, &event_type).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/partners/{id}/schemas/{event_type}", tag = "schemas", params(("id" = Uuid, Path, description = "The partner's id"), ("event_type" = String, Path, description = "The event type the structure applies to")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = [])))]
pub async fn delete_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((partner_id, event_type)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let partner_id = partner(&partner_id)?;
    state
        .management
        .delete_schema(partner_id, &event_type)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/schemas", tag = "schemas", params(("id" = Uuid, Path, description = "The partner's id")),
    responses((status = 200, description = "The partner's structures", body = Items<EventSchema>)),
    security(("bearer" = [])))]
pub async fn list_partner(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<Items<EventSchema>>, ApiError> {
    let partner_id = partner(&partner_id)?;
    Ok(Items::json(state.management.schemas(partner_id).await?))
}
