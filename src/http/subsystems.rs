//! Subsystem management (admin token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::http::extract::{Admin, json_body, path_id};
use crate::http::openapi::Problem;
use crate::http::problem::ApiError;
use crate::http::respond::{Items, created};
use crate::http::state::AppState;
use crate::model::Subsystem;
use crate::tenants::{SubsystemChanges, SubsystemDraft};

#[utoipa::path(post, path = "/api/v1/partners/{id}/subsystems", tag = "subsystems", params(("id" = Uuid, Path, description = "The partner's id")),
    request_body = SubsystemDraft,
    responses((status = 201, description = "Created", body = Subsystem), (status = 409, description = "The code is taken within the partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let draft = json_body(&headers, body)?;
    let partner_id = path_id(&partner_id, "partner")?;
    let subsystem = state.management.create_subsystem(partner_id, draft).await?;
    Ok(created(
        format!("/api/v1/subsystems/{}", subsystem.id),
        subsystem,
    ))
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/subsystems", tag = "subsystems", params(("id" = Uuid, Path, description = "The partner's id")),
    responses((status = 200, description = "The partner's subsystems", body = Items<Subsystem>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<Items<Subsystem>>, ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    Ok(Items::json(state.management.subsystems(partner_id).await?))
}

#[utoipa::path(get, path = "/api/v1/subsystems/{id}", tag = "subsystems", params(("id" = Uuid, Path, description = "The subsystem's id")),
    responses((status = 200, description = "The subsystem", body = Subsystem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Subsystem>, ApiError> {
    let id = path_id(&id, "subsystem")?;
    Ok(Json(state.management.subsystem(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/subsystems/{id}", tag = "subsystems", params(("id" = Uuid, Path, description = "The subsystem's id")),
    request_body = SubsystemChanges,
    responses((status = 200, description = "The changed subsystem", body = Subsystem), (status = 409, description = "The code is taken within the partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Subsystem>, ApiError> {
    let changes = json_body(&headers, body)?;
    let id = path_id(&id, "subsystem")?;
    Ok(Json(state.management.update_subsystem(id, changes).await?))
}

/// Deactivates: events for it are refused and keys pinned to it stop working.
#[utoipa::path(delete, path = "/api/v1/subsystems/{id}", tag = "subsystems", params(("id" = Uuid, Path, description = "The subsystem's id")),
    responses((status = 204, description = "Deactivated: its events are refused, its data stays")),
    security(("bearer" = [])))]
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "subsystem")?;
    state.management.deactivate_subsystem(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
